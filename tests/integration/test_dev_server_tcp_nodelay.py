"""The dev server's Letta answers kept-alive requests without the 40 ms of Nagle's algorithm meeting delayed ACKs.

Letta's own uvicorn, with two workers as the dev server runs it, serves a tiny app that reports, from the server's
side, whether the connection it accepted has TCP_NODELAY. No timing is asserted: docs/benchmarks.md has the times.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from lettafleet.plugins.devserver.home import HOST, DevServerHome
from lettafleet.plugins.devserver.letta_server import with_tcp_nodelay
from lettafleet.plugins.devserver.supervisor import free_port

_FAKES = Path(__file__).parent.parent / "fakes"
_START_TIMEOUT_S = 60.0


def _uvicorn_arguments(port: int) -> list[str]:
    return ["tcp_nodelay_app:app", f"--app-dir={_FAKES}", f"--host={HOST}", f"--port={port}", "--workers=2"]


@contextmanager
def _serving(command: list[str], port: int, log: Path) -> Iterator[str]:
    """Run the server command until the block ends; yields its base URL once it answers."""
    base_url = f"http://{HOST}:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers(base_url):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"uvicorn did not answer within {_START_TIMEOUT_S:.0f} s"
            time.sleep(0.2)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(base_url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _tcp_nodelay_of_kept_alive_connection(base_url: str) -> list[int]:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        client.get("/")  # the second request rides the first one's connection
        flags: list[int] = client.get("/").json()["tcp_nodelay"]
        return flags


def test_two_uvicorn_workers_started_as_the_dev_server_starts_letta_accept_with_tcp_nodelay(
    letta_server: str, tmp_path: Path
) -> None:
    home = DevServerHome.default()
    port = free_port()
    command = with_tcp_nodelay(home, home.venv_bin / "uvicorn", *_uvicorn_arguments(port))

    with _serving(command, port, tmp_path / "uvicorn.log") as base_url:
        assert _tcp_nodelay_of_kept_alive_connection(base_url) == [1]


def test_two_uvicorn_workers_started_plainly_leave_nagle_on(letta_server: str, tmp_path: Path) -> None:
    """The cause the launcher removes, on Letta's own uvicorn and Python: if this fails, that uvicorn is fixed."""
    home = DevServerHome.default()
    port = free_port()
    command = [str(home.venv_bin / "python"), str(home.venv_bin / "uvicorn"), *_uvicorn_arguments(port)]

    with _serving(command, port, tmp_path / "uvicorn.log") as base_url:
        assert _tcp_nodelay_of_kept_alive_connection(base_url) == [0]
