"""The plan model: resources, the changes between desired and live ones, and the plan that holds them.

All values here are frozen: a plan can be printed, hashed, saved as JSON and compared. Apply executes a plan.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lettafleet.core.engine.diagnostics import Path
from lettafleet.core.letta.ownership import Recorded

PLAN_FORMAT_VERSION = "1.3"
SENSITIVE = "(sensitive)"


class TargetError(ValueError):
    """A `--target` pattern that matches no address of the plan."""


class ScopeError(TargetError):
    """A `--scope` that no tagged resource of the plan carries every tag of."""


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"  # delete the live resource, then create it anew
    NO_OP = "no-op"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Resource:
    """One thing lettafleet manages, as the fleet declares it (desired) or as the server has it (live).

    The address is the identity: a desired and a live resource with the same address are the same thing.
    `parent` is the address of the resource this one belongs to; `depends_on` lists addresses that must exist
    before this one can be written. `id` is the server's id (live resources only). `source` is where a desired
    resource is declared in the fleet file, for error messages.

    `protected`: removing it is refused (the fleet says `protect: true`; for a live resource, its marks or its
    parent's record said so when it was last applied). `record` (live parents only): what the server's record on
    it says the last apply made under it, None when it carries none. `state`: what a handler keeps of the server's
    answer for its own apply (the rest of an agent's metadata, say); never compared, shown or hashed.

    `tags` (top-level resources only): the tags `--scope` selects it by (an agent's `tags`: the fleet's when
    desired, the server's when live); None for a resource that is not selected by tags (a fleet-level shared
    block or tool), which a scoped plan keeps as lettactl's `--scope` does (see `Plan.scoped`).

    `marked_by` (live only): the name of the fleet whose ownership marks the server resource carries (None: no
    marks, or a fleet without a name's). A plan refuses to declare what another named fleet marked, before any
    write: every kind whose handler sets it gets that guard.
    """

    address: str
    kind: str
    name: str
    attributes: Mapping[str, Any]
    parent: str | None = None
    depends_on: tuple[str, ...] = ()
    id: str | None = None
    source: Path = ()
    sensitive: frozenset[str] = frozenset()
    protected: bool = False
    record: tuple[Recorded, ...] | None = None
    state: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    tags: frozenset[str] | None = None
    marked_by: str | None = None


@dataclass(frozen=True)
class Change:
    """What apply would do to one resource: an action and the values before and after.

    `drift` explains a difference that apply cannot fix in place (the change is then a no-op that still needs a
    person's attention). `detail` is free text for people: why a resource is replaced, for example.

    A removal (`delete` of a resource the fleet no longer declares) may be `held`: planned, shown, and not applied,
    because it deletes data and the user did not ask for removals (`"prune"`), or because the resource is
    protected (`"protect"`); `drift` then says why and what to do.

    `tags`: the resource's (`Resource.tags`), for `--scope`; not part of the plan document. `forgotten`: the
    entries of a record-keeping parent's record (own addresses) whose resources are gone from the server: the
    record written next drops them, so that a resource made later with the same id is not taken for one the
    fleet made.
    """

    address: str
    kind: str
    name: str
    action: Action
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    parent: str | None = None
    depends_on: tuple[str, ...] = ()
    id: str | None = None
    drift: str | None = None
    detail: str = ""
    sensitive: frozenset[str] = frozenset()
    protected: bool = False
    held: str | None = None
    record: tuple[Recorded, ...] | None = field(default=None, compare=False, repr=False)
    state: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    tags: frozenset[str] | None = field(default=None, compare=False, repr=False)
    forgotten: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def changes_something(self) -> bool:
        return self.action is not Action.NO_OP and not self.held

    @property
    def removes(self) -> bool:
        """A removal: the fleet no longer declares it, and the plan deletes it (or holds the delete back)."""
        return self.action is Action.DELETE

    def changed_fields(self) -> list[str]:
        """Attributes whose value differs between before and after, in a stable order."""
        before, after = self.before or {}, self.after or {}
        return [key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]

    def to_json(self, *, sensitive_as: Callable[[Any], Any] | None = None) -> dict[str, Any]:
        """The change as JSON. Attributes marked sensitive read `(sensitive)`, or `sensitive_as(value)` (hashing)."""
        data: dict[str, Any] = {
            "address": self.address,
            "kind": self.kind,
            "action": self.action.value,
            "before": self._shown(self.before, sensitive_as),
            "after": self._shown(self.after, sensitive_as),
        }
        if self.parent:
            data["parent"] = self.parent
        if self.drift:
            data["drift"] = self.drift
        if self.detail:
            data["detail"] = self.detail
        if self.sensitive:
            data["sensitive"] = sorted(self.sensitive)
        if self.held:
            data["held"] = self.held
        if self.protected:
            data["protected"] = True
        return data

    def _shown(self, values: Mapping[str, Any] | None, sensitive_as: Callable[[Any], Any] | None) -> Any:
        if values is None:
            return None
        hide = sensitive_as or (lambda value: SENSITIVE)
        # An absent value (None) is shown as absent: masking hides what a value is, not whether there is one.
        return {
            key: hide(value) if key in self.sensitive and value is not None else _plain(value)
            for key, value in values.items()
        }


@dataclass(frozen=True)
class Ambiguity:
    """The live read found more than one server resource for one declared address (two agents of one name,
    say) and used one of them. Plans report every such choice: apply would act on `used`, and the others stay.

    `message` says what was found, naming the ids; `ids` lists every server id involved; `remedy` says how to
    leave one.
    """

    address: str
    message: str
    ids: tuple[str, ...]
    used: str | None
    remedy: str

    @classmethod
    def first_of(
        cls,
        address: str,
        found: str,
        ids: Sequence[str],
        remedy: str,
        *,
        chosen: str = "the oldest",
        shown: Sequence[str] = (),
    ) -> Ambiguity:
        """The usual case: `found` (`2 agents are named 'x'`) matched `ids`, and the plan uses the first, picked
        as `chosen` says. `shown` names them in the message (default: their ids)."""
        names = list(shown or ids)
        message = f"{found}: the plan uses {chosen}, {names[0]}, and leaves {', '.join(names[1:])} alone"
        return cls(address=address, message=message, ids=tuple(ids), used=ids[0], remedy=remedy)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "message": self.message,
            "ids": list(self.ids),
            "used": self.used,
            "remedy": self.remedy,
        }


THRESHOLD_HINT = "(`--context-threshold PERCENT` sets where this warning starts.)"


@dataclass(frozen=True)
class ContextWarning:
    """A resource (`address`) whose context window what the plan declares would fill past `threshold` (a
    fraction) once applied: `tokens` is estimated from the text's length (core/engine/context_budget.py), and
    `remedy`, from the resource's plugin, says how to make room."""

    address: str
    tokens: int
    window: int
    threshold: float
    remedy: str = ""

    @property
    def share(self) -> float:
        return self.tokens / self.window

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "estimated_tokens": self.tokens,
            "context_window": self.window,
            "percent": round(100 * self.share, 1),
            "threshold_percent": round(100 * self.threshold, 1),
        }

    def __str__(self) -> str:
        said = (
            f"Warning: {self.address} would fill {100 * self.share:.0f}% of its context window (about "
            f"{self.tokens:,} of {self.window:,} tokens, over {100 * self.threshold:.0f}%), leaving little room for "
            "messages."
        )
        return " ".join(part for part in (said, self.remedy, THRESHOLD_HINT) if part)


@dataclass(frozen=True)
class Plan:
    """Every change for one fleet file against one server, in a stable order (by address), and every ambiguity
    the live read resolved to get them."""

    fleet: str
    server: str
    changes: tuple[Change, ...]
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    ambiguities: tuple[Ambiguity, ...] = ()
    # The fleet's name (its `fleet:` key), whose marks the plan looked for; None for a fleet without a name.
    owner: str | None = None
    # The key sensitive values enter the hash with (see `sha256`): the server's API key, passed in by whoever
    # planned. Never shown, never compared.
    hash_key: bytes = field(default=b"", repr=False, compare=False)
    # What the server said it is, and the project the plan was read in: named by the plan's header, never hashed.
    server_version: str | None = field(default=None, compare=False)
    project: str | None = field(default=None, compare=False)
    # Agents the plan would leave with little room for messages: warned about, never hashed.
    context_warnings: tuple[ContextWarning, ...] = field(default=(), compare=False)

    @classmethod
    def build(
        cls,
        fleet: str,
        server: str,
        changes: Iterable[Change],
        ambiguities: Iterable[Ambiguity] = (),
        *,
        hash_key: bytes = b"",
        owner: str | None = None,
    ) -> Plan:
        ordered = tuple(sorted(changes, key=lambda change: change.address))
        found = tuple(sorted(set(ambiguities), key=lambda ambiguity: (ambiguity.address, ambiguity.ids)))
        return cls(fleet, server, ordered, _count(ordered), found, owner, hash_key)

    @property
    def has_changes(self) -> bool:
        return any(change.changes_something for change in self.changes)

    @property
    def has_drift(self) -> bool:
        return any(change.drift for change in self.changes)

    @property
    def needs_attention(self) -> bool:
        """Something a person should see: a change, drift, or an ambiguity (what `--detailed-exitcode` exits 2 on)."""
        return self.has_changes or self.has_drift or bool(self.ambiguities)

    def sensitive_values(self) -> list[str]:
        """Every text value marked sensitive, before or after: what must never be printed."""
        return [
            value
            for change in self.changes
            for values in (change.before or {}, change.after or {})
            for key, value in values.items()
            if key in change.sensitive and isinstance(value, str)
        ]

    def by_address(self) -> dict[str, Change]:
        return {change.address: change for change in self.changes}

    def children(self, address: str) -> list[Change]:
        return self._children.get(address, [])

    def descendants(self, address: str) -> list[Change]:
        """Children, their children and so on, parents before their children."""
        found = []
        for child in self.children(address):
            found.append(child)
            found.extend(self.descendants(child.address))
        return found

    @functools.cached_property
    def _children(self) -> dict[str, list[Change]]:
        index: dict[str, list[Change]] = {}
        for change in self.changes:
            if change.parent:
                index.setdefault(change.parent, []).append(change)
        return index

    def targeted(self, patterns: Sequence[str]) -> Plan:
        """Only the part of the plan that `patterns` (globs over addresses, such as `agent.support-*`) name, and
        what that part needs: everything inside a matched resource, its parents, and what it depends on (a
        shared block, a tool), each with its own changes. Raises TargetError for a pattern that matches nothing."""
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(c.address, p) for c in self.changes)]
        if unmatched:
            raise TargetError(
                f"--target {', '.join(map(repr, unmatched))} matches no resource of {self.fleet}. Addresses look "
                f"like {', '.join(c.address for c in self.changes[:3]) or '(none: the fleet is empty)'}; "
                "`lettafleet plan -v -o json` lists them all."
            )
        return self.narrowed(
            change.address
            for change in self.changes
            if any(fnmatch.fnmatchcase(change.address, pattern) for pattern in patterns)
        )

    def scoped(self, tags: Sequence[str]) -> Plan:
        """Only the top-level resources whose tags include every one of `tags` (lettactl's `--scope`: agents,
        by their tags; AND), with what they need, as `targeted` narrows: everything inside them, and what they
        depend on. Resources that are not selected by tags (`tags` None: the fleet's shared blocks and tools)
        stay in the plan as lettactl keeps them, except their removals: a scoped plan removes only in scope.
        Raises ScopeError when no resource carries all the tags."""
        wanted = set(tags)
        tagged = [c for c in self.changes if c.parent is None and c.tags is not None]
        matched = [c.address for c in tagged if wanted <= (c.tags or frozenset())] if wanted else []
        if not matched:
            known = sorted({tag for change in tagged for tag in change.tags or ()})
            raise ScopeError(
                f"--scope {','.join(tags)} matches no agent of {self.fleet}: none has all of these tags. "
                f"The tags its agents have: {', '.join(known) or '(none)'}. Name tags they all carry (AND)."
            )
        fleet_level = [c.address for c in self.changes if c.parent is None and c.tags is None and not c.removes]
        return self.narrowed([*matched, *fleet_level])

    def narrowed(self, addresses: Iterable[str]) -> Plan:
        """The plan of the changes at `addresses`, everything inside them, and what those need (parents,
        dependencies), each with its own changes and ambiguities."""
        by_address = self.by_address()
        chosen = {found.address for address in addresses for found in (by_address[address], *self.descendants(address))}
        pending = list(chosen)
        while pending:
            change = by_address[pending.pop()]
            for needed in (change.parent, *change.depends_on):
                if needed in by_address and needed not in chosen:
                    chosen.add(needed)
                    pending.append(needed)
        return self.with_changes(
            (c for c in self.changes if c.address in chosen), (a for a in self.ambiguities if a.address in chosen)
        )

    def with_changes(self, changes: Iterable[Change], ambiguities: Iterable[Ambiguity] | None = None) -> Plan:
        """The same fleet's plan on the same server with these changes (and these ambiguities, else its own):
        what a plugin's option makes of the plan (`PlanOption.reshapes`)."""
        return Plan.build(
            self.fleet,
            self.server,
            changes,
            self.ambiguities if ambiguities is None else ambiguities,
            hash_key=self.hash_key,
            owner=self.owner,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": PLAN_FORMAT_VERSION,
            "fleet": self.fleet,
            "fleet_name": self.owner,
            "server": self.server,
            "server_version": self.server_version,
            "project": self.project,
            "summary": {kind: dict(actions) for kind, actions in sorted(self.counts.items())},
            "has_changes": self.has_changes,
            "has_drift": self.has_drift,
            "has_ambiguities": bool(self.ambiguities),
            "sha256": self.sha256,
            "changes": [change.to_json() for change in self.changes],
            "ambiguities": [ambiguity.to_json() for ambiguity in self.ambiguities],
            "context_warnings": [warning.to_json() for warning in self.context_warnings],
        }

    @property
    def sha256(self) -> str:
        """A fingerprint of what the plan would do: equal plans, equal hashes, whatever server URL printed them.

        The hash is published (in pull request comments), so sensitive values enter it only as an HMAC keyed
        with `hash_key` (the server's API key): a changed secret changes the hash, yet the hash tells nothing
        about the secret. Without a key they do not enter it at all. Ambiguities enter it too, so a reviewed plan
        cannot hide one (a plan without any hashes as it did before they were reported).
        """
        key = self.hash_key
        body: dict[str, Any] = {
            "fleet": self.fleet,
            "changes": [change.to_json(sensitive_as=_keyed_digest(key)) for change in self.changes],
        }
        if self.ambiguities:
            body["ambiguities"] = [ambiguity.to_json() for ambiguity in self.ambiguities]
        if self.owner:
            body["fleet_name"] = self.owner
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def address_of(kind: str, name: str, parent: str | None = None) -> str:
    """`agent.support-agent`, `agent.support-agent.conversation["Ticket #101"]`: a name that is not a plain word
    is quoted, so every address reads back unambiguously."""
    own = f"{kind}.{name}" if _PLAIN_NAME.fullmatch(name) else f"{kind}[{json.dumps(name)}]"
    return f"{parent}.{own}" if parent else own


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")


def name_in(own_address: str) -> str:
    """The name in an address's own part (`block.persona`, `conversation["Ticket #101"]`): `address_of` undone."""
    if own_address.endswith('"]') and '["' in own_address:
        name = json.loads(own_address[own_address.index("[") + 1 : -1])
        return str(name)
    return own_address.split(".", 1)[-1]


def _keyed_digest(key: bytes) -> Callable[[Any], str]:
    def digest(value: Any) -> str:
        if not key:
            return SENSITIVE
        return hmac.new(key, json.dumps(value, sort_keys=True).encode(), hashlib.sha256).hexdigest()

    return digest


def _count(changes: Iterable[Change]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for change in changes:
        actions = counts.setdefault(change.kind, {})
        action = "held" if change.held else change.action.value
        actions[action] = actions.get(action, 0) + 1
    return counts


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def compare(
    desired: Resource | None,
    live: Resource | None,
    fields: Sequence[str] | None = None,
    *,
    detail: str = "",
) -> Change:
    """The plain diff: create what is missing, update the `fields` (default: all desired attributes) that differ,
    delete what is live and no longer desired.

    Handlers return a live resource with no desired one only for what their fleet made and no longer declares
    (its marks or its parent's record say so): lettafleet deletes nothing else.
    """
    if desired is None and live is None:
        raise ValueError("compare() needs a desired or a live resource")
    model = desired or live
    assert model is not None
    if desired is None:
        assert live is not None  # both None is refused above
        action, before, after = Action.DELETE, dict(live.attributes), None
    elif live is None:
        action, before, after = Action.CREATE, None, dict(desired.attributes)
    else:
        keys = list(fields) if fields is not None else list(desired.attributes)
        before = {key: live.attributes.get(key) for key in keys}
        after = {key: desired.attributes.get(key) for key in keys}
        action = Action.UPDATE if before != after else Action.NO_OP
    return Change(
        address=model.address,
        kind=model.kind,
        name=model.name,
        action=action,
        before=before,
        after=after,
        parent=model.parent,
        depends_on=desired.depends_on if desired else (),
        id=live.id if live else None,
        detail=detail,
        sensitive=model.sensitive,
        protected=desired.protected if desired else bool(live and live.protected),
        record=live.record if live else None,
        state=live.state if live else {},
        tags=model.tags,
    )


def attributes(**values: Any) -> Mapping[str, Any]:
    """Resource attributes without the unset (None) ones, so absent and null compare equal."""
    return {key: value for key, value in values.items() if value is not None}
