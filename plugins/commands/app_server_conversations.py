"""The conversation commands on an App Server (`ws://`), over its protocol: the same records as on V1, and a clear
word where the App Server has no counterpart (isolated blocks, delete)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lettafleet.core import LettaError
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.commands.app_server_lookup import find_app_agent, find_app_conversation

MESSAGE_PAGE = 100
COUNT_WORKERS = 8
SYSTEM = "system_message"
NO_ISOLATED_BLOCKS = "the App Server has no isolated blocks: every conversation of an agent shares the agent's memory"
NO_DELETE = (
    "the App Server has no delete for conversations: archive it instead (Letta Code's conversation list, or take it "
    "out of the fleet file if an apply made it: apply archives it)"
)


def count_messages_of(app: AppServerClient, conversation_id: str) -> int:
    """Messages in the conversation's history, system messages aside (the server pages them newest first)."""
    count, query = 0, {"limit": MESSAGE_PAGE}
    while True:
        page = app.call("conversation_messages_list", conversation_id=conversation_id, query=query)
        messages = page.get("messages") or []
        count += sum(1 for message in messages if message.get("message_type") != SYSTEM)
        if not page.get("has_more") or not page.get("next_before"):
            return count
        query = {"limit": MESSAGE_PAGE, "before": page["next_before"]}


def agent_conversations(app: AppServerClient, name_or_id: str) -> tuple[dict[str, Any], list[tuple[Any, int]]]:
    """The agent and each of its conversations (archived ones too, oldest first) with its message count."""
    agent = find_app_agent(app, name_or_id)
    conversations = sorted(
        app.list_conversations(str(agent["id"])), key=lambda c: (str(c.get("created_at") or ""), c["id"])
    )
    with ThreadPoolExecutor(max_workers=COUNT_WORKERS) as pool:
        counts = list(pool.map(lambda c: count_messages_of(app, str(c["id"])), conversations))
    return agent, list(zip(conversations, counts, strict=True))


def conversation_with_agent(app: AppServerClient, conversation_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One conversation by id, with its agent."""
    conversation = find_app_conversation(app, conversation_id)
    return conversation, app.retrieve_agent(str(conversation["agent_id"]))


def create_on_app_server(
    app: AppServerClient, name_or_id: str, summary: str | None, labels: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent, and the conversation made for it. Isolated blocks are refused before anything is made."""
    if labels:
        raise LettaError(
            f"--isolated-block: {NO_ISOLATED_BLOCKS}. To isolate blocks, give the conversation an agent of its own. "
            "Nothing was created."
        )
    agent = find_app_agent(app, name_or_id)
    return agent, app.create_conversation(str(agent["id"]), summary)


def refuse_delete(conversation_id: str, base_url: str) -> LettaError:
    return LettaError(f"conversation {conversation_id} on {base_url}: {NO_DELETE}. Nothing was deleted.")
