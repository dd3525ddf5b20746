"""The `lettafleet` command: core's commands, and those plugins add (under verb groups like `get`), joined the
first time the command runs."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

import rich_click as click

from lettafleet.core.cli.fleet import apply, plan, plugins, validate
from lettafleet.core.cli.locks import force_unlock
from lettafleet.core.engine.plugin_manager import FleetPlugins, get_plugin_manager

click.rich_click.SHOW_ARGUMENTS = True
# A run builds a fleet and the server's answers once and keeps them to its end: millions of objects at thousands of
# agents, none of them garbage. Python's default (a collection every 700 new objects, each older generation every
# 10 younger ones) rescans them again and again: 2.5-3 s of a 6.8 s plan of 5,000 agents (docs/benchmarks.md).
# Collecting every 50,000 objects keeps cycles collected at a fraction of the cost.
GARBAGE_COLLECTION_THRESHOLDS = (50_000, 20, 20)

VERB_HELP = {
    "get": "List resources on the server (agents, conversations, messages, blocks, tools, folders, models, ...).",
    "describe": "Show one resource on the server in detail.",
    "create": "Create one resource on the server, outside any fleet file.",
    "delete": "Delete one resource from the server (asks for --force).",
    "report": "Reports across many resources on the server (`report memory`: memory against context windows).",
}


class _FleetCommand(click.RichGroup):
    """The top-level group. Plugins' commands join it on first use, when the plugin manager is made.

    Every error exits 1. Click exits 2 on a usage error (a misspelled option), which `plan --detailed-exitcode`
    reserves for "there are changes": a CI script must never read a typo as a plan to apply."""

    _plugins_joined = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._join_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._join_plugins()
        return super().get_command(ctx, cmd_name)

    def _join_plugins(self) -> None:
        if self._plugins_joined:
            return
        self._plugins_joined = True
        manager = get_plugin_manager()
        for contributed in manager.hook.lettafleet_commands():
            for item in contributed:
                (_verb_group(item.verb) if item.verb else self).add_command(item.command)
        _join_plan_options(manager)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _usage_errors_exit_one():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _usage_errors_exit_one():
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_exit_one() -> Iterator[None]:
    try:
        yield
    except click.UsageError as error:
        error.exit_code = 1  # type: ignore[misc]  # click's stubs make exit_code per class; it is read per error
        raise


@click.group(cls=_FleetCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lettafleet")
def main() -> None:
    """Declare fleets of Letta agents in YAML, then plan and apply them like infrastructure.

    Start a local Letta server with `lettafleet dev-server up`, then `lettafleet plan -f fleet.yaml`.
    """
    gc.set_threshold(*GARBAGE_COLLECTION_THRESHOLDS)


def _join_plan_options(manager: FleetPlugins) -> None:
    """The options plugins add to `plan` and `apply`: parsed with the command's own, their values passed on to
    plugins as `Fleet.options` (each once, however often the plugins are joined)."""
    fleet_commands = {"plan": plan, "apply": apply}
    for options in manager.hook.lettafleet_plan_options():
        for option in options:
            for name in option.commands:
                command = fleet_commands[name]
                if option.option.name not in {param.name for param in command.params}:
                    command.params.append(option.option)


def _verb_group(name: str) -> click.Group:
    existing = main.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.RichGroup(name=name, help=VERB_HELP.get(name, f"{name.capitalize()} resources."))
    main.add_command(group)
    return group


for command in (validate, plan, apply, force_unlock, plugins):
    main.add_command(command)
