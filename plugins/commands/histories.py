"""Where an agent's messages live (its own legacy history, or one of its conversations) and how they are read:
page by page, counted, and turned into readable text."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lettafleet.core import Connection, LettaAPIError, LettaError
from lettafleet.plugins.commands.agent_lookup import NotFoundError

COUNT_PAGE = 1000
COUNT_WORKERS = 8
SYSTEM = "system_message"


def get_conversation(client: Connection, conversation_id: str) -> dict[str, Any]:
    try:
        return client.get(f"/v1/conversations/{conversation_id}")
    except LettaAPIError as error:
        # 422: not shaped like a conversation id; 404: no such conversation.
        if error.status in (404, 422):
            raise NotFoundError(
                f"no conversation with id '{conversation_id}' on {client.base_url}. List an "
                "agent's conversations with `lettafleet get conversations AGENT`."
            ) from None
        raise


def conversation_of(client: Connection, agent: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
    """The conversation, checked to belong to `agent`: Letta would otherwise act on another agent's history."""
    conversation = get_conversation(client, conversation_id)
    if conversation.get("agent_id") != agent["id"]:
        raise LettaError(
            f"conversation {conversation_id} belongs to agent {conversation.get('agent_id')}, not to "
            f"{agent.get('name')} ({agent['id']}). Name the agent it belongs to."
        )
    return conversation


@dataclass(frozen=True)
class History:
    """Where one message history is read: an agent's own (legacy) history, or one conversation."""

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # Letta 0.16.8's agent message list returns a newest-first (`order=desc`) page in oldest-first order (it
    # reverses it twice); the conversation message list returns it newest first, as asked.
    desc_page_reversed: bool = False


def legacy_history(agent_id: str) -> History:
    # Without conversation_id Letta returns every message of the agent, conversations included; "default" is the
    # agent's own history only.
    return History(f"/v1/agents/{agent_id}/messages", {"conversation_id": "default"}, desc_page_reversed=True)


def conversation_history(conversation_id: str) -> History:
    return History(f"/v1/conversations/{conversation_id}/messages")


def read_messages(client: Connection, history: History, *, newest_first: bool, page: int) -> Iterator[dict[str, Any]]:
    """Messages page by page, oldest first or newest first, following Letta's message-id cursors."""
    cursor = None
    while True:
        if newest_first:
            batch = client.get(history.path, **history.params, order="desc", limit=page, before=cursor)
            batch = batch[::-1] if history.desc_page_reversed else batch
        else:
            batch = client.get(history.path, **history.params, order="asc", limit=page, after=cursor)
        yield from batch
        if len(batch) < page:
            return
        cursor = batch[-1]["id"]


def count_messages(client: Connection, conversation: Mapping[str, Any]) -> int:
    """Messages in a conversation's history, system messages aside (what `get messages` lists by default).

    `in_context_message_ids` is no count: compaction shrinks it while the history keeps every message. A
    conversation that was never sent a message holds only its system message, so it costs no request.
    """
    if not conversation.get("last_message_at") and len(conversation.get("in_context_message_ids") or []) <= 1:
        return 0
    history = conversation_history(conversation["id"])
    messages = read_messages(client, history, newest_first=False, page=COUNT_PAGE)
    return sum(1 for message in messages if message.get("message_type") != SYSTEM)


def count_all(client: Connection, conversations: list[dict[str, Any]]) -> list[int]:
    # One request per conversation that has messages (Letta has no message count); they run side by side.
    with ThreadPoolExecutor(max_workers=COUNT_WORKERS) as pool:
        return list(pool.map(lambda conversation: count_messages(client, conversation), conversations))


def message_text(message: Mapping[str, Any]) -> str:
    """The readable part of any Letta message type."""
    kind = message.get("message_type")
    if kind == "reasoning_message":
        return message.get("reasoning") or ""
    if kind == "hidden_reasoning_message":
        return "(hidden reasoning)"
    if kind in ("tool_call_message", "approval_request_message"):
        return "; ".join(f"{call.get('name')}({call.get('arguments') or ''})" for call in tool_calls(message))
    if kind == "tool_return_message":
        return str(message.get("tool_return") or "")
    if kind == "summary_message":
        return message.get("summary") or ""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else json.dumps(content) if content is not None else ""


def tool_calls(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A tool-call message's calls: `tool_calls` is a list, or one delta while streaming; `tool_call` is older."""
    calls = message.get("tool_calls") or message.get("tool_call") or []
    return [calls] if isinstance(calls, dict) else list(calls)


def short_type(message: Mapping[str, Any]) -> str:
    return str(message.get("message_type") or "?").removesuffix("_message")
