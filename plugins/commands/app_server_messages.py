"""The message commands on an App Server, over its protocol: read a conversation's messages, send one and stream
the reply (approving or refusing the tools the agent asks to run), compact older ones. Without
`--conversation-id` they act on the agent's own conversation (`default`), the App Server's legacy history."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import rich_click as click

from lettafleet.core import INTERRUPTED_EXIT, LettaError
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError
from lettafleet.plugins.backends.app_server.turns import run_turn
from lettafleet.plugins.commands.app_server_lookup import (
    AGENT_OWN_CONVERSATION,
    app_conversation_of,
    find_app_agent,
)
from lettafleet.plugins.commands.histories import SYSTEM
from lettafleet.plugins.commands.replies import ReplyPrinter

MESSAGE_PAGE = 100
# Letta Code puts reminders for the model (device, agent, time) around what the user typed.
SYSTEM_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>\s*", re.DOTALL)


def conversation_for(app: AppServerClient, agent_name: str, conversation_id: str | None) -> tuple[dict[str, Any], str]:
    """The agent and the conversation a command acts on: the one named (checked to be the agent's), or its own."""
    agent = find_app_agent(app, agent_name)
    if conversation_id:
        app_conversation_of(app, agent, conversation_id)
        return agent, conversation_id
    return agent, AGENT_OWN_CONVERSATION


def where(agent: Mapping[str, Any], conversation_id: str) -> str:
    if conversation_id == AGENT_OWN_CONVERSATION:
        return f"the agent's own conversation of {agent.get('name')}"
    return f"conversation {conversation_id}"


def read_messages(
    app: AppServerClient, agent_id: str, conversation_id: str, *, with_system: bool, limit: int | None
) -> list[dict[str, Any]]:
    """The conversation's messages oldest first: the `limit` most recent (system messages aside unless asked),
    or all of them (`limit=None`)."""
    wanted: list[dict[str, Any]] = []
    for message in _newest_first(app, agent_id, conversation_id):
        if with_system or message.get("message_type") != SYSTEM:
            wanted.append(message)
            if limit is not None and len(wanted) == limit:
                break
    wanted.reverse()
    return wanted


def _newest_first(app: AppServerClient, agent_id: str, conversation_id: str) -> Iterator[dict[str, Any]]:
    """Page after page, newest first, following the server's `next_before` cursor while it says `has_more`."""
    query: dict[str, Any] = {"agent_id": agent_id, "order": "desc", "limit": MESSAGE_PAGE}
    while True:
        page = app.list_messages(conversation_id, **query)
        yield from page.get("messages") or ()
        if not page.get("has_more") or not page.get("next_before"):
            return
        query["before"] = page["next_before"]


def shown_text(message: Mapping[str, Any], text: str) -> str:
    """A message's text as a table shows it: a user message without the reminders Letta Code adds to it."""
    return SYSTEM_REMINDER.sub("", text).strip() if message.get("message_type") == "user_message" else text


def send(
    app: AppServerClient,
    agent: Mapping[str, Any],
    conversation_id: str,
    text: str,
    printer: ReplyPrinter,
    *,
    approve_tools: bool,
) -> None:
    """Send `text` and show the reply as it streams; every tool the agent asks to run is refused unless
    `approve_tools`, and each decision is shown."""
    turn = run_turn(app, agent["id"], conversation_id, text, approve_tools=approve_tools)
    try:
        with contextlib.closing(turn):  # closed early (Ctrl-C), the turn is stopped on the server
            for event in turn:
                printer.show(event)
    except KeyboardInterrupt:
        printer.finish()
        click.echo(f"Interrupted: the agent's turn in {where(agent, conversation_id)} was stopped.", err=True)
        sys.exit(INTERRUPTED_EXIT)
    finally:
        printer.finish()  # ends the reply's line before any error is printed


def compact(
    app: AppServerClient, agent: Mapping[str, Any], conversation_id: str, model: str | None, mode: str | None
) -> tuple[dict[str, Any], str]:
    """Summarize older messages; returns the server's counts and summary, and the model that wrote it."""
    settings: dict[str, Any] = {}
    if model:
        settings["model"] = model
    if mode:
        settings["mode"] = mode
    body: dict[str, Any] = {"agent_id": agent["id"]}
    if settings:
        body["compaction_settings"] = settings
    try:
        result = app.compact_conversation(conversation_id, body)
    except AppServerError as error:
        raise LettaError(
            f"could not compact {where(agent, conversation_id)}: {error.detail}. Check the agent's model "
            "(`lettafleet describe agent`), or send more messages first."
        ) from None
    return result, model or str(agent.get("model") or "the agent's own")
