"""Integration tests run against a real Letta dev server, started once per test session when none is running."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.devserver.app_server_home import APP_SERVER_VERSION, V1_LAYOUT_VERSION, AppServerHome
from lettafleet.plugins.devserver.home import DevServerHome
from tests.dev_servers import SERVERS, running_url, start, stop
from tests.fakes.fault_proxy import FaultProxy, running_fault_proxy

_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, so `-m "not integration"` skips the server entirely, and run them
    after the unit tests, while which the servers they need are installed and started (`_Servers`). Those that use
    the V1 dev server are marked `v1_server` too, those that use the shared App Servers `app_server`: `make test`
    runs each kind apart (tests/run.py)."""
    for item in items:
        # This hook sees the whole session's items, not only those below this folder.
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)
            fixtures = set(getattr(item, "fixturenames", ()))
            if "letta_server" in fixtures:
                item.add_marker(pytest.mark.v1_server)
            if fixtures & {"app_server_url", "app_server_v1_layout_url"}:
                item.add_marker(pytest.mark.app_server)
    items.sort(key=lambda item: item.path.is_relative_to(_HERE))  # stable: each group keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the tests to run are known, start the servers they need in the background (none for --collect-only)."""
    if not session.config.option.collectonly:
        _SERVERS.start_for(session.items)


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

    def start_for(self, items: list[pytest.Item]) -> None:
        needed = {name for item in items for name in getattr(item, "fixturenames", ()) if name in _STARTS}
        for name in sorted(needed):
            self._start(name)

    def url(self, name: str) -> str:
        """The server's URL, waiting for its start (begun now when the session did not foresee the need)."""
        url, _ = self._start(name).result()
        return url

    def _start(self, name: str) -> Future[tuple[str, Callable[[], object] | None]]:
        """The start of the server, begun once per session."""
        if name not in self._starting:
            self._starting[name] = self._pool.submit(_STARTS[name])
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


def _dev_server(*flags: str) -> tuple[str, Callable[[], object] | None]:
    """Reuse the dev server the flags name when it runs, else start it (its progress shown); the stop when this
    session started it."""
    running = running_url(flags)
    if running:
        return running, None
    name = next(name for name, selects in SERVERS if selects == flags)
    return start(name, flags, quiet=False), lambda: stop(flags)


_STARTS: dict[str, Callable[[], tuple[str, Callable[[], object] | None]]] = {
    "letta_server": _dev_server,
    "app_server_url": lambda: _dev_server("--app-server-version", APP_SERVER_VERSION),
    "app_server_v1_layout_url": lambda: _dev_server("--app-server-version", V1_LAYOUT_VERSION),
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


def home_with_the_shared_app_server(root: Path) -> DevServerHome:
    """A dev-server home of a test's own under `root` whose App Server 0.34.12 is the shared install's, linked in
    (no install of its own: call it once the shared App Server is up, through `app_server_url`)."""
    shared = AppServerHome(DevServerHome.default())
    home = DevServerHome(root)
    mine = AppServerHome(home)
    mine.root.mkdir(parents=True)
    mine.venv.symlink_to(shared.venv)
    shutil.copy(shared.install_marker, mine.install_marker)
    return home


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
