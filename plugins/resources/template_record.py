"""A template's record on each agent it changed: what it put there, in the agent's metadata under
`lettafleet_templates`, so that a line taken out of the template (or the whole template) is undone only where the
template did it, never what the application or the agent added (docs/templates.md, "The record").

A named fleet's templated agents also carry the tag `lettafleet-template:FLEET`: Letta filters agents by tag, never
by metadata, so the tag is how a plan finds them once the file declares no template to select them any more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RECORD_KEY = "lettafleet_templates"
MARK_TAG = "lettafleet-template:"  # + the fleet's name
# The record's maps of what a template attached or created, by name: the plan attribute each backs, and its key in
# the record. A template takes back only what is in them.
HELD = {"shared_blocks": "shared_blocks", "tools": "tools", "memory_blocks": "memory_blocks"}


@dataclass(frozen=True)
class Applied:
    """What a template did to one agent, as its record there says: what it attached or created (`held`: for each
    of HELD, name -> server id), the tags it added and the secrets it set, the only ones ever taken away again;
    digests of the prompt and block values it set, which tell a hand edit; and `sampled` (template_rollout.py)."""

    held: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    prompt: str = ""
    sampled: str = ""
    secrets: tuple[str, ...] = ()
    values: Mapping[str, str] = field(default_factory=dict)  # label -> digest of the block value the template set

    def ids(self, attribute: str) -> Mapping[str, str]:
        return self.held.get(attribute) or {}

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"shared_blocks": dict(sorted(self.ids("shared_blocks").items()))}
        entry |= {HELD[key]: dict(sorted(ids.items())) for key, ids in self.held.items() if ids and key in HELD}
        entry["tags"] = sorted(self.tags)
        if self.secrets:
            entry["secrets"] = sorted(self.secrets)
        if self.values:
            entry["block_sha256"] = dict(sorted(self.values.items()))
        if self.prompt:
            entry["system_sha256"] = self.prompt
        return {**entry, "sampled": self.sampled} if self.sampled else entry

    @property
    def empty(self) -> bool:
        held = any(self.held.values())
        return not (held or self.tags or self.prompt or self.sampled or self.secrets or self.values)


def digest(text: str) -> str:
    """The digest a record keeps of a prompt or block value (trimmed, as plans compare them): it may be sensitive."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def record_key(template: str, fleet: str | None) -> str:
    """The template's entry in an agent's `lettafleet_templates`: a named fleet's templates stay apart from
    another fleet's of the same name."""
    return f"{fleet}/{template}" if fleet else template


def mark_tag(fleet: str | None) -> str | None:
    """The tag on agents carrying a record of a named fleet's templates (None: a fleet without a name)."""
    return f"{MARK_TAG}{fleet}" if fleet else None


def records_of(agent: Mapping[str, Any]) -> Mapping[str, Any]:
    records = (agent.get("metadata") or {}).get(RECORD_KEY)
    return records if isinstance(records, Mapping) else {}


def read_applied(agent: Mapping[str, Any], key: str) -> Applied:
    """The record of the template `key` on a live agent; empty when it has none (or it was edited by hand into
    something else: the record only ever narrows what a template takes away)."""
    entry = records_of(agent).get(key)
    if not isinstance(entry, Mapping):
        return Applied()
    return Applied(
        {attribute: _names(entry.get(name)) for attribute, name in HELD.items()},
        _strings(entry.get("tags")),
        _string(entry.get("system_sha256")),
        _string(entry.get("sampled")),
        _strings(entry.get("secrets")),
        _names(entry.get("block_sha256")),
    )


def with_applied(metadata: Mapping[str, Any], key: str, applied: Applied) -> dict[str, Any]:
    """The agent's metadata with this template's record as `applied` says (gone when it added nothing), every other
    key, and every other template's record, kept."""
    records = dict(metadata.get(RECORD_KEY) or {})
    records.pop(key, None)
    if not applied.empty:
        records[key] = applied.to_json()
    return {**metadata, RECORD_KEY: records}


def marked(tags: Sequence[str], metadata: Mapping[str, Any], fleet: str | None) -> list[str]:
    """An agent's tags with the fleet's template mark as its records (in `metadata`) call for: carried while any
    of the fleet's templates has a record there, every other tag kept as it is."""
    mark = mark_tag(fleet)
    if mark is None:
        return list(tags)
    mine = any(str(key).startswith(f"{fleet}/") for key in records_of({"metadata": metadata}))
    kept = [tag for tag in tags if tag != mark]
    return [*kept, mark] if mine else kept


def removed_templates(agent: Mapping[str, Any], fleet: str | None, declared: set[str]) -> list[str]:
    """The names of a named fleet's templates that have a record on the agent and are no longer declared (a fleet
    without a name cannot tell its records from another unnamed fleet's: none)."""
    if fleet is None:
        return []
    prefix = f"{fleet}/"
    return sorted(
        key.removeprefix(prefix)
        for key in records_of(agent)
        if isinstance(key, str) and key.startswith(prefix) and key.removeprefix(prefix) not in declared
    )


def _names(found: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in found.items() if isinstance(v, str)} if isinstance(found, Mapping) else {}


def _strings(found: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in found) if isinstance(found, list) else ()


def _string(found: Any) -> str:
    return found if isinstance(found, str) else ""
