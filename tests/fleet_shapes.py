"""The places a fleet schema describes, for tests that put wrong shapes there: every list and mapping key at every
depth, and every key marked `secret()`, each as the path to it and a document that reaches it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from lettafleet.core.engine.diagnostics import describe_path
from lettafleet.core.engine.kinds import holds_secrets

Path = tuple[str | int, ...]
A_KEY = "SOME_NAME"  # the key a path takes into a mapping of names (`secrets:`, `env:`)
# Cerberus's rule names: as keys of a mapping where a list belongs they once crashed it (`agents: {type: x}`).
RULE_NAMES = ("type", "empty", "schema", "required", "nullable", "default", "coerce", "allowed", "items", "regex")


def keys_of_type(schema: Mapping[str, Any], wanted: str) -> Iterator[Path]:
    """The path of every key (or list item) whose rules take `wanted` ("list" or "dict"), at every depth."""
    for path, rules in _described(schema, ()):
        if wanted in _types(rules):
            yield path


def secret_keys(schema: Mapping[str, Any]) -> Iterator[Path]:
    """The path of every key marked `secret()` (not of the keys inside one)."""
    for path, rules in _described(schema, ()):
        if holds_secrets(rules):
            yield path


def _described(fields: Mapping[str, Any], path: Path) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    for name, rules in fields.items():
        if isinstance(rules, Mapping):
            yield from _inside((*path, name), rules)


def _inside(path: Path, rules: Mapping[str, Any]) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    yield path, rules
    types, inner = _types(rules), rules.get("schema")
    if "list" in types and isinstance(inner, Mapping) and "type" in inner:
        yield from _inside((*path, 0), inner)
    elif "dict" in types and isinstance(inner, Mapping):
        yield from _described(inner, path)
    if isinstance(rules.get("valuesrules"), Mapping):
        yield from _inside((*path, A_KEY), rules["valuesrules"])


def _types(rules: Mapping[str, Any]) -> set[str]:
    declared = rules.get("type")
    return {declared} if isinstance(declared, str) else set(declared or ())


def document_with(path: Path, value: Any) -> dict[str, Any]:
    """A fleet document (not otherwise valid) that holds `value` at `path`, with lists and mappings on the way."""
    return placed({}, path, value)


def placed(data: Any, path: Path, value: Any) -> Any:
    """`data` with `value` at `path`: the first item of a list, the key of a mapping; what is on the way and is
    not a list or a mapping where one belongs is replaced by one."""
    if not path:
        return value
    part, rest = path[0], path[1:]
    if isinstance(part, int):
        items = data if isinstance(data, list) else []
        return [placed(items[0] if items else None, rest, value), *items[1:]]
    mapping = data if isinstance(data, dict) else {}
    return {**mapping, part: placed(mapping.get(part), rest, value)}


def as_yaml(document: Any) -> str:
    """A document as YAML text: JSON is YAML's flow style, which fleet files may use."""
    return json.dumps(document, indent=1) + "\n"


def describe(path: Path) -> str:
    """How messages name a path: `agents[0].tools`."""
    return describe_path(path)
