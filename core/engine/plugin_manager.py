"""Load plugins (built-in and third-party alike, through the `lettafleet` entry-point group) and gather
what they declare: resource kinds and the fleet schema."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pluggy

from lettafleet.core import hookspecs
from lettafleet.core.engine.backends import Backend, backend_for
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.handlers import ResourceHandler
from lettafleet.core.engine.kinds import ResourceKind, SchemaFragment, boolean, mapping_list, string
from lettafleet.core.engine.model import Resource

# The keys of a fleet file that are the fleet's own, not any kind's: its name, whether removals that delete
# data apply without `--prune` (docs/fleet-file.md, "Removing"), and the renames that keep a resource (`moved`).
FLEET_NAME_PATTERN = r"^[a-z0-9_.-]+$"
CORE_SCHEMA: dict[str, Any] = {
    "fleet": string(empty=False, regex=FLEET_NAME_PATTERN, maxlength=63),
    "prune": boolean(),
    "root_path": string(empty=False),  # lettactl's: where `from_file` paths start (see Fleet.root)
    "moved": mapping_list({"from": string(required=True, empty=False), "to": string(required=True, empty=False)}),
}

ENTRY_POINT_GROUP = "lettafleet"


class PluginError(Exception):
    """Plugins that do not fit together: a kind, a schema key or a URL scheme claimed twice, a kind with no
    handler."""


class FleetPlugins(pluggy.PluginManager):
    """pluggy's plugin manager, with what the plugins declare gathered and checked once, when it is made:
    `kinds`, the resource kinds by name (each with the handler core routes it to), and `schema`, the fleet
    file's merged cerberus schema, and `backends`, the backends by the URL schemes they claim."""

    kinds: dict[str, ResourceKind]
    schema: dict[str, Any]
    backends: dict[str, Backend]

    def backend_for(self, base_url: str) -> Backend:
        """The backend that claims `base_url`'s scheme (BackendError if none does)."""
        return backend_for(self.backends, base_url)

    def serving(self, backend: Backend) -> FleetPlugins:
        """This manager as a plan or an apply on `backend` uses it: each kind the backend brings a handler for is
        routed to that handler. Other kinds keep theirs, which a backend with handlers of its own only ever asks
        for `desired` (its `lacks` refuses them before anything is read)."""
        if backend.handlers is None:
            return self
        view = copy.copy(self)
        unserved = frozenset(self.kinds) - frozenset(backend.handlers)
        stand_ins = {id(handler): DeclaredOnly(handler, unserved & kinds) for handler, kinds in self.handlers()}
        view.kinds = {
            name: replace(
                kind, handler=backend.handlers[name] if name in backend.handlers else stand_ins[id(kind.handler)]
            )
            for name, kind in self.kinds.items()
        }
        return view

    def handler(self, kind: str) -> ResourceHandler:
        """The handler of one kind. Every resource and change a plan holds is of a declared kind."""
        declared = self.kinds.get(kind)
        if declared is None or declared.handler is None:
            raise PluginError(f"no plugin handles resources of kind {kind!r}")
        return declared.handler

    def handlers(self) -> list[tuple[ResourceHandler, frozenset[str]]]:
        """Every handler once, with the kinds it handles, in the order the kinds were declared."""
        found: dict[int, tuple[ResourceHandler, set[str]]] = {}
        for kind in self.kinds.values():
            handler = self.handler(kind.name)
            found.setdefault(id(handler), (handler, set()))[1].add(kind.name)
        return [(handler, frozenset(names)) for handler, names in found.values()]


class DeclaredOnly(ResourceHandler):
    """A kind's handler on a backend that brings no handler for the kind: it says what the fleet declares (for the
    backend to refuse at its line) and nothing else, so the handler never reads or writes that backend."""

    def __init__(self, declaring: ResourceHandler, kinds: frozenset[str]) -> None:
        self._declaring, self._kinds = declaring, kinds

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        return (resource for resource in self._declaring.desired(fleet) if resource.kind in self._kinds)


def get_plugin_manager(extra_plugins: Iterable[object] = ()) -> FleetPlugins:
    """The plugin manager with every installed plugin loaded, plus `extra_plugins` (for tests), all checked at
    once: a misspelled hook, a kind or schema key declared twice, a kind without a handler fail here, whatever
    command runs. Without extra plugins it is made once per process: the CLI's group (which joins plugins'
    commands) and the command itself share it. Treat it as read-only (`serving` makes a view)."""
    extra = tuple(extra_plugins)
    return _made(extra) if extra else _installed()


@functools.cache
def _installed() -> FleetPlugins:
    return _made(())


def _made(extra_plugins: tuple[object, ...]) -> FleetPlugins:
    manager = FleetPlugins(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        manager.register(plugin)
    manager.check_pending()
    manager.kinds = _gather_kinds(manager)
    manager.schema = _merged_schema(manager)
    manager.backends = _gather_backends(manager)
    return manager


def resource_kinds(manager: FleetPlugins) -> dict[str, ResourceKind]:
    return manager.kinds


def fleet_schema(manager: FleetPlugins) -> dict[str, Any]:
    """Every plugin's schema fragments merged into one cerberus schema for the whole document."""
    return manager.schema


def _gather_kinds(manager: pluggy.PluginManager) -> dict[str, ResourceKind]:
    kinds: dict[str, ResourceKind] = {}
    # pluggy calls the last registered plugin first; kinds read better in the order plugins were loaded.
    for declared in reversed(manager.hook.lettafleet_kinds()):
        for kind in declared:
            if kind.name in kinds:
                raise PluginError(f"resource kind {kind.name!r} is declared by two plugins")
            if not isinstance(kind.handler, ResourceHandler):
                raise PluginError(f"resource kind {kind.name!r} has no handler: give it one, ResourceKind(handler=...)")
            kinds[kind.name] = kind
    return kinds


def _gather_backends(manager: pluggy.PluginManager) -> dict[str, Backend]:
    by_scheme: dict[str, Backend] = {}
    for declared in reversed(manager.hook.lettafleet_backends()):
        for backend in declared:
            for scheme in (scheme.lower() for scheme in backend.schemes):
                if scheme in by_scheme:
                    raise PluginError(
                        f"URL scheme {scheme}:// is claimed by two backends ({by_scheme[scheme]} and {backend}): "
                        "uninstall one of the plugins that register them"
                    )
                by_scheme[scheme] = backend
    return by_scheme


def _merged_schema(manager: pluggy.PluginManager) -> dict[str, Any]:
    fragments = [fragment for declared in manager.hook.lettafleet_schema() for fragment in declared]
    root: dict[str, Any] = copy.deepcopy(CORE_SCHEMA)
    for fragment in sorted(fragments, key=lambda fragment: len(fragment.at)):
        target = _fields_at(root, fragment)
        for key, rule in fragment.fields.items():
            if key in target:
                place = ".".join(fragment.at) or "the top level"
                raise PluginError(f"key {key!r} at {place} is defined by two plugins")
            target[key] = copy.deepcopy(rule)
    return root


def _fields_at(root: dict[str, Any], fragment: SchemaFragment) -> dict[str, Any]:
    """The field rules of the mapping items found by walking `fragment.at` through lists of mappings."""
    fields = root
    for key in fragment.at:
        rule = fields.get(key)
        if rule is None or rule.get("type") != "list" or rule.get("schema", {}).get("type") != "dict":
            raise PluginError(f"schema fragment at {'.'.join(fragment.at)!r}: {key!r} is not a list of mappings")
        fields = rule["schema"].setdefault("schema", {})
    return fields


def plugin_names(manager: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(name, distribution) of every registered plugin, for `lettafleet plugins`."""
    distributions = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
    rows = []
    for name, plugin in manager.list_name_plugin():
        dist = distributions.get(id(plugin))
        rows.append((name, f"{dist.project_name} {dist.version}" if dist else "registered in code"))
    return rows
