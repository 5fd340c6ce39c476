"""Training in two processes (DistributedDataParallel, gloo on the CPU) follows one process's loss
curve: the same global batch, seed and steps give the same losses, dev evaluations and weights."""

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rr_assets.core.settings import StudentSettings
from rr_assets.core.student_model import Precision, StudentExample, load_tokenizer
from rr_assets.core.training import DevSet, StudentTrainer, TrainResult
from tests.conftest import PROJECT_ROOT
from tests.integration.test_student import tiny_set

pytestmark = pytest.mark.integration
LABELS = (0, 1, 2)
FLOAT32 = Precision(torch.device("cpu"), bf16=False)  # no bf16 rounding between the two runs
# 3 groups per epoch, 2 passes of 1 group per step: steps of 2, 1 (the epoch's short last step, where
# the second process has no pass of its own) and 2 passes; dev evaluations at steps 0, 2 and 3
SETTINGS = StudentSettings(max_steps=3, group_size=4, batch_groups=1, gradient_accumulation=2, learning_rate=1e-3,
                           warmup_ratio=0.0, student_doc_words=40, generation_weight=0.2, score_batch_size=8,
                           eval_every=2, patience=5)


@pytest.fixture(scope="module")
def tiny_base_model(hf_base_model, tmp_path_factory) -> Path:
    """Gemma 3's architecture at toy size (2 blocks of width 64, random weights) with the real
    tokenizer: a base model folder the trainer loads like any other, in a fraction of the time."""
    from transformers import AutoConfig, AutoModelForCausalLM, Gemma3TextConfig

    real = AutoConfig.from_pretrained(hf_base_model)
    config = Gemma3TextConfig(vocab_size=real.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                              layer_types=["sliding_attention", "full_attention"], pad_token_id=real.pad_token_id,
                              bos_token_id=real.bos_token_id, eos_token_id=real.eos_token_id)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-gemma")
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    load_tokenizer(hf_base_model).save_pretrained(folder)
    return folder


def demo_examples() -> tuple[list[StudentExample], DevSet]:
    """Three demo queries, each with its best document (label 2) and three of other domains (0), all
    explained; the same pairs, first-stage order as given, are the dev slice."""
    examples = tiny_set(3)
    by_query: dict[str, list[StudentExample]] = {}
    for e in examples:
        by_query.setdefault(e.query_id, []).append(e)
    dev = DevSet({q: group[0].query for q, group in by_query.items()},
                 {q: [(e.doc_id, e.document, 1.0 / (1 + i)) for i, e in enumerate(reversed(group))]
                  for q, group in by_query.items()},
                 {q: {e.doc_id: e.label for e in group} for q, group in by_query.items()})
    return examples, dev


def train(base: Path, processes: int, out: Path):
    """(result, what the trainer's log received) of a training run on the demo examples."""
    examples, dev = demo_examples()
    logged = []
    trainer = StudentTrainer(base, replace(SETTINGS, processes=processes), LABELS, FLOAT32,
                             lambda kind, record: logged.append((kind, record)))
    return trainer.train(examples, out, dev), logged


@pytest.fixture(scope="module")
def one_process(tiny_base_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("one-process")
    return *train(tiny_base_model, 1, out), out


def assert_same_training(one: TrainResult, two: TrainResult, one_dir: Path, two_dir: Path) -> None:
    assert [r["epoch"] for r in one.curve] == [r["epoch"] for r in two.curve] == [0.667, 1.0, 1.667]
    assert len({r["loss"] for r in one.curve}) == 3  # the steps see different batches: nothing is trivially equal
    for a, b in zip(one.curve, two.curve):
        for key in ("loss", "pointwise", "pairwise", "listwise", "generation", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-7), (a["step"], key)
    assert [r["step"] for r in one.dev_curve] == [r["step"] for r in two.dev_curve] == [0, 2, 3]
    assert [r["dev_nDCG@10"] for r in two.dev_curve] == pytest.approx([r["dev_nDCG@10"] for r in one.dev_curve])
    assert (two.optimizer_steps, two.best_step, two.listwise_groups) == (3, one.best_step, one.listwise_groups)
    assert sum(two.listwise_groups.values()) == 5  # each of the 5 passes' group, counted once over both processes
    first, second = load_file(one_dir / "adapter_model.safetensors"), load_file(two_dir / "adapter_model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.allclose(first[k], second[k], rtol=1e-4, atol=1e-6) for k in first)


def test_two_processes_train_the_loss_curve_of_one(one_process, tiny_base_model, tmp_path):
    """student.processes: 2 has the trainer start the processes itself (what rr's student asset runs)."""
    one, one_log, one_dir = one_process
    two, two_log = train(tiny_base_model, 2, tmp_path)
    assert_same_training(one, two, one_dir, tmp_path)
    assert [r for kind, r in two_log if kind == "train"] == two.curve  # rank 0's records reach the caller's log
    assert [kind for kind, _ in two_log] == [kind for kind, _ in one_log]


TORCHRUN_SCRIPT = """
import pickle, sys
import torch.distributed as dist
from rr_assets.core.training import StudentTrainer

dist.init_process_group("gloo")
base, settings, labels, precision, examples, dev, out = pickle.loads(open(sys.argv[1], "rb").read())
result = StudentTrainer(base, settings, labels, precision).train(examples, out, dev)
if dist.get_rank() == 0:
    open(sys.argv[2], "wb").write(pickle.dumps(result))
dist.destroy_process_group()
"""


def test_under_torchrun_the_trainer_joins_its_process_group(one_process, tiny_base_model, tmp_path):
    """A script of one's own launched by torchrun, its process group initialised: the same curve."""
    one, _, one_dir = one_process
    (tmp_path / "train.py").write_text(TORCHRUN_SCRIPT)
    (tmp_path / "args.pkl").write_bytes(pickle.dumps((tiny_base_model, SETTINGS, LABELS, FLOAT32, *demo_examples(),
                                                      tmp_path / "ckpt")))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(tmp_path / "train.py"), str(tmp_path / "args.pkl"), str(tmp_path / "result.pkl")],
                   cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, check=True, timeout=300)
    assert_same_training(one, pickle.loads((tmp_path / "result.pkl").read_bytes()), one_dir, tmp_path / "ckpt")


def test_the_processes_must_share_a_steps_passes_evenly(tiny_base_model, tmp_path):
    uneven = replace(SETTINGS, processes=2, gradient_accumulation=3)
    with pytest.raises(ValueError, match=r"gradient_accumulation \(3\) must be a multiple of the 2 training processes"):
        StudentTrainer(tiny_base_model, uneven, LABELS, FLOAT32).train(demo_examples()[0], tmp_path / "ckpt")
