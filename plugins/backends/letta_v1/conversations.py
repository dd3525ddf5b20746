"""Three things a client of Letta's conversations must do that the API does not say: clean up after a create Letta
refused yet half-did, check that a server did not ignore the isolated copies it was asked for, and recompile
conversations after their agent's prompt or blocks changed (never one with isolated copies). Every plugin and
command that does these uses them, so each workaround lives in one place."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from lettafleet.core import Connection, ConversationRecompile, LettaAPIError

# What a server that makes no isolated copies ignores, and which servers make them. Hosted Letta dropped isolated
# blocks on 2026-04-23: it accepts the labels and makes no copies.
ISOLATED_LABELS = "isolated_block_labels (Letta 0.16.4 to 0.16.x supports them)"


def remove_half_created(client: Connection, agent_id: str, summary: str | None, keep: Collection[str] = ()) -> None:
    """Letta 0.16.8 answers 400 to a conversation create it partly refused (an unknown isolated label) and keeps
    the conversation all the same, without what it refused. Delete the agent's conversations with this summary
    but those in `keep` (the ones there before the create), so the next try makes it whole."""
    search: dict[str, Any] = {"summary_search": summary} if summary else {}
    for conversation in client.list_all("/v1/conversations/", agent_id=agent_id, **search):
        if conversation.get("summary") == summary and conversation["id"] not in keep:
            client.delete(f"/v1/conversations/{conversation['id']}")


def lacks_isolated_copies(answer: Mapping[str, Any], labels: Sequence[str]) -> bool:
    """Whether a created conversation has fewer isolated copies than it was asked for: the server ignored them."""
    return len(answer.get("isolated_block_ids") or []) < len(labels)


# How Letta names an agent's own (legacy) history where a conversation id would go.
LEGACY_HISTORY = "default"

# Letta 0.16.8 recompiles a conversation from the agent's blocks, not from the conversation's isolated copies
# (checked on the dev server): the model would see the agent's value where it should see its own copy.
ISOLATED_SKIP = "skipped: it has isolated block copies, which Letta's recompile would replace by the agent's blocks"


def recompile_conversation(client: Connection, agent_id: str, conversation: Mapping[str, Any]) -> ConversationRecompile:
    """Rebuild one history's system message from the agent's prompt and blocks as they are now; the agent's own
    history when the conversation id is LEGACY_HISTORY. A conversation with isolated copies is left as it was."""
    conversation_id = conversation["id"]
    if conversation.get("isolated_block_ids"):
        return ConversationRecompile(conversation_id, skipped=ISOLATED_SKIP)
    path = (
        f"/v1/agents/{agent_id}/recompile"
        if conversation_id == LEGACY_HISTORY
        else f"/v1/conversations/{conversation_id}/recompile"
    )
    try:
        client.post(path)
    except LettaAPIError as error:
        return ConversationRecompile(conversation_id, error=str(error))
    return ConversationRecompile(conversation_id)


def recompile_conversations(
    client: Connection,
    agent_id: str,
    *,
    legacy: bool = False,
    conversations: Sequence[Mapping[str, Any]] | None = None,
) -> list[ConversationRecompile]:
    """Recompile each of the agent's conversations, oldest first (and its own history first when `legacy`).
    Letta compiles the prompt and blocks into a conversation when it starts and keeps that copy, so a changed
    system prompt or block reaches a running conversation only this way (0.16.8 rebuilds the agent's own history
    itself when its prompt or blocks change). A failed one does not stop the others. `conversations`: the agent's,
    when the caller has read them already (one list for many agents)."""
    if conversations is None:
        conversations = client.list_all("/v1/conversations/", agent_id=agent_id, order="asc")
    targets = [{"id": LEGACY_HISTORY}, *conversations] if legacy else conversations
    return [recompile_conversation(client, agent_id, conversation) for conversation in targets]


class V1Recompiler:
    """How the V1 backend rebuilds running conversations for core's apply (`Backend.recompiler`)."""

    def every_conversation(self, connection: Connection) -> list[dict[str, Any]]:
        return connection.list_all("/v1/conversations/", order="asc")

    def recompile(
        self, connection: Connection, agent_id: str, conversations: Sequence[Mapping[str, Any]] | None
    ) -> list[ConversationRecompile]:
        return recompile_conversations(connection, agent_id, conversations=conversations)
