"""The fleet-wide reads of Letta's V1 collections, shared by every V1 plugin: a few paginated list calls for a whole
fleet, whatever its size. Plugins read through these (with a plan's `LiveReader`, which memoizes), so two plugins asking
for one collection cost one read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lettafleet.core import AgentScope, Connection, LettaError, LiveReader, Read


class Reader(Protocol):
    """What these reads need: a plan's memoizing `LiveReader`, or a `Connection` itself."""

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]: ...

    def get(self, path: str, **params: Any) -> Any: ...


# Without `include`, Letta returns every relation of an agent (tools too, about 20 KB each). Naming the relations
# a read needs keeps pages small; Letta 0.16.8 then returns exactly those it names.
AGENT_RELATIONS = ["agent.blocks", "agent.tags"]
# Agents are large (about 7 KB each with their blocks) and slow to serialise (about 1.5 ms each on the dev server):
# pages of 250 let a long list be read from both ends at once (the V1 backend's paging.py) from the second page on.
AGENT_PAGE = 250
AGENTS_PATH = "/v1/agents/"
CONVERSATIONS_PATH = "/v1/conversations/"
AGENTS: Read = (AGENTS_PATH, {"include": AGENT_RELATIONS, "order": "asc", "limit": AGENT_PAGE})
# Agents with their tools: read only for fleets that declare tools.
AGENTS_WITH_TOOLS: Read = ("/v1/agents/", {"include": ["agent.tools"], "order": "asc", "limit": AGENT_PAGE})
# Agents with their secrets, values included: read only for fleets that declare secrets, never printed.
AGENTS_WITH_SECRETS: Read = ("/v1/agents/", {"include": ["agent.secrets"], "order": "asc", "limit": AGENT_PAGE})
# Archived ones too: hosted Letta lists only unarchived conversations unless asked, and a declared conversation
# someone archived is still the fleet's (matched, never made again). Letta 0.16.8 ignores the parameter.
CONVERSATIONS: Read = (CONVERSATIONS_PATH, {"order": "asc", "archive_status": "all"})
# Fields of an agent, and of each block in it, that no built-in kind compares: a plan's reads of agents drop them
# from each page as it arrives (`compared`), so thousands of agents are held without `memory` (a second copy of
# their blocks, about a fifth of an agent) and Letta's template and audit bookkeeping. A plugin needing one of them
# reads the agent itself (`GET /v1/agents/{id}`).
UNCOMPARED_AGENT_FIELDS = frozenset(
    {
        *("memory", "model_settings", "message_ids", "tool_exec_environment_variables", "pending_approval"),
        *("multi_agent_group", "managed_group", "identities", "identity_ids", "response_format", "timezone"),
        *("per_file_view_window_char_limit", "max_files_open", "message_buffer_autoclear", "enable_sleeptime"),
        *("last_run_completion", "last_run_duration_ms", "last_stop_reason", "hidden", "project_id"),
        *("template_id", "base_template_id", "deployment_id", "entity_id", "created_by_id", "last_updated_by_id"),
    }
)
UNCOMPARED_BLOCK_FIELDS = frozenset(
    {
        *("template_name", "is_template", "template_id", "base_template_id", "deployment_id", "entity_id"),
        *("preserve_on_migration", "hidden", "project_id", "created_by_id", "last_updated_by_id"),
    }
)
# A plan reads only its fleet's agents (`AgentScope`) once the server holds more than this many times the agents
# the fleet names (and more than a page): below it, reading everything costs about what reading by name would.
SCOPE_FACTOR = 4
# The query parameters that narrow a list of agents or conversations: a read with any of them is not a whole
# collection, and a scope leaves it as it is.
NARROWING = frozenset({"name", "tags", "query_text", "identity_id", "identifier_keys", "agent_id", "project_id"})


def reads_every_agent(reader: Reader, agents_at_most: int) -> bool:
    """Whether a plan of at most `agents_at_most` agents reads every agent on the server rather than only its own
    (`AgentScope`): when the server holds few more, or cannot count them (one request)."""
    try:
        held = int(reader.get(f"{AGENTS_PATH}count"))
    except (LettaError, TypeError, ValueError):  # a server without the count, or an odd answer: read everything
        return True
    return held <= SCOPE_FACTOR * agents_at_most + AGENT_PAGE


def whole(read: Read, path: str) -> bool:
    """Whether `read` lists the whole collection at `path` (no parameter narrows it)."""
    return read[0] == path and not NARROWING & read[1].keys()


def labelled(label: str) -> Read:
    """The read of every block with one label. Blocks are read by label, never all of them: a server keeps every
    block of every agent ever deleted (Letta does not delete them with the agent), so the full list only grows,
    while a fleet needs a few labels."""
    return ("/v1/blocks/", {"label": label, "order": "asc"})


def blocks_labelled(reader: Reader, label: str) -> list[dict[str, Any]]:
    path, params = labelled(label)
    return reader.list_all(path, **params)


def conversations_by_agent(reader: Reader) -> dict[str, list[dict[str, Any]]]:
    """Every conversation on the server, grouped by agent id, oldest first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    path, params = CONVERSATIONS
    for conversation in reader.list_all(path, **params):
        grouped.setdefault(conversation["agent_id"], []).append(conversation)
    return grouped


def has_messages(reader: Reader, conversation: Mapping[str, Any]) -> bool:
    """Whether anyone has talked in a conversation. One that was never sent a message holds only its system
    message and has no `last_message_at`: only then is its history read, and only its first two messages."""
    if conversation.get("last_message_at"):
        return True
    first = reader.get(f"/v1/conversations/{conversation['id']}/messages", order="asc", limit=2)
    return any(message.get("message_type") != "system_message" for message in first)


def compared(agent: dict[str, Any]) -> dict[str, Any]:
    """An agent as a plan keeps it: without the fields no kind compares (new dicts: a dict never shrinks)."""
    kept = {key: value for key, value in agent.items() if key not in UNCOMPARED_AGENT_FIELDS}
    if isinstance(kept.get("blocks"), list):
        kept["blocks"] = [
            {key: value for key, value in block.items() if key not in UNCOMPARED_BLOCK_FIELDS}
            if isinstance(block, dict)
            else block
            for block in kept["blocks"]
        ]
    return kept


def agent_reads(scope: AgentScope, params: Mapping[str, Any]) -> list[Read]:
    """The reads that replace one whole-collection read of agents with `params` (its relations and order)."""
    reads: list[Read] = [(AGENTS_PATH, {**params, "name": name}) for name in sorted(scope.names)]
    if scope.tag:
        reads.append((AGENTS_PATH, {**params, "tags": [scope.tag]}))
    return reads


class V1PlanReads:
    """How a plan reads a V1 server (`Backend.plan_reads`): agents kept as the kinds compare them, and under a
    scope, agents by name and by the fleet's tag, conversations by agent."""

    every_agent: Read = AGENTS

    def read(self, connection: Connection, read: Read, *, short_page_ends: bool) -> list[dict[str, Any]]:
        from lettafleet.plugins.backends.letta_v1.client import LettaClient  # its HTTP library only when used

        path, params = read
        trim = compared if path == AGENTS_PATH else None
        if isinstance(connection, LettaClient):
            return connection.list_all(path, short_page_ends=short_page_ends, trim=trim, **params)
        return [trim(item) if trim else item for item in connection.list_all(path, **params)]

    def narrowed(self, read: Read, scope: AgentScope, reader: LiveReader) -> list[Read] | None:
        path, params = read
        if whole(read, AGENTS_PATH):
            return agent_reads(scope, params)
        if whole(read, CONVERSATIONS_PATH):
            agents = reader.list_all(AGENTS[0], **AGENTS[1])
            return [(path, {**params, "agent_id": agent["id"]}) for agent in agents]
        return None

    def reads_every_agent(self, connection: Connection, agents_at_most: int) -> bool:
        return reads_every_agent(connection, agents_at_most)
