"""A Letta API mocked with respx for the command tests: the agent and conversation they act on, and how to run
a command against it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main

BASE = "http://letta.test"
AGENT_ID = "agent-11111111-1111-4111-8111-111111111111"
OTHER_AGENT_ID = "agent-22222222-2222-4222-8222-222222222222"
CONV_ID = "conv-33333333-3333-4333-8333-333333333333"


def run(*args: str) -> Result:
    return CliRunner().invoke(
        main, list(args), env={"LETTA_BASE_URL": BASE, "LETTA_API_KEY": ""}, catch_exceptions=False
    )


def agent(**extra: Any) -> dict[str, Any]:
    return {
        "id": AGENT_ID,
        "name": "support-agent",
        "llm_config": {"model": "fake-echo-model", "handle": None, "context_window": 32000},
        "blocks": [{"id": "block-ctx", "label": "customer_context"}, {"id": "block-faq", "label": "faq"}],
        **extra,
    }


def conversation(conversation_id: str = CONV_ID, **extra: Any) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "agent_id": AGENT_ID,
        "summary": "Ticket #101",
        "in_context_message_ids": ["message-system"],
        "isolated_block_ids": [],
        "created_at": "2026-11-25T17:38:12.767871Z",
        "last_message_at": None,
        **extra,
    }


def message(kind: str, content: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "id": message_id or f"message-{content}",
        "message_type": kind,
        "content": content,
        "date": "2026-11-25T17:38:12+00:00",
    }


def sse(*events: Any) -> str:
    return "".join(f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n" for event in events)


# What Letta sends with a reply stream.
EVENT_STREAM = {"content-type": "text/event-stream"}


def requests(letta: respx.MockRouter, method: str) -> list[httpx.Request]:
    return [call.request for call in letta.calls if call.request.method == method]
