"""`make test`: every test, in four pytest processes side by side, against dev servers started once for all.

The unit tests need no server and run at once, while the three dev servers (Letta 0.16.8, App Server 0.34.12 and
0.32.18) install and start; so do the integration tests with servers of their own, or none (`private`). The
others run as two more processes: those that use the V1 server (the one test that moves a fleet from it to the
App Server among them), once every server is up, and those that use the shared App Servers, as soon as those two
are, while the V1 server installs. Each group keeps to its own server, so a test that lists a whole server never
sees another group's agents appear.

Each process's lines are printed as they come, behind its name. Servers this run started are stopped at its end,
also on Ctrl-C; servers that were already running are used and left running. Arguments are passed to every pytest.

    python -m tests.run [pytest arguments]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tests.dev_servers import SERVERS, StartFailed, running_url, start, stop

V1_SERVER, APP_SERVER, V1_LAYOUT_SERVER = (name for name, _ in SERVERS)
# (name shown, pytest -m expression, the servers it waits for); the markers are set in tests/integration/conftest.py.
UNIT = ("unit", "not integration", ())
INTEGRATION = (
    ("v1", "v1_server", (V1_SERVER, APP_SERVER, V1_LAYOUT_SERVER)),  # the move to the App Server among them
    ("app-server", "app_server and not v1_server", (APP_SERVER, V1_LAYOUT_SERVER)),  # under way while V1 installs
    ("private", "integration and not v1_server and not app_server", ()),  # servers of their own, or none: at once
)

NOTHING_SELECTED = 5  # pytest's exit code when every test was deselected
_print_lock = threading.Lock()


def say(prefix: str, line: str) -> None:
    with _print_lock:
        print(f"{prefix:>10} | {line}", flush=True)


@dataclass
class Group:
    name: str
    marks: str
    needs: tuple[str, ...]
    process: subprocess.Popen[str] | None = None
    last_lines: list[str] = field(default_factory=list)
    started_at: float = 0.0
    seconds: float = 0.0

    def start(self, pytest_args: Sequence[str]) -> threading.Thread:
        command = [sys.executable, "-m", "pytest", "-m", self.marks, "--durations=5", *pytest_args]
        if sys.stdout.isatty():
            command.append("--color=yes")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C reaches it through this runner, which waits for its report
        )
        reader = threading.Thread(target=self._relay, name=f"relay-{self.name}", daemon=True)
        reader.start()
        return reader

    def _relay(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            say(self.name, line)
            self.last_lines = [*self.last_lines[-2:], line]
        self.process.wait()
        self.seconds = time.monotonic() - self.started_at

    def interrupt(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)

    @property
    def returncode(self) -> int:
        if self.process is None:
            return 1  # never ran: its servers did not start
        code = self.process.wait()
        return 0 if code == NOTHING_SELECTED else code  # `-k` may leave a group nothing to run: not a failure


def start_server(name: str, flags: tuple[str, ...]) -> bool:
    """Start the dev server unless it runs; True when this run started it (and so must stop it)."""
    if running_url(flags):
        say("servers", f"{name}: already running, used and left running")
        return False
    say("servers", f"{name}: installing (first time only) and starting")
    began = time.monotonic()
    try:
        url = start(name, flags)
    except StartFailed as failed:
        for line in str(failed).splitlines()[1:]:
            say("servers", line)
        raise
    say("servers", f"{name}: up at {url} after {time.monotonic() - began:.0f} s")
    return True


def stop_servers(started: Sequence[tuple[str, tuple[str, ...]]]) -> None:
    for name, flags in started:
        result = stop(flags)
        say("servers", f"{name}: stopped" if result.returncode == 0 else f"{name}: stop failed: {result.stderr}")


def main(pytest_args: Sequence[str]) -> int:
    began = time.monotonic()
    unit = Group(*UNIT)
    integration = [Group(*group) for group in INTEGRATION]
    interrupted = threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(SERVERS))
    starts = {name: pool.submit(start_server, name, flags) for name, flags in SERVERS}

    def run_when_up(group: Group) -> None:
        """Start the group once every server it needs is up (never, if one did not start), then follow it."""
        failed = [name for name in group.needs if starts[name].exception() is not None]
        for name in failed:
            say("servers", str(starts[name].exception()))
        if not failed and not interrupted.is_set():
            group.start(pytest_args).join()

    followers = [unit.start(pytest_args)]
    followers += [threading.Thread(target=run_when_up, args=(group,), daemon=True) for group in integration]
    try:
        for follower in followers[1:]:
            follower.start()
        for follower in followers:
            follower.join()
    except KeyboardInterrupt:
        interrupted.set()
        say("run", "interrupted: stopping the tests, then the servers this run started")
        for group in (unit, *integration):
            group.interrupt()
        for follower in followers:
            follower.join()
    finally:
        pool.shutdown(wait=True)
        stop_servers(
            [(name, flags) for name, flags in SERVERS if starts[name].exception() is None and starts[name].result()]
        )
    say("run", f"done in {time.monotonic() - began:.0f} s")
    for group in (unit, *integration):
        not_run = "not run: interrupted" if interrupted.is_set() else "not run: a server it needs did not start"
        summary = group.last_lines[-1] if group.last_lines else not_run
        say(group.name, f"{summary} ({group.seconds:.0f} s)")
    return max(group.returncode for group in (unit, *integration))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
