"""Three things a client of Letta's conversations must do that the API does not say: clean up after a create Letta
refused yet half-did, check that a server did not ignore the isolated copies it was asked for, and recompile
conversations after their agent's prompt or blocks changed. Every plugin that creates conversations uses these,
so each workaround lives in one place."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from lettafleet.core.letta.client import LettaClient

# What a server that makes no isolated copies ignores, and which servers make them. Hosted Letta dropped isolated
# blocks on 2026-04-23: it accepts the labels and makes no copies.
ISOLATED_LABELS = "isolated_block_labels (Letta 0.16.4 to 0.16.x supports them)"


def remove_half_created(client: LettaClient, agent_id: str, summary: str | None, keep: Collection[str] = ()) -> None:
    """Letta 0.16.8 answers 400 to a conversation create it partly refused (an unknown isolated label) and keeps
    the conversation all the same, without what it refused. Delete the agent's conversations with this summary
    but those in `keep` (the ones there before the create), so the next try makes it whole."""
    search = {"summary_search": summary} if summary else {}
    for conversation in client.list_all("/v1/conversations/", agent_id=agent_id, **search):
        if conversation.get("summary") == summary and conversation["id"] not in keep:
            client.delete(f"/v1/conversations/{conversation['id']}")


def lacks_isolated_copies(answer: Mapping[str, Any], labels: Sequence[str]) -> bool:
    """Whether a created conversation has fewer isolated copies than it was asked for: the server ignored them."""
    return len(answer.get("isolated_block_ids") or []) < len(labels)


def recompile_conversations(client: LettaClient, agent_id: str) -> int:
    """Rebuild the system message of each of the agent's conversations from its prompt and blocks as they are now;
    return how many. Letta compiles them into a conversation when it starts and keeps that copy, so a changed
    system prompt or block reaches a running conversation only this way (0.16.8 rebuilds the agent's own)."""
    conversations = client.list_all("/v1/conversations/", agent_id=agent_id)
    for conversation in conversations:
        client.post(f"/v1/conversations/{conversation['id']}/recompile")
    return len(conversations)
