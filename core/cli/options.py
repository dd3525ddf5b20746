"""Options and error handling shared by every command that reads fleets or talks to a server (plugins' too)."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import rich_click as click

from lettafleet.core.engine.backends import BackendError, ServerSettings
from lettafleet.core.engine.context_budget import DEFAULT_CONTEXT_THRESHOLD
from lettafleet.core.engine.diagnostics import Diagnostic, FleetError
from lettafleet.core.engine.exporting import ExportError
from lettafleet.core.engine.model import TargetError
from lettafleet.core.engine.plugin_manager import FleetPlugins, PluginError, get_plugin_manager
from lettafleet.core.letta.connection import Connection, LettaError
from lettafleet.core.letta.pacing import DEFAULT_PATIENCE
from lettafleet.core.render.json import render_error_json

F = TypeVar("F", bound=Callable[..., Any])
# Where --allow-insecure-http and --project(-id) are kept for make_client, so that no command has to pass them along.
_ALLOW_INSECURE_HTTP = "lettafleet.allow_insecure_http"
_PROJECT = "lettafleet.project"
_PROJECT_ID = "lettafleet.project_id"
_RATE_LIMIT_PATIENCE = "lettafleet.rate_limit_patience"


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
    command = click.option(
        "--project",
        envvar="LETTA_PROJECT",
        metavar="SLUG",
        expose_value=False,
        callback=_remember(_PROJECT),
        help="Hosted Letta project to work in (env LETTA_PROJECT), sent as the X-Project header the way Letta's "
        "SDK sends it. Self-hosted servers ignore it.",
    )(command)
    command = click.option(
        "--project-id",
        envvar="LETTA_PROJECT_ID",
        metavar="ID",
        expose_value=False,
        callback=_remember(_PROJECT_ID),
        help="Hosted Letta project by id instead of slug (env LETTA_PROJECT_ID), sent as the X-Project-Id header.",
    )(command)
    command = click.option(
        "--rate-limit-patience",
        type=Duration(),
        default=f"{DEFAULT_PATIENCE:g}s",
        show_default=True,
        expose_value=False,
        callback=_remember(_RATE_LIMIT_PATIENCE),
        help="How long the server may refuse every request (429/503) before lettafleet gives up (e.g. 10m, 1h). "
        "While some requests are answered it never does: it slows down and waits as the server asks "
        "(docs/server-faults.md).",
    )(command)
    return command


def _remember_insecure_http(context: click.Context, _: click.Parameter, allowed: bool) -> None:
    context.meta[_ALLOW_INSECURE_HTTP] = allowed


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A callback that keeps an option's value in the context for make_client."""

    def remember(context: click.Context, _: click.Parameter, value: Any) -> None:
        context.meta[key] = value if value or isinstance(value, float) else None

    return remember


class Duration(click.ParamType):  # type: ignore[type-arg]  # ParamType[float] fails at run time before click 8.4
    """A length of time as Terraform writes it: `0s`, `90s`, `5m`, `1h`, `1m30s`, or plain seconds."""

    name = "duration"
    _PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
    _UNIT: ClassVar[dict[str, float]] = {"h": 3600.0, "m": 60.0, "s": 1.0}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return float(text)
        if not text or self._PART.sub("", text):
            self.fail(f"{value!r} is not a duration: write it like 0s, 30s, 5m or 1h30m", param, ctx)
        return sum(float(number) * self._UNIT[unit] for number, unit in self._PART.findall(text))


def lock_options(command: F) -> F:
    """--lock/--no-lock, --lock-timeout and --lock-id: how an apply takes the fleet's lock (docs/locking.md)."""
    command = click.option(
        "--lock-id",
        metavar="NAME",
        help="Which lock this apply takes. Default: `fleet:NAME` for a fleet with a `fleet:` name (wherever its "
        "file lies); else the fleet file's path inside its git repository (else its absolute path), so every "
        "checkout of one repository shares it.",
    )(command)
    command = click.option(
        "--lock-timeout",
        type=Duration(),
        default="0s",
        show_default=True,
        help="How long to wait while another apply holds the fleet's lock (e.g. 30s, 5m); 0s fails at once.",
    )(command)
    command = click.option(
        "--lock/--no-lock",
        "use_lock",
        default=True,
        show_default=True,
        help="Take the fleet's lock on the server so two applies never run at once. --no-lock is for servers "
        "that cannot hold one; two applies at once then duplicate agents.",
    )(command)
    return command


def context_threshold_option(purpose: str) -> Callable[[F], F]:
    """`--context-threshold PERCENT`: the share of a context window past which a command warns (`purpose` says
    what it does then), the same option wherever windows are judged."""
    return click.option(
        "--context-threshold",
        "context_threshold",
        type=click.FloatRange(1, 100),
        default=round(DEFAULT_CONTEXT_THRESHOLD * 100),
        show_default=True,
        metavar="PERCENT",
        help=f"{purpose} Estimated from the text's length, about 4 characters a token.",
    )


def make_client(base_url: str, manager: FleetPlugins | None = None) -> Connection:
    """The client of the backend that claims `base_url`'s scheme (of `manager`'s backends, else the installed
    plugins'), for the command's --allow-insecure-http, --project and --project-id."""
    backend = (manager or get_plugin_manager()).backend_for(base_url)
    return backend.connect(server_settings(base_url))


def server_settings(base_url: str) -> ServerSettings:
    """The settings the command's server options gave, for a backend's `connect`."""
    context = click.get_current_context(silent=True)
    meta = context.meta if context else {}
    return ServerSettings(
        base_url,
        allow_insecure_http=bool(meta.get(_ALLOW_INSECURE_HTTP)),
        project=meta.get(_PROJECT),
        project_id=meta.get(_PROJECT_ID),
        rate_limit_patience=meta.get(_RATE_LIMIT_PATIENCE, DEFAULT_PATIENCE),
    )


def reports_errors(command: F) -> F:
    """Turn every expected failure into a clear message and exit 1: a traceback is a bug. A command asked for
    `-o json` also prints the failure as a JSON document on stdout, so a script reading it never reads nothing."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FleetError as error:
            for diagnostic in error.diagnostics:
                click.echo(str(diagnostic), err=True)
            count = len(error.diagnostics)
            summary = f"{count} error{'s' if count != 1 else ''}; nothing was changed."
            click.echo(summary, err=True)
            _echo_json_error(summary, error.diagnostics)
            sys.exit(1)
        except (LettaError, PluginError, BackendError, TargetError, ExportError) as error:
            click.echo(f"error: {error}", err=True)
            _echo_json_error(str(error))
            sys.exit(1)

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature of the command it wraps


def wants_json() -> bool:
    """Whether the command running now was asked for `-o json`."""
    context = click.get_current_context(silent=True)
    return context is not None and context.params.get("output") == "json"


def _echo_json_error(message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
    if wants_json():
        click.echo(render_error_json(message, diagnostics))
