"""Lineage audit of a checkpoint: walk Dagster's record of which upstream materialisation each
step read (its input event pointers), from the checkpoint down to the corpus."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from rr_assets.core.checkpoints import CARD_FILE

_INPUT_POINTER = "dagster/input_event_pointer/"
# Metadata worth showing in an audit, per step.
_AUDIT_KEYS = ("rows", "prompt_variant", "prompt_hash", "teacher_model", "teacher_endpoint", "teacher_params",
               "first_stage", "k1", "b", "depth", "run_file", "run_sha256", "corpus_hash", "table_hash", "sql_file",
               "path", "base_model", "train_examples", "optimizer_steps", "best_dev_nDCG@10", "steps", "new_teacher_calls",
               "cache_hits", "registered_version", "mlflow_run_id")


class LineageError(LookupError):
    """The checkpoint or its Dagster records cannot be found; the message says where we looked."""


@dataclass
class Step:
    asset: str
    partition: str | None
    dagster_run_id: str
    storage_id: int
    data_version: str | None
    code_version: str | None
    details: dict
    inputs: list[Step] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"asset": self.asset, "partition": self.partition, "dagster_run_id": self.dagster_run_id,
                "data_version": self.data_version, "code_version": self.code_version, **self.details,
                "inputs": [i.to_json() for i in self.inputs]}


def _record(instance: dg.DagsterInstance, asset: str, storage_id: int):
    """The materialisation (or, for observed files, the observation) an input pointer names."""
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), storage_ids=[storage_id])
    records = (instance.fetch_materializations(records_filter, limit=1).records
               or instance.fetch_observations(records_filter, limit=1).records)
    return records[0] if records else None


def _step(instance: dg.DagsterInstance, asset: str, record, seen: dict[int, Step]) -> Step:
    if record.storage_id in seen:
        return seen[record.storage_id]
    materialization = record.asset_materialization or record.asset_observation
    tags = materialization.tags or {}
    details = {k: v.value for k, v in materialization.metadata.items() if k in _AUDIT_KEYS}
    step = Step(asset, materialization.partition, record.run_id, record.storage_id,
                tags.get("dagster/data_version"), tags.get("dagster/code_version"), details)
    seen[record.storage_id] = step
    for key, pointer in sorted(tags.items()):
        if key.startswith(_INPUT_POINTER):
            upstream = key[len(_INPUT_POINTER):]
            found = _record(instance, upstream, int(pointer))
            if found is not None:
                step.inputs.append(_step(instance, upstream, found, seen))
    return step


def checkpoint_lineage(checkpoint_dir: str | Path) -> dict:
    """The checkpoint's card plus the chain of materialisations it was built from."""
    card_path = Path(checkpoint_dir) / CARD_FILE
    if not card_path.is_file():
        raise LineageError(f"{card_path}: no checkpoint card here")
    card = json.loads(card_path.read_text())
    instance = dg.DagsterInstance.from_config(card["dagster_home"])
    partition = dg.MultiPartitionKey({"collection": card["collection"], "prompt_variant": card["prompt_variant"]})
    asset = "student_rl_checkpoint" if card.get("stage") == "rl" else "student_checkpoint"
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=100
    ).records
    record = next((r for r in records if r.run_id == card["dagster_run_id"]), None)
    if record is None:
        raise LineageError(f"{card['dagster_home']}: no materialisation of {asset}[{partition}] "
                           f"in Dagster run {card['dagster_run_id']}")
    chain = _step(instance, asset, record, {})
    return {"checkpoint": str(Path(checkpoint_dir).resolve()),
            "card": {**{k: card[k] for k in ("base_model", "prompt_variant", "prompt_hash", "teacher_model",
                                              "data_versions", "dagster_run_id", "mlflow_run_id")},
                     "training_data": card.get("training_data")},
            "lineage": chain.to_json()}


def format_lineage(lineage: dict) -> str:
    """An indented tree; a step reached twice is printed in full once and named afterwards."""
    card = lineage["card"]
    lines = [f"checkpoint {lineage['checkpoint']}",
             f"  base model {card['base_model']}; prompt variant {card['prompt_variant']} ({card['prompt_hash']}); "
             f"teacher {card['teacher_model']}; MLflow run {card['mlflow_run_id']}"]
    data = card.get("training_data") or {}
    if data:
        lines.append(f"  trained on {data['collection']}, selected on {data['dev_collection']}")
        lines += [f"  imported teacher answers: {f['file']} (sha256 {f['sha256']}, {f['models']}, {f['answers']} answers, "
                  f"{f['quarantined_lines']} lines quarantined)" for f in data.get("imported_answer_files", [])]
        start = data.get("continued_from")
        while start:
            lines.append(f"  continued from {start['path']} (weights {start['weights_sha256']}, "
                         f"{start['optimizer_steps']} steps, MLflow run {start['mlflow_run_id']})")
            start = (start.get("training_data") or {}).get("continued_from")
    printed: set[tuple] = set()

    def walk(step: dict, depth: int) -> None:
        key = (step["asset"], step["partition"], step["dagster_run_id"])
        label = f"{step['asset']}[{step['partition']}]" if step["partition"] else step["asset"]
        indent = "  " * depth + "└─ "
        if key in printed:
            lines.append(f"{indent}{label} (as above)")
            return
        printed.add(key)
        facts = ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in step.items()
                          if k not in ("asset", "partition", "inputs", "dagster_run_id", "code_version") and v is not None)
        lines.append(f"{indent}{label}  dagster run {step['dagster_run_id']}  {facts}")
        for upstream in step["inputs"]:
            walk(upstream, depth + 1)

    walk(lineage["lineage"], 1)
    return "\n".join(lines)
