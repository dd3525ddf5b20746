"""The dev server's PostgreSQL: its data folder, generated password and postmaster, run as the `postgres` user
when lettafleet runs as root."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from lettafleet.plugins.devserver.home import HOST, DevServerError, DevServerHome, running_as_root
from lettafleet.plugins.devserver.logged_commands import log_tail, run_logged

_DB_NAME = "letta"
_DB_USER = "letta"
# PostgreSQL refuses to run as root; as root we run it as this existing system user.
_POSTGRES_SYSTEM_USER = "postgres"


class PostgresServer:
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
            run_logged(
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
                **as_postgres_user(),
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
                **as_postgres_user(),
            )
        self.pid = process.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DevServerError(
                    f"PostgreSQL exited while starting. Last lines of {self.home.postgres_log}:\n"
                    f"{log_tail(self.home.postgres_log)}"
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


def as_postgres_user() -> dict[str, Any]:
    """subprocess options that run a PostgreSQL program as the `postgres` user when we are root."""
    if not running_as_root():
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
    if running_as_root():
        account = _postgres_account()
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)


def check_postgres_user_can_enter(home: DevServerHome) -> None:
    """As root, fail before a long install if the `postgres` user could not reach its programs and data."""
    if not running_as_root():
        return
    home.root.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["test", "-x", str(home.root)], env={"PATH": "/usr/bin:/bin"}, **as_postgres_user())
    if probe.returncode != 0:
        raise DevServerError(
            f"The `postgres` system user cannot enter {home.root} (a parent folder is closed to other users), "
            "and PostgreSQL must run as that user when lettafleet runs as root. Set LETTAFLEET_DEV_HOME to a "
            "folder outside root's home, such as /var/cache/lettafleet/dev-server."
        )
