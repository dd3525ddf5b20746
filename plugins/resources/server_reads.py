"""How the built-in plugins read the server: a few shared, paginated list calls for the whole fleet.

Every plugin reads through these functions, so the reader's cache turns all their reads into one request
per collection page, whatever the number of agents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lettafleet.core import LettaClient, LiveReader

MANAGED_BY = "lettafleet"
# Without `include`, Letta returns every relation of an agent (tools too). Naming the two the plugins use keeps
# pages small; Letta 0.16.8 then returns exactly these.
AGENT_RELATIONS = ["agent.blocks", "agent.tags"]


AGENTS = ("/v1/agents/", {"include": AGENT_RELATIONS, "order": "asc"})
# Agents with their tools: a tool's schema makes this about 20 KB an agent, so it is read only for fleets
# that declare tools.
AGENTS_WITH_TOOLS = ("/v1/agents/", {"include": ["agent.tools"], "order": "asc"})
# Agents with their secrets, values included: read only for fleets that declare secrets, never printed.
AGENTS_WITH_SECRETS = ("/v1/agents/", {"include": ["agent.secrets"], "order": "asc"})
CONVERSATIONS = ("/v1/conversations/", {"order": "asc"})


def managed_metadata(**fields: Any) -> dict[str, Any]:
    """The metadata lettafleet puts on what it creates, so later work can tell its own resources apart."""
    return {"managed_by": MANAGED_BY, **fields}


def is_managed(item: dict[str, Any]) -> bool:
    return (item.get("metadata") or {}).get("managed_by") == MANAGED_BY


def agents_named(reader: LiveReader, read: tuple[str, dict[str, Any]] = AGENTS) -> dict[str, list[dict[str, Any]]]:
    """Live agents grouped by name, the one a plan uses first. Letta allows two agents with one name: the one
    lettafleet manages wins, then the oldest. The agents plugin reports every name held by more than one."""
    found: dict[str, list[dict[str, Any]]] = {}
    path, params = read
    for agent in reader.list_all(path, **params):  # oldest first
        found.setdefault(agent["name"], []).append(agent)
    return {name: sorted(agents, key=lambda agent: not is_managed(agent)) for name, agents in found.items()}


def agents_by_name(reader: LiveReader, read: tuple[str, dict[str, Any]] = AGENTS) -> dict[str, dict[str, Any]]:
    """Live agents by name: of several with one name, the one `agents_named` puts first."""
    return {name: agents[0] for name, agents in agents_named(reader, read).items()}


def described(agent: dict[str, Any]) -> str:
    """An agent's id as an ambiguity names it: with whether lettafleet manages it."""
    return agent["id"] + (" (managed by lettafleet)" if is_managed(agent) else "")


def labelled(label: str) -> tuple[str, dict[str, Any]]:
    """The read of every block with one label. Blocks are read by label, never all of them: a server keeps every
    block of every agent ever deleted (Letta does not delete them with the agent), so the full list only grows,
    while a fleet needs a few labels."""
    return ("/v1/blocks/", {"label": label, "order": "asc"})


def blocks_labelled(reader: LiveReader, label: str) -> list[dict[str, Any]]:
    path, params = labelled(label)
    return reader.list_all(path, **params)


def conversations_by_agent(reader: LiveReader) -> dict[str, list[dict[str, Any]]]:
    """Every conversation on the server, grouped by agent id, oldest first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    path, params = CONVERSATIONS
    for conversation in reader.list_all(path, **params):
        grouped.setdefault(conversation["agent_id"], []).append(conversation)
    return grouped


def has_messages(reader: LiveReader | LettaClient, conversation: Mapping[str, Any]) -> bool:
    """Whether anyone has talked in a conversation. One that was never sent a message holds only its system
    message and has no `last_message_at`: only then is its history read, and only its first two messages."""
    if conversation.get("last_message_at"):
        return True
    first = reader.get(f"/v1/conversations/{conversation['id']}/messages", order="asc", limit=2)
    return any(message.get("message_type") != "system_message" for message in first)


def lacks_copies(reader: LiveReader, conversation: Mapping[str, Any], labels: Iterable[str]) -> list[str]:
    """The labels among `labels` of which a conversation has no isolated copy (read by label, memoized)."""
    copies = set(conversation.get("isolated_block_ids") or [])
    return [label for label in sorted(labels) if not copies & {block["id"] for block in blocks_labelled(reader, label)}]


def remade(reader: LiveReader, conversation: Mapping[str, Any], labels: Iterable[str]) -> bool:
    """Whether a plan replaces (deletes and creates again) a declared conversation: it lacks an isolated copy
    the fleet declares (Letta makes copies only at creation), and nobody has talked in it, so nothing is lost.
    Messages are looked at only for conversations that lack a copy."""
    return bool(lacks_copies(reader, conversation, labels)) and not has_messages(reader, conversation)


def created_with(collection: str, item_id: str, problem: str) -> Callable[[Mapping[str, Any]], str | None]:
    """A ride-along check: the created agent's `collection` (blocks, tools) holds `item_id`; else `problem`."""

    def check(answer: Mapping[str, Any]) -> str | None:
        return None if item_id in {item.get("id") for item in answer.get(collection) or []} else problem

    return check
