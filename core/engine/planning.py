"""Plan: the desired resources of a validated fleet against the live ones, paired by address.

Removals come from two places, both exact: a handler's live read returns what its fleet made and no longer
declares (an agent carrying the fleet's marks), and a parent's record lists what the last apply made under it
(`ResourceHandler.records_children`). A removal that deletes data waits for the user's `--prune`; a protected one
is never made. Either way the plan shows it. A `moved:` entry makes what the server has at its old address the
live side of the new one: a rename, not a removal and a create.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from lettafleet.core.engine.backends import Backend
from lettafleet.core.engine.capabilities import refuse_lacking
from lettafleet.core.engine.diagnostics import FleetError, Problem
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.handlers import ResourceHandler
from lettafleet.core.engine.kinds import ResourceKind
from lettafleet.core.engine.live import EarlyReads, LiveReader
from lettafleet.core.engine.model import Action, Ambiguity, Change, Plan, Resource, name_in
from lettafleet.core.engine.moving import (
    Move,
    at_old_address,
    declared_moves,
    move_problems,
    rebased,
    rebased_ambiguity,
    unmatched,
    without_moved_entries,
)
from lettafleet.core.engine.plugin_manager import FleetPlugins, PluginError
from lettafleet.core.engine.records import with_record_repair
from lettafleet.core.engine.validation import locate
from lettafleet.core.letta.connection import Connection
from lettafleet.core.letta.ownership import Owner

NAME_KEY = re.compile(r"\bname\s*:")
PRUNE_HINT = "`--prune` (or `prune: true` in the fleet file) deletes it"


def plan_fleet(
    fleet: Fleet,
    client: Connection,
    manager: FleetPlugins,
    *,
    prune: bool = False,
    early: EarlyReads | None = None,
    backend: Backend | None = None,
) -> Plan:
    """Read the server and compute every change apply would make. Writes nothing.

    Each kind's handler sees only its own kinds' resources: core routes them by kind. `prune` (or the fleet's
    `prune: true`) lets removals that delete data apply; without it they are planned as held. `early`: reads
    started before the fleet file was parsed (`start_reading`). What `backend` (default: the one claiming the
    client's URL) lacks stops the plan at its line before any read (FleetError)."""
    backend = backend or manager.backend_for(client.base_url)
    manager = manager.serving(backend)
    desired = desired_resources(fleet, manager)
    refuse_lacking(fleet, desired, backend)
    check_moves(fleet, desired, manager)
    mine = _by_handler(desired, manager)
    names = frozenset(_agent_names(fleet, desired, manager))
    reader = (early or EarlyReads(client, len(names), backend.plan_reads)).scoped(Owner(fleet.name), names)
    reader.prefetch(
        *{
            (path, _frozen_params(params)): (path, params)
            for handler, own in mine
            for path, params in handler.live_reads(own)
        }.values()
    )
    # The preflight's reads and the state's reads are independent: send them together. Reading is harmless
    # even when the preflight then stops the plan.
    with ThreadPoolExecutor(max_workers=1) as background:
        preflight = background.submit(lambda: [p for handler, own in mine for p in handler.preflight(reader, own)])
        found_live = [found for handler, own in mine for found in handler.read_live(reader, own, desired)]
        problems = preflight.result()
        found_live, renamed, unmatched_moves = _moved(reader, manager, desired, declared_moves(fleet), found_live)
        problems += unmatched_moves
        wanted = _by_address(desired, "desired")
        removals, gone = _recorded_removals(reader, manager, wanted, found_live)
        found_live += removals
    reader.close()
    live = _by_address((found for found in found_live if isinstance(found, Resource)), "live")
    problems += claimed_by_other_fleets(wanted, live, reader.owner, manager.kinds, client.base_url)
    if problems:
        raise FleetError(locate(fleet.document, problems))
    ambiguities = [found for found in found_live if isinstance(found, Ambiguity)]
    changes = _changes(wanted, live, manager, renamed, gone, prune=prune or fleet.prunes)
    return Plan.build(
        str(fleet.path),
        client.base_url,
        changes,
        ambiguities=ambiguities,
        hash_key=client.plan_hash_key,
        owner=fleet.name,
    )


def start_reading(client: Connection, fleet_text: str, backend: Backend) -> EarlyReads:
    """Start a plan's first reads before its fleet file is parsed, as `backend` reads. Every agent has a `name:`
    key, so their count in the file's text bounds the agents it declares. Only for a plan: an apply reads after
    it holds its lock."""
    return EarlyReads(client, len(NAME_KEY.findall(fleet_text)), backend.plan_reads)


def _agent_names(fleet: Fleet, desired: Sequence[Resource], manager: FleetPlugins) -> list[str]:
    """The names of the agents the fleet declares, and of those its `moved:` entries rename (read at the old name)."""
    renamed = [
        at_old_address(r, m) for m in declared_moves(fleet) for r in desired if m.covers(r.address, side="target")
    ]
    return [name for handler, own in _by_handler([*desired, *renamed], manager) for name in handler.agent_names(own)]


def desired_resources(fleet: Fleet, manager: FleetPlugins) -> list[Resource]:
    """Every resource the fleet declares, from each kind's handler."""
    return [resource for handler, _ in manager.handlers() for resource in handler.desired(fleet)]


def check_moves(fleet: Fleet, desired: Sequence[Resource], manager: FleetPlugins) -> None:
    """Raise FleetError, each problem at its line, unless every `moved:` entry renames a declared resource in place."""
    problems = move_problems(fleet, desired, manager.kinds)
    if problems:
        raise FleetError(locate(fleet.document, problems))


def claimed_by_other_fleets(
    wanted: Mapping[str, Resource],
    live: Mapping[str, Resource],
    owner: Owner,
    kinds: Mapping[str, ResourceKind],
    server: str,
) -> list[Problem]:
    """Declared resources whose live side another named fleet marked (`Resource.marked_by`): applying would
    rewrite what that fleet made, and the two would then undo each other on every apply. Each is a problem at its
    declaration. What carries no fleet's name (made by hand, or by a fleet without a name) may be taken over."""
    problems = []
    for address, declared in wanted.items():
        found = live.get(address)
        if found is None or found.marked_by is None or found.marked_by == owner.fleet:
            continue
        noun = kinds[declared.kind].singular
        problems.append(
            Problem(
                declared.source,
                f"{noun} '{declared.name}' on {server} belongs to fleet '{found.marked_by}', not to {owner.describe()}",
                f"give this {noun} another name, or remove it from fleet '{found.marked_by}' first",
            )
        )
    return problems


def _changes(
    wanted: Mapping[str, Resource],
    live: Mapping[str, Resource],
    manager: FleetPlugins,
    renamed: Mapping[str, str],
    gone: Mapping[str, frozenset[str]],
    *,
    prune: bool,
) -> list[Change]:
    changes: dict[str, Change] = {}
    for address in sorted(set(wanted) | set(live)):
        declared, found = wanted.get(address), live.get(address)
        kind = (declared or live[address]).kind
        change = manager.handler(kind).diff(declared, found)
        if address in renamed and declared and found:
            change = _renamed(change, found.name, declared.name, renamed[address], manager.kinds[kind])
        changes[address] = _held(change, prune)
    kept = _with_move_hints(_without_removals_under_kept(changes), manager.kinds)
    return _with_record_repairs(kept, manager, gone)


def _with_record_repairs(
    changes: list[Change], manager: FleetPlugins, gone: Mapping[str, frozenset[str]]
) -> list[Change]:
    """Each record-keeping parent whose record is missing, stale, names what is `gone` (own addresses, by
    parent) or owes a recompile, made an update of it."""
    children: dict[str, list[Change]] = {}
    for change in changes:
        if change.parent:
            children.setdefault(change.parent, []).append(change)
    return [
        with_record_repair(
            replace(change, forgotten=gone.get(change.address, frozenset())), children.get(change.address, [])
        )
        if manager.handler(change.kind).records_children
        else change
        for change in changes
    ]


def _moved(
    reader: LiveReader,
    manager: FleetPlugins,
    desired: Sequence[Resource],
    moves: Sequence[Move],
    found_live: list[Resource | Ambiguity],
) -> tuple[list[Resource | Ambiguity], dict[str, str], list[Problem]]:
    """The live resources with what `moves` rename at their new addresses (the whole subtree follows), the
    renamed addresses with the address each had, and the moves that match nothing. A move whose new address is
    live already, or whose old one is not, changes nothing: the entry may stay in the file. One whose two
    addresses are both missing where their parent is (a typo) is a problem."""
    live = {found.address for found in found_live if isinstance(found, Resource)}
    pending = [move for move in moves if move.target not in live]
    # Read the declared subtree of each new address as if it still stood at the old one, with what it depends on
    # outside it (a shared block, a tool) where it is: a handler matches an attachment by what it attaches.
    aliases = [at_old_address(r, m) for m in pending for r in desired if m.covers(r.address, side="target")]
    needed = {address for alias in aliases for address in alias.depends_on}
    outside = [
        r for r in desired if r.address in needed and not any(m.covers(r.address, side="target") for m in pending)
    ]
    view = [*desired, *aliases]
    old_side: list[Resource | Ambiguity] = [
        found
        for handler, kinds in manager.handlers()
        if any(alias.kind in kinds for alias in aliases)
        for found in handler.read_live(reader, [r for r in (*aliases, *outside) if r.kind in kinds], view)
    ]
    taken = [m for m in pending if any(isinstance(f, Resource) and f.address == m.source for f in old_side)]
    kept = [found for found in found_live if not any(m.covers(found.address, side="source") for m in taken)]
    for move in taken:
        for found in old_side:
            if move.covers(found.address, side="source"):
                kept.append(
                    rebased(found, move.source, move.target)
                    if isinstance(found, Resource)
                    else rebased_ambiguity(found, move.source, move.target)
                )
    sources = [move.source for move in taken]
    kept = [without_moved_entries(found, sources) if isinstance(found, Resource) else found for found in kept]
    parents = {resource.address: resource.parent for resource in desired}
    problems = [
        unmatched(move, reader.client.base_url)
        for move in pending
        if move not in taken and (parents.get(move.target) is None or parents.get(move.target) in live)
    ]
    return kept, {move.target: move.source for move in taken}, problems


def _renamed(change: Change, old: str, new: str, source: str, kind: ResourceKind) -> Change:
    """A moved resource's change: its kind's name attribute written too (an agent's `name`), whatever else it
    updates; the resource and everything in it stay."""
    field = kind.renamed_as or "name"
    return replace(
        change,
        action=Action.UPDATE if change.action is Action.NO_OP else change.action,
        before={**(change.before or {}), field: old},
        after={**(change.after or {}), field: new},
        detail=change.detail or f"renamed from {source} (moved), keeping what it holds",
    )


def _with_move_hints(changes: list[Change], kinds: Mapping[str, ResourceKind]) -> list[Change]:
    """A removal and a create of one renamable kind under one parent may be a rename: both say how to keep the
    resource and its history instead."""
    removed: dict[tuple[str, str | None], list[Change]] = {}
    created: dict[tuple[str, str | None], list[Change]] = {}
    for change in changes:
        if kinds[change.kind].renamed_as and change.action in (Action.CREATE, Action.DELETE):
            (removed if change.removes else created).setdefault((change.kind, change.parent), []).append(change)
    hints: dict[str, str] = {}
    for group, removals in removed.items():
        for new in created.get(group, []):
            for old in removals:
                entry = f"`moved: [{{from: '{old.address}', to: '{new.address}'}}]`"
                hints.setdefault(old.address, f"if {new.address} is this renamed, add {entry} to keep it and its data")
                hints.setdefault(new.address, f"if this is {old.address} renamed, add {entry} to keep its data")
    return [
        replace(change, detail="; ".join(filter(None, (change.detail, hints[change.address]))))
        if change.address in hints
        else change
        for change in changes
    ]


def _held(change: Change, prune: bool) -> Change:
    """A removal as the user's choices leave it: a protected one is held, always; one that deletes data is held
    unless the user asked for removals."""
    if not change.removes:
        return change
    if change.protected:
        return replace(
            change,
            held="protect",
            drift=(
                "removed from the file, but protected (`protect: true` when it was last applied): not removed. To "
                "remove it, declare it again with `protect: false`, apply, then remove it"
            ),
        )
    if change.held == "prune" and prune:
        return replace(change, held=None)
    if change.held == "prune":
        return replace(change, drift=f"removed from the file, kept: {change.detail or 'it holds data'}; {PRUNE_HINT}")
    return change


def _without_removals_under_kept(changes: Mapping[str, Change]) -> list[Change]:
    """A parent whose removal is held keeps everything in it: its children's removals are not planned."""
    kept = [address + "." for address, change in changes.items() if change.removes and change.held]
    return [
        change
        for address, change in changes.items()
        if not (change.removes and any(address.startswith(prefix) for prefix in kept))
    ]


def _recorded_removals(
    reader: LiveReader,
    manager: FleetPlugins,
    wanted: Mapping[str, Resource],
    found_live: Sequence[Resource | Ambiguity],
) -> tuple[list[Resource | Ambiguity], dict[str, frozenset[str]]]:
    """What live parents' records list and the fleet no longer declares, as each kind's handler finds it; and
    what the handlers found gone of it (own addresses, by parent): the records are to forget those."""
    live_addresses = {found.address for found in found_live if isinstance(found, Resource)}
    # Identity is the id: an entry whose id is live under its parent at another address (a rename that landed
    # before its record was written) is that resource, not a removal.
    live_ids = {
        (found.parent, found.kind, found.id) for found in found_live if isinstance(found, Resource) and found.id
    }
    by_kind: dict[str, list[Resource]] = {}
    for parent in found_live:
        if not isinstance(parent, Resource) or not parent.record:
            continue
        for entry in parent.record:
            address = f"{parent.address}.{entry.address}"
            if address in wanted or address in live_addresses or entry.kind not in manager.kinds:
                continue
            if (parent.address, entry.kind, entry.id) in live_ids:
                continue
            by_kind.setdefault(entry.kind, []).append(
                Resource(
                    address,
                    entry.kind,
                    name_in(entry.address),
                    {},
                    parent=parent.address,
                    id=entry.id,
                    protected=entry.protect,
                )
            )
    found: list[Resource | Ambiguity] = []
    for handler, kinds in manager.handlers():
        recorded = [resource for kind in kinds for resource in by_kind.get(kind, [])]
        if recorded:
            found.extend(handler.removed(reader, recorded))
    return found, _gone([r for asked in by_kind.values() for r in asked], found)


def _gone(asked: Sequence[Resource], found: Sequence[Resource | Ambiguity]) -> dict[str, frozenset[str]]:
    """The recorded resources a handler looked for and did not find, by parent: their own addresses."""
    seen = {each.address for each in found}
    gone: dict[str, set[str]] = {}
    for resource in asked:
        if resource.address not in seen and resource.parent:
            gone.setdefault(resource.parent, set()).add(resource.address.removeprefix(resource.parent + "."))
    return {parent: frozenset(addresses) for parent, addresses in gone.items()}


def _by_handler(resources: Sequence[Resource], manager: FleetPlugins) -> list[tuple[ResourceHandler, list[Resource]]]:
    """Each handler with the resources of its kinds (every handler, also one with none: it may read anyway)."""
    return [(handler, [r for r in resources if r.kind in kinds]) for handler, kinds in manager.handlers()]


def _frozen_params(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, repr(value)) for key, value in params.items()))


def _by_address(resources: Iterable[Resource], side: str) -> dict[str, Resource]:
    found: dict[str, Resource] = {}
    for resource in resources:
        if resource.address in found:
            # Addresses are identities: two at one address is a bug of the plugin owning the kind, never the user's.
            raise PluginError(
                f"the plugin handling kind {resource.kind!r} gave two {side} resources at {resource.address}; nothing "
                "was changed. Report this to the plugin's authors (`lettafleet plugins` lists them)."
            )
        found[resource.address] = resource
    return found
