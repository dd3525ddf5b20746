"""The record a record-keeping resource (an agent) carries: what the fleet made under it, by address and id, and
whether a recompile of its conversations is still owed. Plans compare it with what it should say (a missing or
stale record is a change, so the next apply repairs it); apply writes what it says after the changes.

Identity is the id: an entry whose id the fleet now declares at another address of the same kind under the same
parent (a rename that landed before its record was written) is that address, never a removal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core.engine.model import Action, Change
from lettafleet.core.letta.ownership import Recorded

# The attributes a plan gives a record-keeping parent when its record needs writing; its handler never sees them.
RECORD_FIELD = "record"
RECOMPILE_FIELD = "recompile"
BOOKKEEPING = frozenset({RECORD_FIELD, RECOMPILE_FIELD})
# The record's entry for a recompile owed: written before the recompile, taken out once it is done. Its kind is
# no plugin's (kinds are words), so no plan mistakes it for something made.
RECOMPILE_OWED = Recorded("conversations", "lettafleet:recompile")
OWED, DONE = "owed (an earlier apply did not finish it)", "done"


def own_address(child: Change, parent: str) -> str:
    """`block.persona`: a child's address relative to its parent's, as records name it."""
    return child.address.removeprefix(parent + ".")


def owes_recompile(record: Iterable[Recorded] | None) -> bool:
    return any(entry == RECOMPILE_OWED for entry in record or ())


def record_after(
    parent: Change,
    children: Sequence[Change],
    outcome: Callable[[Change], str],
    id_of: Callable[[Change], str | None],
    *,
    owed: bool,
) -> list[Recorded]:
    """What `parent`'s record says once its children's changes are made: what it said, less what was removed (or
    is gone: `parent.forgotten`) and what is now recorded under another address with the same id, plus the
    declared children that exist. `outcome(child)` is "applied", "failed" or "skipped"; `owed`: whether a
    recompile is still owed."""
    made: dict[str, Recorded] = {}
    removed: set[str] = set()
    for child in children:
        address = own_address(child, parent.address)
        if child.removes:
            if outcome(child) == "applied":
                removed.add(address)
            continue
        if outcome(child) == "applied" or child.action is not Action.CREATE:  # it exists
            made[address] = Recorded(address, child.kind, id_of(child), child.protected)
        else:
            removed.add(address)
    ids = {(entry.kind, entry.id) for entry in made.values() if entry.id}
    kept = {
        entry.address: entry
        for entry in parent.record or ()
        if entry.address not in removed | parent.forgotten
        and entry != RECOMPILE_OWED
        and (entry.kind, entry.id) not in ids
    }
    entries = {**kept, **made, **({RECOMPILE_OWED.address: RECOMPILE_OWED} if owed else {})}
    return sorted(entries.values(), key=lambda entry: entry.address)


def with_record_repair(parent: Change, children: Sequence[Change]) -> Change:
    """`parent`'s change, made an update of its record when the record it carries misses a declared child that
    exists, names one under an old address or one that is gone, or says a recompile is owed: apply then writes it
    (and recompiles)."""
    if parent.removes or parent.id is None:
        return parent
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    unchanged = [child for child in children if child.action is Action.NO_OP and not child.removes]
    if _stale(parent.record, unchanged, parent.address) or parent.forgotten:
        planned = record_after(parent, children, _as_planned, lambda child: child.id, owed=False)
        before[RECORD_FIELD] = _shown(parent.record) if parent.record is not None else "none"
        after[RECORD_FIELD] = _shown(planned)
    if owes_recompile(parent.record):
        before[RECOMPILE_FIELD], after[RECOMPILE_FIELD] = OWED, DONE
    if not after:
        return parent
    why = "its record of what the fleet made under it is missing or out of date (an apply stopped before it)"
    if RECOMPILE_FIELD in after:
        why = "its conversations were not recompiled after an earlier change" + (
            f"; {why}" if RECORD_FIELD in after else ""
        )
    return replace(
        parent,
        action=Action.UPDATE if parent.action is Action.NO_OP else parent.action,
        before={**(parent.before or {}), **before},
        after={**(parent.after or {}), **after},
        detail="; ".join(filter(None, (parent.detail, f"{why}: apply writes it"))),
    )


def without_bookkeeping(change: Change) -> Change | None:
    """The change as its handler sees it, without the record's attributes; None when they were all it changed."""
    if not BOOKKEEPING & set(change.after or ()):
        return change
    stripped = replace(
        change,
        before={k: v for k, v in (change.before or {}).items() if k not in BOOKKEEPING},
        after={k: v for k, v in (change.after or {}).items() if k not in BOOKKEEPING},
    )
    if change.action is Action.UPDATE and not stripped.changed_fields():
        return None
    return stripped


def _stale(record: Sequence[Recorded] | None, unchanged: Sequence[Change], parent: str) -> bool:
    """Whether the record names a declared child that exists under another id or protection (an apply meant to
    make it and stopped before recording what it made), or names its id under another address (a rename that
    landed before its record was written). A declared child the record does not name is not a gap: it may have
    been made by hand, or by Letta with the agent, before the file declared it."""
    by_address = {entry.address: entry for entry in record or ()}
    expected = {own_address(c, parent): Recorded(own_address(c, parent), c.kind, c.id, c.protected) for c in unchanged}
    if any(address in by_address and by_address[address] != entry for address, entry in expected.items()):
        return True
    ids: dict[tuple[str, str | None], str] = {(e.kind, e.id): address for address, e in expected.items() if e.id}
    return any(ids.get((entry.kind, entry.id), entry.address) != entry.address for entry in record or ())


def _as_planned(child: Change) -> str:
    return "skipped" if child.held else "applied"


def _shown(record: Iterable[Recorded]) -> list[str]:
    return [f"{entry.address} ({entry.id})" if entry.id else entry.address for entry in record]
