"""Load plugins (built-in and third-party alike, through the `lettafleet` entry-point group) and gather
what they declare: resource kinds and the fleet schema."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import pluggy

from lettafleet.core import hookspecs
from lettafleet.core.engine.kinds import ResourceKind, SchemaFragment

ENTRY_POINT_GROUP = "lettafleet"


class PluginError(Exception):
    """Plugins that do not fit together: a kind or a schema key claimed twice, a fragment with no place."""


def get_plugin_manager(extra_plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    """The plugin manager with every installed plugin loaded and checked, plus `extra_plugins` (for tests)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        manager.register(plugin)
    # A hook implementation whose name matches no spec (a typo) fails here rather than being silently unused.
    manager.check_pending()
    return manager


def resource_kinds(manager: pluggy.PluginManager) -> dict[str, ResourceKind]:
    kinds: dict[str, ResourceKind] = {}
    # pluggy calls the last registered plugin first; kinds read better in the order plugins were loaded.
    for declared in reversed(manager.hook.lettafleet_kinds()):
        for kind in declared:
            if kind.name in kinds:
                raise PluginError(f"resource kind {kind.name!r} is declared by two plugins")
            kinds[kind.name] = kind
    return kinds


def fleet_schema(manager: pluggy.PluginManager) -> dict[str, Any]:
    """Every plugin's fragments merged into one cerberus schema for the whole document."""
    fragments = [fragment for declared in manager.hook.lettafleet_schema() for fragment in declared]
    root: dict[str, Any] = {}
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
