"""Integration tests run against a real Letta dev server, started once per test session when none is running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.devserver import app_server, supervisor
from lettafleet.plugins.devserver.app_server_home import APP_SERVER_VERSION, V1_LAYOUT_VERSION, AppServerHome
from lettafleet.plugins.devserver.home import DevServerHome
from lettafleet.plugins.devserver.progress import PlainProgress, SilentProgress
from tests.fakes.fault_proxy import FaultProxy, running_fault_proxy

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, so `-m "not integration"` skips the server entirely."""
    for item in items:
        # This hook sees the whole session's items, not only those below this folder.
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def letta_server() -> Iterator[str]:
    """The base URL of a running dev server.

    A dev server that is already running (`lettafleet dev-server up`) is reused and left running; otherwise one
    is started on a free port for this session and stopped at its end. The first start installs Letta (1-2 min).
    """
    home = DevServerHome.default()
    running = supervisor.status(home=home)
    if running.running and running.base_url:
        yield running.base_url
        return
    started = supervisor.up(0, home=home, progress=PlainProgress())
    assert started.base_url is not None
    try:
        yield started.base_url
    finally:
        supervisor.down(home=home, progress=SilentProgress())


@pytest.fixture(scope="session")
def app_server_url() -> Iterator[str]:
    """The ws:// URL of a running dev App Server (Letta Code 0.34.12), reused or started as `letta_server` is.

    The first start installs Letta Code into its own venv under the dev-server home (about 15 s)."""
    yield from _running_app_server(APP_SERVER_VERSION)


@pytest.fixture(scope="session")
def app_server_v1_layout_url() -> Iterator[str]:
    """The ws:// URL of a dev App Server 0.32.18, whose agents get the MemFS v1 layout (`system/<label>.md`)."""
    yield from _running_app_server(V1_LAYOUT_VERSION)


@pytest.fixture
def app_server_client(app_server_url: str) -> Iterator[AppServerClient]:
    """A Protocol V2 client of the dev App Server, for one test."""
    with AppServerClient(app_server_url) as client:
        yield client


@pytest.fixture(scope="session")
def app_server_data_dir(app_server_url: str) -> Path:
    """Where the dev App Server keeps all its state as files (its LETTA_LOCAL_BACKEND_DIR)."""
    return AppServerHome(DevServerHome.default()).backend_dir


def _running_app_server(version: str) -> Iterator[str]:
    home = DevServerHome.default()
    running = app_server.status(version=version, home=home)
    if running.running and running.base_url:
        yield running.base_url
        return
    started = app_server.up(0, version=version, home=home, progress=PlainProgress())
    assert started.base_url is not None
    try:
        yield started.base_url
    finally:
        app_server.down(version=version, home=home, progress=SilentProgress())


@pytest.fixture(scope="session")
def letta_base_url(letta_server: str) -> str:
    """Alias of `letta_server`, for tests that read better with it."""
    return letta_server


@pytest.fixture
def client(letta_server: str) -> Iterator[LettaClient]:
    """A Letta client for the dev server, for tests that look at what the server holds."""
    with LettaClient(letta_server) as client:
        yield client


@pytest.fixture
def fault_proxy(letta_server: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the dev server (tests/fakes/fault_proxy.py), on 127.0.0.1 for one
    test. It injects nothing until the test sets `fault_proxy.faults`."""
    with running_fault_proxy(letta_server) as proxy:
        yield proxy
