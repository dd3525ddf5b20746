"""Issue 18's Done-when on hosted Letta, through the stand-in for its git-backed memory (tests/fakes/
hosted_git_memory.py) in front of the real dev server: a fleet with `mode: memfs` (files from a value, a file, a
template folder, a skill and a block) applies to an agent that had blocks and to a new one, re-plans no changes,
flips back to blocks without losing a value and forward again; an agent's own edit pushed with git is drift."""

from __future__ import annotations

import json

from tests.fakes.fault_proxy import Hold
from tests.fakes.hosted_git_memory import GIT_MEMORY_TAG
from tests.fakes.llm_server import FakeLLM
from tests.integration.hosted_memfs_fleet import (
    DEAD_MODEL,
    FILES,
    HANDBOOK,
    MODE,
    TONE,
    agent_named,
    assert_no_changes,
    blocks_of,
    killed_at,
    ok,
    plan_json,
    push_as_the_agent,
    run,
    write_fleet,
)

pytest_plugins = ["tests.fakes.llm_server", "tests.integration.hosted_memfs_fleet"]


def test_memfs_through_the_hosted_standin_applies_flips_back_without_loss_and_forward_again(
    hosted, client, names, tmp_path
):
    old, new = names
    ok(run(hosted, "apply", "--no-lock", "-f", str(write_fleet(tmp_path, [(old, "blocks")]))))
    memfs = write_fleet(tmp_path, [(old, "memfs"), (new, "memfs")])

    planned = plan_json(hosted, memfs)  # a server with git memory: neither the untagged nor the new agent refused
    flip = planned[MODE.format(old)]
    assert flip["action"] == "update"
    assert "memory blocks -> git-backed memory files" in flip["detail"]
    assert "block handbook -> system/handbook.md" in flip["detail"]
    assert "from_blocks handbook -> system/refunds.md" in flip["detail"]
    assert "system/policies.md" in flip["detail"] and "skills/triage/SKILL.md" in flip["detail"]
    assert planned[MODE.format(new)]["action"] == "create"
    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))

    for name in (old, new):
        agent = agent_named(client, name)
        assert {GIT_MEMORY_TAG, "support"} <= set(agent["tags"])
        repository = hosted.files_at_head(agent["id"])
        assert FILES | {"system/handbook.md"} <= set(repository)
        assert "No refunds for billing." in repository["system/policies.md"]
        assert repository["system/refunds.md"] == "Within 30 days, with the receipt.\n"
        blocks = blocks_of(client, agent["id"])
        assert blocks["system/handbook"] == HANDBOOK  # the block kept its value under its new label
        assert blocks["system/policies"] == "No refunds for billing.\n"  # the pushed file, synced into a block
    assert_no_changes(hosted, memfs)

    old_id = agent_named(client, old)["id"]
    syncs = hosted.syncs[old_id]
    push_as_the_agent(
        hosted, old_id, "system/tone.md", "---\ndescription: how we write\n---\nMy own way.\n", tmp_path / "c"
    )
    hosted.wait_for_syncs(old_id, syncs + 1)
    edited = json.loads(ok(run(hosted, "plan", "-f", str(memfs), "-o", "json")))["changes"]
    drift = {change["address"]: change.get("drift") for change in edited if change.get("drift")}
    assert list(drift) == [TONE.format(old)]
    assert "edited system/tone.md since lettafleet wrote it: kept as the agent wrote it" in str(drift)
    assert not [change for change in edited if change["action"] != "no-op"]
    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))
    assert "My own way." in hosted.files_at_head(old_id)["system/tone.md"]  # drift, not overwritten

    blocks = write_fleet(tmp_path, [(old, "blocks"), (new, "blocks")], "blocks.yaml")
    back = plan_json(hosted, blocks)
    assert set(back) == {MODE.format(old), MODE.format(new)}
    detail = back[MODE.format(old)]["detail"]
    assert "git-backed memory files -> memory blocks" in detail and "block system/handbook -> handbook" in detail
    assert "block system/policies -> policies (no memory_blocks entry: kept as a block)" in detail
    assert "skills/triage/triage.sh" in detail  # a file that is no block: said, left in the repository
    ok(run(hosted, "apply", "--no-lock", "-f", str(blocks)))
    agent = agent_named(client, old)
    assert GIT_MEMORY_TAG not in agent["tags"] and "support" in agent["tags"]
    values = blocks_of(client, old_id)
    assert values["handbook"] == HANDBOOK and values["policies"] == "No refunds for billing.\n"
    assert values["tone"] == "My own way.\n" and values["refunds"] == "Within 30 days, with the receipt.\n"
    assert not [label for label in values if label.startswith("system/")]
    assert_no_changes(hosted, blocks)

    forward = plan_json(hosted, memfs)
    assert forward[MODE.format(old)]["action"] == "update"
    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))
    assert GIT_MEMORY_TAG in agent_named(client, old)["tags"]
    values = blocks_of(client, old_id)
    assert values["system/handbook"] == HANDBOOK and values["system/tone"] == "My own way.\n"
    assert "My own way." in hosted.files_at_head(old_id)["system/tone.md"]
    again = json.loads(ok(run(hosted, "plan", "-f", str(memfs), "-o", "json")))["changes"]
    assert not [change for change in again if change["action"] != "no-op"]  # nothing to do but the edit, kept
    assert [change["address"] for change in again if change.get("drift")] == [TONE.format(old)]


def verified_agent(name: str, verify: str, model: str) -> str:
    return (
        f"  - name: {name}\n    system_prompt: {{value: You answer tickets.}}\n{model}    tools: []\n"
        "    memory_blocks:\n      - {name: persona, value: I answer tickets., agent_owned: true, limit: 500}\n"
        "    memory:\n      mode: memfs\n      files: [{to: system/policies.md, value: No refunds.}]\n"
        f"      verify: {verify}\n"
    )


def test_verify_after_the_flip_fails_the_apply_for_that_agent_only_and_a_smoke_prompt_gets_its_reply(
    hosted, client, names, tmp_path, fake_llm: FakeLLM
):
    smoked, emptied = names  # the second agent's model answers nobody
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "agents:\n"
        + verified_agent(smoked, "{smoke_prompt: Say hello.}", fake_llm.fleet_yaml())
        + verified_agent(emptied, "{smoke_prompt: Say hello.}", DEAD_MODEL)
    )
    planned = plan_json(hosted, fleet)
    assert (
        "memory.verify (smoke_prompt) checked once the switch"
        in planned[f"agent.{smoked}.memory_mode.verify"]["detail"]
    )

    applied = run(hosted, "apply", "--no-lock", "-f", str(fleet))

    assert applied.exit_code == 1, applied.output
    assert f"agent {emptied}: memory.verify failed after the switch to git-backed memory" in applied.output
    assert "smoke_prompt got no reply" in applied.output
    assert f"agent {smoked}: memory.verify failed" not in applied.output and "Traceback" not in applied.output
    for name in (smoked, emptied):  # the flip itself took for both; only the check of one failed
        agent = agent_named(client, name)
        assert GIT_MEMORY_TAG in agent["tags"]
        assert "system/policies.md" in hosted.files_at_head(agent["id"])
    messages = client.get(f"/v1/agents/{agent_named(client, smoked)['id']}/messages", limit=50)
    assert [m for m in messages if m.get("message_type") == "user_message" and "Say hello." in str(m.get("content"))]
    assert [m for m in messages if m.get("message_type") == "assistant_message"]


def test_an_apply_killed_after_the_tag_and_before_any_push_is_finished_by_the_next_with_nothing_doubled_or_lost(
    hosted, client, names, tmp_path
):
    old, _ = names
    ok(run(hosted, "apply", "--no-lock", "-f", str(write_fleet(tmp_path, [(old, "blocks")]))))
    memfs = write_fleet(tmp_path, [(old, "memfs")], "memfs.yaml")
    # SIGKILL while the tag is on its way: it lands, nothing is pushed
    killed_at(hosted, Hold(method="PATCH", path=r"^/v1/agents/agent-[^/]+/?$", body=GIT_MEMORY_TAG), memfs)
    agent = agent_named(client, old)
    assert GIT_MEMORY_TAG in agent["tags"] and "system/policies.md" not in hosted.files_at_head(agent["id"])

    left = plan_json(hosted, memfs)
    assert f'agent.{old}.memory_file["system/policies.md"]' in left and MODE.format(old) not in left
    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))

    assert set(hosted.files_at_head(agent["id"])) >= FILES
    labels = [block["label"] for block in client.get(f"/v1/agents/{agent['id']}/core-memory/blocks")]
    assert len(labels) == len(set(labels)) and blocks_of(client, agent["id"])["system/handbook"] == HANDBOOK
    assert_no_changes(hosted, memfs)


def test_a_memory_section_of_6_files_is_written_in_one_push_and_2_changes_and_a_removal_in_one_more(
    hosted, client, names, tmp_path
):
    name, _ = names
    fleet = write_fleet(tmp_path, [(name, "memfs")])

    ok(run(hosted, "apply", "--no-lock", "-f", str(fleet)))
    agent_id = agent_named(client, name)["id"]
    pushes = rf"^POST /v1/git/{agent_id}/state\.git/git-receive-pack$"
    assert set(hosted.files_at_head(agent_id)) >= FILES
    assert hosted.pushes(pushes) == 1  # one commit per file before: 6

    fleet.write_text(fleet.read_text().replace("No refunds for {{TEAM}}.", "Refunds for {{TEAM}} within 30 days."))
    (tmp_path / "texts" / "tone.md").write_text("---\ndescription: how we write\n---\nShorter sentences.\n")
    (tmp_path / "memory" / "system" / "escalation.md").unlink()
    ok(run(hosted, "apply", "--no-lock", "-f", str(fleet)))

    files = hosted.files_at_head(agent_id)
    assert "Refunds for billing within 30 days." in files["system/policies.md"]
    assert "Shorter sentences." in files["system/tone.md"] and "system/escalation.md" not in files
    assert hosted.pushes(pushes) == 2  # before: 3 more
    assert_no_changes(hosted, fleet)
