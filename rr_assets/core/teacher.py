"""The teacher: requests to any OpenAI-compatible endpoint, cached by content hash and resumable,
retried with backoff, stopped by a circuit breaker when nobody answers; and the `Teacher` object
that asks for the three kinds of reasoning."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import openai

from rr_assets.core.answer_parsing import (
    ParsedDirect,
    parse_comparison,
    parse_direct,
    parse_explanation,
    parse_ranking,
    verdict_missing,
)
from rr_assets.core.candidate_sampling import ComparisonPair, sliding_windows
from rr_assets.core.prompts import PromptVariant
from rr_assets.core.warehouse import Warehouse


class TeacherError(RuntimeError):
    """Some requests failed after their retries; every answer received was kept in the cache."""


class TeacherUnreachable(TeacherError):
    """Nobody answers at the endpoint (the circuit breaker tripped, or the embedded server died):
    no new request was sent once that was clear."""


@dataclass(frozen=True)
class TeacherEndpoint:
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 4
    seed: int = 0
    breaker_failures: int = 8
    label: str = ""  # how messages name the endpoint (never a path or query, which can hold secrets)
    # Why the server behind the endpoint is gone (the embedded server's supervisor), or None.
    server_failure: Callable[[], str | None] | None = field(default=None, compare=False)


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
    retries: int = 0


@dataclass(frozen=True)
class Progress:
    """Where a batch of new requests stands; reported on every answer and every heartbeat."""

    answered: int
    total: int
    retries: int
    last_error: str | None


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
        rows = self.warehouse.query("cached_answers", {"keys": keys})
        return {r.request_hash: TeacherResponse(r.response, int(r.prompt_tokens or 0), int(r.completion_tokens or 0))
                for r in rows.itertuples()}

    def store(self, key: str, model: str, request: TeacherRequest, response: TeacherResponse) -> None:
        self.warehouse.execute("store_answer", {
            "request_hash": key, "model": model, "prompt": request.prompt, "params": request.params,
            "response": response.text, "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens})


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
        return f"HTTP {exc.status_code} from the teacher ({type(exc).__name__})"
    if isinstance(exc, openai.APITimeoutError):
        return "the teacher did not answer within the timeout"
    if isinstance(exc, openai.APIConnectionError):
        return f"could not reach the teacher ({exc.__cause__ or exc})"
    if isinstance(exc, MalformedResponse):
        return f"the teacher's answer was not a usable completion ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return isinstance(exc, (openai.APIConnectionError, MalformedResponse))


def _is_unreachable(exc: BaseException) -> bool:
    """Nobody answered at all (refused, reset, DNS): what the circuit breaker counts."""
    return isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)


def _backoff_s(attempt: int, exc: BaseException) -> float:
    """Retry-After (seconds or an HTTP date, at most 60 s) when the server sends it; otherwise
    exponential backoff from 0.5 s, capped at 8 s, with jitter."""
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            return min(60.0, max(0.0, float(header)))
        except ValueError:
            try:
                return min(60.0, max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time()))
            except (TypeError, ValueError):
                pass  # neither seconds nor a date: back off as usual
    return min(8.0, 0.5 * 2**attempt) * random.uniform(0.75, 1.0)


def complete_all(
    endpoints: TeacherEndpoint | Sequence[TeacherEndpoint],
    requests: list[TeacherRequest],
    cache: RequestCache,
    usage: TeacherUsage,
    progress: Callable[[Progress], None] | None = None,
    heartbeat_s: float = 15.0,
) -> list[TeacherResponse]:
    """Answers for `requests`, in order: from the cache where answered before, otherwise from the
    endpoints (replicas of one model), at most each endpoint's `concurrency` in flight there. Each
    answer is cached the moment it arrives, so an interrupted run resumes without paying twice.

    HTTP 408/409/429/5xx, timeouts, broken connections and malformed 200 answers are retried with
    backoff (honouring Retry-After), on whichever endpoint has room. Requests that still fail do
    not stop the others: the run then raises TeacherError saying what happened. An endpoint is
    taken out after `breaker_failures` connection failures in a row there (nobody is there), or when
    its embedded server's supervisor reports the server gone; its requests in flight go to the
    others. When every endpoint is out, every request stops at once, with TeacherUnreachable."""
    pool = [endpoints] if isinstance(endpoints, TeacherEndpoint) else list(endpoints)
    keys = [r.cache_key(pool[0].model) for r in requests]
    answers = cache.lookup(sorted(set(keys)))
    usage.requests += len(requests)
    usage.cache_hits += sum(1 for k in keys if k in answers)
    missing = {k: r for k, r in zip(keys, requests) if k not in answers}
    if missing:
        batch = _Batch(pool, missing, cache, usage, answers, progress, heartbeat_s)
        asyncio.run(batch.send_all())
        batch.raise_unless_complete()
    return [answers[k] for k in keys]


class _Batch:
    """The missing requests of one `complete_all` call, spread over a pool of endpoints: a queue
    of free slots (each endpoint contributes `concurrency`), a breaker per endpoint."""

    def __init__(self, pool: list[TeacherEndpoint], missing: dict[str, TeacherRequest], cache: RequestCache,
                 usage: TeacherUsage, answers: dict[str, TeacherResponse], progress, heartbeat_s: float):
        self.pool, self.missing, self.cache, self.usage, self.answers = pool, missing, cache, usage, answers
        self.progress, self.heartbeat_s = progress, heartbeat_s
        self.answered, self.last_error = 0, None
        self.failures: Counter[str] = Counter()
        self.in_a_row: Counter[int] = Counter()
        self.down: dict[int, str] = {}  # endpoint index -> why it was taken out

    def name(self, index: int) -> str:
        endpoint = self.pool[index]
        return endpoint.label or endpoint.base_url

    def report(self) -> None:
        if self.progress:
            self.progress(Progress(self.answered, len(self.missing), self.usage.retries, self.last_error))

    def take_out(self, index: int, why: str) -> None:
        if index in self.down:
            return
        self.down[index] = why
        if len(self.pool) > 1:
            self.last_error = f"{self.name(index)} is out: {why}"
        if len(self.down) == len(self.pool):
            self.all_out.set()

    async def slot(self) -> int:
        """An endpoint with room for one more request (its slot goes back with `release`)."""
        while True:
            index = await self.slots.get()
            if index not in self.down:
                return index  # a slot of an endpoint taken out is dropped

    def release(self, index: int) -> None:
        if index not in self.down:
            self.slots.put_nowait(index)

    async def one(self, key: str, request: TeacherRequest):
        """One request, retried. It keeps its slot while it backs off, so a rate-limited endpoint
        gets no more requests than its concurrency; a connection failure while another endpoint is
        still in does not count against its retries (the request moves on at once)."""
        attempt = 0
        while True:
            index = await self.slot()
            endpoint = self.pool[index]
            try:
                response = await _send(self.clients[index], endpoint, request)
                self.in_a_row[index] = 0
                return key, request, response
            except Exception as exc:  # noqa: BLE001 - classified below; the rest is re-raised
                self.last_error = describe_failure(exc)
                moved = _is_unreachable(exc)
                if moved:
                    self.in_a_row[index] += 1
                    if self.in_a_row[index] >= endpoint.breaker_failures:
                        gone = endpoint.server_failure() if endpoint.server_failure else None
                        self.take_out(index, gone or f"{self.in_a_row[index]} connection attempts in a row failed "
                                                     f"(last error: {self.last_error})")
                    moved = len(self.down) < len(self.pool) and len(self.pool) > 1
                if self.all_out.is_set() or not _retryable(exc) or (not moved and attempt >= endpoint.max_retries):
                    raise
                self.usage.retries += 1
                if not moved:
                    await asyncio.sleep(_backoff_s(attempt, exc))
                    attempt += 1
            finally:
                self.release(index)

    async def watch(self) -> None:
        """Heartbeat progress, and take an endpoint out as soon as its embedded server is gone."""
        last_beat = time.monotonic()
        while not self.all_out.is_set():
            await asyncio.sleep(0.5)
            for index, endpoint in enumerate(self.pool):
                gone = endpoint.server_failure() if endpoint.server_failure else None
                if gone:
                    self.take_out(index, gone)
            if time.monotonic() - last_beat >= self.heartbeat_s:
                last_beat = time.monotonic()
                self.report()

    async def send_all(self) -> None:
        self.all_out, self.slots = asyncio.Event(), asyncio.Queue()
        for index, endpoint in enumerate(self.pool):
            for _ in range(max(1, endpoint.concurrency)):
                self.slots.put_nowait(index)
        self.clients = [openai.AsyncOpenAI(base_url=e.base_url, api_key=e.api_key or "not-needed", timeout=e.timeout_s,
                                           max_retries=0) for e in self.pool]
        tasks = [asyncio.ensure_future(self.one(k, r)) for k, r in self.missing.items()]
        watcher, stopper = asyncio.ensure_future(self.watch()), asyncio.ensure_future(self.all_out.wait())
        try:
            pending = set(tasks)
            while pending and not self.all_out.is_set():
                done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stopper)
                for finished in done - {stopper}:
                    self.collect(finished)
        finally:
            for task in [*tasks, watcher, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, watcher, stopper, return_exceptions=True)
            for client in self.clients:
                await client.close()

    def collect(self, finished: asyncio.Future) -> None:
        if finished.cancelled():
            return
        exc = finished.exception()
        if exc is not None:
            self.failures[describe_failure(exc)] += 1
            return
        key, request, response = finished.result()
        self.cache.store(key, self.pool[0].model, request, response)
        self.answers[key] = response
        self.usage.new_calls += 1
        self.usage.prompt_tokens += response.prompt_tokens
        self.usage.completion_tokens += response.completion_tokens
        self.answered += 1
        self.report()

    def raise_unless_complete(self) -> None:
        cached = f"{self.answered} of the {len(self.missing)} new answers arrived and are cached"
        if self.all_out.is_set():
            where = (f"teacher at {self.name(0)} stopped answering: {self.down[0]}" if len(self.pool) == 1 else
                     "every teacher endpoint stopped answering: "
                     + "; ".join(f"{self.name(i)}: {why}" for i, why in sorted(self.down.items())))
            raise TeacherUnreachable(
                f"{where}. No new request was sent after that; {cached} (with {self.usage.cache_hits} answers cached "
                "before). Fix the endpoint, then re-run: only the missing requests are sent.")
        if self.failures:
            failed = sum(self.failures.values())
            reasons = "; ".join(f"{n}× {reason}, after retries" for reason, n in self.failures.most_common())
            raise TeacherError(
                f"{failed} of {len(self.missing)} teacher requests failed ({reasons}). The {len(self.missing) - failed} "
                f"answers received are cached: re-run to send only the missing requests.")


@dataclass(frozen=True)
class JudgePair:
    query_id: str
    doc_id: str
    query: str
    document: str
    gold_label: int | None = None  # the training label a grounded variant shows the teacher
    split: str = "train"


@dataclass(frozen=True)
class Judgment:
    query_id: str
    doc_id: str
    split: str
    label: int | None
    label_source: str  # "teacher", or "qrels" when a grounded teacher only explained a given label
    explanation: str
    raw: str
    parse_error: str | None
    request_hash: str
    truncated: bool


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


class Teacher:
    """One prompt variant's teacher for a run: the endpoint (or a pool of replicas of one model),
    the request cache and the usage, with direct judgments (`judge`), pairwise comparisons
    (`compare`) and listwise windows (`rank`)."""

    def __init__(self, endpoints: TeacherEndpoint | Sequence[TeacherEndpoint], variant: PromptVariant,
                 cache: RequestCache, progress: Callable[[Progress], None] | None = None):
        self.endpoints = [endpoints] if isinstance(endpoints, TeacherEndpoint) else list(endpoints)
        models = {e.model for e in self.endpoints}
        if len(models) != 1:
            raise ValueError(f"a teacher's endpoints must serve one model (answers are cached by model), not {sorted(models)}")
        self.model, self.variant, self.cache, self.progress = models.pop(), variant, cache, progress
        self.usage = TeacherUsage()

    def _ask(self, kind: str, prompts: list[str], parse: Callable[[int, str], object], cue: str,
             cue_tokens: int) -> tuple[list[TeacherRequest], list[str], list]:
        """Send prompts and parse the answers. With the completions API, an answer that stops before
        its verdict gets one short follow-up request: the prompt, the explanation it wrote, then `cue`
        (e.g. "Relevance:"); both requests are cached like any other."""
        variant = self.variant
        requests = [make_request(variant.api, p, variant.request_params(kind)) for p in prompts]
        raws = [r.text for r in complete_all(self.endpoints, requests, self.cache, self.usage, self.progress)]
        parsed = [parse(i, raw) for i, raw in enumerate(raws)]
        retry = [i for i, p in enumerate(parsed) if verdict_missing(p) and variant.api == "completions"]
        if retry:
            cue_params = {**variant.teacher_params, "max_tokens": cue_tokens, "stop": ["\n"]}
            follow_ups = [make_request("completions", f"{prompts[i]} {parsed[i].explanation}\n{cue}", cue_params)
                          for i in retry]
            for i, answer in zip(retry, complete_all(self.endpoints, follow_ups, self.cache, self.usage)):
                parsed[i] = parse(i, f"{parsed[i].explanation}\n{cue}{answer.text}")
                raws[i] = f"{raws[i]}\n[follow-up] {cue}{answer.text}"
        return requests, raws, parsed

    def judge(self, pairs: list[JudgePair]) -> list[Judgment]:
        """Direct relevance reasoning: an explanation, then a graded label; for a pair with a gold
        label (grounded variant), only the explanation of that label."""
        variant, prompts, truncated = self.variant, [], []
        for pair in pairs:
            document, cut = variant.prepare_document(pair.document)
            prompts.append(variant.render("direct", query=pair.query, document=document, label=pair.gold_label))
            truncated.append(cut)

        def parse(i: int, text: str) -> ParsedDirect:
            gold = pairs[i].gold_label
            return parse_direct(text, variant.labels) if gold is None else parse_explanation(text, gold)

        requests, raws, parsed = self._ask("direct", prompts, parse, "Relevance:", 3)
        return [
            Judgment(pair.query_id, pair.doc_id, pair.split, p.label, "teacher" if pair.gold_label is None else "qrels",
                     p.explanation, raw, p.error, req.cache_key(self.model), cut)
            for pair, p, raw, req, cut in zip(pairs, parsed, raws, requests, truncated)
        ]

    def compare(self, pairs: list[ComparisonPair], queries: dict[str, str], documents: dict[str, str]) -> list[Comparison]:
        """Comparison reasoning (R2R): which of two candidates is more relevant, and why."""
        prepare = self.variant.prepare_document
        prompts = [self.variant.render("comparison", query=queries[p.query_id], document_a=prepare(documents[p.doc_a])[0],
                                       document_b=prepare(documents[p.doc_b])[0]) for p in pairs]
        requests, raws, parsed = self._ask("comparison", prompts, lambda i, t: parse_comparison(t), "Preferred:", 3)
        return [
            Comparison(p.query_id, p.doc_a, p.doc_b, p.reason, p.swapped, {"A": p.doc_a, "B": p.doc_b}.get(r.preferred),
                       r.explanation, raw, r.error, req.cache_key(self.model))
            for p, r, raw, req in zip(pairs, parsed, raws, requests)
        ]

    def rank(self, candidates: dict[str, list[str]], queries: dict[str, str],
             documents: dict[str, str]) -> tuple[list[WindowRanking], dict[str, list[str]]]:
        """Listwise ranking with reasoning over RankGPT-style sliding windows (bottom to top). Each
        round sends the next window of every query at once; returns every window's answer and the
        final order per query."""
        window, stride = int(self.variant.listwise["window"]), int(self.variant.listwise["stride"])
        order = {q: list(docs) for q, docs in candidates.items()}
        plans = {q: sliding_windows(len(docs), window, stride) for q, docs in candidates.items() if docs}
        results: list[WindowRanking] = []
        for round_index in range(max((len(w) for w in plans.values()), default=0)):
            active = [q for q in sorted(plans) if round_index < len(plans[q])]
            spans = [plans[q][round_index] for q in active]
            inputs = [order[q][start:end] for q, (start, end) in zip(active, spans)]
            prompts = [
                self.variant.render("listwise", query=queries[q], documents=[
                    {"id": i, "text": self.variant.prepare_document(documents[d])[0]} for i, d in enumerate(docs, start=1)])
                for q, docs in zip(active, inputs)
            ]
            sizes = [len(docs) for docs in inputs]
            requests, raws, parsed = self._ask("listwise", prompts, lambda i, t: parse_ranking(t, sizes[i]),  # noqa: B023
                                               "Ranking:", 8 * window)
            for q, (start, end), docs, req, raw, p in zip(active, spans, inputs, requests, raws, parsed):
                ranked = [docs[i] for i in p.order]
                order[q][start:end] = ranked
                results.append(WindowRanking(q, round_index, start + 1, docs, ranked, p.explanation, raw, p.error,
                                             p.repaired, req.cache_key(self.model)))
        return results, order
