"""Renames that keep the resource: a fleet file's `moved:` entries name the address a declared resource had, so a
plan renames what it finds there (an update), with everything in it, instead of deleting it and creating another.

Core knows addresses, not kinds: a move re-addresses the live side of a subtree, and the kind's `renamed_as`
attribute (ResourceKind) is the one field the rename writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from lettafleet.core.engine.diagnostics import Path, Problem
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.kinds import ResourceKind
from lettafleet.core.engine.model import Ambiguity, Resource, address_of

# One part of an address: `agent.support`, `conversation["Ticket #101"]` (see model.address_of).
_PART = re.compile(r'([a-z][a-z0-9_]*)(?:\.([A-Za-z0-9_-]+)|\[("(?:[^"\\]|\\.)*")\])')


@dataclass(frozen=True)
class Move:
    """One `moved:` entry: the resource declared at `target` was at `source` until now."""

    source: str
    target: str
    at: Path

    def covers(self, address: str, *, side: str) -> bool:
        """Whether `address` is the `source` (or `target`) side's resource or inside it."""
        root = self.source if side == "source" else self.target
        return address == root or address.startswith(root + ".")


def declared_moves(fleet: Fleet) -> list[Move]:
    """The fleet's `moved:` entries, each address as plans print it (`conversation["Main"]` is
    `conversation.Main`), so any spelling of one address names the same resource."""
    return [
        Move(canonical(str(entry["from"])), canonical(str(entry["to"])), ("moved", index))
        for index, entry in enumerate(fleet.data.get("moved") or ())
    ]


def canonical(address: str) -> str:
    """An address as `address_of` writes it (a plain name unquoted, any other quoted); one that is not an address
    is returned as it is, for `move_problems` to refuse."""
    parts = _parts(address)
    if parts is None:
        return address
    written: str | None = None
    for kind, text in parts:
        written = address_of(kind, json.loads(text) if text.startswith('"') else text, written)
    return written or address


def unmatched(move: Move, server: str) -> Problem:
    """A move whose old and new address both match nothing on the server, where its parent is: a typo, most
    likely, and renaming nothing would delete the resource and make another."""
    return Problem(
        (*move.at, "from"),
        f"from: {move.source} matches nothing on {server}, and {move.target} is not there either: the entry renames "
        "nothing",
        "write the address the resource has now, as `lettafleet plan -o json` prints it, or remove the entry",
    )


def move_problems(fleet: Fleet, desired: Sequence[Resource], kinds: Mapping[str, ResourceKind]) -> list[Problem]:
    """Each `moved:` entry must rename a declared resource, in place (same kind, same parent), once."""
    declared = {resource.address: resource for resource in desired}
    problems: list[Problem] = []
    seen: dict[str, set[str]] = {"from": set(), "to": set()}
    for move in declared_moves(fleet):
        problem = _move_problem(move, declared, kinds, seen)
        if problem:
            problems.append(problem)
        seen["from"].add(move.source)
        seen["to"].add(move.target)
    return problems


def _move_problem(
    move: Move, declared: Mapping[str, Resource], kinds: Mapping[str, ResourceKind], seen: Mapping[str, set[str]]
) -> Problem | None:
    source, target = _parts(move.source), _parts(move.target)
    example = "addresses as plans print them, such as agent.old-name or 'agent.x.conversation[\"Old\"]'"
    for key, parts, address in (("from", source, move.source), ("to", target, move.target)):
        if parts is None:
            return Problem((*move.at, key), f"{key}: {address!r} is not an address", f"use {example}")
        if address in seen[key]:
            return Problem((*move.at, key), f"{address} is in `{key}:` of two moved entries", "keep one of them")
    assert source is not None and target is not None  # refused above
    if move.target not in declared:
        return Problem((*move.at, "to"), f"to: {move.target} is not declared in the file", "move to a declared address")
    if move.source in declared:
        return Problem(
            (*move.at, "from"), f"from: {move.source} is still declared in the file", "remove it, or the moved entry"
        )
    kind = declared[move.target].kind
    if source[-1][0] != kind or source[:-1] != target[:-1]:
        return Problem(
            (*move.at, "from"),
            f"from: {move.source} is not a {kind} beside {move.target}: a move renames one resource where it is",
            "rename one level at a time (an agent, then in another apply what is in it)",
        )
    if not kinds[kind].renamed_as:
        return Problem((*move.at, "to"), f"a {kinds[kind].singular} cannot be renamed in place", "remove the entry")
    return None


def _parts(address: str) -> list[tuple[str, str]] | None:
    """The (kind, name text) parts of an address, or None when it is not one."""
    parts, position = [], 0
    while True:
        found = _PART.match(address, position)
        if not found:
            return None
        parts.append((found.group(1), found.group(2) or found.group(3)))
        position = found.end()
        if position == len(address):
            return parts
        if address[position] != ".":
            return None
        position += 1


def rebased(found: Resource, old: str, new: str) -> Resource:
    """`found` (the resource at `old` or inside it) re-addressed under `new`: its name stays what it is."""

    def moved(address: str) -> str:
        return new + address.removeprefix(old) if address == old or address.startswith(old + ".") else address

    return replace(
        found,
        address=moved(found.address),
        parent=found.parent and moved(found.parent),
        depends_on=tuple(moved(address) for address in found.depends_on),
    )


def at_old_address(declared: Resource, move: Move) -> Resource:
    """A declared resource inside a move's target as it stood before the move, for reading the server: the moved
    resource itself with its old name too."""
    alias = rebased(declared, move.target, move.source)
    if declared.address != move.target:
        return alias
    parts = _parts(move.source)
    assert parts is not None  # checked: move_problems
    name = parts[-1][1]
    return replace(alias, name=json.loads(name) if name.startswith('"') else name)


def rebased_ambiguity(found: Ambiguity, old: str, new: str) -> Ambiguity:
    return replace(found, address=new + found.address.removeprefix(old))


def without_moved_entries(parent: Resource, sources: Iterable[str]) -> Resource:
    """A live parent whose record no longer lists what a move renamed: the apply records it at its new address."""
    if not parent.record:
        return parent
    gone = set(sources)
    kept = tuple(entry for entry in parent.record if f"{parent.address}.{entry.address}" not in gone)
    return replace(parent, record=kept)
