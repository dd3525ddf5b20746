"""The conversation commands' App Server side without a server: message counts page through the whole history,
and isolated blocks are refused before the server is asked anything."""

from __future__ import annotations

from typing import Any

import pytest

from lettafleet.core import LettaError
from lettafleet.plugins.commands.app_server_conversations import count_messages_of, create_on_app_server


class PagedHistory:
    """An App Server client stand-in answering `conversation_messages_list` in pages, newest first."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages  # oldest first
        self.asked: list[dict[str, Any]] = []
        self.base_url = "ws://127.0.0.1:4617"

    def call(self, request_type: str, **fields: Any) -> dict[str, Any]:
        assert request_type == "conversation_messages_list"
        query = fields["query"]
        self.asked.append(query)
        older = [m for m in self.messages if "before" not in query or m["id"] < query["before"]]
        page = list(reversed(older))[: query["limit"]]
        return {"messages": page, "next_before": page[-1]["id"] if page else None, "has_more": len(older) > len(page)}


def test_a_message_count_reads_every_page_and_leaves_system_messages_out():
    messages = [{"id": f"m{n:04}", "message_type": "user_message"} for n in range(1, 251)]
    messages[0]["message_type"] = "system_message"
    history = PagedHistory(messages)

    assert count_messages_of(history, "local-conv-1") == 249  # type: ignore[arg-type]
    assert [query.get("before") for query in history.asked] == [None, "m0151", "m0051"]


def test_isolated_blocks_are_refused_before_the_app_server_is_asked_anything():
    history = PagedHistory([])

    with pytest.raises(LettaError, match=r"the App Server has no isolated blocks.*Nothing was created"):
        create_on_app_server(history, "support", "Ticket 1", ["notes"])  # type: ignore[arg-type]
    assert history.asked == []
