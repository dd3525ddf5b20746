"""Time for the pacer in unit tests: a clock that moves only when a thread waits on the pacer, whose waits are
recorded instead of slept."""

from __future__ import annotations

import threading

from lettafleet.core.letta.pacing import DEFAULT_CEILING, DEFAULT_PATIENCE, Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waited: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, _condition: threading.Condition, seconds: float) -> None:
        self.waited.append(seconds)
        self.now += seconds

    def pacer(self, *, ceiling: int = DEFAULT_CEILING, patience: float = DEFAULT_PATIENCE) -> Pacer:
        """A pacer on this time."""
        return Pacer(ceiling=ceiling, patience=patience, clock=self.clock, waits=self.wait)
