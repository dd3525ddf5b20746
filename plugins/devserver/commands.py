"""`lettafleet dev-server up|down|status`: a local Letta server to try lettafleet against. The plugin contributes
the `dev-server` group through `lettafleet_commands`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import rich_click as click

from lettafleet.core import PluginCommand, hookimpl
from lettafleet.plugins.devserver import app_server as app_servers
from lettafleet.plugins.devserver import supervisor
from lettafleet.plugins.devserver.app_server_home import APP_SERVER_VERSION, APP_SERVER_VERSIONS, AppServerStatus
from lettafleet.plugins.devserver.home import SERVER_TUNING, DevServerError, DevServerStatus
from lettafleet.plugins.devserver.progress import PlainProgress

# Progress and notes go to stderr so that `--json` output on stdout stays machine-readable.
if TYPE_CHECKING:
    from rich.console import Console


def _stderr() -> Console:
    """The console the dev-server commands report on; rich's console loads here, not in every command's start-up."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class _ConsoleProgress:
    """A spinner per step on a terminal; plain timed lines otherwise (CI logs, pipes)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._plain = PlainProgress()

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        if not self._console.is_terminal:
            with self._plain.step(message):
                yield
            return
        from rich.markup import escape

        started = time.monotonic()
        with self._console.status(escape(message)):
            yield
        self._console.print(f"[green]✓[/] {escape(message)} [dim]({time.monotonic() - started:.1f} s)[/]")

    def note(self, message: str) -> None:
        if self._console.is_terminal:
            self._console.print(message, markup=False)
        else:
            self._plain.note(message)


def _print_status(result: DevServerStatus, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if not result.running and result.base_url is None:
        click.echo(f"Not running (home: {result.home}). Start it with `lettafleet dev-server up`.")
        return
    if not result.running and result.letta_pid and result.postgres_pid:
        click.echo(
            f"Not answering at {result.base_url} yet: still starting, or busy (Letta server pid "
            f"{result.letta_pid}, PostgreSQL pid {result.postgres_pid}). `lettafleet dev-server down` stops it."
        )
        return
    if not result.running:
        letta = f"pid {result.letta_pid}" if result.letta_pid else "gone"
        postgres = f"pid {result.postgres_pid}" if result.postgres_pid else "gone"
        click.echo(f"Not running at {result.base_url} (Letta server: {letta}; PostgreSQL: {postgres}).")
        click.echo("`lettafleet dev-server up` restarts it; `lettafleet dev-server down` stops what is left.")
        return
    click.echo(f"Letta {result.version} is running at {result.base_url}")
    click.echo(f"  Letta server pid {result.letta_pid}, PostgreSQL pid {result.postgres_pid}")
    click.echo(f"  port {result.letta_port}, PostgreSQL port {result.postgres_port}, home {result.home}")
    tuning = ", ".join(f"{key}={result.configuration[key]}" for key in SERVER_TUNING)
    click.echo(f"  configuration: {tuning}")
    click.echo(f"LETTA_BASE_URL={result.base_url}")


def _print_app_server_status(result: AppServerStatus, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if result.base_url is None:
        flags = _app_server_flags(result.version)
        click.echo(
            f"The App Server {result.version} is not running (home: {result.home}). "
            f"Start it with `lettafleet dev-server up {flags}`."
        )
        return
    if not result.running:
        process = f"pid {result.pid}" if result.pid else "gone"
        click.echo(f"The App Server {result.version} does not answer at {result.base_url} (process: {process}).")
        click.echo(f"`lettafleet dev-server down {_app_server_flags(result.version)}` stops what is left.")
        return
    click.echo(
        f"Letta App Server {result.version} ({result.backend} backend, protocol {result.protocol_version}) "
        f"is running at {result.base_url}"
    )
    click.echo(f"  pid {result.pid}, port {result.port}, home {result.home}")
    click.echo(f"LETTA_BASE_URL={result.base_url}")


def _app_server_flags(version: str) -> str:
    return "--app-server" if version == APP_SERVER_VERSION else f"--app-server-version {version}"


def _app_server_options(command: Callable[..., None]) -> Callable[..., None]:
    """`--app-server` and `--app-server-version`: the same command, for the App Server instead of Letta V1."""
    command = click.option(
        "--app-server-version",
        type=click.Choice(APP_SERVER_VERSIONS),
        default=None,
        help=f"Which pinned App Server (implies --app-server). Default {APP_SERVER_VERSION}; 0.32.18 makes "
        "agents with the v1 memory layout. Each version has its own install and data.",
    )(command)
    return click.option(
        "--app-server",
        is_flag=True,
        help="The Letta App Server (Letta Code's `letta server`, WebSocket) instead of the Letta 0.16.8 server.",
    )(command)


def _wanted_app_server(app_server: bool, version: str | None) -> str | None:
    """The App Server version these options ask for, or None for the V1 dev server."""
    if version is not None:
        return version
    return APP_SERVER_VERSION if app_server else None


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A failed step is one message and exit status 1, never a traceback."""
    try:
        yield
    except DevServerError as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:
        raise click.ClickException(f"{error}. Check the dev-server folder and try again.") from error


@click.group(name="dev-server")
def dev_server() -> None:
    """Run a local Letta 0.16.8 server (with PostgreSQL), or with --app-server a Letta App Server, to try
    lettafleet against.

    `up` installs Letta and PostgreSQL once into a cache outside this repository
    ($LETTAFLEET_DEV_HOME, ~/.cache/lettafleet/dev-server, or /var/cache/lettafleet/dev-server
    as root) and starts both on 127.0.0.1. `down` stops exactly what `up` started.
    With --app-server, the same for the App Server (Letta Code 0.34.12) in its own folder there.
    """


@dev_server.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port for the server. Default: 8283 (App Server: 4617), or a free port if that is taken. 0: any free port.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the running server as JSON on stdout.")
@_app_server_options
def up(port: int | None, as_json: bool, app_server: bool, app_server_version: str | None) -> None:
    """Install (first time only: a few minutes) and start the dev server.

    Starts PostgreSQL 18 with pgvector and Letta 0.16.8 on 127.0.0.1, tuned with
    SQLAlchemy pooling on and two server workers. Returns at once if it is already running.
    Prints LETTA_BASE_URL=... for your shell. With --app-server: installs Letta Code (needs git)
    and starts its App Server on ws://127.0.0.1 (port 4617, or a free one).
    """
    version = _wanted_app_server(app_server, app_server_version)
    if version is not None:
        with _one_line_errors():
            started = app_servers.up(port, version=version, progress=_ConsoleProgress(_stderr()))
        _print_app_server_status(started, as_json)
        return
    with _one_line_errors():
        result = supervisor.up(port, progress=_ConsoleProgress(_stderr()))
    _print_status(result, as_json)


@dev_server.command()
@_app_server_options
def down(app_server: bool, app_server_version: str | None) -> None:
    """Stop the Letta server and PostgreSQL started by `up` (by their recorded PIDs).

    The install and the database stay cached; delete the dev-server folder to reset both.
    With --app-server: stop the App Server started by `up --app-server`.
    """
    version = _wanted_app_server(app_server, app_server_version)
    if version is not None:
        with _one_line_errors():
            stopped = app_servers.down(version=version, progress=_ConsoleProgress(_stderr()))
        if stopped:
            click.echo("Stopped " + ", ".join(stopped) + ".")
        return
    with _one_line_errors():
        stopped = supervisor.down(progress=_ConsoleProgress(_stderr()))
    if stopped:
        click.echo("Stopped " + ", ".join(stopped) + ".")


@dev_server.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
@_app_server_options
def status(as_json: bool, app_server: bool, app_server_version: str | None) -> None:
    """Say whether the dev server is running, where, and which processes it is.

    Exits 0 either way; with --json, check the `running` field. With --app-server: the App
    Server's, whose `base_url` is its ws:// URL.
    """
    version = _wanted_app_server(app_server, app_server_version)
    if version is not None:
        with _one_line_errors():
            _print_app_server_status(app_servers.status(version=version), as_json)
        return
    with _one_line_errors():
        result = supervisor.status()
    _print_status(result, as_json)


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(dev_server)]
