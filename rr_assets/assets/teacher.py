"""Stage 4: teacher rationales (direct relevance reasoning + graded label), cached per request."""

import collections

import dagster as dg
import pandas as pd

from rr_assets.core.prompts import PromptVariant
from rr_assets.core.teacher import JudgePair, RequestCache, TeacherUsage, judge_direct
from rr_assets.core.warehouse import named_sql
from rr_assets.partitions import collection_partitions
from rr_assets.resources import RRHome, TeacherResource, Tracker


def build_teacher_judgments(variant: PromptVariant) -> dg.AssetsDefinition:
    """The asset's code_version is the hash of the prompt variant's files: editing the prompt
    marks the judgments (and everything downstream) stale."""

    @dg.asset(
        deps=["bm25_candidates", "queries", "corpus"],
        partitions_def=collection_partitions,
        code_version=variant.content_hash,
        group_name="teacher",
        kinds={"openai", "duckdb"},
    )
    def teacher_judgments(
        context: dg.AssetExecutionContext, home: RRHome, teacher: TeacherResource, tracker: Tracker
    ) -> dg.MaterializeResult:
        """Explanation, then a graded label, for the top BM25 candidates of each query."""
        collection = context.partition_key
        variant = teacher.variant()
        warehouse = home.warehouse()
        rows = warehouse.fetch_df(
            named_sql("judge_pairs"),
            {"collection": collection, "depth": teacher.depth, "max_queries": teacher.max_queries},
        )
        pairs = [JudgePair(r.query_id, r.doc_id, r.query, r.document) for r in rows.itertuples()]
        usage = TeacherUsage()
        step = max(1, len(pairs) // 10)

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                context.log.info(f"teacher: {done}/{total} new requests answered")

        params = {"collection": collection, "prompt_variant": variant.name, "prompt_hash": variant.content_hash,
                  "teacher_model": teacher.model, "teacher_base_url": teacher.base_url or "embedded",
                  "depth": teacher.depth, "max_queries": teacher.max_queries, "seed": teacher.seed,
                  **{f"teacher_{k}": v for k, v in variant.teacher_params.items()}}
        with tracker.run(context, params) as tracked:
            with teacher.endpoint(home.dir("logs")) as endpoint, warehouse.connect() as con:
                judgments = judge_direct(pairs, variant, endpoint, RequestCache(con), usage, progress)
            frame = pd.DataFrame([j.__dict__ for j in judgments]).drop(columns=["truncated"])
            frame.insert(0, "collection", collection)
            frame.insert(1, "prompt_variant", variant.name)
            frame["model"] = teacher.model
            warehouse.replace_rows("teacher_judgments", {"collection": collection, "prompt_variant": variant.name}, frame)
            parsed = int(frame["label"].notna().sum())
            labels = collections.Counter(int(x) for x in frame["label"].dropna())
            stats = {"judgments": len(frame), "parsed": parsed, "parse_failures": len(frame) - parsed,
                     "truncated_documents": sum(j.truncated for j in judgments), "requests": usage.requests,
                     "new_teacher_calls": usage.new_calls, "cache_hits": usage.cache_hits,
                     "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
            tracked.metrics(stats)
        return dg.MaterializeResult(
            metadata={**stats, "label_distribution": dg.MetadataValue.json({str(k): v for k, v in sorted(labels.items())}),
                      "prompt_variant": variant.name, "prompt_hash": variant.content_hash,
                      "teacher_model": teacher.model, "mlflow_run_id": tracked.run_id},
            data_version=dg.DataVersion(
                warehouse.table_hash("teacher_judgments", {"collection": collection, "prompt_variant": variant.name})
            ),
        )

    return teacher_judgments
