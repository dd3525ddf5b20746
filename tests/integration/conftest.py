"""Integration tests run against a real Letta dev server, started once per test session when none is running."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.devserver.app_server_home import APP_SERVER_VERSION, V1_LAYOUT_VERSION, AppServerHome
from lettafleet.plugins.devserver.home import DevServerHome
from tests.fakes.fault_proxy import FaultProxy, running_fault_proxy

_HERE = Path(__file__).parent


# Under pytest-xdist (`make test` runs `pytest -n 2`) the integration tests go to the workers in two groups, one per
# kind of server, so that the V1 tests and the App Server tests run side by side while each group keeps the order
# and the one-test-at-a-time use of its server that the tests were written for (the App Server takes a single
# LLM stand-in provider, for instance). A module's tests stay together: module fixtures are made once.
APP_SERVER_FIXTURES = {"app_server_url", "app_server_v1_layout_url"}


def pytest_configure(config: pytest.Config) -> None:
    _SERVERS.in_worker = hasattr(config, "workerinput")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, so `-m "not integration"` skips the server entirely, group them by
    the server they use (for xdist), and run them after the unit tests, while which the servers they need are
    installed and started (`_Servers`)."""
    ours = [item for item in items if item.path.is_relative_to(_HERE)]  # the hook sees the whole session's items
    on_app_server = {item.path for item in ours if APP_SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))}
    for item in ours:
        item.add_marker(pytest.mark.integration)
        on_app = item.path in on_app_server or "app_server" in item.path.name
        item.add_marker(pytest.mark.xdist_group("app-server" if on_app else "letta-v1"))
    items.sort(key=lambda item: item.path.is_relative_to(_HERE))  # stable: each group keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the tests to run are known, start the servers they need in the background (xdist's workers leave
    that to the process that runs them, see below)."""
    if not _SERVERS.in_worker:
        _SERVERS.start_for(session.items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """Under xdist: as soon as a worker has collected integration tests, start every dev server in the background,
    here in the process that outlives the workers (it collects nothing itself, so it cannot tell which)."""
    if any(test_id.startswith("tests/integration/") for test_id in ids):
        for name in sorted(_FLAGS):
            _SERVERS.begin(name)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the servers this session started, however it ended (also when no test used them)."""
    _SERVERS.stop_all()


class _Servers:
    """The dev servers a session needs, each reused when already running and otherwise installed and started in
    the background as soon as the session knows it needs it (so the installs overlap the unit tests), then
    stopped at the session's end: only those it started."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="dev-server")
        self._starting: dict[str, Future[tuple[str, Callable[[], object] | None]]] = {}
        self.in_worker = False  # an xdist worker: it waits for the servers the controller starts, and stops none

    def start_for(self, items: list[pytest.Item]) -> None:
        needed = {name for item in items for name in getattr(item, "fixturenames", ()) if name in _FLAGS}
        for name in sorted(needed):
            self.begin(name)

    def url(self, name: str) -> str:
        """The server's URL, waiting for its start (begun now when the session did not foresee the need)."""
        url, _ = self.begin(name).result()
        return url

    def begin(self, name: str) -> Future[tuple[str, Callable[[], object] | None]]:
        """The start of the server, begun once per session: reused when it runs (asked here and now, so that no
        xdist worker can start it first), else `up` in the background, and `down` at the end. In an xdist worker:
        `up` only, which waits on the server folder's lock for the start the controller has begun."""
        if name not in self._starting:
            flags = _FLAGS[name]
            running = None if self.in_worker else _running_url(flags)
            if running is not None:
                self._starting[name] = Future()
                self._starting[name].set_result((running, None))
            else:
                stop = None if self.in_worker else (lambda: _lettafleet("dev-server", "down", *flags))
                self._starting[name] = self._pool.submit(lambda: (_up(flags), stop))
        return self._starting[name]

    def stop_all(self) -> None:
        for future in self._starting.values():
            try:
                _, stop = future.result()
            except Exception:  # a server that failed to start has nothing to stop
                continue
            if stop is not None:
                stop()
        self._starting.clear()
        self._pool.shutdown()


def _running_url(flags: tuple[str, ...]) -> str | None:
    """The URL of the dev server the flags name when it runs (it is then reused and left running)."""
    status = json.loads(_lettafleet("dev-server", "status", "--json", *flags))
    return str(status["base_url"]) if status.get("running") and status.get("base_url") else None


def _up(flags: tuple[str, ...]) -> str:
    """Start the dev server the flags name (installing it the first time), or find it started; its URL.

    Each runs as its own `lettafleet dev-server` process, never in this one: a unit test's respx mock patches
    httpx in the whole process, and would answer (and refuse) the start's own health checks."""
    return str(json.loads(_lettafleet("dev-server", "up", "--port", "0", "--json", *flags))["base_url"])


def _lettafleet(*args: str) -> str:
    """Run this checkout's `lettafleet` command line (its progress goes to the terminal); its standard output."""
    command = [sys.executable, "-c", "from lettafleet.core.cli.app import main; main()", *args]
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout


_FLAGS: dict[str, tuple[str, ...]] = {  # each fixture's server, as `lettafleet dev-server` names it
    "letta_server": (),
    "app_server_url": ("--app-server-version", APP_SERVER_VERSION),
    "app_server_v1_layout_url": ("--app-server-version", V1_LAYOUT_VERSION),
}
_SERVERS = _Servers()


@pytest.fixture(scope="session")
def letta_server() -> str:
    """The base URL of a running dev server.

    A dev server that is already running (`lettafleet dev-server up`) is reused and left running; otherwise one
    is started on a free port for this session and stopped at its end. The first start installs Letta (1-2 min).
    """
    return _SERVERS.url("letta_server")


@pytest.fixture(scope="session")
def app_server_url() -> str:
    """The ws:// URL of a running dev App Server (Letta Code 0.34.12), reused or started as `letta_server` is.

    The first start installs Letta Code into its own venv under the dev-server home (about 15 s)."""
    return _SERVERS.url("app_server_url")


@pytest.fixture(scope="session")
def app_server_v1_layout_url() -> str:
    """The ws:// URL of a dev App Server 0.32.18, whose agents get the MemFS v1 layout (`system/<label>.md`)."""
    return _SERVERS.url("app_server_v1_layout_url")


@pytest.fixture
def app_server_client(app_server_url: str) -> Iterator[AppServerClient]:
    """A Protocol V2 client of the dev App Server, for one test."""
    with AppServerClient(app_server_url) as client:
        yield client


@pytest.fixture(scope="session")
def app_server_data_dir(app_server_url: str) -> Path:
    """Where the dev App Server keeps all its state as files (its LETTA_LOCAL_BACKEND_DIR)."""
    return AppServerHome(DevServerHome.default()).backend_dir


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
