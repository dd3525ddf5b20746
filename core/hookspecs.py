"""The whole extension surface of lettafleet: every hook a plugin may implement.

Six hooks, called with keyword arguments and collected from every plugin: the resource kinds a plugin owns
(each with the `ResourceHandler` core routes that kind's resources and changes to), the fleet-file keys it reads,
the checks it makes of a whole file, the commands it adds, the options it adds to `plan` and `apply`, and the
backends it speaks (the protocols of Letta servers, picked by the scheme of the server's URL). Plugin
authors import `hookimpl` (and everything else) from `lettafleet.core` and register a module in the `lettafleet`
entry-point group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from lettafleet.core.engine.backends import Backend
    from lettafleet.core.engine.diagnostics import Problem
    from lettafleet.core.engine.fleet import Fleet
    from lettafleet.core.engine.kinds import PlanOption, PluginCommand, ResourceKind, SchemaFragment

PROJECT = "lettafleet"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lettafleet_kinds() -> Iterable[ResourceKind]:
    """Called once, when the plugin manager is made. Returns the resource kinds this plugin owns: name, plural,
    how plans show them, and the handler (a `ResourceHandler`) that declares, reads, diffs and applies them.

    All results are collected; a kind claimed by two plugins, or one without a handler, is an error at start.
    """


@hookspec
def lettafleet_schema() -> Iterable[SchemaFragment]:
    """Called once, when the plugin manager is made. Returns cerberus rules for the keys this plugin reads.

    Each fragment names where its fields go (`at=()` for the top level, `at=("agents",)` for each agent,
    `at=("agents", "conversations")` for each conversation of each agent). Core merges all fragments into one
    schema; a key defined twice is an error at start. Unknown keys are rejected with their line number.
    """


@hookspec
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    """Called after the schema passed. Returns problems only a whole-file view can find (unique names,
    references between parts, file sources that exist). Every problem of every plugin is reported at once.
    """


@hookspec
def lettafleet_commands() -> Iterable[PluginCommand]:
    """Called when the CLI starts. Returns the commands this plugin adds, each at the top level or under a verb
    group (`get`, `describe`, `create`, `delete`), so `lettafleet get conversations AGENT` reads as in lettactl.
    """


@hookspec
def lettafleet_plan_options() -> Iterable[PlanOption]:
    """Called when the CLI starts. Returns the options this plugin adds to `plan` and/or `apply` (each a click
    option, such as `--sample N`). Core parses them with the command's own and hands their values to every plugin
    as `Fleet.options` (by the option's name); what they mean is the plugin's alone. An option may also refuse
    combinations with the command's other options (`PlanOption.refuses`: a usage error) and shape the plan the
    command makes (`PlanOption.reshapes`: a part of it, or changes held), as `--canary` does.
    """


@hookspec
def lettafleet_backends() -> Iterable[Backend]:
    """Called once, when the plugin manager is made. Returns the backends this plugin speaks: each a name, the URL
    schemes it claims (`http`, `ws`), how to open its client from the server settings, and its capability table
    (the kinds and keys it lacks, refused at their lines before any connection; the keys it ignores, noted).

    All results are collected; a scheme claimed by two backends is an error at start. Core picks the backend by
    the scheme of the server's URL.
    """
