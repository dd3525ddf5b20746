"""Deleting an agent with the blocks that would outlive it: the one path every agent deletion takes (a plan's
removal of an agent or of a copy of one, and `lettafleet delete agent`).

Letta 0.16.8 deletes an agent's conversations with it but none of its blocks: neither its own nor its
conversations' isolated copies, which stay as orphans. So they are gathered before anything is deleted (once the
agent is gone, nothing links them to it), each checked for other users, and deleted before the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lettafleet.core import Connection, LettaAPIError, is_managed

LIGHT_AGENT = ["agent.tags"]  # the lightest agent rows: a block's other users are only counted and named

# Why one of the agent's own blocks is kept (None: it goes with the agent).
KeptBlock = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class BlockToDelete:
    id: str
    label: str
    owner: str  # "agent", or the conversation the block is an isolated copy for

    def describe(self) -> str:
        if self.owner == "agent":
            return f"block {self.label or '(no label)'} ({self.id})"
        return f"isolated block copy {self.id} of {self.owner}"


@dataclass(frozen=True)
class AgentRemoval:
    """Everything an agent's deletion removes or keeps, gathered before anything is deleted."""

    agent: Mapping[str, Any]
    conversations: Sequence[Mapping[str, Any]]
    doomed: Sequence[BlockToDelete] = field(default_factory=tuple)
    kept: Sequence[tuple[BlockToDelete, str]] = field(default_factory=tuple)  # (block, why)


def every_block(block: Mapping[str, Any]) -> str | None:
    """For `plan_agent_removal`: every block only the agent uses goes with it (`lettafleet delete agent`)."""
    return None


def plan_agent_removal(client: Connection, agent: Mapping[str, Any], keeps: KeptBlock = every_block) -> AgentRemoval:
    """What deleting `agent` (a row with its blocks) removes: its conversations, their isolated copies, and the
    blocks attached to it that no other agent has, are no fleet's shared block, and `keeps` does not keep."""
    conversations = client.list_all("/v1/conversations/", agent_id=agent["id"], order="asc")
    doomed: list[BlockToDelete] = []
    kept: list[tuple[BlockToDelete, str]] = []
    for block in agent.get("blocks") or []:
        candidate = BlockToDelete(block["id"], block.get("label") or "", "agent")
        why = _shared(block) or keeps(block) or _used_elsewhere(client, agent, block["id"])
        (kept.append((candidate, why)) if why else doomed.append(candidate))
    for conversation in conversations:
        title = conversation.get("summary") or conversation["id"]
        for block_id in conversation.get("isolated_block_ids") or []:
            copy = BlockToDelete(block_id, "", f"conversation '{title}'")
            why = _used_elsewhere(client, agent, block_id)
            (kept.append((copy, why)) if why else doomed.append(copy))
    return AgentRemoval(agent, conversations, doomed, kept)


def remove_agent(client: Connection, removal: AgentRemoval) -> None:
    """Delete the doomed blocks, then the agent (Letta deletes its conversations). Blocks go first: an apply
    stopped or failing half-way leaves the agent, which the next plan deletes again, never blocks nothing links.
    What is gone already (404) counts as deleted; any other failure raises before the agent is deleted."""
    for block in removal.doomed:
        _delete(client, f"/v1/blocks/{block.id}")
    _delete(client, f"/v1/agents/{removal.agent['id']}")


def _shared(block: Mapping[str, Any]) -> str | None:
    if is_managed(block) and (block.get("metadata") or {}).get("shared"):
        return "a fleet-wide shared block (declared under shared_blocks)"
    return None


def _used_elsewhere(client: Connection, agent: Mapping[str, Any], block_id: str) -> str | None:
    users = client.get(f"/v1/blocks/{block_id}/agents", include=LIGHT_AGENT, limit=10)
    others = sorted({user.get("name") or user["id"] for user in users if user["id"] != agent["id"]})
    return f"also used by {', '.join(others)}" if others else None


def _delete(client: Connection, path: str) -> None:
    try:
        client.delete(path)
    except LettaAPIError as error:
        if error.status != 404:
            raise
