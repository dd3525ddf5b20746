"""Conversations against a fake Letta (respx): matched by summary, created for their agent (new or not), replaced
only while nobody has talked in them, and a create Letta refuses but half-does cleaned up."""

from __future__ import annotations

import pytest

from lettafleet.core import render_plan, resource_kinds
from lettafleet.core.engine.diagnostics import FleetError

FLEET = """
agents:
  - name: support
    llm_config: {model: letta/letta-free}
    system_prompt: {value: You help.}
    memory_blocks:
      - {name: customer, value: ""}
    conversations:
      - summary: Ticket 1
      - summary: Ticket 2
        isolated_blocks: [customer]
"""
TICKET_1 = 'agent.support.conversation["Ticket 1"]'
TICKET_2 = 'agent.support.conversation["Ticket 2"]'
COPY = f"{TICKET_2}.isolated_block.customer"


def existing_support(letta):
    """The agent of FLEET as an earlier apply made it, without conversations."""
    customer = letta.add_block("customer", "", metadata={"managed_by": "lettafleet", "agent": "support"})
    return letta.add_agent("support", system="You help.", blocks=[customer])


def test_missing_conversations_are_created_for_their_agent_with_their_isolated_copies(fleet, letta):
    agent = existing_support(letta)

    plan = fleet.plan(FLEET)

    assert fleet.actions(plan) == {
        "agent.support": "no-op",
        "agent.support.block.customer": "no-op",
        TICKET_1: "create",
        TICKET_2: "create",
        COPY: "create",
    }
    report = fleet.apply(plan)
    assert report.ok
    sent = {w.body["summary"]: (w.method, w.path, w.params, w.body) for w in letta.resource_writes}
    assert sent == {
        "Ticket 1": ("POST", "/v1/conversations/", {"agent_id": agent["id"]}, {"summary": "Ticket 1"}),
        "Ticket 2": (
            "POST",
            "/v1/conversations/",
            {"agent_id": agent["id"]},
            {"summary": "Ticket 2", "isolated_block_labels": ["customer"]},
        ),
    }
    assert len(letta.resource_writes) == 2
    [ticket_2] = [c for c in letta.conversations_of(agent) if c["summary"] == "Ticket 2"]
    assert len(ticket_2["isolated_block_ids"]) == 1


def test_a_new_agents_conversations_are_created_once_it_exists(fleet, letta):
    report = fleet.apply(fleet.plan(FLEET))

    assert report.ok
    agent = letta.agent_named("support")
    conversations = letta.writes_to("POST", "/v1/conversations/")
    assert [w.params["agent_id"] for w in conversations] == [agent["id"], agent["id"]]
    assert sorted(c["summary"] for c in letta.conversations_of(agent)) == ["Ticket 1", "Ticket 2"]


def test_conversations_are_matched_by_summary_and_others_are_left_alone(fleet, letta):
    fleet.apply(fleet.plan(FLEET))
    letta.add_conversation(letta.agent_named("support"), "Made by hand")

    plan = fleet.plan(FLEET)

    assert not plan.needs_attention
    assert not any("Made by hand" in address for address in fleet.actions(plan))


def test_two_conversations_with_one_summary_are_reported_and_the_oldest_used(fleet, letta):
    agent = existing_support(letta)
    oldest = letta.add_conversation(agent, "Ticket 1")
    newer = letta.add_conversation(agent, "Ticket 1")

    plan = fleet.plan(FLEET)

    [ambiguity] = plan.ambiguities
    assert ambiguity.address == TICKET_1
    assert ambiguity.ids == (oldest["id"], newer["id"]) and ambiguity.used == oldest["id"]
    assert "2 conversations of the agent have the summary 'Ticket 1'" in ambiguity.message
    assert "lettafleet delete conversation ID --force" in ambiguity.remedy


def test_a_create_letta_refuses_yet_half_does_is_removed_so_the_next_apply_makes_it_whole(fleet, letta):
    agent = existing_support(letta)
    similar = letta.add_conversation(agent, "Ticket 10")  # found by the summary search too, and not the one
    letta.add_conversation(agent, "Ticket 1")
    letta.refuse("POST", "/v1/conversations/", 400, "INVALID_ARGUMENT: no such block", done_anyway=True)

    report = fleet.apply(fleet.plan(FLEET))

    status, message = fleet.results(report)[TICKET_2]
    assert status == "failed" and "answered 400: INVALID_ARGUMENT: no such block" in message
    [delete] = letta.writes_to("DELETE")
    [half_made] = [w for w in letta.writes_to("POST") if w.body["summary"] == "Ticket 2"]
    assert delete.path.startswith("/v1/conversations/conv-")
    assert sorted(c["summary"] for c in letta.conversations_of(agent)) == ["Ticket 1", "Ticket 10"]
    assert similar["id"] in letta.conversations and half_made


def test_a_refused_create_that_made_nothing_deletes_nothing(fleet, letta):
    existing_support(letta)
    letta.refuse("POST", "/v1/conversations/", 400, "INVALID_ARGUMENT: no")

    report = fleet.apply(fleet.plan(FLEET))

    assert not report.ok and letta.writes_to("DELETE") == []


def test_a_conversation_without_its_isolated_copy_and_no_messages_is_replaced(fleet, letta):
    agent = existing_support(letta)
    letta.add_conversation(agent, "Ticket 1")
    old = letta.add_conversation(agent, "Ticket 2")  # made before the fleet declared the copy

    plan = fleet.plan(FLEET)

    change = plan.by_address()[TICKET_2]
    assert change.action.value == "replace"
    assert (
        change.detail == "replace (delete and create): it lacks its isolated copy of customer and has no messages yet"
    )
    report = fleet.apply(plan)
    assert report.ok
    delete, create = letta.resource_writes
    assert (delete.method, delete.path) == ("DELETE", f"/v1/conversations/{old['id']}")
    assert create.body == {"summary": "Ticket 2", "isolated_block_labels": ["customer"]}
    assert not fleet.plan(FLEET).needs_attention


def test_a_conversation_someone_talked_in_since_the_plan_is_not_replaced(fleet, letta):
    agent = existing_support(letta)
    letta.add_conversation(agent, "Ticket 1")
    old = letta.add_conversation(agent, "Ticket 2")
    plan = fleet.plan(FLEET)
    letta.talk_in(old)

    report = fleet.apply(plan)

    assert fleet.results(report)[TICKET_2] == (
        "failed",
        f"{TICKET_2}: conversation {old['id']} has messages now, so it was not replaced; plan again",
    )
    assert letta.resource_writes == [] and old["id"] in letta.conversations


def test_a_conversation_with_messages_is_kept_and_its_missing_copy_reported_as_drift(fleet, letta):
    agent = existing_support(letta)
    letta.add_conversation(agent, "Ticket 1")
    old = letta.add_conversation(agent, "Ticket 2", talked=True)

    plan = fleet.plan(FLEET)

    assert plan.by_address()[TICKET_2].action.value == "no-op"
    copy = plan.by_address()[COPY]
    assert copy.action.value == "no-op"
    assert "exists without an isolated copy of this block and has messages" in copy.drift
    assert f"lettafleet delete conversation {old['id']} --force" in copy.drift
    assert plan.has_drift
    fleet.apply(plan)
    assert letta.resource_writes == []


def test_a_summary_declared_twice_differently_for_one_agent_is_refused(fleet):
    with pytest.raises(FleetError) as raised:
        fleet.load(FLEET.replace("summary: Ticket 2", "summary: Ticket 1"))

    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert ":9:9: conversation 'Ticket 1' is declared twice for agent 'support', differently" in error
    assert "keep one entry with the settings you mean" in error


def test_a_conversation_repeated_as_is_is_planned_once_with_a_note_at_the_repeat(fleet, letta):
    existing_support(letta)
    text = FLEET.replace("      - summary: Ticket 2\n", "      - summary: Ticket 1\n      - summary: Ticket 2\n")

    [note] = [note for note in fleet.load(text).notes if "conversation" in note.message]
    plan = fleet.plan(text)

    assert (note.line, note.column) == (9, 9)
    assert "it is the same conversation, made once" in note.message
    assert [c.address for c in plan.changes if c.kind == "conversation"] == [TICKET_1, TICKET_2]


# Removal: what the record says an apply made, and the file no longer declares.

NONE_LEFT = FLEET.split("    conversations:")[0]


def applied_support(fleet, letta, text: str = FLEET):
    """FLEET applied: the agent with both conversations, recorded on it."""
    report = fleet.apply(fleet.plan(text))
    assert report.ok, fleet.results(report)
    agent = letta.agent_named("support")
    return agent, {c["summary"]: c for c in letta.conversations_of(agent)}


def test_a_conversation_removed_from_the_file_without_messages_is_deleted_by_default(fleet, letta):
    agent, made = applied_support(fleet, letta)
    runtime = letta.add_conversation(agent, "Made at runtime", talked=False)

    plan = fleet.plan(NONE_LEFT)

    removal = plan.by_address()[TICKET_2]
    assert (removal.action.value, removal.held) == ("delete", None)
    assert removal.before == {"summary": "Ticket 2", "messages": 0, "isolated_copies": 1}
    assert removal.detail == "it has no messages; its 1 isolated copy goes with it"
    report = fleet.apply(plan)
    assert report.ok, fleet.results(report)
    assert sorted((w.method, w.path) for w in letta.resource_writes) == [
        ("DELETE", f"/v1/conversations/{made['Ticket 1']['id']}"),
        ("DELETE", f"/v1/conversations/{made['Ticket 2']['id']}"),
    ]
    assert made["Ticket 2"]["isolated_block_ids"][0] not in letta.blocks
    assert [c["id"] for c in letta.conversations_of(agent)] == [runtime["id"]]
    assert not fleet.plan(NONE_LEFT).needs_attention


def test_a_removed_conversation_with_messages_is_held_until_prune(fleet, letta):
    _, made = applied_support(fleet, letta)
    letta.talk_in(made["Ticket 1"])

    plan = fleet.plan(NONE_LEFT)

    held = plan.by_address()[TICKET_1]
    assert (held.action.value, held.held, held.detail) == ("delete", "prune", "it holds 2 messages")
    assert "`--prune` (or `prune: true` in the fleet file) deletes it" in held.drift
    assert plan.counts["conversation"] == {"held": 1, "delete": 1}
    fleet.apply(plan)
    assert made["Ticket 1"]["id"] in letta.conversations and made["Ticket 2"]["id"] not in letta.conversations

    pruned = fleet.plan("prune: true\n" + NONE_LEFT)
    assert (pruned.by_address()[TICKET_1].action.value, pruned.by_address()[TICKET_1].held) == ("delete", None)
    assert fleet.apply(pruned).ok
    assert made["Ticket 1"]["id"] not in letta.conversations
    assert not fleet.plan(NONE_LEFT).needs_attention


def test_a_removal_planned_empty_is_refused_when_someone_talked_in_it_since(fleet, letta):
    _, made = applied_support(fleet, letta)
    plan = fleet.plan("prune: true\n" + NONE_LEFT)
    letta.talk_in(made["Ticket 1"])

    report = fleet.apply(plan)

    assert fleet.results(report)[TICKET_1] == (
        "failed",
        f"{TICKET_1}: conversation {made['Ticket 1']['id']} has messages now, so it was not removed; plan again",
    )
    assert made["Ticket 1"]["id"] in letta.conversations


def test_a_runtime_conversation_with_a_declared_summary_is_never_removed(fleet, letta):
    agent, made = applied_support(fleet, letta)
    runtime = letta.add_conversation(agent, "Ticket 1")

    plan = fleet.plan("prune: true\n" + NONE_LEFT)

    assert plan.by_address()[TICKET_1].id == made["Ticket 1"]["id"]
    fleet.apply(plan)
    assert [c["id"] for c in letta.conversations_of(agent)] == [runtime["id"]]
    assert not fleet.plan("prune: true\n" + NONE_LEFT).needs_attention


def test_the_conversation_the_last_apply_made_is_the_declared_one_among_equal_summaries(fleet, letta):
    agent, made = applied_support(fleet, letta)
    renamed = letta.add_conversation(agent, "Notes")
    renamed["created_at"] = "2026-01-01T00:00:00Z"
    letta.conversations = {renamed["id"]: renamed, **letta.conversations}  # listed first, as an older one is
    renamed["summary"] = "Ticket 1"

    plan = fleet.plan(FLEET)

    [ambiguity] = plan.ambiguities
    assert ambiguity.used == made["Ticket 1"]["id"]
    assert "the plan uses the one the last apply made" in ambiguity.message


def test_a_conversation_already_gone_is_not_planned_for_removal_and_the_record_forgets_it(fleet, letta):
    _, made = applied_support(fleet, letta)
    letta.conversations.pop(made["Ticket 1"]["id"])
    without = FLEET.replace("      - summary: Ticket 1\n", "")

    plan = fleet.plan(without)

    assert TICKET_1 not in plan.by_address()
    [repair] = [change for change in plan.changes if change.changes_something]
    assert repair.kind == "agent" and repair.changed_fields() == ["record"]  # it names the one gone no more
    assert fleet.apply(plan).ok
    assert not fleet.plan(without).has_changes


def test_a_protected_conversation_is_not_removed_even_with_prune(fleet, letta):
    protected = FLEET.replace("      - summary: Ticket 1\n", "      - {summary: Ticket 1, protect: true}\n")
    _, made = applied_support(fleet, letta, protected)

    plan = fleet.plan("prune: true\n" + NONE_LEFT)

    change = plan.by_address()[TICKET_1]
    assert (change.action.value, change.held, change.protected) == ("delete", "protect", True)
    assert "protected (`protect: true` when it was last applied)" in change.drift
    fleet.apply(plan)
    assert made["Ticket 1"]["id"] in letta.conversations


def test_protecting_a_declared_conversation_is_planned_and_recorded_without_touching_it(fleet, letta):
    applied_support(fleet, letta)
    protected = FLEET.replace("      - summary: Ticket 1\n", "      - {summary: Ticket 1, protect: true}\n")

    plan = fleet.plan(protected)

    change = plan.by_address()[TICKET_1]
    assert (change.action.value, change.before, change.after) == (
        "update",
        {"summary": "Ticket 1", "protect": False},
        {"summary": "Ticket 1", "protect": True},
    )
    assert fleet.apply(plan).ok
    assert letta.resource_writes == [] and len(letta.record_writes) == 1
    assert not fleet.plan(protected).needs_attention


def test_a_declared_conversation_someone_archived_is_matched_and_reported_as_drift(fleet, letta, manager):
    agent = existing_support(letta)
    ticket_1 = letta.add_conversation(agent, "Ticket 1", talked=True)
    letta.add_conversation(agent, "Ticket 2", copies=["customer"])
    letta.archive(ticket_1)

    plan = fleet.plan(FLEET)

    [change] = [c for c in plan.changes if c.address == TICKET_1]
    assert (change.action.value, change.id) == ("no-op", ticket_1["id"])  # matched, not created again
    assert change.drift and change.drift.startswith("archived on the server")
    assert 'conversation "Ticket 1": archived on the server' in render_plan(plan, resource_kinds(manager))
    assert plan.needs_attention and not plan.has_changes
    fleet.apply(plan)
    assert not [write for write in letta.writes if "/conversations/" in write.path]  # not recreated nor unarchived
    assert len(letta.conversations) == 2 and ticket_1["archived"]
