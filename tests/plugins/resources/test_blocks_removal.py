"""Removing blocks from the file, against a fake Letta (respx): an agent's own block (deleted with `--prune`, only
detached when other agents hold it), a shared block's attachment (detached by default), a named fleet's shared
block (deleted with `--prune`), what the agents attached themselves (never touched), and `protect: true`."""

from __future__ import annotations

AGENT = """
agents:
  - name: support
    llm_config: {model: letta/letta-free}
    system_prompt: {value: You help.}
    memory_blocks:
      - {name: notes, value: seed}
      - {name: facts, value: fleet truth, agent_owned: false}
    shared_blocks: [policies]
"""
SHARED = "shared_blocks:\n  - {name: policies, value: Be kind.}\n"
FLEET = SHARED + AGENT
WITHOUT_NOTES = FLEET.replace("      - {name: notes, value: seed}\n", "")
WITHOUT_ATTACHMENT = FLEET.replace("    shared_blocks: [policies]\n", "")
WITHOUT_SHARED = AGENT.replace("    shared_blocks: [policies]\n", "")


def applied(fleet, text: str) -> None:
    report = fleet.apply(fleet.plan(text))
    assert report.ok, report.failed


def block_labelled(letta, label: str) -> dict:
    [block] = [block for block in letta.blocks.values() if block["label"] == label]
    return block


def test_an_own_block_removed_from_the_file_is_planned_for_deletion_and_held_without_prune(fleet, letta):
    applied(fleet, FLEET)
    notes = block_labelled(letta, "notes")

    plan = fleet.plan(WITHOUT_NOTES)

    change = plan.by_address()["agent.support.block.notes"]
    assert change.action.value == "delete" and change.held == "prune" and change.id == notes["id"]
    assert change.detail == "a memory block of 4 characters the agents may have written"
    assert "`--prune`" in (change.drift or "")
    fleet.apply(plan)
    assert notes["id"] in letta.blocks and letta.resource_writes == []


def test_an_own_block_removed_with_prune_is_deleted_and_the_next_plan_changes_nothing(fleet, letta):
    applied(fleet, FLEET)
    notes = block_labelled(letta, "notes")

    report = fleet.apply(fleet.plan("prune: true\n" + WITHOUT_NOTES))

    assert report.ok
    [delete] = letta.resource_writes
    assert (delete.method, delete.path) == ("DELETE", f"/v1/blocks/{notes['id']}")
    assert notes["id"] not in letta.blocks
    assert not fleet.plan(WITHOUT_NOTES).needs_attention


def test_an_own_block_other_agents_hold_too_is_only_detached_and_by_default(fleet, letta):
    applied(fleet, FLEET)
    notes = block_labelled(letta, "notes")
    letta.add_agent("sales", blocks=[notes], managed=False)

    plan = fleet.plan(WITHOUT_NOTES)

    change = plan.by_address()["agent.support.block.notes"]
    assert change.action.value == "delete" and change.held is None
    assert change.detail == "detached only: agent sales holds it too, so not deleted"
    fleet.apply(plan)
    [detach] = letta.resource_writes
    support = letta.agent_named("support")
    assert detach.path == f"/v1/agents/{support['id']}/core-memory/blocks/detach/{notes['id']}"
    assert notes["id"] in letta.blocks and notes["id"] in letta.agent_named("sales")["block_ids"]
    assert not fleet.plan(WITHOUT_NOTES).needs_attention


def test_a_removed_blocks_value_is_masked_whatever_its_line_said(fleet, letta):
    applied(fleet, FLEET.replace("{name: notes, value: seed}", "{name: notes, value: s3cr3t-memory}"))

    plan = fleet.plan(WITHOUT_NOTES)

    assert plan.by_address()["agent.support.block.notes"].to_json()["before"]["value"] == "(sensitive)"
    assert "s3cr3t-memory" not in str(plan.to_json())


def test_a_shared_block_removed_from_an_agents_list_is_detached_by_default_and_the_block_stays(fleet, letta):
    applied(fleet, FLEET)
    policies, support = block_labelled(letta, "policies"), letta.agent_named("support")

    plan = fleet.plan(WITHOUT_ATTACHMENT)

    change = plan.by_address()["agent.support.shared_block.policies"]
    assert change.action.value == "delete" and change.held is None and change.id == policies["id"]
    assert fleet.apply(plan).ok
    [detach] = letta.resource_writes
    assert (detach.method, detach.path) == (
        "PATCH",
        f"/v1/agents/{support['id']}/core-memory/blocks/detach/{policies['id']}",
    )
    assert policies["id"] in letta.blocks and policies["id"] not in support["block_ids"]
    assert not fleet.plan(WITHOUT_ATTACHMENT).needs_attention


def test_an_attachment_recorded_without_an_id_is_found_by_its_label(fleet, letta):
    applied(fleet, FLEET)
    support = letta.agent_named("support")
    record = support["metadata"]["lettafleet_applied"]
    for entry in record:
        if entry["kind"] == "shared_block_attachment":
            entry.pop("id")  # as records written before attachments carried the block's id

    plan = fleet.plan(WITHOUT_ATTACHMENT)

    assert plan.by_address()["agent.support.shared_block.policies"].action.value == "delete"


def test_a_block_the_agent_attached_itself_is_never_removed(fleet, letta):
    applied(fleet, FLEET)
    support = letta.agent_named("support")
    own = letta.add_block("scratch", "the agent's own idea", metadata={"managed_by": "lettafleet", "agent": "support"})
    support["block_ids"].append(own["id"])
    hand = letta.add_block("hand", "made by hand")
    support["block_ids"].append(hand["id"])

    plan = fleet.plan(FLEET)

    assert not plan.needs_attention
    removed = [c.address for c in fleet.plan("prune: true\n" + WITHOUT_NOTES).changes if c.removes]
    assert removed == ["agent.support.block.notes"]


def test_a_named_fleets_shared_block_removed_from_the_file_is_deleted_with_prune_and_detached(fleet, letta):
    applied(fleet, "fleet: blue\n" + FLEET)
    policies = block_labelled(letta, "policies")
    assert policies["metadata"] == {"managed_by": "lettafleet", "fleet": "blue", "shared": True}

    held = fleet.plan("fleet: blue\n" + WITHOUT_SHARED)
    pruned = fleet.plan("fleet: blue\nprune: true\n" + WITHOUT_SHARED)

    change = held.by_address()["shared_block.policies"]
    assert change.action.value == "delete" and change.held == "prune"
    assert change.detail.endswith("deleting it detaches it from agent support")
    assert held.by_address()["agent.support.shared_block.policies"].held is None
    report = fleet.apply(pruned)
    assert fleet.results(report) == {
        "agent.support.shared_block.policies": ("applied", ""),
        "shared_block.policies": ("applied", ""),
    }
    assert ("DELETE", f"/v1/blocks/{policies['id']}") in [(w.method, w.path) for w in letta.resource_writes]
    assert policies["id"] not in letta.blocks and policies["id"] not in letta.agent_named("support")["block_ids"]
    assert not fleet.plan("fleet: blue\n" + WITHOUT_SHARED).needs_attention


def test_a_fleet_without_a_name_never_removes_a_shared_block_it_no_longer_declares(fleet, letta):
    applied(fleet, FLEET)

    plan = fleet.plan("prune: true\n" + WITHOUT_SHARED)

    assert "shared_block.policies" not in plan.by_address()
    assert fleet.plan(WITHOUT_SHARED).by_address()["agent.support.shared_block.policies"].action.value == "delete"


def test_two_fleets_with_a_shared_block_of_one_label_never_touch_each_others(fleet, letta):
    applied(fleet, "fleet: blue\n" + FLEET)
    blue = block_labelled(letta, "policies")
    green = FLEET.replace("name: support", "name: helpdesk")

    plan = fleet.plan("fleet: green\n" + green)

    assert plan.by_address()["shared_block.policies"].action.value == "create"
    assert fleet.apply(plan).ok
    blue_removal = fleet.plan("fleet: blue\nprune: true\n" + WITHOUT_SHARED)
    assert [c.id for c in blue_removal.changes if c.kind == "shared_block"] == [blue["id"]]
    assert fleet.apply(blue_removal).ok
    assert [b["metadata"]["fleet"] for b in letta.blocks.values() if b["label"] == "policies"] == ["green"]
    assert not fleet.plan("fleet: green\n" + green).needs_attention


def test_a_protected_own_block_is_never_removed_even_with_prune(fleet, letta):
    applied(fleet, FLEET.replace("{name: notes, value: seed}", "{name: notes, value: seed, protect: true}"))
    notes = block_labelled(letta, "notes")

    plan = fleet.plan("prune: true\n" + WITHOUT_NOTES)

    change = plan.by_address()["agent.support.block.notes"]
    assert change.held == "protect" and change.to_json()["protected"] is True
    assert "protected" in (change.drift or "")
    fleet.apply(plan)
    assert notes["id"] in letta.blocks and letta.resource_writes == []


def test_a_protected_shared_block_carries_it_in_its_marks_and_is_never_removed(fleet, letta):
    protected = FLEET.replace("{name: policies, value: Be kind.}", "{name: policies, value: Be kind., protect: true}")
    applied(fleet, "fleet: blue\n" + FLEET)

    plan = fleet.plan("fleet: blue\n" + protected)

    change = plan.by_address()["shared_block.policies"]
    assert change.action.value == "update" and change.changed_fields() == ["protect"]
    fleet.apply(plan)
    policies = block_labelled(letta, "policies")
    assert policies["metadata"] == {"managed_by": "lettafleet", "fleet": "blue", "shared": True, "protect": True}
    removal = fleet.plan("fleet: blue\nprune: true\n" + WITHOUT_SHARED).by_address()["shared_block.policies"]
    assert removal.held == "protect"


def test_a_target_limits_removals_to_what_it_names(fleet, letta):
    applied(fleet, "fleet: blue\n" + FLEET)

    plan = fleet.plan("fleet: blue\nprune: true\n" + WITHOUT_SHARED).targeted(["agent.support.*"])

    assert [c.address for c in plan.changes if c.removes] == ["agent.support.shared_block.policies"]
