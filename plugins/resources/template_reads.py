"""The reads that find the agents a fleet's templates may reach, as small as its templates allow: with only the
relations they need, and, on a server known to filter `query_text` as a name substring (self-hosted Letta 0.16),
only the agents whose names hold each glob's literal prefix. The glob still decides what a template matches."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lettafleet.core import LiveReader, Read, Resource
from lettafleet.plugins.backends.letta_v1.reads import AGENTS
from lettafleet.plugins.backends.letta_v1.server import searches_names_within
from lettafleet.plugins.resources.template_blocks import BLOCKS, SEEDED
from lettafleet.plugins.resources.template_record import mark_tag, records_of

TAGS_ONLY = ["agent.tags"]  # what every template needs of an agent beside its own fields: its tags
# The settings, and the keys of a record, that need the agents' blocks: shared blocks, and blocks the template owns.
BLOCK_SETTINGS = frozenset({"shared_blocks", BLOCKS, SEEDED})
BLOCK_RECORDS = ("shared_blocks", "memory_blocks", "block_sha256")
WILDCARD = re.compile(r"[*?\[]")
# Letta's ILIKE reads a backslash as an escape: a prefix holding one would miss names that contain it.
UNSEARCHABLE = "\\"
NARROWED = frozenset({"query_text", "tags"})  # a read with either lists only some agents (never scoped further)


def templated_agents(reader: LiveReader, desired: Sequence[Resource]) -> list[dict[str, Any]]:
    """The agents templates may reach: those the declared templates' selectors may match, and a named fleet's agents
    carrying its templates' mark (what a template taken out of the file left). With their blocks only when a
    template declares blocks or an agent's record says a template put some there."""
    if desired and reader.scope is None:
        return agents_of(reader, desired, AGENTS)  # the plan reads every agent anyway (the agents kind): share it
    path, params = AGENTS
    blocks = needs_blocks(desired)
    light = agents_of(reader, desired, (path, {**params, "include": AGENTS[1]["include"] if blocks else TAGS_ONLY}))
    if blocks or not any(_records_blocks(agent) for agent in light):
        return light
    return agents_of(reader, desired, AGENTS)


def agents_of(reader: LiveReader, desired: Sequence[Resource], read: Read) -> list[dict[str, Any]]:
    """The agents templates may reach, as `read` (a read of every agent, with the relations it names) gives them,
    read once per plan. A plan reading every agent anyway (no scope) reads them whole: other kinds share it."""
    path, params = read
    if desired and reader.scope is None:
        return reader.list_all(path, **params)
    reads = agent_reads(reader, desired, read)
    return reader.derived(("templated-agents", repr(reads)), lambda: _merged(reader, reads))


def agent_reads(reader: LiveReader, desired: Sequence[Resource], read: Read) -> list[Read]:
    """The list requests standing for `read` (every agent) that find every agent templates may reach."""
    path, params = read
    mark = mark_tag(reader.owner.fleet)
    marked: list[Read] = [(path, {**params, "tags": [mark]})] if mark else []
    if not desired:
        return marked
    prefixes = name_prefixes(desired) if searches_names_within(reader.client.server_info()) else None
    if prefixes is None:
        return [read]
    return [*((path, {**params, "query_text": prefix}) for prefix in prefixes), *marked]


def needs_blocks(desired: Sequence[Resource]) -> bool:
    return any(BLOCK_SETTINGS & template.attributes["settings"].keys() for template in desired)


def name_prefixes(desired: Sequence[Resource]) -> list[str] | None:
    """The `query_text` values that together find every agent the templates' globs may match (the literal start of
    each glob, none contained in another), or None when one selector cannot be narrowed so: tags only, a glob
    starting with a wildcard, or a prefix Letta's filter would not read literally."""
    prefixes = {literal_prefix(template.attributes.get("match") or "") for template in desired}
    if "" in prefixes or any(UNSEARCHABLE in prefix for prefix in prefixes):
        return None
    return sorted(p for p in prefixes if not any(q != p and q.lower() in p.lower() for q in prefixes))


def literal_prefix(glob: str) -> str:
    """The part of a name glob before its first wildcard: every name it matches starts with it."""
    return WILDCARD.split(glob, maxsplit=1)[0]


def _records_blocks(agent: Mapping[str, Any]) -> bool:
    """Whether a template's record on the agent names blocks it attached, made or set (to take back, or compare)."""
    return any(
        isinstance(entry, Mapping) and any(entry.get(key) for key in BLOCK_RECORDS)
        for entry in records_of(agent).values()
    )


def _merged(reader: LiveReader, reads: Sequence[Read]) -> list[dict[str, Any]]:
    """The agents of several reads sent together, each once, oldest first; a read of every agent as it comes."""
    if len(reads) == 1 and not NARROWED & reads[0][1].keys():
        return reader.list_everything(reads[0][0], **reads[0][1])
    reader.prefetch(*reads)
    unique = {agent["id"]: agent for path, params in reads for agent in reader.list_all(path, **params)}
    return sorted(unique.values(), key=lambda agent: (str(agent.get("created_at") or ""), agent["id"]))
