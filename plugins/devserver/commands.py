"""`lettafleet dev-server up|down|status`: a local Letta server to try lettafleet against. The plugin contributes
the `dev-server` group through `lettafleet_commands`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator

import rich_click as click
from rich.console import Console
from rich.markup import escape

from lettafleet.core import PluginCommand, hookimpl
from lettafleet.plugins.devserver import supervisor
from lettafleet.plugins.devserver.home import SERVER_TUNING, DevServerError, DevServerStatus
from lettafleet.plugins.devserver.progress import PlainProgress

# Progress and notes go to stderr so that `--json` output on stdout stays machine-readable.
_stderr = Console(stderr=True, highlight=False)


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
    """Run a local Letta 0.16.8 server (with PostgreSQL) to try lettafleet against.

    `up` installs Letta and PostgreSQL once into a cache outside this repository
    ($LETTAFLEET_DEV_HOME, ~/.cache/lettafleet/dev-server, or /var/cache/lettafleet/dev-server
    as root) and starts both on 127.0.0.1. `down` stops exactly what `up` started.
    """


@dev_server.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port for the Letta server. Default: 8283, or a free port if 8283 is taken. 0 picks a free port.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the running server as JSON on stdout.")
def up(port: int | None, as_json: bool) -> None:
    """Install (first time only: a few minutes) and start the dev server.

    Starts PostgreSQL 18 with pgvector and Letta 0.16.8 on 127.0.0.1, tuned with
    SQLAlchemy pooling on and two server workers. Returns at once if it is already running.
    Prints LETTA_BASE_URL=... for your shell.
    """
    with _one_line_errors():
        result = supervisor.up(port, progress=_ConsoleProgress(_stderr))
    _print_status(result, as_json)


@dev_server.command()
def down() -> None:
    """Stop the Letta server and PostgreSQL started by `up` (by their recorded PIDs).

    The install and the database stay cached; delete the dev-server folder to reset both.
    """
    with _one_line_errors():
        stopped = supervisor.down(progress=_ConsoleProgress(_stderr))
    if stopped:
        click.echo("Stopped " + ", ".join(stopped) + ".")


@dev_server.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
def status(as_json: bool) -> None:
    """Say whether the dev server is running, where, and which processes it is.

    Exits 0 either way; with --json, check the `running` field.
    """
    with _one_line_errors():
        result = supervisor.status()
    _print_status(result, as_json)


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(dev_server)]
