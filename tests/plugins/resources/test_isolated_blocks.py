"""Isolated blocks against a fake Letta (respx): copies ride along in their conversation's create request, copies
the fleet does not declare are drift (or go with a replaced conversation), and what validate refuses."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.letta.connection import LettaAPIError

FLEET = """
agents:
  - name: support
    llm_config: {model: letta/letta-free}
    system_prompt: {value: You help.}
    memory_blocks:
      - {name: customer, value: ""}
      - {name: faq, value: FAQ}
    conversations:
      - summary: Ticket
        isolated_blocks: [customer]
"""
TICKET = "agent.support.conversation.Ticket"


def existing_support(letta):
    """The agent of FLEET as an earlier apply made it, without its conversation."""
    blocks = [
        letta.add_block(label, value, metadata={"managed_by": "lettafleet", "agent": "support"})
        for label, value in (("customer", ""), ("faq", "FAQ"))
    ]
    return letta.add_agent("support", system="You help.", blocks=blocks)


def test_a_new_conversations_copies_ride_along_in_its_create_request(fleet, letta):
    report = fleet.apply(fleet.plan(FLEET))

    assert fleet.results(report)[f"{TICKET}.isolated_block.customer"] == ("applied", f"created with {TICKET}")
    [create] = letta.writes_to("POST", "/v1/conversations/")
    assert create.body == {"summary": "Ticket", "isolated_block_labels": ["customer"]}


def test_a_server_that_ignores_isolated_block_labels_fails_the_copy_and_says_which_versions_work(fleet, letta):
    letta.ignores_isolated_labels = True

    report = fleet.apply(fleet.plan(FLEET))

    status, message = fleet.results(report)[f"{TICKET}.isolated_block.customer"]
    assert status == "failed"
    assert message == (
        "the server created conversation 'Ticket' without an isolated copy of 'customer': it ignores "
        "isolated_block_labels (Letta 0.16.4 to 0.16.x supports them)"
    )


def test_a_copy_the_fleet_does_not_declare_in_a_conversation_with_messages_is_drift_and_left_alone(fleet, letta):
    agent = existing_support(letta)
    talked = letta.add_conversation(agent, "Ticket", copies=["customer", "faq"], talked=True)

    plan = fleet.plan(FLEET)

    faq = plan.by_address()[f"{TICKET}.isolated_block.faq"]
    assert faq.action.value == "no-op"
    assert faq.drift == (
        "the conversation has an isolated copy of this block that the fleet does not declare, and has messages, so "
        "apply does not replace it (a copy cannot be removed in place). To drop the copy, delete the conversation "
        f"(its messages go with it): `lettafleet delete conversation {talked['id']} --force`, then apply again"
    )
    assert plan.by_address()[f"{TICKET}.isolated_block.customer"].drift is None
    fleet.apply(plan)
    assert letta.resource_writes == []


def test_a_replaced_conversation_loses_its_undeclared_copies_with_it(fleet, letta):
    agent = existing_support(letta)
    old = letta.add_conversation(agent, "Ticket", copies=["faq"])  # no messages: it is replaced

    plan = fleet.plan(FLEET)

    assert plan.by_address()[TICKET].action.value == "replace"
    faq = plan.by_address()[f"{TICKET}.isolated_block.faq"]
    assert (faq.action.value, faq.before, faq.after) == ("delete", {"isolated": True}, None)
    assert plan.by_address()[f"{TICKET}.isolated_block.customer"].action.value == "create"
    report = fleet.apply(plan)
    assert report.ok
    # Letta deletes the copy with its conversation: no request of its own.
    assert [(w.method, w.path) for w in letta.resource_writes] == [
        ("DELETE", f"/v1/conversations/{old['id']}"),
        ("POST", "/v1/conversations/"),
    ]
    assert not fleet.plan(FLEET).needs_attention


def test_an_undeclared_copy_is_named_by_its_label_read_once(fleet, letta):
    agent = existing_support(letta)
    conversation = letta.add_conversation(agent, "Ticket", copies=["customer", "faq"], talked=True)
    [faq_copy] = [i for i in conversation["isolated_block_ids"] if letta.blocks[i]["label"] == "faq"]

    plan = fleet.plan(FLEET)

    assert plan.by_address()[f"{TICKET}.isolated_block.faq"].id == faq_copy
    assert letta.reads.count(f"/v1/blocks/{faq_copy}") == 1


def test_a_copy_the_server_no_longer_has_is_named_by_its_id(fleet, letta):
    agent = existing_support(letta)
    conversation = letta.add_conversation(agent, "Ticket", copies=["customer", "faq"], talked=True)
    gone = next(i for i in conversation["isolated_block_ids"] if letta.blocks[i]["label"] == "faq")
    letta.blocks.pop(gone)

    plan = fleet.plan(FLEET)

    assert plan.by_address()[f"{TICKET}.isolated_block.{gone}"].drift is not None


def test_a_server_error_reading_a_copy_stops_the_plan(fleet, letta):
    agent = existing_support(letta)
    conversation = letta.add_conversation(agent, "Ticket", copies=["customer", "faq"], talked=True)
    faq_copy = next(i for i in conversation["isolated_block_ids"] if letta.blocks[i]["label"] == "faq")
    letta.refuse("GET", f"/v1/blocks/{faq_copy}", 500, "database is down")

    with pytest.raises(LettaAPIError, match="answered 500: database is down"):
        fleet.plan(FLEET)


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("[persona]", ":10:27: isolated block 'persona' is not a block of agent 'support'"),
        ("[persona]", "the agent's blocks are: customer, faq"),
        ("[customer, customer]", ":10:37: isolated block 'customer' is listed twice (list each label once)"),
    ],
)
def test_what_validate_refuses_in_isolated_blocks(fleet, listed, expected):
    with pytest.raises(FleetError) as raised:
        fleet.load(FLEET.replace("[customer]", listed))

    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert expected in error


def test_a_label_removed_from_the_file_replaces_the_conversation_while_nobody_talked_in_it(fleet, letta):
    fleet.apply(fleet.plan(FLEET))
    [old] = letta.conversations.values()
    without_copy = FLEET.replace("        isolated_blocks: [customer]\n", "")

    plan = fleet.plan(without_copy)

    ticket, copy = plan.by_address()[TICKET], plan.by_address()[f"{TICKET}.isolated_block.customer"]
    assert ticket.action.value == "replace"
    assert ticket.detail == (
        "replace (delete and create): it has an isolated copy the fleet does not declare and has no messages yet"
    )
    assert (copy.action.value, copy.before, copy.after) == ("delete", {"isolated": True}, None)
    assert fleet.apply(plan).ok
    [new] = letta.conversations.values()
    assert new["id"] != old["id"] and new["isolated_block_ids"] == []
    assert old["isolated_block_ids"][0] not in letta.blocks
    assert not fleet.plan(without_copy).needs_attention
