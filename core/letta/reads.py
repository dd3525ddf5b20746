"""The fleet-wide reads of Letta's collections, shared by every plugin: a few paginated list calls for a whole
fleet, whatever its size. Plugins read through these (with a plan's `LiveReader`, which memoizes), so two plugins asking
for one collection cost one read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# A collection to list: (path, query parameters), e.g. ("/v1/agents/", {"order": "asc"}); a `limit` among them is
# the page size (see LettaClient.list_all).
Read = tuple[str, dict[str, Any]]


class Reader(Protocol):
    """What these reads need: a plan's memoizing `LiveReader`, or a `LettaClient` itself."""

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]: ...

    def get(self, path: str, **params: Any) -> Any: ...


# Without `include`, Letta returns every relation of an agent (tools too, about 20 KB each). Naming the relations
# a read needs keeps pages small; Letta 0.16.8 then returns exactly those it names.
AGENT_RELATIONS = ["agent.blocks", "agent.tags"]
# Agents are large (about 7 KB each with their blocks) and slow to serialise (about 1.5 ms each on the dev server):
# pages of 250 let a long list be read from both ends at once (core/letta/paging.py) from the second page on.
AGENT_PAGE = 250
AGENTS: Read = ("/v1/agents/", {"include": AGENT_RELATIONS, "order": "asc", "limit": AGENT_PAGE})
# Agents with their tools: read only for fleets that declare tools.
AGENTS_WITH_TOOLS: Read = ("/v1/agents/", {"include": ["agent.tools"], "order": "asc", "limit": AGENT_PAGE})
# Agents with their secrets, values included: read only for fleets that declare secrets, never printed.
AGENTS_WITH_SECRETS: Read = ("/v1/agents/", {"include": ["agent.secrets"], "order": "asc", "limit": AGENT_PAGE})
# Archived ones too: hosted Letta lists only unarchived conversations unless asked, and a declared conversation
# someone archived is still the fleet's (matched, never made again). Letta 0.16.8 ignores the parameter.
CONVERSATIONS: Read = ("/v1/conversations/", {"order": "asc", "archive_status": "all"})


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
