"""Scale: rr's collection stages timed on synthetic BEIR collections of growing size, then what a
collection with 100k training queries would cost in teacher calls, money, hours and GPU-hours.

    .venv/bin/python benchmarks/scale.py [--docs 10000 100000] [--queries 200 1000] [--seed 0] [--workdir DIR]
                                         [--train-queries 100000] [--replicas 8] ... (every assumption has a flag)

Each size gets a synthetic collection (corpus.jsonl, queries.jsonl, qrels/train.tsv and test.tsv):
documents are pseudo-words drawn from a Zipf-Mandelbrot vocabulary; a query is a few words of one
target document plus a few drawn from the vocabulary, judged relevant to that document only, so
BM25 has real work (the run prints how often it finds it). The functions the assets call then run,
each stage in a fresh process (as an out-of-process executor runs a step, so its peak memory is its
own): load into DuckDB (collection_tables), the JVM start, the Lucene BM25 index (bm25_index), top-k
candidates (first_stage_candidates), and the SQL models splits, train_pointwise and train_pairwise
as the `grounded` variant builds them (labels from the training qrels and hard negatives, no
teacher answer; train_listwise needs the teacher's rankings and is skipped). Wall time and the peak
resident memory of the process and its children (the JVM runs inside the process, through pyjnius)
are sampled per stage.

The projection counts teacher calls per training query with rr's own pair selection (the
judge_pairs query, comparison_pairs, sliding_windows) on the largest measured collection, sizes
each prompt by rendering it with the variant's templates, and counts the student's training pairs
per query with training_groups over the train_pointwise rows. Every other figure is a named
assumption with a flag. Prints tables and writes JSON (default benchmarks/results/scale-<machine>.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

import rr_assets
from rr_assets.config import PROJECT_ROOT, RESOURCES_DIR
from rr_assets.core.candidate_sampling import comparison_pairs, sliding_windows
from rr_assets.core.collections import CollectionSource, Document, Query, load_collection
from rr_assets.core.first_stage import write_trec_run
from rr_assets.core.jvm import pyserini_lucene
from rr_assets.core.prompts import PromptVariant, load_variant
from rr_assets.core.retrieval import build_index, search
from rr_assets.core.settings import RetrievalSettings, SplitSettings, StudentSettings, TeacherSettings
from rr_assets.core.sql_models import load_models, run_model
from rr_assets.core.warehouse import Warehouse

COLLECTION = "synthetic"
SQL_MODELS_DIR = Path(rr_assets.__file__).resolve().parent / "dbt_like_sql"  # where definitions.py finds them
TABLES_WITHOUT_TEACHER = ("splits", "train_pointwise", "train_pairwise")
CANDIDATES = f"candidates (top {RetrievalSettings().first_stage_depth})"
LUCENE_STAGES = ("BM25 index", CANDIDATES)
STAGES = ("load into DuckDB", "JVM start", "BM25 index", CANDIDATES, *TABLES_WITHOUT_TEACHER)
SKIPPED_TABLES = {"train_listwise": "needs teacher_rankings (the teacher's listwise answers)"}
MSMARCO_PASSAGES = 8_841_823


def assumption(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Assumptions:
    """What the projection assumes; each field is a flag (--train-queries, ...)."""

    train_queries: int = assumption(100_000, "training queries the projection is for")
    project_docs: int = assumption(MSMARCO_PASSAGES, "corpus size the pipeline stages are projected to "
                                                     "(default: the MS MARCO passage corpus)")
    variant: str = assumption("grounded", "prompt variant whose calls are counted (resources/prompts/<variant>)")
    judge_depth: int = assumption(TeacherSettings().judge_depth, "top candidates per query the teacher judges "
                                                                 "(teacher.judge_depth)")
    tokens_per_word: float = assumption(1.33, "BPE tokens per English word (OpenAI's rule of thumb: 1 token ~ 0.75 "
                                              "words); applied to rendered prompts of synthetic words")
    completion_tokens: int = assumption(0, "completion tokens per call; 0 = the variant's max_tokens (an upper bound)")
    price_prompt_per_m: float = assumption(0.15, "hosted teacher, $ per 1M prompt tokens (gpt-4o-mini, the README's "
                                                 "price example)")
    price_completion_per_m: float = assumption(0.60, "hosted teacher, $ per 1M completion tokens (gpt-4o-mini)")
    replicas: int = assumption(8, "vLLM replicas in teacher.endpoints")
    replica_prefill_tokens_per_s: float = assumption(20_000.0, "prompt tokens/s one replica processes under batching "
                                                               "(assumed for a 7-8B teacher on one GPU; not measured here)")
    replica_decode_tokens_per_s: float = assumption(2_000.0, "completion tokens/s one replica generates under batching "
                                                             "(assumed, as above; not measured here)")
    embedded_requests_per_s: float = assumption(0.553, "this project's embedded teacher (Gemma 3 270M, llama.cpp, 2 "
                                                       "cores): measured, benchmarks/results/"
                                                       "teacher_throughput-portable-x86-64-v3.json")
    candidate_docs_exponent: float = assumption(1.0, "BM25 seconds per query grow as docs^x (x = 1: posting lists "
                                                     "grow with the corpus; the run prints the measured x)")
    epochs: float = assumption(1.0, "student epochs over the training groups")
    gpu_train_pairs_per_s: float = assumption(100.0, "student training pairs/s on one GPU: ASSUMED, no GPU figure is "
                                                     "measured in this repo (docs/performance.md)")
    cpu_train_pairs_per_s: float = assumption(2.60, "student training pairs/s, the fastest measured CPU: AMD EPYC "
                                                    "family 26, bf16, 2 cores, 262 tokens per pair (docs/performance.md)")


# --- the synthetic collection -----------------------------------------------------------------

_CONSONANTS, _VOWELS = "bcdfghjklmnprstvwxz", "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]


def pseudo_word(index: int) -> str:
    """A distinct pronounceable word per index, at least two syllables."""
    n, syllables = index + len(_SYLLABLES), []
    while n:
        n, digit = divmod(n, len(_SYLLABLES))
        syllables.append(_SYLLABLES[digit])
    return "".join(reversed(syllables))


def write_synthetic_collection(folder: str | Path, docs: int, queries: int, seed: int = 0, doc_words: int = 60,
                               query_words: int = 4, noise_words: int = 2, vocabulary: int = 50_000,
                               zipf_exponent: float = 1.0, train_fraction: float = 0.8) -> CollectionSource:
    """A BEIR folder rr reads, deterministic in `seed`: documents of about `doc_words` words (a 4-word
    title, Poisson lengths) drawn from a Zipf-Mandelbrot vocabulary; each query is `query_words` of a
    target document's words (frequent words as likely as in the text) and `noise_words` drawn from the
    vocabulary, judged relevant (1) to that document; `train_fraction` of the queries go to
    qrels/train.tsv, the rest to qrels/test.tsv."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = np.array([pseudo_word(i) for i in range(vocabulary)], dtype=object)
    weights = 1.0 / (np.arange(vocabulary) + 2.7) ** zipf_exponent
    weights /= weights.sum()
    targets = rng.integers(0, docs, size=queries)
    wanted, kept = set(targets.tolist()), {}
    with (folder / "corpus.jsonl").open("w") as corpus:
        for start in range(0, docs, 10_000):
            count = min(10_000, docs - start)
            lengths = np.maximum(5, rng.poisson(doc_words, size=count))
            ids = rng.choice(vocabulary, size=int(lengths.sum()), p=weights)
            for i, chunk in enumerate(np.split(ids, np.cumsum(lengths)[:-1])):
                doc = start + i
                if doc in wanted:
                    kept[doc] = chunk
                corpus.write(json.dumps({"_id": f"d{doc}", "title": " ".join(words[chunk[:4]]),
                                         "text": " ".join(words[chunk[4:]])}) + "\n")
    splits = rng.random(queries) < train_fraction
    with (folder / "queries.jsonl").open("w") as out, (folder / "qrels" / "train.tsv").open("w") as train, \
            (folder / "qrels" / "test.tsv").open("w") as test:
        for qrels in (train, test):
            qrels.write("query-id\tcorpus-id\tscore\n")
        for q, (doc, is_train) in enumerate(zip(targets.tolist(), splits)):
            own = rng.choice(kept[doc], size=min(query_words, len(kept[doc])), replace=False)
            text = " ".join(words[np.append(own, rng.choice(vocabulary, size=noise_words, p=weights))])
            out.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
            (train if is_train else test).write(f"q{q}\td{doc}\t1\n")
    return CollectionSource(COLLECTION, str(folder), eval_split="test", train_split="train")


# --- measuring --------------------------------------------------------------------------------

class PeakRss:
    """The largest resident memory of this process and its children, sampled in a thread."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s, self.peak = interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def now() -> int:
        process = psutil.Process()
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakRss:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def sql_params(variant: PromptVariant, source: CollectionSource) -> dict:
    """The values the training-table assets pass to the SQL models (rr_assets/assets/training_tables.py)."""
    return {"collection": COLLECTION, "prompt_variant": variant.name, "train_split": source.train_split,
            "eval_split": source.eval_split, "dev_split": source.dev_split, "student_from": source.student_from,
            "eval_percent": SplitSettings().eval_percent, "dev_percent": SplitSettings().dev_percent,
            "hard_negative_depth": StudentSettings().hard_negative_depth, "grounded": variant.grounded,
            "max_label": max(variant.labels)}


def stage_functions(source: CollectionSource, workdir: str) -> dict[str, Callable[[], int]]:
    """The collection stages as their assets run them, in order; each returns the rows it wrote."""
    warehouse = Warehouse(Path(workdir) / "warehouse.duckdb")
    where = {"collection": COLLECTION}
    index_dir = Path(workdir) / "index"
    retrieval = RetrievalSettings()

    def load() -> int:  # collection_tables (rr_assets/assets/corpus.py): the frames are built in the asset
        collection = load_collection(source)
        frames = {
            "quarantine": pd.DataFrame([q.__dict__ for q in collection.quarantined],
                                       columns=["file", "line", "reason", "excerpt"]),
            "corpus": pd.DataFrame([{"doc_id": d.doc_id, "title": d.title, "text": d.text} for d in collection.documents]),
            "queries": pd.DataFrame([{"query_id": q.query_id, "text": q.text} for q in collection.queries]),
            "qrels": pd.DataFrame([r.__dict__ for r in collection.qrels], columns=["query_id", "doc_id", "relevance", "split"]),
        }
        for table, frame in frames.items():
            frame.insert(0, "collection", COLLECTION)
            warehouse.replace_rows(table, where, frame)
        return len(frames["corpus"])

    def start_jvm() -> int:  # pyserini's first import: every process that indexes or searches pays it once
        pyserini_lucene()
        return 0

    def index() -> int:  # bm25_index (rr_assets/assets/index.py)
        documents = [Document(r.doc_id, r.title or "", r.text) for r in warehouse.query("corpus_documents", where).itertuples()]
        return build_index(documents, index_dir)

    def candidates() -> int:  # first_stage_candidates (rr_assets/assets/candidates.py), rr's own BM25
        queries = [Query(r.query_id, r.text) for r in warehouse.query("collection_queries", where).itertuples()]
        found = search(index_dir, queries, retrieval.first_stage_depth, retrieval.k1, retrieval.b)
        frame = pd.DataFrame([c.__dict__ for c in found], columns=["query_id", "doc_id", "rank", "score"])
        frame.insert(0, "collection", COLLECTION)
        warehouse.replace_rows("first_stage_candidates", where, frame)
        write_trec_run(found, Path(workdir) / "first_stage.trec", "first_stage")
        return len(frame)

    models = load_models(SQL_MODELS_DIR)
    params = sql_params(load_variant(RESOURCES_DIR / "prompts", "grounded"), source)

    def table(name: str) -> Callable[[], int]:
        def build() -> int:  # the SQL model assets (rr_assets/assets/training_tables.py)
            with warehouse.connect() as con:
                return run_model(con, models[name], params).rows
        return build

    functions = {"load into DuckDB": load, "JVM start": start_jvm, "BM25 index": index, CANDIDATES: candidates,
                 **{name: table(name) for name in TABLES_WITHOUT_TEACHER}}
    return {name: functions[name] for name in STAGES}


def measure_stage(source: CollectionSource, workdir: str, name: str) -> dict:
    """One stage, in a fresh process (as an out-of-process executor runs a step): its wall time, its
    CPU time (every thread, the JVM's too, and its children), the process's resident memory before
    it (imports, and the JVM for the Lucene stages, started untimed) and at its peak."""
    functions = stage_functions(source, workdir)
    if name in LUCENE_STAGES:
        functions["JVM start"]()
    base = PeakRss.now()
    with PeakRss() as rss:
        started, cpu_started = time.perf_counter(), sum(psutil.Process().cpu_times()[:4])
        count = functions[name]()
        seconds, cpu = time.perf_counter() - started, sum(psutil.Process().cpu_times()[:4]) - cpu_started
    return {"stage": name, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "base_rss_mb": round(base / 2**20),
            "peak_rss_mb": round(rss.peak / 2**20), "rows": count}


# --- planning from the measured collection ----------------------------------------------------

def teacher_plan(warehouse: Warehouse, variant: PromptVariant, a: Assumptions) -> dict:
    """Calls per training query and words per prompt, from rr's own pair selection on the collection:
    the judge_pairs query the teacher assets run (every training query, no evaluation query),
    comparison_pairs and sliding_windows, and prompts rendered with the variant's templates."""
    rows = warehouse.query("judge_pairs", {
        "collection": COLLECTION, "judge_depth": a.judge_depth, "train_queries": -1, "eval_queries": 0,
        "grounded": variant.grounded, "explain_per_query": variant.explain_per_query})
    queries = dict(zip(rows["query_id"], rows["query"]))
    documents = {d: variant.prepare_document(t)[0] for d, t in zip(rows["doc_id"], rows["document"])}
    ranked_rows = rows[rows["rank"].notna()].sort_values(["query_id", "rank"])  # as the asset's _ranked_texts
    ranked = {q: list(g["doc_id"]) for q, g in ranked_rows.groupby("query_id", sort=True)}
    pairs = comparison_pairs(ranked, {}, int(variant.comparison["max_pairs_per_query"]),
                             float(variant.comparison["swap_fraction"]), seed=0)
    window, stride = int(variant.listwise["window"]), int(variant.listwise["stride"])
    windows = [(q, docs[s:e]) for q, docs in ranked.items() for s, e in sliding_windows(len(docs), window, stride)]

    def direct(r) -> str:  # a grounded training pair is shown its qrels label, as teacher_judgments does
        label = None if pd.isna(r.gold_relevance) else variant.scaled_label(r.gold_relevance, r.max_relevance)
        return variant.render("direct", query=r.query, document=documents[r.doc_id], label=label)

    prompts = {
        "direct": [direct(r) for r in rows.head(2000).itertuples()],
        "comparison": [variant.render("comparison", query=queries[p.query_id], document_a=documents[p.doc_a],
                                      document_b=documents[p.doc_b]) for p in pairs[:2000]],
        "listwise": [variant.render("listwise", query=queries[q], documents=[
            {"id": i, "text": documents[d]} for i, d in enumerate(docs, start=1)]) for q, docs in windows[:2000]],
    }
    calls = {"direct": len(rows), "comparison": len(pairs), "listwise": len(windows)}
    n = max(1, rows["query_id"].nunique())
    return {"training_queries_planned": n,
            "kinds": {kind: {"calls_per_query": round(calls[kind] / n, 3),
                             "prompt_words_per_call": round(float(np.mean([len(p.split()) for p in prompts[kind]])), 1)
                             if prompts[kind] else 0.0}
                      for kind in ("direct", "comparison", "listwise") if kind in variant.templates}}


def training_pairs_per_query(warehouse: Warehouse) -> float:
    """Pairs the student sees per training query and epoch: rr's training_groups over train_pointwise."""
    from rr_assets.core.student_model import StudentExample
    from rr_assets.core.training import training_groups  # imports torch: kept out of the measured processes

    rows = warehouse.partition_rows("train_pointwise", {"collection": COLLECTION, "prompt_variant": "grounded"})
    examples = [StudentExample(r.query_id, r.doc_id, "", "", int(r.label), "") for r in rows.itertuples()]
    groups = training_groups(examples, StudentSettings().group_size, random.Random(0))
    return sum(len(g) for g in groups) / max(1, rows["query_id"].nunique())


def first_stage_quality(warehouse: Warehouse) -> dict:
    """How often BM25 ranks each query's judged document in its candidates, and its mean reciprocal
    rank: the synthetic collection gives BM25 real work, neither trivial nor hopeless."""
    where = {"collection": COLLECTION}
    qrels = warehouse.partition_rows("qrels", where)[["query_id", "doc_id"]]
    found = qrels.merge(warehouse.partition_rows("first_stage_candidates", where), on=["query_id", "doc_id"], how="left")
    return {"bm25_recall": round(float(found["rank"].notna().mean()), 4),
            "bm25_mrr": round(float((1 / found["rank"]).fillna(0).mean()), 4)}


def seconds_per_query(sizes: list[dict]) -> dict[int, tuple[float, str]]:
    """Per corpus size, BM25's marginal seconds per query: the slope over the measured query counts
    ("fit"), or, with one count or a slope that does not rise, its seconds over its queries
    ("proportional", which counts the stage's fixed cost too)."""
    out = {}
    for docs in sorted({s["docs"] for s in sizes}):
        points = [(s["queries"], next(r["seconds"] for r in s["stages"] if r["stage"] == CANDIDATES))
                  for s in sizes if s["docs"] == docs]
        queries, seconds = [q for q, _ in points], [t for _, t in points]
        slope = float(np.polyfit(queries, seconds, 1)[0]) if len(set(queries)) >= 2 else 0.0
        out[docs] = (slope, "fit") if slope > 0 else (seconds[-1] / queries[-1], "proportional")
    return out


def candidate_growth(per_query: dict[int, tuple[float, str]]) -> float | None:
    """The exponent x in seconds per query ~ docs^x between the two largest measured corpora; None
    with one corpus size."""
    if len(per_query) < 2:
        return None
    (small, (t_small, _)), (large, (t_large, _)) = sorted(per_query.items())[-2:]
    return round(math.log(t_large / t_small) / math.log(large / small), 2)


def fitted(xs: list[float], ys: list[float], x: float, origin: float) -> tuple[float, str]:
    """y at x on the least-squares line through the measured points ("fit"); the largest measured y
    where that line does not rise ("flat": no growth above the noise at the measured sizes); with
    one measured x, the line through (0, origin) and that point ("proportional": an upper bound
    where the stage has a fixed cost). Says which."""
    if len(set(xs)) < 2:
        largest = int(np.argmax(xs))
        return origin + (ys[largest] - origin) * x / xs[largest], "proportional"
    slope, intercept = np.polyfit(xs, ys, 1)
    return (float(intercept + slope * x), "fit") if slope > 0 else (max(ys), "flat")


def project_pipeline(sizes: list[dict], a: Assumptions, exponent: float) -> list[dict]:
    """Each stage at (project_docs documents, train_queries queries), on lines (see `fitted`) through
    the measured sizes: load and index linear in documents; candidates linear in queries, at the
    marginal seconds per query of the largest corpus (`seconds_per_query`) times (documents
    ratio)^exponent; the SQL tables linear in queries; the JVM start fixed.
    Peak memory alike, from the process's base (imports; the JVM for the Lucene stages), in documents
    for load and index, in queries for the others (Lucene's index is memory-mapped; the candidate
    list grows with queries)."""
    per_query, out = seconds_per_query(sizes), []
    for name in STAGES:
        rows = [next(r for r in s["stages"] if r["stage"] == name) for s in sizes]
        docs, queries = [s["docs"] for s in sizes], [s["queries"] for s in sizes]
        seconds, peaks, base = [r["seconds"] for r in rows], [r["peak_rss_mb"] for r in rows], rows[-1]["base_rss_mb"]
        if name == "JVM start":
            out.append({"stage": name, "hours": round(seconds[-1] / 3600, 2), "time_rule": "fixed",
                        "peak_rss_gb": round(peaks[-1] / 1024, 1), "memory_rule": "fixed"})
            continue
        if name in ("load into DuckDB", "BM25 index"):
            (time, how), rule = fitted(docs, seconds, a.project_docs, 0.0), "docs"
            memory, memory_how = fitted(docs, peaks, a.project_docs, base)
            memory_rule = "docs"
        elif name == CANDIDATES:
            largest = max(per_query)
            marginal, how = per_query[largest]
            time = a.train_queries * marginal * (a.project_docs / largest) ** exponent
            rule = f"queries x docs^{exponent:g}"
            (memory, memory_how), memory_rule = fitted(queries, peaks, a.train_queries, base), "queries"
        else:
            (time, how), rule = fitted(queries, seconds, a.train_queries, 0.0), "queries"
            (memory, memory_how), memory_rule = fitted(queries, peaks, a.train_queries, base), "queries"
        out.append({"stage": name, "hours": round(time / 3600, 2), "time_rule": f"{rule}, {how}",
                    "peak_rss_gb": round(memory / 1024, 1), "memory_rule": f"{memory_rule}, {memory_how}"})
    return out


def project_costs(plan: dict, pairs_per_query: float, variant: PromptVariant, a: Assumptions) -> dict:
    completion = a.completion_tokens or int(variant.teacher_params.get("max_tokens", 0))
    kinds = {}
    for kind, k in plan["kinds"].items():
        calls = k["calls_per_query"] * a.train_queries
        kinds[kind] = {"calls": round(calls), "prompt_tokens_per_call": round(k["prompt_words_per_call"] * a.tokens_per_word),
                       "completion_tokens_per_call": completion}
    calls = sum(k["calls"] for k in kinds.values())
    prompt = sum(k["calls"] * k["prompt_tokens_per_call"] for k in kinds.values())
    generated = calls * completion
    pairs = pairs_per_query * a.train_queries * a.epochs
    return {
        "teacher": {"by_kind": kinds, "calls": calls, "prompt_tokens": prompt, "completion_tokens": generated,
                    "hosted_cost_usd": round(prompt / 1e6 * a.price_prompt_per_m + generated / 1e6 * a.price_completion_per_m),
                    "vllm_pool_hours": round((prompt / a.replica_prefill_tokens_per_s + generated / a.replica_decode_tokens_per_s)
                                             / a.replicas / 3600, 1),
                    "embedded_2_core_hours": round(calls / a.embedded_requests_per_s / 3600)},
        "student": {"pairs_per_query_per_epoch": round(pairs_per_query, 2), "training_pairs": round(pairs),
                    "gpu_hours": round(pairs / a.gpu_train_pairs_per_s / 3600, 1),
                    "cpu_hours_fastest_measured": round(pairs / a.cpu_train_pairs_per_s / 3600)},
    }


# --- the run ----------------------------------------------------------------------------------

def machine_tag() -> str:
    """`cpu-amd-epyc`, say: the processor's name, as student_speed.py tags its results."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    name = next((line.split(":", 1)[1] for line in lines if line.startswith("model name")), "unknown")
    words = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)|\(.*$", "", name.lower())).strip("-")
    return "cpu-" + "-".join(words.split("-")[:3])


def checked_workdir(path: str | None) -> tuple[Path, bool]:
    """The folder the collections go to (a fresh temporary one by default): never the repository or
    ../shared, whose files others read."""
    if not path:
        return Path(tempfile.mkdtemp(prefix="rr-scale-")), True
    folder = Path(path).resolve()
    for forbidden in (PROJECT_ROOT, PROJECT_ROOT.parent / "shared"):
        if folder == forbidden or forbidden in folder.parents:
            raise SystemExit(f"--workdir {path}: inside {forbidden}; choose a folder outside it (default: a temp folder)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000],
                        help="corpus sizes measured (1000000 is allowed; the output says when it was not run)")
    parser.add_argument("--queries", type=int, nargs="+", default=[200, 1_000], help="query counts, crossed with --docs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc-words", type=int, default=60, help="mean words per document (MS MARCO passages: about 56)")
    parser.add_argument("--query-words", type=int, default=4, help="words a query takes from its document")
    parser.add_argument("--noise-words", type=int, default=2, help="words a query draws from the whole vocabulary")
    parser.add_argument("--vocabulary", type=int, default=50_000)
    parser.add_argument("--zipf-exponent", type=float, default=1.0)
    parser.add_argument("--workdir", help="where the collections, warehouses and indexes go (default: a temp folder, "
                        "removed after)")
    parser.add_argument("--machine", default=machine_tag(), help="the machine's tag in the result file name")
    parser.add_argument("--out")
    for f in fields(Assumptions):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default, help=f.metadata["help"])
    args = parser.parse_args()
    a = Assumptions(**{f.name: getattr(args, f.name) for f in fields(Assumptions)})
    variant = load_variant(RESOURCES_DIR / "prompts", a.variant)
    workdir, temporary = checked_workdir(args.workdir)
    sizes, load = [], [os.getloadavg()[0]]
    try:
        for docs in sorted(args.docs):
            for queries in sorted(args.queries):
                folder = workdir / f"docs{docs}-queries{queries}"
                started = time.perf_counter()
                source = write_synthetic_collection(folder / "collection", docs, queries, args.seed, args.doc_words,
                                                    args.query_words, args.noise_words, args.vocabulary,
                                                    args.zipf_exponent)
                generated = round(time.perf_counter() - started, 2)
                print(f"docs {docs}, queries {queries}: collection written in {generated} s", flush=True)
                stages = []
                with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:  # a fresh process per stage
                    for name in STAGES:
                        stages.append(pool.apply(measure_stage, (source, str(folder), name)))
                        print(f"  {stages[-1]}", flush=True)
                sizes.append({"docs": docs, "queries": queries, "generate_seconds": generated, "stages": stages,
                              "corpus_mb": round((folder / "collection" / "corpus.jsonl").stat().st_size / 2**20, 1),
                              **first_stage_quality(Warehouse(folder / "warehouse.duckdb"))})
        largest = Warehouse(workdir / f"docs{sizes[-1]['docs']}-queries{sizes[-1]['queries']}" / "warehouse.duckdb")
        plan = teacher_plan(largest, variant, a)
        costs = project_costs(plan, training_pairs_per_query(largest), variant, a)
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    load.append(os.getloadavg()[0])
    growth = candidate_growth(seconds_per_query(sizes))
    pipeline = project_pipeline(sizes, a, a.candidate_docs_exponent)
    if growth is not None and 0 < growth != a.candidate_docs_exponent:
        pipeline += [{**r, "stage": "candidates, measured x"} for r in project_pipeline(sizes, a, growth)
                     if r["stage"] == CANDIDATES]
    not_run = [f"{d:,} documents: not run (pass --docs ... {d})" for d in (1_000_000,) if d not in args.docs]

    print(f"\nload average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end, on {os.cpu_count()} cores")
    print(f"{'docs':>9} {'queries':>7} {'stage':<22} {'seconds':>8} {'CPU s':>7} {'base RSS MB':>11} {'peak RSS MB':>11} "
          f"{'rows':>9}")
    for size in sizes:
        for r in size["stages"]:
            print(f"{size['docs']:>9} {size['queries']:>7} {r['stage']:<22} {r['seconds']:>8} {r['cpu_seconds']:>7} "
                  f"{r['base_rss_mb']:>11} {r['peak_rss_mb']:>11} {r['rows']:>9}")
    for size in sizes:
        print(f"docs {size['docs']}, queries {size['queries']}: BM25 finds the judged document at mean rank-reciprocal "
              f"{size['bm25_mrr']}, within the top {RetrievalSettings().first_stage_depth} for {size['bm25_recall']:.1%}")
    for table, why in SKIPPED_TABLES.items():
        print(f"skipped: {table} ({why})")
    for line in not_run:
        print(line)
    if growth is not None:
        print(f"measured: BM25's marginal seconds per query grew as docs^{growth} between the two largest corpora"
              + ("" if growth > 0.05 else " (no measurable growth: per-query overhead dominates at these sizes, so "
                 f"docs^{a.candidate_docs_exponent:g} is a bound, not a measurement)"))
    print(f"\nprojection: {a.train_queries:,} training queries, {a.project_docs:,} documents, each stage as measured "
          "(its own process, one thread for indexing and search)")
    print(f"{'stage':<22} {'hours':>7} {'time scales with':<32} {'peak RSS GB':>11} {'memory scales with':<22}")
    for r in pipeline:
        print(f"{r['stage']:<22} {r['hours']:>7} {r['time_rule']:<32} {r['peak_rss_gb']:>11} {r['memory_rule']:<22}")
    print("(fit: a line through the measured sizes; flat: no growth measured, the largest value; proportional: "
          "through the largest size and the process's base, an upper bound where a stage has a fixed cost)")
    t, st = costs["teacher"], costs["student"]
    print(f"\nteacher, variant {a.variant!r} (calls per query from rr's pair selection on "
          f"{plan['training_queries_planned']:,} training queries):")
    print(f"{'kind':<11} {'calls/query':>11} {'calls':>11} {'prompt tok/call':>15} {'completion tok/call':>19}")
    for kind, k in t["by_kind"].items():
        print(f"{kind:<11} {plan['kinds'][kind]['calls_per_query']:>11} {k['calls']:>11,} {k['prompt_tokens_per_call']:>15} "
              f"{k['completion_tokens_per_call']:>19}")
    print(f"calls {t['calls']:,}; prompt tokens {t['prompt_tokens'] / 1e6:,.0f}M, completion tokens "
          f"{t['completion_tokens'] / 1e6:,.0f}M")
    print(f"hosted at ${a.price_prompt_per_m}/${a.price_completion_per_m} per 1M prompt/completion tokens: "
          f"${t['hosted_cost_usd']:,}")
    print(f"vLLM pool of {a.replicas} replicas at {a.replica_prefill_tokens_per_s:,.0f} prompt + "
          f"{a.replica_decode_tokens_per_s:,.0f} completion tok/s each (assumed): {t['vllm_pool_hours']} h")
    print(f"embedded Gemma 3 270M on 2 cores at {a.embedded_requests_per_s} req/s (measured): {t['embedded_2_core_hours']:,} h")
    print(f"\nstudent: {st['pairs_per_query_per_epoch']} pairs per query and epoch (training_groups), {a.epochs:g} epoch(s): "
          f"{st['training_pairs']:,} pairs")
    print(f"GPU at {a.gpu_train_pairs_per_s} pairs/s (ASSUMED, not measured): {st['gpu_hours']} GPU-hours; "
          f"fastest measured CPU at {a.cpu_train_pairs_per_s} pairs/s: {st['cpu_hours_fastest_measured']:,} h")

    out = Path(args.out or Path(__file__).parent / "results" / f"scale-{args.machine}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": args.machine, "cpu_count": os.cpu_count(), "load_average_1m_start_end": load,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "seed": args.seed, "synthetic": {key: getattr(args, key) for key in (
            "doc_words", "query_words", "noise_words", "vocabulary", "zipf_exponent")},
        "measured": sizes, "skipped_tables": SKIPPED_TABLES, "not_run": not_run, "assumptions": asdict(a),
        "candidate_docs_exponent_measured": growth, "teacher_plan": plan,
        "projection": {"pipeline": pipeline, **costs}}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
