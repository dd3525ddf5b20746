"""The V1 switch between blocks and git-backed memory, SIGKILLed at its in-between moments, through the stand-in for
hosted Letta (tests/fakes/hosted_git_memory.py) in front of the real dev server: halfway through the label moves
(blocks -> `system/`), between the commit of the block values and the commit of the files (an agent's files are
one commit), and halfway through a rollback (the tag off, some labels not given back yet). The next apply finishes
the job with nothing doubled or lost, and a plan afterwards shows no changes. (The kill between the tag and the
first push is in test_memfs_hosted_done_when.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import Hold
from tests.fakes.hosted_git_memory import GIT_MEMORY_TAG
from tests.integration.hosted_memfs_fleet import (
    HANDBOOK,
    agent_named,
    assert_no_changes,
    blocks_of,
    killed_at,
    ok,
    run,
)

pytest_plugins = ["tests.integration.hosted_memfs_fleet"]

PERSONA = "I answer tickets."
RELABEL = r"^/v1/blocks/block-[^/]+/?$"


def two_block_fleet(tmp_path: Path, name: str, mode: str) -> Path:
    """An agent with two blocks (so a label move can stop between them) and, under memfs, one file."""
    memory = f"    memory:\n      mode: {mode}\n"
    if mode == "memfs":
        memory += "      files: [{to: system/policies.md, value: No refunds.}]\n"
    path = tmp_path / f"{mode}.yaml"
    path.write_text(
        f"agents:\n  - name: {name}\n    system_prompt: {{value: You answer tickets.}}\n"
        "    llm_config: {model: letta/letta-free, context_window: 16000}\n    tools: []\n"
        "    memory_blocks:\n"
        f"      - {{name: persona, value: {json.dumps(PERSONA)}, agent_owned: true, limit: 500}}\n"
        f"      - {{name: handbook, value: {json.dumps(HANDBOOK)}, agent_owned: true, limit: 4000}}\n" + memory
    )
    return path


def labels_of(client: LettaClient, agent_id: str) -> list[str]:
    return sorted(block["label"] for block in client.get(f"/v1/agents/{agent_id}/core-memory/blocks"))


def test_an_apply_killed_halfway_through_the_label_moves_is_finished_by_the_next_with_nothing_doubled_or_lost(
    hosted, client, names, tmp_path
):
    name, _ = names
    ok(run(hosted, "apply", "--no-lock", "-f", str(two_block_fleet(tmp_path, name, "blocks"))))
    memfs = two_block_fleet(tmp_path, name, "memfs")

    killed_at(hosted, Hold("PATCH", RELABEL, body="system/", nth=2, then="drop"), memfs)
    agent = agent_named(client, name)
    assert GIT_MEMORY_TAG not in agent["tags"]
    assert len([label for label in labels_of(client, agent["id"]) if label.startswith("system/")]) == 1

    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))

    assert GIT_MEMORY_TAG in agent_named(client, name)["tags"]
    assert labels_of(client, agent["id"]) == ["system/handbook", "system/persona", "system/policies"]
    values = blocks_of(client, agent["id"])
    assert values["system/persona"] == PERSONA and values["system/handbook"] == HANDBOOK
    assert set(hosted.files_at_head(agent["id"])) == {
        "system/handbook.md",
        "system/persona.md",
        "system/policies.md",
    }
    assert_no_changes(hosted, memfs)


def test_a_rollback_killed_after_the_tag_is_off_and_before_every_label_is_back_is_finished_by_the_next(
    hosted, client, names, tmp_path
):
    name, _ = names
    memfs = two_block_fleet(tmp_path, name, "memfs")
    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))
    blocks = two_block_fleet(tmp_path, name, "blocks")

    killed_at(hosted, Hold("PATCH", RELABEL, body='"label"', nth=2, then="drop"), blocks)
    agent = agent_named(client, name)
    assert GIT_MEMORY_TAG not in agent["tags"]
    assert len([label for label in labels_of(client, agent["id"]) if label.startswith("system/")]) == 2

    ok(run(hosted, "apply", "--no-lock", "-f", str(blocks)))

    assert labels_of(client, agent["id"]) == ["handbook", "persona", "policies"]
    values = blocks_of(client, agent["id"])
    assert values == {"persona": PERSONA, "handbook": HANDBOOK, "policies": "No refunds."}
    assert_no_changes(hosted, blocks)


def test_an_apply_killed_between_the_block_values_push_and_the_files_push_is_finished_by_the_next(
    hosted, client, names, tmp_path
):
    name, _ = names
    memfs = two_block_fleet(tmp_path, name, "memfs")
    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))
    ok(run(hosted, "apply", "--no-lock", "-f", str(two_block_fleet(tmp_path, name, "blocks"))))
    agent = agent_named(client, name)
    persona = next(b for b in client.get(f"/v1/agents/{agent['id']}/core-memory/blocks") if b["label"] == "persona")
    client.patch(f"/v1/blocks/{persona['id']}", json={"value": "I answer tickets, kindly."})  # edited while off
    memfs.write_text(memfs.read_text().replace("No refunds.", "No refunds after 30 days."))

    # Forward again: the block values differ from their files (one commit), then the changed file (another).
    push = rf"^/v1/git/{agent['id']}/state\.git/git-receive-pack$"
    killed_at(hosted, Hold("POST", push, nth=2, then="drop"), memfs)
    assert GIT_MEMORY_TAG in agent_named(client, name)["tags"]
    files = hosted.files_at_head(agent["id"])
    assert files["system/persona.md"].endswith("I answer tickets, kindly.")
    assert files["system/policies.md"].endswith("No refunds.")

    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))

    assert labels_of(client, agent["id"]) == ["system/handbook", "system/persona", "system/policies"]
    values = blocks_of(client, agent["id"])
    assert values["system/persona"] == "I answer tickets, kindly." and values["system/handbook"] == HANDBOOK
    assert values["system/policies"] == "No refunds after 30 days."
    assert_no_changes(hosted, memfs)
