"""Where the dev server's long steps are reported: plain timed lines, or nothing."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Protocol


class Progress(Protocol):
    """Where long-running steps and notes are reported (the CLI draws them; tests may stay silent)."""

    def step(self, message: str) -> contextlib.AbstractContextManager[None]: ...

    def note(self, message: str) -> None: ...


class PlainProgress:
    """Plain lines on stderr: one when a step starts, one with its duration when it ends."""

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        self.note(f"{message} ...")
        started = time.monotonic()
        yield
        self.note(f"{message}: done in {time.monotonic() - started:.1f} s")

    def note(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


class SilentProgress:
    """Reports nothing; for callers that only want the result."""

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        yield

    def note(self, message: str) -> None:
        pass
