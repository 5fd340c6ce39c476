"""Reranking with a trained student: score mode (one forward pass) and explain mode (InteRank)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from rr_assets.core.student_format import explain_prefix, label_token_ids, score_text
from rr_assets.core.training import expected_label, label_position_logits, pick_device


@dataclass(frozen=True)
class ScoredDocument:
    doc_id: str
    score: float
    explanation: str | None = None


class StudentReranker:
    """A base causal LM with a LoRA adapter from `checkpoint_dir`, ready to score."""

    def __init__(self, checkpoint_dir: str | Path):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        checkpoint_dir = Path(checkpoint_dir)
        card = json.loads((checkpoint_dir / "card.json").read_text())
        settings = json.loads((checkpoint_dir / "train_settings.json").read_text())
        self.labels = tuple(settings["labels"])
        self.max_doc_words = settings["max_doc_words"]
        self.device = pick_device()
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
        self.tokenizer.padding_side = "right"
        base = AutoModelForCausalLM.from_pretrained(card["base_model_dir"], dtype=dtype).to(self.device)
        self.model = PeftModel.from_pretrained(base, checkpoint_dir).eval()
        self.label_ids = label_token_ids(self.tokenizer, self.labels)

    @torch.no_grad()
    def score(self, query: str, documents: list[tuple[str, str]], batch_size: int = 8) -> list[ScoredDocument]:
        """Expected label of each (doc_id, text), read at the label position; no explanation."""
        scored = []
        for start in range(0, len(documents), batch_size):
            chunk = documents[start : start + batch_size]
            texts = [score_text(query, text, self.labels[0], self.max_doc_words) for _, text in chunk]
            logits = label_position_logits(self.model, self.tokenizer, texts, self.label_ids).float()
            for (doc_id, _), value in zip(chunk, expected_label(logits, self.labels).tolist()):
                scored.append(ScoredDocument(doc_id, value))
        return scored

    @torch.no_grad()
    def explain(self, query: str, documents: list[tuple[str, str]], max_new_tokens: int = 48) -> list[ScoredDocument]:
        """Write an explanation, then read the label distribution after it (explain-then-score)."""
        scored = []
        for doc_id, text in documents:
            prompt = explain_prefix(query, text, self.max_doc_words)
            batch = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
            generated = self.tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            explanation = generated.split("\nRelevance")[0].split("\n")[0].strip()
            full = f"{prompt} {explanation}\nRelevance: {self.labels[0]}"
            logits = label_position_logits(self.model, self.tokenizer, [full], self.label_ids).float()
            scored.append(ScoredDocument(doc_id, expected_label(logits, self.labels).item(), explanation))
        return scored
