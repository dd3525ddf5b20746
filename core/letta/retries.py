"""The one retry policy of lettafleet's HTTP clients (Letta's and GitHub's): whether a failed request is sent
again, and after how long. docs/server-faults.md describes it for users. A client with a `Pacer`
(core/letta/pacing.py) leaves refusals to it: they are then bounded by the pacer's patience, not by `budget`."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from lettafleet.core.letta.pacing import Pacer

if TYPE_CHECKING:
    import httpx  # loaded by the HTTP clients that send through this policy, not by every command

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# The server refused the request without doing it (too many requests, not available): any request, a create
# too, is sent again, for as long as the retry budget lasts.
REFUSED_STATUSES = frozenset({429, 503})
# The server may have done the work before failing: only a request that is safe to repeat is sent again. A
# create is not; the next plan reads the server and matches what it finds.
UNCERTAIN_STATUSES = frozenset({500, 502, 504})
RETRY_BUDGET = 60.0  # seconds one request may spend being retried
MAX_BACKOFF = 8.0  # the longest wait lettafleet chooses itself; a Retry-After may ask for more


@dataclass(frozen=True)
class Sent:
    """The answer a request finally got, after how many attempts and how many seconds."""

    response: httpx.Response
    attempts: int
    seconds: float


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are sent again and how long to wait first: exponential backoff with jitter, never sooner
    than the server's Retry-After, and never past `budget` seconds after the first attempt.

    `retries` bounds the failures the server may have seen (unreachable, 500/502/504, no answer); a refusal
    (429/503) is bounded by the budget only, since the server promises it did nothing.
    """

    retries: int = 3
    backoff: float = 0.25
    budget: float = RETRY_BUDGET
    max_backoff: float = MAX_BACKOFF

    @staticmethod
    def repeatable(method: str, idempotent: bool | None = None) -> bool:
        """Whether sending `method` twice does no harm: `idempotent` overrides what the method says."""
        return method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent

    def retry_delay(
        self,
        failure: int | httpx.TransportError,
        *,
        attempt: int,
        started: float,
        repeatable: bool,
        retry_after: str | None = None,
    ) -> float | None:
        """Seconds to wait before sending a request again after `failure` (an error status, or no answer), or
        None to give up. `attempt` counts the attempts made so far; `started` is the first one's monotonic time."""
        if not self._may_retry(failure, attempt, repeatable):
            return None
        backoff = min(self.backoff * 2 ** (attempt - 1), self.max_backoff) * (0.5 + random.random())
        delay = max(backoff, retry_after_seconds(retry_after) or 0.0)
        return delay if time.monotonic() - started + delay <= self.budget else None

    def send(self, request: Callable[[], httpx.Response], *, repeatable: bool, pacer: Pacer | None = None) -> Sent:
        """Call `request` again and again, as this policy allows, until it is answered without an error status.
        Returns the last answer; raises the last `httpx.TransportError` when no answer came. With a `pacer`, every
        attempt waits its turn, and a refusal is the pacer's to judge (`PacingGaveUp` when it stops waiting)."""
        import httpx

        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response, sent_at = self._attempt(request, pacer)
            except httpx.TransportError as error:
                delay = self.retry_delay(error, attempt=attempt, started=started, repeatable=repeatable)
                if delay is None:
                    raise
            else:
                retry_after = response.headers.get("retry-after")
                if pacer is not None and response.status_code in REFUSED_STATUSES:
                    pacer.refused(retry_after_seconds(retry_after), sent_at)
                    continue  # the next turn waits as long as the pacer says
                delay = (
                    self.retry_delay(
                        response.status_code,
                        attempt=attempt,
                        started=started,
                        repeatable=repeatable,
                        retry_after=retry_after,
                    )
                    if response.is_error
                    else None
                )
                if delay is None:
                    return Sent(response, attempt, time.monotonic() - started)
            time.sleep(delay)

    @staticmethod
    def _attempt(request: Callable[[], httpx.Response], pacer: Pacer | None) -> tuple[httpx.Response, float | None]:
        """One attempt, in its turn when paced, and when the pacer let it go; an answer that is not a refusal tells
        the pacer the server keeps up."""
        if pacer is None:
            return request(), None
        with pacer.turn() as sent_at:
            response = request()
        if response.status_code not in REFUSED_STATUSES:
            pacer.answered()
        return response, sent_at

    def _may_retry(self, failure: int | httpx.TransportError, attempt: int, repeatable: bool) -> bool:
        import httpx

        if isinstance(failure, httpx.ConnectError):
            return attempt <= self.retries  # nothing reached the server, so any method may be sent again
        if isinstance(failure, httpx.TransportError):
            return repeatable and attempt <= self.retries  # sent, but no answer: the server may have done it
        if failure in REFUSED_STATUSES:
            return True
        return failure in UNCERTAIN_STATUSES and repeatable and attempt <= self.retries


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds from now: it is either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if not math.isnan(seconds) else None
