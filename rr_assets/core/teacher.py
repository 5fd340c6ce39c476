"""Teacher requests to any OpenAI-compatible endpoint, cached by content hash and resumable."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import openai

from rr_assets.core.candidate_sampling import ComparisonPair, sliding_windows
from rr_assets.core.prompts import PromptVariant
from rr_assets.core.rationale import parse_comparison, parse_direct, parse_ranking, verdict_missing
from rr_assets.core.warehouse import Warehouse


class TeacherError(RuntimeError):
    """Some requests failed after their retries; every answer received was kept in the cache."""


@dataclass(frozen=True)
class TeacherEndpoint:
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 4
    seed: int = 0


@dataclass(frozen=True)
class TeacherRequest:
    api: str
    prompt: str
    params: str  # canonical JSON of the sampling parameters

    def cache_key(self, model: str) -> str:
        payload = json.dumps([model, self.api, self.prompt, self.params], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class TeacherResponse:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class TeacherUsage:
    requests: int = 0
    new_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def make_request(api: str, prompt: str, params: dict) -> TeacherRequest:
    return TeacherRequest(api, prompt, json.dumps(params, sort_keys=True))


class RequestCache:
    """The warehouse table `teacher_requests`: one row per request ever answered. Each answer is
    written in its own short transaction the moment it arrives, so a crash loses nothing paid for
    and other runs can write to the warehouse in between."""

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def lookup(self, keys: list[str]) -> dict[str, TeacherResponse]:
        if not keys:
            return {}
        with self.warehouse.connect() as con:
            rows = con.execute(
                "SELECT request_hash, response, prompt_tokens, completion_tokens FROM teacher_requests "
                "WHERE request_hash IN (SELECT unnest(?))",
                [keys],
            ).fetchall()
        return {r[0]: TeacherResponse(r[1], r[2] or 0, r[3] or 0) for r in rows}

    def store(self, key: str, model: str, request: TeacherRequest, response: TeacherResponse) -> None:
        with self.warehouse.connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO teacher_requests "
                "(request_hash, model, prompt, params, response, prompt_tokens, completion_tokens) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [key, model, request.prompt, request.params, response.text,
                 response.prompt_tokens, response.completion_tokens],
            )


class MalformedResponse(ValueError):
    """A 200 answer whose body is not a usable completion (truncated, not JSON, no choices)."""


async def _send(client: openai.AsyncOpenAI, endpoint: TeacherEndpoint, request: TeacherRequest) -> TeacherResponse:
    params = json.loads(request.params)
    try:
        if request.api == "chat":
            result = await client.chat.completions.create(
                model=endpoint.model, messages=[{"role": "user", "content": request.prompt}],
                seed=endpoint.seed, **params,
            )
            text = result.choices[0].message.content or ""
        else:
            result = await client.completions.create(
                model=endpoint.model, prompt=request.prompt, seed=endpoint.seed, **params
            )
            text = result.choices[0].text or ""
    except (openai.APIStatusError, openai.APIConnectionError):
        raise
    except (openai.APIResponseValidationError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise MalformedResponse(f"{type(exc).__name__}: {exc}") from exc
    usage = result.usage
    return TeacherResponse(text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)


def describe_failure(exc: BaseException) -> str:
    """What happened, in words a person can act on (never the request itself, which holds data)."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} from the teacher ({type(exc).__name__}) after retries"
    if isinstance(exc, openai.APITimeoutError):
        return "the teacher did not answer within the timeout, after retries"
    if isinstance(exc, openai.APIConnectionError):
        return f"could not reach the teacher ({exc.__cause__ or exc}), after retries"
    if isinstance(exc, MalformedResponse):
        return f"the teacher's answer was not a usable completion ({exc}), after retries"
    return f"{type(exc).__name__}: {exc}"


def complete_all(
    endpoint: TeacherEndpoint,
    requests: list[TeacherRequest],
    cache: RequestCache,
    usage: TeacherUsage,
    progress: Callable[[int, int], None] | None = None,
) -> list[TeacherResponse]:
    """Answer every request, from the cache where possible; new answers are cached as they arrive,
    so an interrupted run resumes without paying twice. HTTP 408/409/429/5xx, timeouts and broken
    connections are retried by the openai client (exponential backoff that honours Retry-After);
    malformed 200 answers are retried here. Requests that still fail do not stop the others: the
    run then raises TeacherError saying what happened, and a re-run sends only what is missing."""
    keys = [r.cache_key(endpoint.model) for r in requests]
    answers = cache.lookup(sorted(set(keys)))
    usage.requests += len(requests)
    usage.cache_hits += sum(1 for k in keys if k in answers)
    missing = {k: r for k, r in zip(keys, requests) if k not in answers}
    failures: Counter[str] = Counter()

    async def run_missing() -> None:
        client = openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key or "not-needed",
            timeout=endpoint.timeout_s, max_retries=endpoint.max_retries,
        )
        semaphore = asyncio.Semaphore(max(1, endpoint.concurrency))

        async def one(key: str, request: TeacherRequest):
            async with semaphore:
                for attempt in range(endpoint.max_retries + 1):
                    try:
                        return key, request, await _send(client, endpoint, request)
                    except MalformedResponse:
                        if attempt == endpoint.max_retries:
                            raise
                        await asyncio.sleep(min(8.0, 0.5 * 2**attempt))

        tasks = [asyncio.ensure_future(one(k, r)) for k, r in missing.items()]
        done = 0
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    key, request, response = await next_done
                except Exception as exc:  # noqa: BLE001 - every failure is counted and reported below
                    failures[describe_failure(exc)] += 1
                    continue
                cache.store(key, endpoint.model, request, response)
                answers[key] = response
                usage.new_calls += 1
                usage.prompt_tokens += response.prompt_tokens
                usage.completion_tokens += response.completion_tokens
                done += 1
                if progress:
                    progress(done, len(tasks))
        finally:
            for task in tasks:
                task.cancel()
            await client.close()

    if missing:
        asyncio.run(run_missing())
    if failures:
        failed = sum(failures.values())
        reasons = "; ".join(f"{n}× {reason}" for reason, n in failures.most_common())
        raise TeacherError(
            f"{failed} of {len(missing)} teacher requests failed ({reasons}). The {len(missing) - failed} "
            f"answers received are cached: re-run to send only the missing requests."
        )
    return [answers[k] for k in keys]


@dataclass(frozen=True)
class JudgePair:
    query_id: str
    doc_id: str
    query: str
    document: str


@dataclass(frozen=True)
class Judgment:
    query_id: str
    doc_id: str
    label: int | None
    explanation: str
    raw: str
    parse_error: str | None
    request_hash: str
    truncated: bool


def _ask(
    kind: str,
    prompts: list[str],
    variant: PromptVariant,
    endpoint: TeacherEndpoint,
    cache: RequestCache,
    usage: TeacherUsage,
    parse: Callable[[int, str], object],
    cue: str,
    cue_tokens: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[TeacherRequest], list[str], list]:
    """Send prompts and parse the answers. With the completions API, an answer that stops before
    its verdict gets one short follow-up request: the prompt, the explanation it wrote, then `cue`
    (e.g. "Relevance:"); both requests are cached like any other."""
    params = variant.request_params(kind)
    requests = [make_request(variant.api, p, params) for p in prompts]
    raws = [r.text for r in complete_all(endpoint, requests, cache, usage, progress)]
    parsed = [parse(i, raw) for i, raw in enumerate(raws)]
    retry = [i for i, p in enumerate(parsed) if verdict_missing(p) and variant.api == "completions"]
    if retry:
        cue_params = {**variant.teacher_params, "max_tokens": cue_tokens, "stop": ["\n"]}
        follow_ups = [make_request("completions", f"{prompts[i]} {parsed[i].explanation}\n{cue}", cue_params) for i in retry]
        for i, answer in zip(retry, complete_all(endpoint, follow_ups, cache, usage)):
            parsed[i] = parse(i, f"{parsed[i].explanation}\n{cue}{answer.text}")
            raws[i] = f"{raws[i]}\n[follow-up] {cue}{answer.text}"
    return requests, raws, parsed


def judge_direct(
    pairs: list[JudgePair],
    variant: PromptVariant,
    endpoint: TeacherEndpoint,
    cache: RequestCache,
    usage: TeacherUsage,
    progress: Callable[[int, int], None] | None = None,
) -> list[Judgment]:
    """Direct relevance reasoning: an explanation, then a graded label."""
    prompts, truncated = [], []
    for pair in pairs:
        document, cut = variant.prepare_document(pair.document)
        prompts.append(variant.render("direct", query=pair.query, document=document))
        truncated.append(cut)
    requests, raws, parsed = _ask(
        "direct", prompts, variant, endpoint, cache, usage, lambda i, t: parse_direct(t, variant.labels), "Relevance:", 3,
        progress,
    )
    return [
        Judgment(pair.query_id, pair.doc_id, p.label, p.explanation, raw, p.error, req.cache_key(endpoint.model), cut)
        for pair, p, raw, req, cut in zip(pairs, parsed, raws, requests, truncated)
    ]


@dataclass(frozen=True)
class Comparison:
    query_id: str
    doc_a: str
    doc_b: str
    reason: str
    swapped: bool
    preferred_doc_id: str | None
    explanation: str
    raw: str
    parse_error: str | None
    request_hash: str


def compare_pairs(
    pairs: list[ComparisonPair],
    queries: dict[str, str],
    documents: dict[str, str],
    variant: PromptVariant,
    endpoint: TeacherEndpoint,
    cache: RequestCache,
    usage: TeacherUsage,
    progress: Callable[[int, int], None] | None = None,
) -> list[Comparison]:
    """Comparison reasoning (R2R): which of two candidates is more relevant, and why."""
    prompts = [
        variant.render("comparison", query=queries[p.query_id], document_a=variant.prepare_document(documents[p.doc_a])[0],
                       document_b=variant.prepare_document(documents[p.doc_b])[0])
        for p in pairs
    ]
    requests, raws, parsed = _ask(
        "comparison", prompts, variant, endpoint, cache, usage, lambda i, t: parse_comparison(t), "Preferred:", 3,
        progress,
    )
    return [
        Comparison(p.query_id, p.doc_a, p.doc_b, p.reason, p.swapped,
                   {"A": p.doc_a, "B": p.doc_b}.get(r.preferred), r.explanation, raw, r.error,
                   req.cache_key(endpoint.model))
        for p, r, raw, req in zip(pairs, parsed, raws, requests)
    ]


@dataclass(frozen=True)
class WindowRanking:
    query_id: str
    window_index: int
    start_rank: int
    input_doc_ids: list[str]
    ranked_doc_ids: list[str]
    explanation: str
    raw: str
    parse_error: str | None
    repaired: bool
    request_hash: str


def rank_listwise(
    candidates: dict[str, list[str]],
    queries: dict[str, str],
    documents: dict[str, str],
    variant: PromptVariant,
    endpoint: TeacherEndpoint,
    cache: RequestCache,
    usage: TeacherUsage,
    window: int,
    stride: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[WindowRanking], dict[str, list[str]]]:
    """Listwise ranking with reasoning over RankGPT-style sliding windows (bottom to top). Each
    round sends the next window of every query at once; returns every window's answer and the
    final order per query."""
    order = {q: list(docs) for q, docs in candidates.items()}
    plans = {q: sliding_windows(len(docs), window, stride) for q, docs in candidates.items() if docs}
    results: list[WindowRanking] = []
    for round_index in range(max((len(w) for w in plans.values()), default=0)):
        active = [q for q in sorted(plans) if round_index < len(plans[q])]
        spans = [plans[q][round_index] for q in active]
        inputs = [order[q][start:end] for q, (start, end) in zip(active, spans)]
        prompts = [
            variant.render("listwise", query=queries[q], documents=[
                {"id": i, "text": variant.prepare_document(documents[d])[0]} for i, d in enumerate(docs, start=1)])
            for q, docs in zip(active, inputs)
        ]
        requests, raws, parsed = _ask(
            "listwise", prompts, variant, endpoint, cache, usage, lambda i, t: parse_ranking(t, len(inputs[i])),
            "Ranking:", 8 * window, progress,
        )
        for q, (start, end), docs, req, raw, p in zip(active, spans, inputs, requests, raws, parsed):
            ranked = [docs[i] for i in p.order]
            order[q][start:end] = ranked
            results.append(WindowRanking(q, round_index, start + 1, docs, ranked, p.explanation, raw, p.error,
                                         p.repaired, req.cache_key(endpoint.model)))
    return results, order
