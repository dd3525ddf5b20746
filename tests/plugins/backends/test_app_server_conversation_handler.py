"""The App Server's conversation handler without a server: declared conversations pass the backend's checks, the
record names a conversation by id and creation time, duplicates pick the recorded one, removals archive."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lettafleet.core import Action, Recorded, Resource
from lettafleet.core.engine.capabilities import check_capabilities
from lettafleet.core.engine.validation import load_fleet
from lettafleet.core.letta.connection import RequestStats
from lettafleet.plugins.backends.app_server.conversations import (
    AppServerConversationHandler,
    exported_conversations,
    match_declared,
    recorded_id,
    server_id,
)
from lettafleet.plugins.backends.app_server.fleet_connection import AppServerConnection
from lettafleet.plugins.resources.conversations import CONVERSATION, conversation_address

AGENT = "agent.support"
FLEET = """
agents:
  - name: support
    llm_config: {model: openai/gpt-4o-mini}
    system_prompt: {value: You help.}
    conversations:
      - summary: Ticket 1
      - summary: Ticket 2
        protect: true
"""


def conversation(number: int, created_at: str, summary: str = "Ticket 1", **extra: Any) -> dict[str, Any]:
    return {"id": f"local-conv-{number}", "summary": summary, "created_at": created_at} | extra


def test_declared_conversations_pass_the_app_servers_checks(manager, write_fleet):
    fleet = load_fleet(write_fleet(FLEET), manager)

    assert check_capabilities(fleet, manager, manager.backend_for("ws://127.0.0.1:4617")) == ()
    desired = list(AppServerConversationHandler().desired(fleet))
    assert [(r.address, r.protected) for r in desired] == [
        (conversation_address("Ticket 1", AGENT), False),
        (conversation_address("Ticket 2", AGENT), True),
    ]


def test_the_record_names_a_conversation_by_its_id_and_creation_time_and_gives_back_the_servers_id():
    made = conversation(3, "2026-12-07T14:49:36.119Z")

    assert recorded_id(made) == "local-conv-3@2026-12-07T14:49:36.119Z"
    assert server_id(recorded_id(made)) == "local-conv-3"


def test_of_equal_summaries_the_plan_uses_the_one_the_record_names_not_one_that_reuses_its_id():
    address = conversation_address("Ticket 1", AGENT)
    oldest = conversation(1, "2026-12-07T10:00:00.000Z")
    made = conversation(2, "2026-12-07T11:00:00.000Z")
    entry = Recorded('conversation["Ticket 1"]', CONVERSATION, recorded_id(made))

    resource, ambiguity = match_declared(address, AGENT, [oldest, made], entry)

    assert isinstance(resource, Resource) and resource.id == recorded_id(made)
    assert "the plan uses the one the last apply made, local-conv-2, and leaves local-conv-1 alone" in str(
        ambiguity.message
    )
    # The same id made at another time (the server counted from 1 again) is not the recorded conversation.
    reused = conversation(2, "2026-12-08T09:00:00.000Z")
    resource, ambiguity = match_declared(address, AGENT, [oldest, reused], entry)
    assert isinstance(resource, Resource) and resource.id == recorded_id(oldest)
    assert "the plan uses the oldest, local-conv-1" in str(ambiguity.message)


@pytest.mark.parametrize(
    ("messages", "held", "said"),
    [(False, None, "it has no messages; it is archived"), (True, "prune", "it has messages; it is archived, not")],
)
def test_a_conversation_taken_out_of_the_file_is_archived_and_one_with_messages_waits_for_prune(messages, held, said):
    live = Resource(
        conversation_address("Ticket 1", AGENT),
        CONVERSATION,
        "Ticket 1",
        {"summary": "Ticket 1", "messages": messages},
        parent=AGENT,
        id="local-conv-1@2026-12-07T10:00:00.000Z",
    )

    change = AppServerConversationHandler().diff(None, live)

    assert change.action is Action.DELETE and change.held == held
    assert change.detail.startswith(said) and "the App Server has no delete" in change.detail


def test_a_declared_conversation_archived_on_the_server_is_drift_never_a_create():
    address = conversation_address("Ticket 1", AGENT)
    desired = Resource(address, CONVERSATION, "Ticket 1", {"summary": "Ticket 1", "protect": False}, parent=AGENT)
    [live] = match_declared(address, AGENT, [conversation(1, "2026-12-07T10:00:00.000Z", archived=True)], None)
    assert isinstance(live, Resource)

    change = AppServerConversationHandler().diff(desired, live)

    assert change.action is Action.NO_OP
    assert change.drift is not None and change.drift.startswith("archived on the App Server")


class OneConversation:
    """An App Server client stand-in holding one conversation, `local-conv-1` made at `created_at`."""

    base_url = "ws://127.0.0.1:4617"

    def __init__(self, created_at: str) -> None:
        self.created_at = created_at
        self.stats = RequestStats()
        self.archived: list[str] = []

    def retrieve_conversation(self, conversation_id: str) -> dict[str, Any]:
        return conversation(1, self.created_at, id=conversation_id)

    def archive_conversation(self, conversation_id: str) -> dict[str, Any]:
        self.archived.append(conversation_id)
        return {"id": conversation_id, "archived": True}


@pytest.mark.parametrize(("now", "archived"), [("2026-12-07T10:00:00.000Z", ["local-conv-1"]), ("2026-12-08", [])])
def test_a_saved_plans_archive_reaches_only_the_conversation_it_planned_not_a_newer_one_with_its_id(now, archived):
    planned = Resource(
        conversation_address("Ticket 1", AGENT),
        CONVERSATION,
        "Ticket 1",
        {"summary": "Ticket 1", "messages": False},
        parent=AGENT,
        id="local-conv-1@2026-12-07T10:00:00.000Z",
    )
    change = AppServerConversationHandler().diff(None, planned)
    server = OneConversation(created_at=now)  # the same conversation, or a newer one the server gave its id

    AppServerConversationHandler().apply(change, SimpleNamespace(client=AppServerConnection(server)))  # type: ignore[arg-type]

    assert server.archived == archived


def test_an_export_names_each_summary_once_as_a_plan_matches_it_and_says_which_the_record_lists():
    first, made = conversation(1, "2026-12-07T10:00:00Z"), conversation(2, "2026-12-07T11:00:00Z")
    gone = conversation(3, "2026-12-07T12:00:00Z", "Ticket 2", archived=True)
    chat = conversation(4, "2026-12-07T13:00:00Z", "a customer's chat")
    record = {
        'conversation["Ticket 1"]': Recorded('conversation["Ticket 1"]', CONVERSATION, recorded_id(made), protect=True),
        'conversation["Ticket 2"]': Recorded('conversation["Ticket 2"]', CONVERSATION, recorded_id(gone)),
    }

    entries = exported_conversations([first, made, gone, chat], record)

    # Ticket 2 is archived: a plan of the export leaves it alone, so it is not declared.
    assert entries == [({"summary": "Ticket 1", "protect": True}, True), ({"summary": "a customer's chat"}, False)]
