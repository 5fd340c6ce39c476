import email.utils
import time

import httpx
import openai
import pytest

from rr_assets.core.teacher import MalformedResponse, TeacherRequest, _backoff_s, describe_failure

pytestmark = pytest.mark.unit
REQUEST = httpx.Request("POST", "http://teacher.invalid/v1/completions")


def rate_limited(headers=None) -> openai.RateLimitError:
    response = httpx.Response(429, headers=headers or {}, request=REQUEST)
    return openai.RateLimitError("slow down", response=response, body=None)


def test_retry_after_seconds_are_honoured_up_to_a_minute():
    assert _backoff_s(0, rate_limited({"retry-after": "7"})) == 7.0
    assert _backoff_s(5, rate_limited({"retry-after": "0"})) == 0.0
    assert _backoff_s(0, rate_limited({"retry-after": "3600"})) == 60.0


def test_retry_after_as_an_http_date():
    header = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 15.0 <= _backoff_s(0, rate_limited({"retry-after": header})) <= 20.0


def test_without_retry_after_the_backoff_grows_exponentially_to_a_cap():
    for attempt, ceiling in [(0, 0.5), (2, 2.0), (10, 8.0)]:
        waits = [_backoff_s(attempt, rate_limited()) for _ in range(20)]
        assert all(0.75 * ceiling <= w <= ceiling for w in waits)
    assert 0.375 <= _backoff_s(0, MalformedResponse("no choices")) <= 0.5


def test_an_unreadable_retry_after_falls_back_to_the_backoff():
    assert 0.375 <= _backoff_s(0, rate_limited({"retry-after": "soon"})) <= 0.5


def test_failures_are_described_without_the_request():
    assert describe_failure(rate_limited()) == "HTTP 429 from the teacher (RateLimitError)"
    assert describe_failure(openai.APITimeoutError(request=REQUEST)) == "the teacher did not answer within the timeout"
    refused = openai.APIConnectionError(request=REQUEST)
    refused.__cause__ = ConnectionRefusedError("connection refused")
    assert describe_failure(refused) == "could not reach the teacher (connection refused)"
    assert describe_failure(MalformedResponse("IndexError: list index out of range")) == (
        "the teacher's answer was not a usable completion (IndexError: list index out of range)")


def test_the_cache_key_covers_model_api_prompt_and_parameters():
    request = TeacherRequest("completions", "Query: q", '{"temperature": 0.0}')
    key = request.cache_key("gemma")
    assert key == TeacherRequest("completions", "Query: q", '{"temperature": 0.0}').cache_key("gemma")
    assert len({key, request.cache_key("other-model"), TeacherRequest("chat", "Query: q", request.params).cache_key("gemma"),
                TeacherRequest("completions", "Query: r", request.params).cache_key("gemma"),
                TeacherRequest("completions", "Query: q", '{"temperature": 0.5}').cache_key("gemma")}) == 5
