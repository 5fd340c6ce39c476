"""Benchmark reports: metrics.json (contract), report.md and a PNG bar chart."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass(frozen=True)
class Sample:
    """One reranked example shown in the report, with the student's or teacher's explanation."""

    system: str
    query: str
    doc_id: str
    label: str
    explanation: str


def write_report(
    out_dir: str | Path, collection: str, systems: dict[str, dict[str, float]], queries: int,
    sections: dict[str, list[str]], samples: list[Sample],
) -> dict[str, Path]:
    """`sections`: titled bullet lists (notes, prompt-injection results, ...) shown after the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps({"collection": collection, "systems": systems, "queries": queries}, indent=2))

    measures = list(next(iter(systems.values())).keys())
    plot_path = out_dir / "metrics.png"
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(systems)
    for i, (name, values) in enumerate(systems.items()):
        ax.bar([m + i * width for m in range(len(measures))], [values[m] for m in measures], width, label=name)
    ax.set_xticks([m + width * (len(systems) - 1) / 2 for m in range(len(measures))], measures)
    ax.set_ylim(0, 1)
    ax.set_title(f"{collection}: {queries} evaluation queries")
    ax.legend()
    fig.tight_layout()
    fig.savefig(plot_path, dpi=100)
    plt.close(fig)

    lines = [f"# Benchmark report: {collection}", "", f"{queries} evaluation queries (held out from training).", ""]
    lines += ["| system | " + " | ".join(measures) + " |", "|---" * (len(measures) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v[m]:.4f}" for m in measures) + " |" for name, v in systems.items()]
    lines += ["", "![metrics](metrics.png)", ""]
    for title, items in sections.items():
        if items:
            lines += [f"## {title}", ""] + [f"- {item}" for item in items] + [""]
    if samples:
        lines += ["## Samples", ""]
        for s in samples:
            lines += [f"- **{s.system}** · query: {s.query[:160]}", f"  - `{s.doc_id}` label {s.label}: {s.explanation[:300]}"]
    report_path = out_dir / "report.md"
    report_path.write_text("\n".join(lines) + "\n")
    return {"metrics": metrics_path, "report": report_path, "plot": plot_path}


def format_table(systems: dict[str, dict[str, float]]) -> str:
    measures = list(next(iter(systems.values())).keys())
    width = max(len("system"), *(len(name) for name in systems)) + 2
    header = f"{'system':<{width}}" + "".join(f"{m:>10}" for m in measures)
    rows = [f"{name:<{width}}" + "".join(f"{v[m]:>10.4f}" for m in measures) for name, v in systems.items()]
    return "\n".join([header] + rows)
