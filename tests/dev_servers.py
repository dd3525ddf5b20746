"""This checkout's dev servers, found, started and stopped with its own `lettafleet dev-server` command: what
`make test` (tests/run.py) and the integration tests' fixtures (tests/integration/conftest.py) share.

Each command runs as a process of its own, never in the test process: a unit test's respx mock patches httpx in
the whole process, and would answer (and refuse) a start's own health checks."""

from __future__ import annotations

import json
import subprocess
import sys

from lettafleet.plugins.devserver.app_server_home import APP_SERVER_VERSION, V1_LAYOUT_VERSION

# (name shown, `lettafleet dev-server` flags selecting it)
SERVERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Letta 0.16.8", ()),
    (f"App Server {APP_SERVER_VERSION}", ("--app-server-version", APP_SERVER_VERSION)),
    (f"App Server {V1_LAYOUT_VERSION}", ("--app-server-version", V1_LAYOUT_VERSION)),
)


class StartFailed(RuntimeError):
    """A dev server did not start; the message ends with what its start printed last."""


def lettafleet(*args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    """Run this checkout's command line; its standard output captured, its progress too when `quiet`."""
    command = [sys.executable, "-c", "from lettafleet.core.cli.app import main; main()", *args]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE if quiet else None, text=True)


def running_url(flags: tuple[str, ...]) -> str | None:
    """The URL of the dev server the flags name when it runs."""
    status = lettafleet("dev-server", "status", "--json", *flags)
    found = json.loads(status.stdout) if status.returncode == 0 else {}
    return str(found["base_url"]) if found.get("running") and found.get("base_url") else None


def start(name: str, flags: tuple[str, ...], *, quiet: bool = True) -> str:
    """Install (the first time) and start the dev server on a free port of 127.0.0.1; its URL."""
    started = lettafleet("dev-server", "up", "--port", "0", "--json", *flags, quiet=quiet)
    if started.returncode != 0:
        said = "\n".join((started.stderr or "").splitlines()[-15:])
        raise StartFailed(f"{name} did not start{': ' + chr(10) + said if said else ''}")
    return str(json.loads(started.stdout)["base_url"])


def stop(flags: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return lettafleet("dev-server", "down", *flags)
