"""Deleting agents a fleet made, on the real server: Letta 0.16.8 leaves an agent's blocks behind when it deletes
the agent, so each deletion (a duplicate copy, a pruned agent, with or without its record) must delete the blocks
the fleet made for it and its conversations' isolated copies itself, and keep every other block."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import FaultProxy, Hold
from tests.integration.cli import cli, ok, planned_changes
from tests.integration.test_interrupted_applies import killed_at

SIZE = 4


class Fleet:
    """A named fleet of agents with an own block, a shared block and a conversation with an isolated copy."""

    def __init__(self, tmp_path: Path, base_url: str, client: LettaClient) -> None:
        self.prefix = f"od{uuid.uuid4().hex[:8]}"
        self.notes, self.shared = f"notes_{self.prefix}", f"policies_{self.prefix}"
        self.base_url, self.client, self.path = base_url, client, tmp_path / "fleet.yaml"
        self.names = [f"{self.prefix}-{index}" for index in range(SIZE)]

    def write(self, names: list[str]) -> Path:
        lines = [f"fleet: fleet-{self.prefix}", "shared_blocks:", f"  - {{name: {self.shared}, value: be kind}}"]
        lines.append("agents:")
        for name in names:
            lines += [
                f"  - name: {name}",
                "    llm_config: {model: letta/letta-free, context_window: 32000}",
                "    embedding: letta/letta-free",
                "    system_prompt: {value: You help.}",
                f"    memory_blocks: [{{name: {self.notes}, value: none yet}}]",
                f"    shared_blocks: [{self.shared}]",
                f'    conversations: [{{summary: "Ticket 1", isolated_blocks: [{self.notes}]}}]',
            ]
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.path

    def run(self, *args: str) -> str:
        return ok(cli(self.base_url, *args))

    def agents(self) -> list[dict]:
        return [a for a in self.client.list_all("/v1/agents/") if a["name"].startswith(self.prefix)]

    def notes_blocks(self) -> set[str]:
        """The ids of every block of the fleet's own label on the server (own blocks and isolated copies)."""
        return {block["id"] for block in self.client.list_all("/v1/blocks/", label=self.notes)}

    def expected_notes(self) -> set[str]:
        """The own blocks and isolated copies of the agents that are left: nothing else may hold the label."""
        found = set()
        for agent in self.agents():
            found |= {block["id"] for block in agent["blocks"] if block["label"] == self.notes}
            for conversation in self.client.list_all("/v1/conversations/", agent_id=agent["id"]):
                found |= set(conversation.get("isolated_block_ids") or [])
        return found

    def forget_record(self, agent_id: str) -> None:
        """As an apply stopped before writing the agent's record leaves it."""
        agent = self.client.get(f"/v1/agents/{agent_id}")
        metadata = {key: value for key, value in agent["metadata"].items() if key != "lettafleet_applied"}
        self.client.patch(f"/v1/agents/{agent_id}", json={"metadata": metadata})

    def by_hand(self, label: str, *agent_ids: str) -> str:
        block = self.client.post("/v1/blocks/", json={"label": label, "value": "made by hand"})
        for agent_id in agent_ids:
            self.client.patch(f"/v1/agents/{agent_id}/core-memory/blocks/attach/{block['id']}")
        return str(block["id"])

    def remove(self) -> None:
        for agent in self.agents():
            self.client.delete(f"/v1/agents/{agent['id']}")
        for label in (self.notes, self.shared, f"hand_{self.prefix}", f"both_{self.prefix}"):
            for block in self.client.list_all("/v1/blocks/", label=label):
                self.client.delete(f"/v1/blocks/{block['id']}")


@pytest.fixture
def fleet(letta_server: str, client: LettaClient, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(tmp_path, letta_server, client)
    yield made
    made.remove()


def test_deleting_duplicate_copies_leaves_no_orphan_blocks_and_keeps_blocks_others_hold(fleet: Fleet) -> None:
    fleet.run("apply", "-f", str(fleet.write(fleet.names)))
    originals = {agent["name"]: agent["id"] for agent in fleet.agents()}
    # Copies as racing applies leave them: the fleet makes every agent again while the first ones are away.
    for name, agent_id in originals.items():
        fleet.client.patch(f"/v1/agents/{agent_id}", json={"name": f"{name}-away"})
    fleet.run("apply", "-f", str(fleet.path))
    for name, agent_id in originals.items():
        fleet.client.patch(f"/v1/agents/{agent_id}", json={"name": name})
    copies = {agent["name"]: agent["id"] for agent in fleet.agents() if agent["id"] not in originals.values()}
    assert sorted(copies) == sorted(fleet.names)
    for name in fleet.names[:2]:
        fleet.forget_record(copies[name])  # found by their marks alone
    hand = fleet.by_hand(f"hand_{fleet.prefix}", copies[fleet.names[0]])
    both = fleet.by_hand(f"both_{fleet.prefix}", copies[fleet.names[1]], originals[fleet.names[1]])
    assert len(fleet.notes_blocks()) == 4 * SIZE  # each agent's own block and its conversation's copy

    changes = planned_changes(cli(fleet.base_url, "plan", "-f", str(fleet.path), "-o", "json"))
    doomed = {f"agent.{name}~{copies[name]}" for name in fleet.names}
    assert doomed <= set(changes) and set(changes.values()) == {"delete"}
    assert all(address.split(".conversation")[0] in doomed for address in changes)  # what their records list
    fleet.run("apply", "-f", str(fleet.path))

    assert {agent["id"] for agent in fleet.agents()} == set(originals.values())
    assert fleet.notes_blocks() == fleet.expected_notes() and len(fleet.notes_blocks()) == 2 * SIZE
    assert len(fleet.client.list_all("/v1/blocks/", label=fleet.shared)) == 1
    assert fleet.client.get(f"/v1/blocks/{hand}")["id"] == hand  # made by hand: not the fleet's to delete
    assert fleet.client.get(f"/v1/blocks/{both}")["id"] == both  # another agent holds it


@pytest.mark.parametrize("record", ["with-its-record", "without-its-record"])
def test_pruning_an_agent_leaves_no_orphan_blocks(fleet: Fleet, record: str) -> None:
    fleet.run("apply", "-f", str(fleet.write(fleet.names)))
    gone = [agent for agent in fleet.agents() if agent["name"] in fleet.names[:2]]
    if record == "without-its-record":
        for agent in gone:
            fleet.forget_record(agent["id"])

    fleet.run("apply", "-f", str(fleet.write(fleet.names[2:])), "--prune")

    assert sorted(agent["name"] for agent in fleet.agents()) == fleet.names[2:]
    assert fleet.notes_blocks() == fleet.expected_notes() and len(fleet.notes_blocks()) == 2 * (SIZE - 2)
    assert len(fleet.client.list_all("/v1/blocks/", label=fleet.shared)) == 1
    assert "No changes." in fleet.run("plan", "-f", str(fleet.path))


# Each request of one agent's removal, the apply killed while it waits at the proxy (never sent): its conversation
# (Letta deletes the isolated copy with it), its own block, and last the agent itself (its blocks already gone).
REMOVAL_MOMENTS = {
    "conversation": Hold(method="DELETE", path=r"^/v1/conversations/[^/]+/?$", then="drop"),
    "own block": Hold(method="DELETE", path=r"^/v1/blocks/[^/]+/?$", then="drop"),
    "the agent": Hold(method="DELETE", path=r"^/v1/agents/[^/]+/?$", then="drop"),
}


@pytest.mark.parametrize("moment", REMOVAL_MOMENTS, ids=list(REMOVAL_MOMENTS))
def test_a_prune_killed_at_any_request_of_an_agents_removal_is_finished_with_no_orphan_blocks(
    fleet: Fleet, fault_proxy: FaultProxy, moment: str
) -> None:
    fleet.run("apply", "-f", str(fleet.write(fleet.names)))
    kept = fleet.write(fleet.names[1:])

    killed_at(fault_proxy, REMOVAL_MOMENTS[moment], kept, "--prune", "--parallelism", "1")
    assert fleet.names[0] in {agent["name"] for agent in fleet.agents()}  # the agent itself goes last

    fleet.run("apply", "-f", str(kept), "--prune")
    assert sorted(agent["name"] for agent in fleet.agents()) == fleet.names[1:]
    assert fleet.notes_blocks() == fleet.expected_notes() and len(fleet.notes_blocks()) == 2 * (SIZE - 1)
    assert "No changes." in fleet.run("plan", "-f", str(kept))
