"""`recompile` and `cancel-messages` over the App Server protocol (`conversation_recompile`, `abort_message`), with
V1's output shapes. The agent's own conversation (`default`) stands for V1's legacy history; the server names no
run, so `cancel-messages` reports per conversation what it stopped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lettafleet.core import ConversationRecompile
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError
from lettafleet.plugins.commands.app_server_lookup import AGENT_OWN_CONVERSATION, app_conversation_of

CANCELLED = "cancelled"


def histories(app: AppServerClient, agent: Mapping[str, Any], conversation_id: str | None) -> list[str]:
    """The conversation named (checked to be the agent's), else the agent's own and every one of its others."""
    if conversation_id:
        return [str(app_conversation_of(app, agent, conversation_id)["id"])]
    return [AGENT_OWN_CONVERSATION, *(str(c["id"]) for c in app.list_conversations(agent["id"]))]


def recompile_histories(
    app: AppServerClient, agent: Mapping[str, Any], conversation_id: str | None
) -> list[ConversationRecompile]:
    """Recompile each history of the agent; a refusal is that history's error, the others still go."""
    return [_recompiled(app, str(agent["id"]), history) for history in histories(app, agent, conversation_id)]


def _recompiled(app: AppServerClient, agent_id: str, conversation_id: str) -> ConversationRecompile:
    try:
        app.recompile_conversation(agent_id, conversation_id)
    except AppServerError as error:
        return ConversationRecompile(conversation_id, error=error.detail)
    return ConversationRecompile(conversation_id)


def cancel_turns(app: AppServerClient, agent: Mapping[str, Any], run_ids: list[str]) -> dict[str, str]:
    """Stop the turn running in each of the agent's conversations (only the runs named, when some are): the
    conversations a turn was stopped in, each `cancelled`. Nothing running is an empty answer."""
    wanted: list[str | None] = [*run_ids] or [None]
    stopped: dict[str, str] = {}
    for conversation_id in histories(app, agent, None):
        runtime = {"agent_id": agent["id"], "conversation_id": conversation_id}
        if any(app.abort(runtime, run_id=run_id) for run_id in wanted):
            stopped[conversation_id] = CANCELLED
    return stopped
