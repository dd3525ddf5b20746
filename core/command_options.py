"""Options and error handling shared by every command that reads fleets or talks to a server (plugins' too)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import rich_click as click

from lettafleet.core.client import LettaClient, LettaError
from lettafleet.core.diagnostics import FleetError
from lettafleet.core.model import TargetError
from lettafleet.core.plugin_manager import PluginError

F = TypeVar("F", bound=Callable[..., Any])
# Where --allow-insecure-http is kept for make_client, so that no command has to pass it along.
_ALLOW_INSECURE_HTTP = "lettafleet.allow_insecure_http"


def server_options(command: F) -> F:
    command = click.option(
        "--base-url",
        envvar="LETTA_BASE_URL",
        default="http://localhost:8283",
        show_default=True,
        help="Letta server URL (env LETTA_BASE_URL). The API key comes from LETTA_API_KEY only, so it never "
        "shows in the process list or shell history.",
    )(command)
    command = click.option(
        "--allow-insecure-http",
        envvar="LETTA_ALLOW_INSECURE_HTTP",
        is_flag=True,
        expose_value=False,
        callback=_remember_insecure_http,
        help="Send LETTA_API_KEY (or a password in the URL) over plain http to a host that is not this machine "
        "(env LETTA_ALLOW_INSECURE_HTTP=1). Without it, that is refused: anyone on the way could read the key.",
    )(command)
    return command


def _remember_insecure_http(context: click.Context, _: click.Parameter, allowed: bool) -> None:
    context.meta[_ALLOW_INSECURE_HTTP] = allowed


def make_client(base_url: str) -> LettaClient:
    """The client for a command's server, honouring its --allow-insecure-http."""
    context = click.get_current_context(silent=True)
    allowed = bool(context and context.meta.get(_ALLOW_INSECURE_HTTP))
    return LettaClient(base_url, allow_insecure_http=allowed)


def reports_errors(command: F) -> F:
    """Turn every expected failure into a clear message and exit 1: a traceback is a bug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FleetError as error:
            for diagnostic in error.diagnostics:
                click.echo(str(diagnostic), err=True)
            count = len(error.diagnostics)
            click.echo(f"{count} error{'s' if count != 1 else ''}; nothing was changed.", err=True)
            sys.exit(1)
        except (LettaError, PluginError, TargetError) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
