"""The dev App Server: `up --app-server` installs a pinned Letta Code (PyPI `letta`) into its own venv and starts
`letta server --backend local` on 127.0.0.1, `status` asks it who it is, `down` stops the recorded PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lettafleet.plugins.devserver import app_server_parent, supervisor
from lettafleet.plugins.devserver.app_server_home import (
    APP_SERVER_DEFAULT_PORT,
    APP_SERVER_STARTUP_TIMEOUT_S,
    APP_SERVER_VERSION,
    INFO_PATH,
    QUIET_ENVIRONMENT,
    READY_PATH,
    AppServerHome,
    AppServerRecord,
    AppServerStatus,
)
from lettafleet.plugins.devserver.home import HOST, DevServerError, DevServerHome
from lettafleet.plugins.devserver.logged_commands import log_tail, run_logged
from lettafleet.plugins.devserver.progress import PlainProgress, Progress, SilentProgress


def up(
    port: int | None = None,
    *,
    version: str = APP_SERVER_VERSION,
    home: DevServerHome | None = None,
    progress: Progress | None = None,
) -> AppServerStatus:
    """Install (once) and start the App Server of `version` on 127.0.0.1; a running one is returned as it is.

    `port=None` prefers 4617 and falls back to a free port; `port=0` takes any free port."""
    server = AppServerHome(home or DevServerHome.default(), version)
    progress = progress or PlainProgress()
    with supervisor.exclusive(server.root):
        current = status(version=version, home=home)
        if current.running:
            progress.note(f"The App Server {version} is already running at {current.base_url}")
            return current
        if current.pid:
            # Alive yet not answering: busy or still starting. Restarting it could kill a server in use.
            raise DevServerError(
                f"The App Server {version} recorded in {server.state_file} is running (pid {current.pid}) but "
                f"does not answer at {current.base_url}; it may be busy. Try again, or stop it with "
                f"`lettafleet dev-server down --app-server-version {version}`."
            )
        _stop_recorded(server, progress)  # a record whose process is gone
        chosen_port = supervisor.choose_port(port, APP_SERVER_DEFAULT_PORT, progress)
        git = _require_git()
        ensure_installed(server, progress)
        _start(server, chosen_port, git, progress)
    return status(version=version, home=home)


def status(*, version: str = APP_SERVER_VERSION, home: DevServerHome | None = None) -> AppServerStatus:
    """Whether the recorded App Server of `version` is alive and says it is that version."""
    server = AppServerHome(home or DevServerHome.default(), version)
    record = AppServerRecord.load(server)
    if record is None:
        return AppServerStatus(running=False, home=str(server.root), version=version)
    alive = supervisor.is_same_process(record.pid, record.started)
    info = app_server_info(record.port) if alive else None
    return AppServerStatus(
        running=info is not None and info.get("letta_code_version") == version,
        home=str(server.root),
        version=version,
        base_url=record.base_url,
        pid=record.pid if alive else None,
        port=record.port,
        protocol_version=info.get("protocol_version") if info else None,
        backend=info.get("backend") if info else None,
    )


def down(
    *, version: str = APP_SERVER_VERSION, home: DevServerHome | None = None, progress: Progress | None = None
) -> list[str]:
    """Stop the App Server of `version` that `up` recorded (by its PID); returns what was stopped."""
    server = AppServerHome(home or DevServerHome.default(), version)
    progress = progress or PlainProgress()
    if not server.state_file.exists():
        progress.note(f"No App Server {version} is recorded as running.")
        return []
    with supervisor.exclusive(server.root):
        return _stop_recorded(server, progress)


def app_server_info(port: int) -> dict[str, Any] | None:
    """What `GET /app-server-info` says (version, protocol, backend), or None when it does not answer."""
    import httpx  # loaded by the dev-server commands only, not by every command

    try:
        response = httpx.get(f"http://{HOST}:{port}{INFO_PATH}", timeout=2.0)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code == 200 and isinstance(body, dict) and body.get("success"):
        return body
    return None


def is_installed(server: AppServerHome) -> bool:
    try:
        return bool(json.loads(server.install_marker.read_text()).get("letta") == server.version)
    except (FileNotFoundError, ValueError):
        return False


def ensure_installed(server: AppServerHome, progress: Progress) -> None:
    """`pip install letta==<version>` into the App Server's own venv, unless a previous install finished."""
    if is_installed(server):
        return
    server.root.mkdir(parents=True, exist_ok=True)
    server.logs.mkdir(mode=0o700, exist_ok=True)
    started = time.monotonic()
    with progress.step(f"Installing Letta Code {server.version} (the App Server) into {server.root}"):
        if server.venv.exists():
            shutil.rmtree(server.venv)  # a half-finished install: start it over
        run_logged([sys.executable, "-m", "venv", str(server.venv)], log=server.install_log)
        pip = [str(server.venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        run_logged([*pip, "install", f"letta=={server.version}"], log=server.install_log)
    if not server.letta.exists():
        raise DevServerError(f"pip did not install the `letta` command into {server.venv}; see {server.install_log}")
    marker = {"letta": server.version, "seconds": round(time.monotonic() - started, 1)}
    server.install_marker.write_text(json.dumps(marker, indent=2) + "\n")


def _require_git() -> str:
    git = shutil.which("git")
    if git is None:
        raise DevServerError(
            "The App Server keeps each agent's memory in a git repository, and `git` is not on PATH. "
            "Install git (Debian or Ubuntu: apt-get install git) and run this again."
        )
    return git


def _start(server: AppServerHome, port: int, git: str, progress: Progress) -> None:
    with progress.step(f"Starting the App Server {server.version} on ws://{HOST}:{port}"):
        process = _spawn(server, port, git)
        try:
            record = AppServerRecord(
                pid=process.pid, started=supervisor.process_start_time(process.pid), port=port, version=server.version
            )
            record.save(server)
            _wait_until_ready(process, server, port)
        except BaseException:
            _stop_recorded(server, SilentProgress())  # nothing left running that no record points to
            raise


def _spawn(server: AppServerHome, port: int, git: str) -> subprocess.Popen[bytes]:
    server.home.mkdir(parents=True, exist_ok=True)
    server.backend_dir.mkdir(parents=True, exist_ok=True)
    server.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    command = [str(server.letta), "server", "--backend", "local", "--listen", f"ws://{HOST}:{port}"]
    parent = [str(server.venv / "bin" / "python"), app_server_parent.__file__]  # outlives `up` (its docstring)
    with server.server_log.open("ab") as log:
        log.write(f"\n=== lettafleet dev-server up --app-server: {' '.join(command)} ===\n".encode())
        log.flush()
        return subprocess.Popen(
            [*parent, *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=server.home,
            env=_server_environment(server, git),
            start_new_session=True,  # survives the CLI exiting
        )


def _server_environment(server: AppServerHome, git: str) -> dict[str, str]:
    """The caller's environment, less every LETTA_ setting (LETTA_BASE_URL or LETTA_API_KEY would point the
    server at another backend), with its own HOME and data folder and no telemetry or self-update."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LETTA_")}
    path = os.pathsep.join([str(server.venv / "bin"), str(Path(git).parent), env.get("PATH", "/usr/bin:/bin")])
    return env | {
        "PATH": path,
        "HOME": str(server.home),
        "LETTA_LOCAL_BACKEND_DIR": str(server.backend_dir),
        **QUIET_ENVIRONMENT,
    }


def _wait_until_ready(process: subprocess.Popen[bytes], server: AppServerHome, port: int) -> None:
    deadline = time.monotonic() + APP_SERVER_STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevServerError(
                f"The App Server exited (code {process.returncode}) while starting. Last lines of "
                f"{server.server_log}:\n{log_tail(server.server_log)}"
            )
        if _is_ready(port):
            return
        time.sleep(0.2)
    raise DevServerError(
        f"The App Server did not answer {READY_PATH} within {APP_SERVER_STARTUP_TIMEOUT_S:.0f} s. Last lines of "
        f"{server.server_log}:\n{log_tail(server.server_log)}"
    )


def _is_ready(port: int) -> bool:
    import httpx  # loaded by the dev-server commands only, not by every command

    try:
        return httpx.get(f"http://{HOST}:{port}{READY_PATH}", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_recorded(server: AppServerHome, progress: Progress) -> list[str]:
    record = AppServerRecord.load(server)
    if record is None:
        return []
    stopped = []
    name = f"the App Server {record.version}"
    if supervisor.stop_process(name, record.pid, record.started, progress, signal.SIGTERM, signal.SIGKILL):
        stopped.append(f"{name} (pid {record.pid})")
    server.state_file.unlink(missing_ok=True)
    return stopped
