"""The one retry policy: which failures are sent again, for which requests, and for how long."""

from __future__ import annotations

import time

import httpx
import pytest

from lettafleet.core import RetryPolicy

REQUEST = httpx.Request("POST", "http://letta.test/v1/agents/")
UNREACHED = httpx.ConnectError("connection refused", request=REQUEST)
UNANSWERED = httpx.ReadError("connection reset", request=REQUEST)


def decides(failure: int | httpx.TransportError, *, repeatable: bool, attempt: int = 1) -> bool:
    policy = RetryPolicy(retries=3, backoff=0.0, budget=60.0)
    return policy.retry_delay(failure, attempt=attempt, started=time.monotonic(), repeatable=repeatable) is not None


@pytest.mark.parametrize(
    ("failure", "create", "read"),
    [
        (429, True, True),  # refused: nothing was done
        (503, True, True),
        (500, False, True),  # may have been done: only what is safe to repeat
        (502, False, True),
        (504, False, True),
        (UNREACHED, True, True),  # never reached the server
        (UNANSWERED, False, True),  # reached it, no answer
        (400, False, False),  # the request is wrong: sending it again changes nothing
        (404, False, False),
        (409, False, False),
    ],
)
def test_what_is_sent_again_depends_on_the_failure_and_on_whether_the_request_may_be_repeated(failure, create, read):
    assert (decides(failure, repeatable=False), decides(failure, repeatable=True)) == (create, read)


def test_failures_the_server_may_have_seen_are_retried_a_bounded_number_of_times() -> None:
    assert decides(502, repeatable=True, attempt=3)
    assert not decides(502, repeatable=True, attempt=4)
    assert decides(429, repeatable=True, attempt=40)  # a refusal is bounded by the time budget only


def test_a_wait_is_never_shorter_than_retry_after_nor_past_the_budget() -> None:
    policy = RetryPolicy(backoff=0.0, budget=10.0)
    started = time.monotonic()

    assert policy.retry_delay(429, attempt=1, started=started, repeatable=False, retry_after="7") == 7.0
    assert policy.retry_delay(429, attempt=1, started=started, repeatable=False, retry_after="11") is None


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_reads_puts_and_deletes_may_be_repeated_and_creates_may_not(method: str) -> None:
    assert RetryPolicy.repeatable(method) and RetryPolicy.repeatable(method.lower())
    assert not RetryPolicy.repeatable("POST") and not RetryPolicy.repeatable("PATCH")
    assert RetryPolicy.repeatable("PATCH", idempotent=True)
