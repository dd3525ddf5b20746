"""How lettafleet marks what it makes on a Letta server, so later runs tell their own resources from anyone else's.

Two marks, both in a resource's metadata (or, where Letta keeps none, where its plugin says):
- the owner: `managed_by: lettafleet`, and `fleet: NAME` for a named fleet (a fleet file's top-level `fleet:`).
  A fleet with no name marks only `managed_by`, as every lettafleet before fleet names did. A named fleet's agents
  (and tools) also carry the tag `lettafleet-fleet:NAME` (`Owner.tag`): Letta filters lists by tag, never by
  metadata, so the tag is how a plan finds the fleet's agents without reading every agent on the server.
- the record: on a parent resource (an agent), what the last apply made under it from the file, each entry with
  its address relative to the parent, kind and server id. Removing a line from the file removes exactly what the
  record says that line made; whatever else the parent has (made by hand or at runtime) is never in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MANAGED_BY = "lettafleet"
FLEET_KEY = "fleet"
# The same marks as tags, for what keeps no metadata: tools, and blocks Letta makes inside an agent's create
# request (it drops their metadata but keeps their tags, shown by `GET /v1/blocks/{id}` and the agent's
# `core-memory/blocks`, not in agent listings). A named fleet's agents carry the fleet's tag too (`Owner.tag`).
MANAGED_TAG = "managed_by:lettafleet"
# Every tag lettafleet or a plugin puts on what it made begins with this (the fleet's, a template's, a protected
# tool's), so that exports, imports and comparisons tell them from the user's own tags.
MARK_PREFIX = "lettafleet-"
FLEET_TAG = f"{MARK_PREFIX}fleet:"  # + the fleet's name
RECORD_KEY = "lettafleet_applied"
PROTECT_KEY = "protect"


def managed_metadata(**fields: Any) -> dict[str, Any]:
    """The metadata lettafleet puts on what it creates (agents, blocks), with any `fields` of the plugin's own.
    Handlers that know their fleet use `Owner.metadata`, which adds the fleet's name."""
    return {"managed_by": MANAGED_BY, **fields}


def is_managed(item: Mapping[str, Any]) -> bool:
    """Whether lettafleet made this server resource (it carries `managed_metadata`), for any fleet."""
    return _metadata(item).get("managed_by") == MANAGED_BY


def fleet_of(item: Mapping[str, Any]) -> str | None:
    """The name of the fleet that made this server resource (None: a fleet without a name, or nobody's)."""
    name = _metadata(item).get(FLEET_KEY)
    return name if isinstance(name, str) else None


def is_tagged_managed(tags: Sequence[str] | None) -> bool:
    """Whether lettafleet's tag marks are among a resource's tags (for any fleet)."""
    return MANAGED_TAG in (tags or ())


def fleet_tagged(tags: Sequence[str] | None) -> str | None:
    """The named fleet whose tag marks a resource carries (None: no lettafleet tags, or no fleet name)."""
    if not is_tagged_managed(tags):
        return None
    return next((tag.removeprefix(FLEET_TAG) for tag in tags or () if tag.startswith(FLEET_TAG)), None)


@dataclass(frozen=True)
class Owner:
    """One fleet, as the server's marks name it: `fleet` is the fleet file's `fleet:` (None when it has none)."""

    fleet: str | None = None

    @property
    def named(self) -> bool:
        return self.fleet is not None

    def metadata(self, **fields: Any) -> dict[str, Any]:
        """The marks for something this fleet creates."""
        return managed_metadata(**({FLEET_KEY: self.fleet} if self.fleet else {}), **fields)

    @property
    def tag(self) -> str | None:
        """The ownership tag on this fleet's agents (None for a fleet without a name: it never removes agents it
        no longer declares, so it never needs to find them)."""
        return f"{FLEET_TAG}{self.fleet}" if self.fleet else None

    def owns(self, item: Mapping[str, Any]) -> bool:
        """Whether this fleet made `item`: lettafleet's mark with this fleet's name (or, unnamed, with none)."""
        return is_managed(item) and fleet_of(item) == self.fleet

    def tags(self) -> list[str]:
        """The marks as tags, for something this fleet creates that keeps no metadata."""
        return [MANAGED_TAG, *([self.tag] if self.tag else [])]

    def owns_tagged(self, tags: Sequence[str] | None) -> bool:
        """Whether this fleet made what carries these tags: lettafleet's tag with this fleet's name (or none)."""
        return is_tagged_managed(tags) and fleet_tagged(tags) == self.fleet

    def describe(self) -> str:
        return f"fleet '{self.fleet}'" if self.fleet else "the fleet without a name"


def is_ownership_tag(tag: str) -> bool:
    """Whether `tag` is one of lettafleet's or a plugin's marks (`MARK_PREFIX`), never one of the user's own tags."""
    return tag == MANAGED_TAG or tag.startswith(MARK_PREFIX)


def owner_named(item: Mapping[str, Any]) -> str:
    """Whose `item` is, as messages say it: `fleet 'prod'`, `a fleet without a name`, or `nobody's fleet`."""
    if not is_managed(item):
        return "no fleet (made by hand or by another tool)"
    name = fleet_of(item)
    return f"fleet '{name}'" if name else "a lettafleet fleet without a name"


@dataclass(frozen=True)
class Recorded:
    """One entry of a parent's record: what the last apply made under it, at `address` relative to the parent
    (`block.persona`, `conversation["Ticket #101"]`), of `kind`, with its server id where it has one."""

    address: str
    kind: str
    id: str | None = None
    protect: bool = False

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"address": self.address, "kind": self.kind}
        if self.id:
            entry["id"] = self.id
        if self.protect:
            entry[PROTECT_KEY] = True
        return entry


def read_record(item: Mapping[str, Any]) -> tuple[Recorded, ...] | None:
    """The record on a server resource, or None when it has none (made before records, or by hand). Entries that
    are not well formed (edited by hand) are skipped: the record only ever narrows what a plan removes."""
    entries = _metadata(item).get(RECORD_KEY)
    if not isinstance(entries, list):
        return None
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        address, kind, item_id = entry.get("address"), entry.get("kind"), entry.get("id")
        if isinstance(address, str) and address and isinstance(kind, str) and kind:
            found.append(
                Recorded(address, kind, item_id if isinstance(item_id, str) else None, entry.get(PROTECT_KEY) is True)
            )
    return tuple(found)


def with_record(metadata: Mapping[str, Any] | None, entries: Iterable[Recorded]) -> dict[str, Any]:
    """`metadata` with its record replaced by `entries` (sorted by address), every other key kept."""
    ordered: Sequence[Recorded] = sorted(entries, key=lambda entry: entry.address)
    return {**(metadata or {}), RECORD_KEY: [entry.to_json() for entry in ordered]}


def _metadata(item: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = item.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}
