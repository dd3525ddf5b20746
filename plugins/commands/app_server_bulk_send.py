"""`send --all GLOB` on an App Server: each matching agent's own conversation gets the message over the protocol,
and every tool an agent asks to run on the server's host is refused unless the user passed --approve-tools."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from lettafleet.core import LettaError
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.turns import APPROVAL_DECISION, run_turn
from lettafleet.plugins.commands.app_server_lookup import AGENT_OWN_CONVERSATION
from lettafleet.plugins.commands.histories import message_text
from lettafleet.plugins.commands.replies import stream_error

# The local backend keeps one active run per conversation id, and every agent's own conversation has the id
# `default`: a second agent's turn there fails ("Conversation default already has an active run") until the
# first ends. So the agents take turns, one after another.
OWN_CONVERSATION_TURNS_AT_ONCE = 1


def reply_text(events: Iterable[Mapping[str, Any]]) -> str:
    """The assistant's words: the pieces of one message (they stream with one id) joined, messages one a line."""
    pieces: dict[str, list[str]] = {}
    for event in events:
        if event.get("message_type") == "assistant_message":
            pieces.setdefault(str(event.get("id")), []).append(message_text(event))
    return "\n".join("".join(parts) for parts in pieces.values())


def send_one(app: AppServerClient, agent: Mapping[str, Any], message: str, *, approve_tools: bool) -> dict[str, Any]:
    """Send `message` to the agent's own conversation; its reply, the tools it asked for and what went wrong,
    never an exception (one agent's failure is its own line)."""
    events: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        turn = run_turn(app, agent["id"], AGENT_OWN_CONVERSATION, message, approve_tools=approve_tools)
        with contextlib.closing(turn):
            for event in turn:
                events.append(event)
                if event.get("message_type") == "error_message":
                    errors.append(stream_error(event))
    except LettaError as error:
        errors.append(str(error))
    decisions = [event for event in events if event.get("message_type") == APPROVAL_DECISION]
    return {
        "agent": agent.get("name"),
        "agent_id": agent["id"],
        "ok": not errors,
        "reply": reply_text(events),
        "error": "; ".join(errors) or None,
        "tools": [
            {"tool_name": d["tool_name"], "arguments": d["arguments"], "approved": d["approved"]} for d in decisions
        ],
    }
