"""Memory blocks against a fake Letta (respx): `agent_owned` (seeded once, or the fleet's truth), shared blocks
attached by name, a new agent's blocks riding along in its create request, blocks an interrupted apply left
unattached, the ambiguities a plan reports, and what validate refuses."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.diagnostics import FleetError

OWN_ONLY = """
agents:
  - name: support
    llm_config: {model: letta/letta-free}
    system_prompt: {value: You help.}
    memory_blocks:
      - {name: notes, value: seed, limit: 500}
      - {name: facts, value: fleet truth, description: Facts, agent_owned: false}
"""
FLEET = (
    "shared_blocks:\n  - {name: policies, value: Be kind., agent_owned: false}"
    + OWN_ONLY
    + "    shared_blocks: [policies]\n"
)
MARKER = {"managed_by": "lettafleet"}


def errors_of(fleet, text: str) -> list[str]:
    with pytest.raises(FleetError) as raised:
        fleet.load(text)
    return [str(diagnostic) for diagnostic in raised.value.diagnostics]


def support_with_blocks(letta, facts: str = "fleet truth", notes: str = "seed", **agent_fields):
    """The agent of OWN_ONLY as an earlier apply made it, with these block values."""
    blocks = [
        letta.add_block("notes", notes, limit=500, metadata={**MARKER, "agent": "support"}),
        letta.add_block("facts", facts, description="Facts", metadata={**MARKER, "agent": "support"}),
    ]
    return letta.add_agent("support", system="You help.", blocks=blocks, **agent_fields), blocks


def test_a_new_agent_gets_its_own_blocks_inside_its_create_request_and_shared_ones_by_id(fleet, letta):
    plan = fleet.plan(FLEET)

    assert set(fleet.actions(plan).values()) == {"create"}
    report = fleet.apply(plan)

    assert report.ok
    shared, agent = letta.resource_writes  # no request of their own for the agent's blocks
    assert (shared.path, shared.body) == (
        "/v1/blocks/",
        {"label": "policies", "value": "Be kind.", "metadata": {**MARKER, "shared": True}},
    )
    assert agent.path == "/v1/agents/"
    marks = ["managed_by:lettafleet"]  # as tags: Letta drops the metadata of blocks made this way, not their tags
    assert agent.body["memory_blocks"] == [
        {"label": "facts", "value": "fleet truth", "description": "Facts", "tags": marks},
        {"label": "notes", "value": "seed", "limit": 500, "tags": marks},
    ]
    ids = {block["label"]: block["id"] for block in letta.blocks.values()}
    assert agent.body["block_ids"] == [ids["policies"]]
    assert fleet.results(report)["agent.support.block.notes"] == ("applied", "created with agent.support")


def test_the_agents_record_names_the_blocks_made_inside_its_create_request_by_id(fleet, letta):
    fleet.apply(fleet.plan(OWN_ONLY))

    [agent] = letta.agents.values()
    recorded = {entry["address"]: entry["id"] for entry in agent["metadata"]["lettafleet_applied"]}
    ids = {block["label"]: block["id"] for block in letta.blocks.values()}
    assert recorded == {"block.facts": ids["facts"], "block.notes": ids["notes"]}
    removal = fleet.plan(OWN_ONLY.replace("      - {name: notes, value: seed, limit: 500}\n", ""))
    assert removal.by_address()["agent.support.block.notes"].action.value == "delete"


def test_an_applied_fleet_plans_no_change(fleet, letta):
    fleet.apply(fleet.plan(FLEET))

    plan = fleet.plan(FLEET)

    assert set(fleet.actions(plan).values()) == {"no-op"} and not plan.needs_attention


def test_an_agent_owned_block_the_agent_rewrote_is_left_as_the_agent_wrote_it(fleet, letta):
    support_with_blocks(letta, notes="what the agent learned")

    plan = fleet.plan(OWN_ONLY)

    notes = plan.by_address()["agent.support.block.notes"]
    assert notes.action.value == "no-op" and notes.before == notes.after == {}
    fleet.apply(plan)
    assert letta.resource_writes == []


def test_a_block_the_fleet_owns_is_written_back_to_the_fleets_value(fleet, letta):
    _, (_, facts) = support_with_blocks(letta, facts="edited on the server")

    plan = fleet.plan(OWN_ONLY)

    change = plan.by_address()["agent.support.block.facts"]
    assert change.action.value == "update" and change.changed_fields() == ["value"]
    assert (change.before["value"], change.after["value"]) == ("edited on the server", "fleet truth")
    fleet.apply(plan)
    [patch] = letta.resource_writes
    assert (patch.method, patch.path, patch.body) == ("PATCH", f"/v1/blocks/{facts['id']}", {"value": "fleet truth"})


def test_a_block_added_to_an_existing_agent_is_made_then_attached(fleet, letta):
    agent, _ = support_with_blocks(letta)
    text = OWN_ONLY + "      - {name: persona, value: Calm}\n"

    plan = fleet.plan(text)

    assert plan.by_address()["agent.support.block.persona"].action.value == "create"
    fleet.apply(plan)
    create, attach = letta.resource_writes
    assert create.body == {"label": "persona", "value": "Calm", "metadata": {**MARKER, "agent": "support"}}
    persona = letta.blocks[next(iter(b for b in letta.blocks if letta.blocks[b]["label"] == "persona"))]
    assert (attach.method, attach.path) == (
        "PATCH",
        f"/v1/agents/{agent['id']}/core-memory/blocks/attach/{persona['id']}",
    )


def test_an_existing_shared_block_is_attached_to_an_existing_agent_by_id(fleet, letta):
    agent, _ = support_with_blocks(letta)
    policies = letta.add_block("policies", "Be kind.", metadata={**MARKER, "shared": True})

    plan = fleet.plan(FLEET)

    assert fleet.actions(plan)["agent.support.shared_block.policies"] == "create"
    assert fleet.actions(plan)["shared_block.policies"] == "no-op"
    fleet.apply(plan)
    [attach] = letta.resource_writes
    assert attach.path == f"/v1/agents/{agent['id']}/core-memory/blocks/attach/{policies['id']}"


def test_a_block_an_interrupted_apply_left_unattached_is_attached_not_made_again(fleet, letta):
    agent, (notes, _) = support_with_blocks(letta)
    letta.detach_block(agent, notes)

    plan = fleet.plan(OWN_ONLY)

    change = plan.by_address()["agent.support.block.notes"]
    assert change.action.value == "update" and change.changed_fields() == ["attached"]
    assert (change.before["attached"], change.after["attached"]) == (False, True)
    fleet.apply(plan)
    [attach] = letta.resource_writes
    assert attach.path == f"/v1/agents/{agent['id']}/core-memory/blocks/attach/{notes['id']}"


def test_a_conversations_isolated_copy_is_not_taken_for_a_block_left_unattached(fleet, letta):
    agent, (notes, _) = support_with_blocks(letta)
    letta.add_conversation(agent, "Ticket 1", copies=["notes"])  # a copy carries its original's metadata
    letta.detach_block(agent, notes)
    letta.blocks.pop(notes["id"])

    plan = fleet.plan(OWN_ONLY)

    assert plan.by_address()["agent.support.block.notes"].action.value == "create"


def test_blocks_left_by_an_agent_whose_creation_failed_ride_along_when_it_is_created_again(fleet, letta):
    notes = letta.add_block("notes", "seed", limit=500, metadata={**MARKER, "agent": "support"})
    facts = letta.add_block("facts", "stale", description="Facts", metadata={**MARKER, "agent": "support"})

    plan = fleet.plan(OWN_ONLY)

    assert fleet.actions(plan) == {
        "agent.support": "create",
        "agent.support.block.facts": "update",
        "agent.support.block.notes": "update",
    }
    report = fleet.apply(plan)
    assert report.ok
    sync, create = letta.resource_writes  # the fleet's value first, then the agent with both blocks
    assert (sync.path, sync.body) == (f"/v1/blocks/{facts['id']}", {"value": "fleet truth"})
    assert create.body["block_ids"] == [facts["id"], notes["id"]]


def test_of_two_blocks_left_for_one_agent_the_oldest_is_reused(fleet, letta):
    letta.add_block("notes", "seed", metadata={**MARKER, "agent": "sales"})  # another agent's: not reused
    oldest = letta.add_block("notes", "seed", limit=500, metadata={**MARKER, "agent": "support"})
    letta.add_block("notes", "seed", limit=500, metadata={**MARKER, "agent": "support"})

    plan = fleet.plan(OWN_ONLY)

    assert plan.by_address()["agent.support.block.notes"].id == oldest["id"]


def test_a_server_that_creates_the_agent_without_its_blocks_fails_those_blocks(fleet, letta):
    letta.drops_relations = {"memory_blocks"}

    report = fleet.apply(fleet.plan(OWN_ONLY))

    assert fleet.results(report)["agent.support"][0] == "applied"
    assert fleet.results(report)["agent.support.block.notes"] == (
        "failed",
        "the server created agent support without block 'notes'",
    )
    letta.drops_relations = set()
    assert fleet.actions(fleet.plan(OWN_ONLY))["agent.support.block.notes"] == "create"  # the next apply adds it


def test_an_own_block_other_agents_hold_too_is_reported(fleet, letta):
    agent, (notes, _) = support_with_blocks(letta)
    other = letta.add_agent("sales", blocks=[notes], managed=False)

    plan = fleet.plan(OWN_ONLY)

    [ambiguity] = plan.ambiguities
    assert ambiguity.address == "agent.support.block.notes"
    assert ambiguity.used == notes["id"] and ambiguity.ids == (notes["id"], agent["id"], other["id"])
    assert "private to its agent in the fleet, yet 2 agents hold it" in ambiguity.message
    assert f"sales ({other['id']})" in ambiguity.message
    assert f"core-memory/blocks/detach/{notes['id']}" in ambiguity.remedy


def test_two_of_lettafleets_shared_blocks_with_one_label_are_reported_and_the_oldest_used(fleet, letta):
    oldest = letta.add_block("policies", "Be kind.", metadata={**MARKER, "shared": True})
    newer = letta.add_block("policies", "Be kind.", metadata={**MARKER, "shared": True})
    letta.add_block("policies", "not lettafleet's")

    plan = fleet.plan(FLEET)

    [ambiguity] = plan.ambiguities
    assert ambiguity.address == "shared_block.policies"
    assert ambiguity.ids == (oldest["id"], newer["id"]) and ambiguity.used == oldest["id"]
    assert plan.by_address()["shared_block.policies"].id == oldest["id"]


def test_a_sensitive_block_value_is_masked_in_the_plan(fleet, letta):
    text = OWN_ONLY.replace("{name: notes, value: seed, limit: 500}", "{name: notes, value: s3cr3t, sensitive: true}")

    plan = fleet.plan(text)

    assert plan.by_address()["agent.support.block.notes"].to_json()["after"]["value"] == "(sensitive)"
    assert "s3cr3t" not in str(plan.to_json())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("  - {name: policies, value: Be kind., agent_owned: false}\n", "  - {name: policies, value: a}\n" * 2),
            ":3:6: shared block 'policies' is declared twice",
        ),
        (
            ("      - {name: notes, value: seed, limit: 500}\n", "      - {name: facts, value: a}\n"),
            ":9:10: block label 'facts' is used twice by agent 'support'",
        ),
        (("shared_blocks: [policies]", "shared_blocks: [rules]"), "shared block 'rules' is not declared under the top"),
        (("shared_blocks: [policies]", "shared_blocks: [rules]"), "declared shared blocks: policies"),
        (("name: notes, value: seed", "name: policies, value: seed"), "already has a block labelled 'policies'"),
        (("value: seed, limit: 500", "value: too long, limit: 3"), ":8:23: block 'notes' value is 8 characters, over"),
    ],
)
def test_what_validate_refuses_in_blocks(fleet, change, expected):
    errors = errors_of(fleet, FLEET.replace(*change))

    assert any(expected in error for error in errors), errors


def test_a_block_file_over_its_limit_is_refused_at_its_from_file(fleet):
    text = OWN_ONLY.replace("{name: notes, value: seed, limit: 500}", "{name: notes, from_file: notes.md, limit: 3}")
    with pytest.raises(FleetError) as raised:
        fleet.load(text, files={"notes.md": "four"})

    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert "fleet.yaml:6:23: block 'notes' value is 4 characters, over its limit of 3" in error  # at from_file
    assert "shorten the value or raise `limit`" in error


def test_an_own_block_that_is_another_named_fleets_block_is_refused_before_any_write(fleet, letta):
    fleet.apply(fleet.plan(OWN_ONLY))
    theirs = letta.add_block(
        "facts", "their truth", metadata={"managed_by": "lettafleet", "fleet": "other", "shared": True}
    )
    agent = letta.agent_named("support")
    agent["block_ids"] = [block for block in agent["block_ids"] if letta.blocks[block]["label"] != "facts"]
    agent["block_ids"].append(theirs["id"])  # attached by hand where the fleet's own `facts` was
    letta.writes.clear()

    with pytest.raises(FleetError) as raised:
        fleet.plan(OWN_ONLY)

    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert "block 'facts' on http://letta.test belongs to fleet 'other', not to the fleet without a name" in error
    assert letta.blocks[theirs["id"]]["value"] == "their truth" and letta.writes == []
