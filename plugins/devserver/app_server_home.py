"""Where the dev App Server of one Letta Code version lives under the dev-server home, what `up --app-server`
records there, and what `status --app-server` reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lettafleet.plugins.devserver.home import DevServerHome, load_record, save_record

# The App Server lettafleet targets, and the last release that makes agents with the v1 memory layout
# (`system/<label>.md`): PyPI `letta` 0.32.13 and later is Letta Code, a wheel with Node inside.
APP_SERVER_VERSION = "0.34.12"
V1_LAYOUT_VERSION = "0.32.18"
APP_SERVER_VERSIONS = (APP_SERVER_VERSION, V1_LAYOUT_VERSION)
APP_SERVER_DEFAULT_PORT = 4617
READY_PATH = "/readyz"
INFO_PATH = "/app-server-info"
# 2-4 s on an idle machine; generous for a loaded one (a crash is noticed at once anyway).
APP_SERVER_STARTUP_TIMEOUT_S = 120.0

# Letta Code phones home and updates itself unless told not to; the dev server does neither.
QUIET_ENVIRONMENT = {"DO_NOT_TRACK": "1", "LETTA_CODE_TELEM": "0", "DISABLE_AUTOUPDATER": "1"}


class AppServerHome:
    """One App Server version's own folder: its venv (never the V1 one: both are PyPI `letta`), its HOME, its
    backend data, its logs and the record of the running process."""

    def __init__(self, dev_home: DevServerHome, version: str = APP_SERVER_VERSION) -> None:
        self.version = version
        self.root = dev_home.root / f"app-server-{version}"
        self.venv = self.root / "venv"
        self.letta = self.venv / "bin" / "letta"
        self.home = self.root / "home"  # the server's HOME: its settings and provider store
        self.backend_dir = self.root / "backend"  # LETTA_LOCAL_BACKEND_DIR: agents, memory repositories
        self.install_marker = self.root / "installed.json"
        self.state_file = self.root / "state.json"
        self.logs = self.root / "logs"
        self.install_log = self.logs / "install.log"
        self.server_log = self.logs / "app-server.log"


@dataclass(frozen=True)
class AppServerRecord:
    """state.json: the process `up --app-server` started; the start time guards against a reused PID."""

    pid: int
    started: str | None
    port: int
    version: str

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @classmethod
    def load(cls, home: AppServerHome) -> AppServerRecord | None:
        return load_record(cls, home.state_file, "`letta server` process")

    def save(self, home: AppServerHome) -> None:
        save_record(asdict(self), home.state_file)


@dataclass(frozen=True)
class AppServerStatus:
    """What `status --app-server` and `up --app-server` report."""

    running: bool
    home: str
    version: str
    base_url: str | None = None
    pid: int | None = None
    port: int | None = None
    protocol_version: int | None = None
    backend: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
