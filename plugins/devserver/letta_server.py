"""The dev server's Letta process: its tables (alembic), its environment, its start and its health check."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from lettafleet.plugins.devserver import tcp_nodelay_launcher
from lettafleet.plugins.devserver.home import (
    HEALTH_PATH,
    HOST,
    LETTA_VERSION,
    SERVER_TUNING,
    STARTUP_TIMEOUT_S,
    DevServerError,
    DevServerHome,
)
from lettafleet.plugins.devserver.logged_commands import log_tail, run_logged
from lettafleet.plugins.devserver.postgres import PostgresServer
from lettafleet.plugins.devserver.progress import Progress


def migrate_if_needed(home: DevServerHome, postgres: PostgresServer, progress: Progress) -> None:
    """Create Letta's tables: the server does not, and its alembic migrations ship only in the sdist."""
    current = postgres.alembic_revision()
    if current is not None and home.migrated_marker.exists() and current == home.migrated_marker.read_text():
        return  # this database already went through `alembic upgrade head` of this very sdist
    with progress.step("Creating Letta's tables (alembic upgrade head)"):
        run_logged(
            [str(home.venv_bin / "alembic"), "upgrade", "head"],
            log=home.letta_log,
            cwd=home.sdist_dir,
            env=_letta_env(home, postgres.uri()),
            secret=postgres.password,  # alembic's env.py prints the database URI
        )
    home.migrated_marker.write_text(postgres.alembic_revision() or "")


def _letta_env(home: DevServerHome, pg_uri: str) -> dict[str, str]:
    home.letta_home.mkdir(exist_ok=True)
    # The caller's environment (provider API keys may be in it), less what would point Letta elsewhere.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LETTA_PG_") and key not in ("PYTHONPATH", "PYTHONHOME")
    }
    return env | {
        "PATH": f"{home.venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(home.letta_venv),
        "HOME": str(home.letta_home),
        "LETTA_DIR": str(home.letta_home / ".letta"),
        "LETTA_PG_URI": pg_uri,
        **SERVER_TUNING,
    }


def letta_server_command(home: DevServerHome, port: int) -> list[str]:
    return with_tcp_nodelay(home, home.venv_bin / "letta", "server", f"--host={HOST}", f"--port={port}")


def with_tcp_nodelay(home: DevServerHome, script: Path, *arguments: str) -> list[str]:
    """A console script of Letta's venv, run by Letta's Python through the launcher that turns Nagle's algorithm
    off on each connection: uvicorn with two workers leaves it on, and kept-alive requests answer 40 ms late."""
    launcher = Path(tcp_nodelay_launcher.__file__)
    return [str(home.venv_bin / "python"), str(launcher), str(script), *arguments]


def start_letta(home: DevServerHome, postgres: PostgresServer, port: int) -> subprocess.Popen[bytes]:
    with home.letta_log.open("ab") as log:
        log.write(f"\n=== lettafleet dev-server up: letta server on {HOST}:{port} ===\n".encode())
        log.flush()
        return subprocess.Popen(
            letta_server_command(home, port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home.letta_home,  # the server writes openapi_letta.json into its working folder
            env=_letta_env(home, postgres.uri(for_server=True)),
            start_new_session=True,  # survives the CLI exiting; its workers share this process group
        )


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, home: DevServerHome, secret: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevServerError(
                f"The Letta server exited (code {process.returncode}) while starting. Last lines of "
                f"{home.letta_log}:\n{log_tail(home.letta_log, secret=secret)}"
            )
        if health(base_url) == LETTA_VERSION:
            return
        time.sleep(0.5)
    raise DevServerError(
        f"The Letta server did not answer {HEALTH_PATH} within {STARTUP_TIMEOUT_S:.0f} s. Last lines of "
        f"{home.letta_log}:\n{log_tail(home.letta_log, secret=secret)}"
    )


def health(base_url: str) -> str | None:
    """The version a healthy Letta server reports, or None."""
    import httpx  # loaded by the dev-server commands only, not by every command

    try:
        response = httpx.get(base_url + HEALTH_PATH, timeout=2.0)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok":
        return str(body.get("version"))
    return None
