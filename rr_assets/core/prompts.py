"""Prompt variants: one folder per variant under resources/prompts/, templates per kind + meta.yaml."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import jinja2.meta
import yaml

KINDS = ("direct", "comparison", "listwise")
# The values each kind's template is rendered with; `label` is the gold label a grounded variant
# shows the teacher on training pairs (None elsewhere).
PLACEHOLDERS = {"direct": ({"query", "document"}, {"label"}), "comparison": ({"query", "document_a", "document_b"}, set()),
                "listwise": ({"query", "documents"}, set())}
# How a chat endpoint is asked for JSON: OpenAI's `json_schema` (OpenAI, vLLM, ...), llama.cpp's
# `json_object` + schema (llama-cpp-python's server), or not at all (the tolerant parser reads text).
STRUCTURED_OUTPUTS = ("none", "json_schema", "json_object_schema")
EXPLANATION_MAX_CHARS = 240
_DELIMITER_TAG = re.compile(r"<\s*/?\s*document\s*>", re.IGNORECASE)


class PromptError(ValueError):
    """A prompt variant folder that cannot be used; the message names the file."""


@dataclass(frozen=True)
class PromptVariant:
    name: str
    folder: Path
    templates: dict[str, str]
    labels: tuple[int, ...]
    api: str
    teacher_doc_words: int
    grounded: bool = False
    explain_per_query: int = 3  # grounded: training pairs per query the teacher explains (best-graded first)
    structured_output: str = "none"
    max_parse_failure_rate: float = 0.5
    teacher_params: dict = field(default_factory=dict)
    comparison: dict = field(default_factory=dict)
    listwise: dict = field(default_factory=dict)
    content_hash: str = ""
    imported: bool = False  # answers come from the collection's teacher_answers files, not an endpoint
    rank_labels: tuple[int, ...] = (2, 1, 1, 0, 0)  # imported: the label of each rank position of a ranking
    reasons: tuple[str, ...] = ("direct", "comparison")  # imported: the reasons that make a passage's explanation
    held_out_percent: int = 0  # share of queries whose explanations never train: the student's are measured on them

    def render(self, kind: str, **values) -> str:
        if kind not in self.templates:
            raise PromptError(f"{self.folder}: no template for kind {kind!r}")
        return _ENV.from_string(self.templates[kind]).render(**values)

    def output_schema(self, kind: str) -> dict:
        """JSON schema of an answer; the explanation comes first so the verdict follows it."""
        verdict = {
            "direct": ("label", {"type": "integer", "enum": list(self.labels)}),
            "comparison": ("preferred", {"type": "string", "enum": ["A", "B"]}),
            "listwise": ("ranking", {"type": "array", "items": {"type": "integer", "minimum": 1}}),
        }[kind]
        explanation = {"type": "string"}
        if self.structured_output == "json_object_schema":
            # llama.cpp's grammar enforces lengths and bounds, so a rambling model still reaches a
            # complete verdict within max_tokens (OpenAI's strict schemas do not accept them).
            explanation["maxLength"] = EXPLANATION_MAX_CHARS
            if kind == "listwise":
                window = int(self.listwise["window"])
                verdict[1].update(maxItems=window)
                verdict[1]["items"]["maximum"] = window
        return {"type": "object", "properties": {"explanation": explanation, verdict[0]: verdict[1]},
                "required": ["explanation", verdict[0]], "additionalProperties": False}

    def request_params(self, kind: str) -> dict:
        """Sampling parameters of a request of this kind, with the structured-output request if any."""
        params = dict(self.teacher_params)
        if self.api == "chat" and self.structured_output == "json_schema":
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": f"{kind}_judgment", "schema": self.output_schema(kind), "strict": True}}
        elif self.api == "chat" and self.structured_output == "json_object_schema":
            params["response_format"] = {"type": "json_object", "schema": self.output_schema(kind)}
        return params

    def scaled_label(self, relevance: int, max_relevance: int) -> int:
        """A qrels grade on this variant's label scale: relevance / the collection's top grade × the
        top label, rounded half up (SciFact's 1 → 2; DL19's 0–3 → 0, 1, 1, 2); as train_pointwise.sql."""
        fraction = max(0, int(relevance)) / max(1, int(max_relevance))
        return min(self.labels) + int(fraction * (max(self.labels) - min(self.labels)) + 0.5)

    def prepare_document(self, text: str) -> tuple[str, bool]:
        """A document as it goes into a prompt: delimiter tags inside it are neutralised (so its
        text cannot close the <document> block and pose as instructions), and it is cut to the
        variant's word budget; says whether it was cut."""
        words = _DELIMITER_TAG.sub("[tag removed]", text).split()
        if len(words) <= self.teacher_doc_words:
            return " ".join(words), False
        return " ".join(words[: self.teacher_doc_words]) + " ...", True


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def check_placeholders(path: Path, kind: str, template: str) -> None:
    """A template must use its kind's required values and nothing unknown, so a typo fails on load,
    before any teacher call is paid for."""
    try:
        used = jinja2.meta.find_undeclared_variables(_ENV.parse(template))
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{path} line {exc.lineno}: {exc.message}") from exc
    required, optional = PLACEHOLDERS[kind]
    unknown, missing = used - required - optional, required - used
    if unknown:
        raise PromptError(f"{path}: unknown placeholder {sorted(unknown)[0]!r}; a {kind} template can use "
                          f"{sorted(required | optional)}")
    if missing:
        raise PromptError(f"{path}: the template never uses {{{{ {sorted(missing)[0]} }}}}")


def variant_hash(folder: Path) -> str:
    """Hash of every file in the variant folder: the code_version of its teacher outputs."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def list_variants(prompts_dir: str | Path) -> list[str]:
    return sorted(p.name for p in Path(prompts_dir).iterdir() if (p / "meta.yaml").is_file())


def load_variant(prompts_dir: str | Path, name: str) -> PromptVariant:
    folder = Path(prompts_dir) / name
    meta_path = folder / "meta.yaml"
    if not meta_path.is_file():
        raise PromptError(f"{meta_path}: prompt variant {name!r} has no meta.yaml")
    meta = yaml.safe_load(meta_path.read_text()) or {}
    kinds = meta.get("kinds", ["direct"])
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise PromptError(f"{meta_path}: unknown kinds {sorted(unknown)}; known: {list(KINDS)}")
    source = meta.get("source", "endpoint")
    if source not in ("endpoint", "imported"):
        raise PromptError(f"{meta_path}: source must be 'endpoint' or 'imported', not {source!r}")
    templates = {}
    for kind in kinds if source == "endpoint" else ():
        template_path = folder / f"{kind}.jinja"
        if not template_path.is_file():
            raise PromptError(f"{template_path}: missing template for kind {kind!r}")
        templates[kind] = template_path.read_text()
        check_placeholders(template_path, kind, templates[kind])
    api = meta.get("api", "completions")
    if api not in ("completions", "chat"):
        raise PromptError(f"{meta_path}: api must be 'completions' or 'chat', not {api!r}")
    structured_output = meta.get("structured_output", "none")
    if structured_output not in STRUCTURED_OUTPUTS:
        raise PromptError(f"{meta_path}: structured_output must be one of {list(STRUCTURED_OUTPUTS)}")
    return PromptVariant(
        name=name,
        folder=folder,
        templates=templates,
        labels=tuple(int(x) for x in meta.get("labels", [0, 1, 2])),
        api=api,
        teacher_doc_words=int(meta.get("teacher_doc_words", 300)),
        grounded=bool(meta.get("grounded", False)),
        explain_per_query=int(meta.get("explain_per_query", 3)),
        structured_output=structured_output,
        max_parse_failure_rate=float(meta.get("max_parse_failure_rate", 0.5)),
        teacher_params=dict(meta.get("teacher_params", {})),
        comparison={"max_pairs_per_query": 4, "swap_fraction": 0.5, **meta.get("comparison", {})},
        listwise={"window": 4, "stride": 2, **meta.get("listwise", {})},
        content_hash=variant_hash(folder),
        imported=source == "imported",
        rank_labels=tuple(int(x) for x in meta.get("rank_labels", (2, 1, 1, 0, 0))),
        reasons=tuple(meta.get("reasons", ("direct", "comparison"))),
        held_out_percent=int(meta.get("held_out_percent", 0)),
    )
