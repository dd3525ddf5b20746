"""The whole extension surface of lettafleet: every hook a resource plugin may implement.

Hooks are called with keyword arguments. A plugin implements only the hooks it needs, and each hook
implementation answers only for the resource kinds it owns (returning None otherwise). Plugin authors import
`hookimpl` from `lettafleet.core` and register a module in the `lettafleet` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from lettafleet.core.engine.applying import ApplySession
    from lettafleet.core.engine.diagnostics import Problem
    from lettafleet.core.engine.fleet import Fleet
    from lettafleet.core.engine.kinds import PluginCommand, ResourceKind, SchemaFragment
    from lettafleet.core.engine.live import LiveReader
    from lettafleet.core.engine.model import Ambiguity, Change, Resource

PROJECT = "lettafleet"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lettafleet_kinds() -> Iterable[ResourceKind]:
    """Called once at start. Returns the resource kinds this plugin owns (name, plural, how plans show them).

    All results are collected; a kind claimed by two plugins is an error at start.
    """


@hookspec
def lettafleet_schema() -> Iterable[SchemaFragment]:
    """Called when a fleet file is validated. Returns cerberus rules for the keys this plugin reads.

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
def lettafleet_desired(fleet: Fleet) -> Iterable[Resource]:
    """Called when planning. Returns the resources the valid fleet declares, with their addresses."""


@hookspec
def lettafleet_preflight(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
    """Called before any write, with the server at hand. Returns problems the server reveals (for example a
    model handle it does not offer). Any problem stops the plan.
    """


@hookspec
def lettafleet_live_reads(desired: Sequence[Resource]) -> Iterable[tuple[str, dict[str, Any]]]:
    """Called when planning, before any read. Returns the collections (path, query parameters) this plugin's
    `lettafleet_read_live` will list for these desired resources. Core reads them all at once, concurrently,
    so the reads of every plugin cost one round of requests rather than one after another.
    """


@hookspec
def lettafleet_read_live(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
    """Called when planning. Returns the live resources of this plugin's kinds that the desired ones match,
    with the same addresses and their server ids. Read with the reader's list calls: they are paginated and
    shared between plugins, so the whole fleet is read in a few requests.

    Where more than one server resource matches a desired address (two agents of one name), return the one
    used and an `Ambiguity` naming all of them and how to leave one: the plan reports it and never hides it.
    Report an ambiguity once, from the plugin that owns the kind it is about.
    """


@hookspec(firstresult=True)
def lettafleet_diff(desired: Resource | None, live: Resource | None) -> Change | None:
    """Called for each address found in the desired or the live set. Returns the change for a resource of this
    plugin's kind, or None for other kinds. The first answer wins; core compares attributes when none answers.
    """


@hookspec(firstresult=True)
def lettafleet_ride_along(
    parent: Change, child: Change, request: dict[str, Any], session: ApplySession
) -> Callable[[Mapping[str, Any]], str | None] | None:
    """Called when `parent` is about to be created and `child` (one of its children in the plan) changes too.
    A plugin that can carry `child` in the parent's request amends `request` (the JSON body), after any write
    the request needs first (for example making a block to attach by id), and returns a check: it gets the
    server's answer and returns an error message if the child did not land. Return None to have `child`
    applied on its own after the parent.
    """


@hookspec(firstresult=True)
def lettafleet_apply(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    """Called for each change to execute, after the changes it depends on. Performs the writes and returns the
    server's answer (with the resource's `id` where there is one); returns None for other plugins' kinds.
    Raise `ApplyError` (or let a `LettaAPIError` through) to fail this change: independent changes go on.
    """


@hookspec
def lettafleet_commands() -> Iterable[PluginCommand]:
    """Called when the CLI starts. Returns the commands this plugin adds, each at the top level or under a verb
    group (`get`, `describe`, `create`, `delete`), so `lettafleet get conversations AGENT` reads as in lettactl.
    """
