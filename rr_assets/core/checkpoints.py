"""Student checkpoints on disk: their folder names, the files a loader and an auditor read
(rr_student.json, card.json), their weights' hash, and the README.md written from the card.

peft's `save_pretrained` leaves a README template full of "More Information Needed"; `write_card`
replaces it, so a checkpoint folder (and its copy in the MLflow registry) tells a reader its
lineage at a glance.
"""

from __future__ import annotations

import json
from pathlib import Path

from rr_assets.core.model_files import EMBEDDED, file_sha256

STUDENT_FILE = "rr_student.json"  # written by the trainer beside the weights: all a loader needs
CARD_FILE = "card.json"  # the checkpoint's lineage and results, for machines (README.md is for people)


def checkpoint_name(collection: str, variant: str, stage: str = "sft") -> str:
    """The folder name (under RR_HOME/checkpoints) of a collection's student for a prompt variant."""
    return f"{collection}-{variant}" if stage == "sft" else f"{collection}-{variant}-{stage}"


def weights_hash(folder: Path) -> str:
    """The content hash of a checkpoint's weights: its data version."""
    files = sorted(folder.glob("*.safetensors"))
    return ":".join(file_sha256(f)[:16] for f in files)


def continued_from(folder: str) -> dict | None:
    """Where a continued student started (`student.init_from`): the folder, its weights' hash and its
    card's own lineage, read before training, which may overwrite that folder."""
    if not folder:
        return None
    card_path = Path(folder) / CARD_FILE
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return {"path": folder, "weights_sha256": weights_hash(Path(folder)), "mlflow_run_id": card.get("mlflow_run_id"),
            "optimizer_steps": card.get("result", {}).get("optimizer_steps"),
            "training_data": card.get("training_data")}


def figure(value: float | None) -> str:
    """A dev figure as shown to people: four decimals, or a dash when there is none."""
    return "—" if value is None else f"{value:.4f}"


def card_markdown(card: dict) -> str:
    """The model card of a student checkpoint, from the fields its card.json holds."""
    result = card.get("result", {})
    stage = "RL-refined (GRPO)" if card["stage"] == "rl" else "distilled"
    dev = card.get("dev_nDCG@10", result.get("best_dev_ndcg"))
    base = "the embedded Gemma 3 270M" if card["base_model"] == EMBEDDED else f"`{card['base_model']}`"
    lines = [
        f"# {card['name']}",
        "",
        f"rr student reranker, {stage}: {card['adapter']} on {base}, trained for collection "
        f"`{card['collection']}` from prompt variant `{card['prompt_variant']}` (hash `{card['prompt_hash']}`), "
        f"teacher `{card['teacher_model']}`.",
        "",
        "| | |",
        "|---|---|",
        f"| dev nDCG@10 | {figure(dev)} (first stage on the same queries: "
        f"{figure(result.get('first_stage_dev_ndcg'))}) |",
        f"| training | {result.get('optimizer_steps')} optimizer steps, {result.get('epochs')} epochs, "
        f"stopped: {result.get('stop_reason')}, precision {result.get('precision')} |",
        f"| training pairs | {card['train_examples']}; listwise target: {card['listwise_target']} |",
        f"| fusion weight | {result.get('fusion_weight')} on the student (chosen on the dev slice) |",
    ]
    if card["stage"] == "rl":
        lines.append(f"| RL | {len(card.get('rl_curve', []))} steps from `{card['from_checkpoint']}`, "
                     f"stopped: {card.get('rl_stop_reason')} |")
    lines += [f"| Dagster run | `{card['dagster_run_id']}` |", f"| MLflow run | `{card['mlflow_run_id']}` |", "",
              "Training tables and their data versions (rows-hash):", ""]
    lines += [f"- `{table}`: `{version}`" for table, version in card["data_versions"].items()]
    lines += ["", "Full lineage: `rr lineage` on this folder, or `card.json` beside this file.", ""]
    return "\n".join(lines)


def write_card(folder: Path, card: dict) -> None:
    """card.json (for machines) and README.md (for people) into a checkpoint folder."""
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2))
    (folder / "README.md").write_text(card_markdown(card))
