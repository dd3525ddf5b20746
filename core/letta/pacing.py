"""How fast a client sends, paced from the server's answers: one `Pacer` per client, shared by every thread.

A refusal (429, 503) pauses every request, not only the refused one, for as long as its `Retry-After` asks (or a
backoff that grows while refusals follow one another), and halves how many requests may be in flight at once;
each answered request then adds back a little, until the limit is whole again (AIMD, as TCP does). As TCP halves
once per window, the refusals of requests sent before the pacer last slowed down are one signal, not one each: they
pause as their `Retry-After` asks, but neither halve the limit again nor lengthen the backoff. A refused
request is sent again for as long as the server makes progress: only when no request at all has been answered
for `patience` seconds, or the caller stops the pacer (Ctrl-C), does it give up. docs/server-faults.md
describes it for users.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

DEFAULT_CEILING = 32  # requests in flight at most: the client's connection pool
DEFAULT_PATIENCE = 600.0  # seconds of nothing but refusals before a refused request gives up
FIRST_PAUSE = 0.25  # the pause after a refusal that names no Retry-After; it doubles while refusals follow
LONGEST_CHOSEN_PAUSE = 8.0  # the longest pause lettafleet chooses itself; a Retry-After may ask for more
POLL = 0.2  # seconds between looks at the stop signal while waiting


class StopSignal(Protocol):
    """What stops an apply once set: a `threading.Event`, or anything that says whether it is set."""

    def is_set(self) -> bool: ...


class PacingGaveUp(Exception):
    """A request was not sent (again): the caller stopped, or the server refused everything for too long."""


@dataclass(frozen=True)
class PaceSummary:
    """What pacing did over a stretch of work (an apply): for its report."""

    requests: int  # sent, refusals included
    seconds: float  # the stretch's wall time
    refusals: int  # answered 429 or 503
    paused: float  # wall seconds during which every request was held back
    lowest: int  # the smallest and largest number of requests allowed in flight at once
    highest: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.per_second, 2),
            "refusals": self.refusals,
            "paused_seconds": round(self.paused, 3),
            "concurrency_lowest": self.lowest,
            "concurrency_highest": self.highest,
        }

    def describe(self) -> str:
        """`Rate: 212 requests in 9.8 s (21.6/s), 4 to 8 at once; 31 refused (429/503), paused 6.2 s.`"""
        span = str(self.lowest) if self.lowest == self.highest else f"{self.lowest} to {self.highest}"
        refused = (
            f"; {self.refusals} refused (429/503), paused {self.paused:.1f} s" if self.refusals else "; none refused"
        )
        rate = f"{self.requests} requests in {self.seconds:.1f} s ({self.per_second:.1f}/s)"
        return f"Rate: {rate}, {span} at once{refused}."


class _Tally:
    """The counts of one stretch of work, kept up to date by the pacer while the stretch lasts."""

    def __init__(self, limit: int, now: float) -> None:
        self.started = now
        self.requests = self.refusals = 0
        self.paused = 0.0
        self.lowest = self.highest = limit


class Pacer:
    """Admits requests one at a time through `turn()`, holding them back while the server asked to wait and while
    as many as the current limit are in flight. Thread-safe; one per client."""

    def __init__(
        self,
        *,
        ceiling: int = DEFAULT_CEILING,
        patience: float = DEFAULT_PATIENCE,
        clock: Callable[[], float] = time.monotonic,
        waits: Callable[[threading.Condition, float], object] = threading.Condition.wait,
    ) -> None:
        """`clock` and `waits` (how a waiting thread waits on the pacer's condition) are for tests to replace."""
        self.patience = patience
        self._clock = clock
        self._waits = waits
        self._ceiling = max(1, ceiling)
        self._limit = float(self._ceiling)
        self._in_flight = 0
        self._resume_at = 0.0  # no request is sent before this time
        self._refusals_in_a_row = 0
        self._refused_since: float | None = None  # when the current run of refusals (no answer between) began
        self._slowed_at = -math.inf  # when a refusal last halved the limit: what was sent before it is refused alike
        self._stop: StopSignal = threading.Event()
        self._tallies: list[_Tally] = []
        self._condition = threading.Condition()

    @property
    def limit(self) -> int:
        """How many requests may be in flight at once now."""
        with self._condition:
            return int(self._limit)

    def at_most(self, ceiling: int) -> None:
        """Never allow more than `ceiling` requests in flight (an apply's --parallelism)."""
        with self._condition:
            self._ceiling = max(1, ceiling)
            self._limit = min(self._limit, self._ceiling)
            self._note_limit()

    def stops_with(self, stop: StopSignal) -> None:
        """Give up waiting as soon as `stop` is set: a request held back by a refusal is then not sent."""
        self._stop = stop

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Wait until the server's pause is over and a place is free, then hold that place while the request runs;
        gives the time it was sent (for `refused`). Raises PacingGaveUp, without sending, when the caller stops
        while the server's pause holds it back."""
        with self._condition:
            while (wait := self._wait_needed()) > 0:
                if self._stop.is_set() and self._resume_at > self._clock():
                    raise PacingGaveUp("the run was stopped while the server asked to wait; this request was not sent")
                self._waits(self._condition, min(wait, POLL))
            self._in_flight += 1
            for tally in self._tallies:
                tally.requests += 1
            sent_at = self._clock()
        try:
            yield sent_at
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify_all()

    def answered(self) -> None:
        """The request was answered (not refused): the server keeps up, so allow a little more at once."""
        with self._condition:
            self._refusals_in_a_row = 0
            self._refused_since = None
            if self._limit < self._ceiling:
                self._limit = min(float(self._ceiling), self._limit + 1 / math.floor(self._limit))
                self._note_limit()
            self._condition.notify_all()

    def refused(self, retry_after: float | None, sent_at: float | None = None) -> None:
        """The request (sent at `sent_at`, as `turn` gave it) was refused (429, 503): pause everyone and halve the
        limit, unless the pacer slowed down since it was sent (then only its `Retry-After` is waited for). Raises
        PacingGaveUp when it should not be sent again: no request was answered for `patience` seconds, or the
        pause asked for ends after that, or the caller stopped."""
        with self._condition:
            now = self._clock()
            self._refused_since = self._refused_since if self._refused_since is not None else now
            slowing = sent_at is None or sent_at > self._slowed_at
            if slowing:
                self._refusals_in_a_row += 1
            pause = retry_after if retry_after is not None else (self._chosen_pause() if slowing else 0.0)
            stalled = now - self._refused_since
            if stalled + pause > self.patience:
                raise PacingGaveUp(self._out_of_patience(stalled, retry_after))
            if self._stop.is_set():
                raise PacingGaveUp("the run was stopped while the server asked to wait; it was not sent again")
            self._pause_until(now + pause, now)
            if slowing:
                self._slowed_at = now
                self._limit = max(1.0, math.floor(self._limit / 2))
                self._note_limit()
            for tally in self._tallies:
                tally.refusals += 1

    def measure(self) -> Callable[[], PaceSummary]:
        """Start counting a stretch of work; call what is returned at its end for its summary."""
        with self._condition:
            tally = _Tally(int(self._limit), self._clock())
            self._tallies.append(tally)

        def finish() -> PaceSummary:
            with self._condition:
                if tally in self._tallies:
                    self._tallies.remove(tally)
                seconds = self._clock() - tally.started
            return PaceSummary(tally.requests, seconds, tally.refusals, tally.paused, tally.lowest, tally.highest)

        return finish

    def _chosen_pause(self) -> float:
        """The pause after a refusal that names no Retry-After: doubling with each slowdown in a row, jittered."""
        chosen = min(FIRST_PAUSE * 2.0 ** (self._refusals_in_a_row - 1), LONGEST_CHOSEN_PAUSE)
        return chosen * (0.5 + random.random())

    def _wait_needed(self) -> float:
        """Seconds until a request may go: the pause left, or a short look again when every place is taken."""
        left = self._resume_at - self._clock()
        if left > 0:
            return left
        return POLL if self._in_flight >= int(self._limit) else 0.0

    def _pause_until(self, until: float, now: float) -> None:
        """Hold every request back until `until`; the tallies count only the time added to the pause."""
        added = until - max(self._resume_at, now)
        if added <= 0:
            return
        self._resume_at = until
        for tally in self._tallies:
            tally.paused += added

    def _note_limit(self) -> None:
        for tally in self._tallies:
            tally.lowest = min(tally.lowest, int(self._limit))
            tally.highest = max(tally.highest, int(self._limit))

    def _out_of_patience(self, stalled: float, retry_after: float | None) -> str:
        asked = f"; it asked to wait {retry_after:.0f} s more" if retry_after is not None else ""
        return (
            f"the server refused every request for {stalled:.0f} s{asked}. lettafleet waits while the server "
            f"answers some requests, and gives up after {self.patience:g} s of nothing but refusals "
            "(--rate-limit-patience). Run it again later, or with a longer --rate-limit-patience"
        )
