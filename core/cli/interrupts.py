"""Ctrl-C during an apply: the first stops it gently (no new change starts), a second stops the process at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import rich_click as click

from lettafleet.core.engine.applying import ApplyReport

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a process Ctrl-C stopped
RESUME_HINT = "Run `lettafleet apply` again to finish: it picks up what is left."


class Stopping:
    """Why an apply was told to stop, if it was: Ctrl-C, or its lock was lost. The engine only sees `is_set`."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self.by_user = False

    def stop(self, reason: str, *, by_user: bool = False) -> None:
        if self.event.is_set() and not by_user:
            return
        self.by_user = self.by_user or by_user  # Ctrl-C after a lost lock still makes the exit 130
        self.reason = self.reason or reason
        self.event.set()
        click.echo(f"\n{reason}", err=True)

    def is_set(self) -> bool:
        return self.event.is_set()


class EitherStop:
    """Set when any of its signals is: an apply stopped by Ctrl-C or by its fleet's lost lock."""

    def __init__(self, *signals: Stopping | threading.Event) -> None:
        self.signals = signals

    def is_set(self) -> bool:
        return any(signal.is_set() for signal in self.signals)


def exit_code(report: ApplyReport | None, stopping: Stopping, *, failed: bool = False) -> int:
    """How an apply exits: 130 whenever Ctrl-C stopped it, at any point and whatever it left; else 1 when it did
    not do everything (`failed`, or its report says so), else 0."""
    if stopping.by_user:
        return INTERRUPTED_EXIT
    return 1 if failed or (report is not None and not report.ok) else 0


@contextmanager
def ctrl_c_stops(stopping: Stopping, at_once: Callable[[], None]) -> Iterator[None]:
    """While inside: the first SIGINT sets `stopping`; a second runs `at_once` (quick cleanup) and exits 130."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if not stopping.by_user:
            stopping.stop(
                "Interrupted: no new change starts; waiting for those in flight to finish. "
                "Press Ctrl-C again to stop at once.",
                by_user=True,
            )
            return
        click.echo(
            "Interrupted again: stopping at once. Changes in flight may or may not have landed, and one still on its "
            "way to the server may land in the next seconds: wait a little before applying again (a duplicate it "
            "causes is shown by the next plan, which proposes deleting the copy).",
            err=True,
        )
        at_once()
        click.echo(RESUME_HINT, err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED_EXIT)  # worker threads are mid-request: do not wait for them

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
