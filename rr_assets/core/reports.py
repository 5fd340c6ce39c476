"""Benchmark reports: metrics.json (contract), report.md and a PNG a person reads at a glance."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rr_assets.core.compared_systems import SystemResult  # noqa: E402
from rr_assets.core.metrics import MEASURES  # noqa: E402


@dataclass(frozen=True)
class Sample:
    """One reranked example shown in the report, with the student's or teacher's explanation."""

    system: str
    query: str
    doc_id: str
    verdict: str  # "label 2" (a teacher's) or "score 0.93" (a student's)
    explanation: str


@dataclass(frozen=True)
class StageCost:
    """A stage's latest materialisation: its wall time and new teacher calls; for teacher stages,
    the answers its rows use (new or cached), their tokens and their price at the configured rates."""

    stage: str
    seconds: float | None
    new_teacher_calls: int = 0
    answers_used: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost: float = 0.0
    imported: bool = False  # its answers were read from files: no call was made

    @property
    def calls(self) -> str:
        return "imported, 0 calls" if self.imported else str(self.new_teacher_calls)


@dataclass
class Report:
    collection: str
    first_stage: str
    queries: int
    results: list[SystemResult]
    published: list[dict] = field(default_factory=list)
    costs: list[StageCost] = field(default_factory=list)
    curves: dict[str, dict] = field(default_factory=dict)  # per checkpoint: dev curve and first-stage dev nDCG
    sections: dict[str, list[str]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)


def significance(result: SystemResult) -> dict:
    """A system's paired comparison with the first stage, as JSON fields (none for the first stage)."""
    c = result.versus_first_stage
    if c is None:
        return {}
    return {"delta_nDCG@10": round(c.mean_difference, 4), "p_value_t": c.p_value_t,
            "p_value_randomization": c.p_value_randomization, "wins": c.wins, "ties": c.ties, "losses": c.losses}


def metrics_json(report: Report) -> dict:
    """The contract (`systems`: name → the four measures, `queries`) plus details per system."""
    return {
        "collection": report.collection,
        "queries": report.queries,
        "first_stage": report.first_stage,
        "systems": {r.name: r.metrics for r in report.results},
        "details": {r.name: {"queries": r.queries, "rerank_depth": r.rerank_depth, "pairs_per_s": r.pairs_per_s,
                             "note": r.note, **significance(r)} for r in report.results},
        "published": report.published,
        "costs": [asdict(c) for c in report.costs],
    }


def _p(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def results_table(results: list[SystemResult]) -> list[str]:
    measures = list(MEASURES)
    lines = ["| system | queries | depth | " + " | ".join(measures) + " | Δ nDCG@10 | p (t) | p (rand.) | W/T/L | pairs/s |",
             "|---" * (len(measures) + 8) + "|"]
    for r in results:
        c = r.versus_first_stage
        versus = (f"{c.mean_difference:+.4f} | {_p(c.p_value_t)} | {_p(c.p_value_randomization)} | "
                  f"{c.wins}/{c.ties}/{c.losses}") if c else "— | — | — | —"
        speed = f"{r.pairs_per_s:.2f}" if r.pairs_per_s else "—"
        lines.append(f"| {r.name} | {r.queries} | {r.rerank_depth or '—'} | "
                     + " | ".join(f"{r.metrics[m]:.4f}" for m in measures) + f" | {versus} | {speed} |")
    return lines


def _plot(report: Report, path: Path) -> None:
    panels = 2 if report.curves else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 0.45 * len(report.results) + 2.2), squeeze=False)
    ax = axes[0][0]
    names = [r.name for r in report.results][::-1]
    values = [r.metrics["nDCG@10"] for r in report.results][::-1]
    colours = ["#888888" if r.versus_first_stage is None else
               ("#2a9d3a" if r.versus_first_stage.mean_difference > 0 and r.versus_first_stage.p_value_t < 0.05 else
                "#c0392b" if r.versus_first_stage.mean_difference < 0 and r.versus_first_stage.p_value_t < 0.05 else
                "#5b7db1") for r in report.results][::-1]
    ax.barh(names, values, color=colours)
    first = next(r for r in report.results if r.versus_first_stage is None)
    ax.axvline(first.metrics["nDCG@10"], color="black", linestyle="--", linewidth=1, label=f"{first.name}")
    for y, (value, result) in enumerate(zip(values, report.results[::-1])):
        ax.text(value + 0.005, y, f"{value:.3f} (n={result.queries})", va="center", fontsize=8)
    ax.set_xlim(0, min(1.0, max(values) + 0.2))
    ax.set_xlabel("nDCG@10 (green/red: significantly better/worse than the first stage, p < 0.05)")
    ax.set_title(f"{report.collection}: {report.queries} evaluation queries")
    if report.curves:
        ax = axes[0][1]
        for name, curve in report.curves.items():
            points = curve["dev"]
            ax.plot([p["step"] for p in points], [p["dev_nDCG@10"] for p in points], marker="o", label=name)
            if curve.get("first_stage") is not None:
                ax.axhline(curve["first_stage"], linestyle=":", color="grey")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("dev nDCG@10 (dotted: first stage)")
        ax.set_title("Training: dev-slice curve")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out_dir: str | Path, report: Report) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out_dir / "metrics.json", "report": out_dir / "report.md", "plot": out_dir / "metrics.png"}
    paths["metrics"].write_text(json.dumps(metrics_json(report), indent=2))
    _plot(report, paths["plot"])
    lines = [f"# Benchmark report: {report.collection}", "",
             f"{report.queries} evaluation queries (held out from training); first stage: {report.first_stage}. "
             "Δ, p-values (paired two-sided t-test and randomization test) and wins/ties/losses compare each "
             "system's nDCG@10 with the first stage's on the same queries.", ""]
    lines += results_table(report.results) + ["", "![metrics](metrics.png)", ""]
    if report.published:
        lines += ["## Published figures on this collection", "", "| system | nDCG@10 | nDCG@5 | R@100 | source |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['system']} | {p.get('nDCG@10', '—')} | {p.get('nDCG@5', '—')} | {p.get('R@100', '—')} | {p['source']} |"
                  for p in report.published] + [""]
    if report.costs:
        lines += ["## Cost per stage", "", "Wall time and new teacher calls of each stage's latest run; answers, tokens "
                  "and cost count every teacher answer the stage's rows use, paid then or earlier (cached).", "",
                  "| stage | wall time (s) | new teacher calls | answers used | prompt tokens | completion tokens | est. cost |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c.stage} | {c.seconds if c.seconds is not None else '—'} | {c.calls} | {c.answers_used} | "
                  f"{c.prompt_tokens} | {c.completion_tokens} | {c.estimated_cost:.4f} |" for c in report.costs] + [""]
    for title, items in report.sections.items():
        if items:
            lines += [f"## {title}", ""] + [f"- {item}" for item in items] + [""]
    if report.samples:
        lines += ["## Samples", ""]
        for s in report.samples:
            lines += [f"- **{s.system}** · query: {s.query[:160]}", f"  - `{s.doc_id}` {s.verdict}: {s.explanation[:300]}"]
    paths["report"].write_text("\n".join(lines) + "\n")
    return paths


def format_table(systems: dict[str, dict[str, float]], details: dict[str, dict] | None = None) -> str:
    """The metrics of metrics.json as a terminal table (with queries and p-values when given)."""
    measures = list(MEASURES)
    width = max(len("system"), *(len(name) for name in systems)) + 2
    header = f"{'system':<{width}}{'queries':>8}" + "".join(f"{m:>10}" for m in measures) + f"{'p (t)':>10}{'W/T/L':>12}"
    rows = [header]
    for name, values in systems.items():
        d = (details or {}).get(name, {})
        p = d.get("p_value_t")
        wtl = f"{d['wins']}/{d['ties']}/{d['losses']}" if "wins" in d else "—"
        rows.append(f"{name:<{width}}{d.get('queries', ''):>8}" + "".join(f"{values[m]:>10.4f}" for m in measures)
                    + f"{(_p(p) if p is not None else '—'):>10}{wtl:>12}")
    return "\n".join(rows)
