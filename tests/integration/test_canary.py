"""lettactl's canary rollout on the real server: `apply --canary` makes `CANARY-` copies of a fleet's agents, each
with its own block and its conversation's isolated copy, and leaves the real agents exactly as they were;
`--canary --promote` changes the real agents; `--canary --cleanup` deletes the copies and everything they held,
also when killed partway. Everything is checked over the REST API, not through lettafleet."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import FaultProxy, Hold
from tests.integration.cli import cli, ok, planned_changes
from tests.integration.test_interrupted_applies import killed_at

SIZE = 2
OLD, NEW = "You help, v1.", "You help, v2."


class Fleet:
    """A named fleet of agents with an own block, a shared block and a conversation with an isolated copy."""

    def __init__(self, tmp_path: Path, base_url: str, client: LettaClient) -> None:
        self.prefix = f"cn{uuid.uuid4().hex[:8]}"
        self.notes, self.shared = f"notes_{self.prefix}", f"policies_{self.prefix}"
        self.base_url, self.client, self.path = base_url, client, tmp_path / "fleet.yaml"
        self.names = [f"{self.prefix}-{index}" for index in range(SIZE)]
        self.copies = [f"CANARY-{name}" for name in self.names]

    def write(self, prompt: str) -> Path:
        lines = [f"fleet: fleet-{self.prefix}", "shared_blocks:", f"  - {{name: {self.shared}, value: be kind}}"]
        lines.append("agents:")
        for name in self.names:
            lines += [
                f"  - name: {name}",
                "    llm_config: {model: letta/letta-free, context_window: 32000}",
                "    embedding: letta/letta-free",
                f"    system_prompt: {{value: '{prompt}'}}",
                f"    memory_blocks: [{{name: {self.notes}, value: none yet}}]",
                f"    shared_blocks: [{self.shared}]",
                f'    conversations: [{{summary: "Ticket 1", isolated_blocks: [{self.notes}]}}]',
            ]
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.path

    def run(self, *args: str) -> str:
        return ok(cli(self.base_url, *args))

    def agents(self) -> dict[str, dict]:
        """The fleet's agents and copies on the server, by name, each with its blocks and conversations."""
        found = {a["name"]: a for a in self.client.list_all("/v1/agents/") if self.prefix in a["name"]}
        for agent in found.values():
            agent["conversations"] = self.client.list_all("/v1/conversations/", agent_id=agent["id"])
        return found

    def notes_blocks(self) -> set[str]:
        """The ids of every block of the fleet's own label on the server (own blocks and isolated copies)."""
        return {block["id"] for block in self.client.list_all("/v1/blocks/", label=self.notes)}

    def held_by(self, agents: dict[str, dict]) -> set[str]:
        """The own blocks and isolated copies `agents` hold: nothing else may carry the fleet's own label."""
        found = set()
        for agent in agents.values():
            found |= {block["id"] for block in agent["blocks"] if block["label"] == self.notes}
            for conversation in agent["conversations"]:
                found |= set(conversation.get("isolated_block_ids") or [])
        return found

    def remove(self) -> None:
        for agent in self.agents().values():
            self.client.delete(f"/v1/agents/{agent['id']}")
        for label in (self.notes, self.shared):
            for block in self.client.list_all("/v1/blocks/", label=label):
                self.client.delete(f"/v1/blocks/{block['id']}")


@pytest.fixture
def fleet(letta_server: str, client: LettaClient, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(tmp_path, letta_server, client)
    yield made
    made.remove()


def as_seen(agent: dict) -> tuple:
    """What a canary deploy must not touch on a real agent: its prompt, metadata, tags, blocks and conversations."""
    blocks = sorted((block["id"], block["label"], block["value"]) for block in agent["blocks"])
    conversations = sorted(conversation["id"] for conversation in agent["conversations"])
    return agent["system"], agent["metadata"], sorted(agent["tags"]), blocks, conversations


@pytest.fixture
def deployed(fleet: Fleet) -> dict[str, tuple]:
    """The fleet applied with the old prompt, then deployed with the new one as canary copies; returns the real
    agents as they were before the deploy."""
    fleet.run("apply", "-f", str(fleet.write(OLD)))
    before = {name: as_seen(agent) for name, agent in fleet.agents().items()}
    fleet.run("apply", "-f", str(fleet.write(NEW)), "--canary")
    return before


def test_a_canary_deploy_makes_copies_with_their_own_memory_and_leaves_the_real_agents_as_they_were(
    fleet: Fleet, deployed: dict[str, tuple]
) -> None:
    agents = fleet.agents()

    assert sorted(agents) == sorted(fleet.names + fleet.copies)
    assert {name: as_seen(agents[name]) for name in fleet.names} == deployed
    for name, copy in zip(fleet.names, fleet.copies, strict=True):
        assert agents[copy]["system"] == NEW and agents[copy]["metadata"]["canary_of"] == name
        assert fleet.held_by({copy: agents[copy]}).isdisjoint(fleet.held_by({name: agents[name]}))
        assert len(agents[copy]["conversations"]) == 1
    assert "No changes." in fleet.run("plan", "-f", str(fleet.path), "--canary")
    plain = planned_changes(cli(fleet.base_url, "plan", "-f", str(fleet.path), "--prune", "-o", "json"))
    assert plain == {f"agent.{name}": "update" for name in fleet.names}  # no copy pruned, none a duplicate


def test_promote_changes_the_real_agents_and_cleanup_deletes_the_copies_and_all_they_held(
    fleet: Fleet, deployed: dict[str, tuple]
) -> None:
    fleet.run("apply", "-f", str(fleet.path), "--canary", "--promote")
    promoted = fleet.agents()
    cleanup = planned_changes(cli(fleet.base_url, "plan", "-f", str(fleet.path), "--canary", "--cleanup", "-o", "json"))
    fleet.run("apply", "-f", str(fleet.path), "--canary", "--cleanup")

    assert {promoted[name]["system"] for name in fleet.names} == {NEW}
    assert set(cleanup.values()) == {"delete"} and {f"agent.{copy}" for copy in fleet.copies} <= set(cleanup)
    assert all(address.startswith("agent.CANARY-") for address in cleanup)
    left = fleet.agents()
    assert sorted(left) == fleet.names
    assert {name: as_seen(left[name]) for name in fleet.names} == {name: as_seen(promoted[name]) for name in left}
    assert fleet.notes_blocks() == fleet.held_by(left)  # no orphan: the copies' blocks and isolated copies went
    assert len(fleet.client.list_all("/v1/blocks/", label=fleet.shared)) == 1
    assert "No changes." in fleet.run("plan", "-f", str(fleet.path), "--canary", "--cleanup")
    assert "No changes." in fleet.run("plan", "-f", str(fleet.path))


# Each request of a copy's removal, the cleanup killed while it waits at the proxy (never sent).
CLEANUP_MOMENTS = {
    "conversation": Hold(method="DELETE", path=r"^/v1/conversations/[^/]+/?$", then="drop"),
    "own block": Hold(method="DELETE", path=r"^/v1/blocks/[^/]+/?$", then="drop"),
    "the copy": Hold(method="DELETE", path=r"^/v1/agents/[^/]+/?$", then="drop"),
}


@pytest.mark.parametrize("moment", CLEANUP_MOMENTS, ids=list(CLEANUP_MOMENTS))
def test_a_cleanup_killed_partway_is_finished_by_the_next_one_with_no_orphans(
    fleet: Fleet, deployed: dict[str, tuple], fault_proxy: FaultProxy, moment: str
) -> None:
    killed_at(fault_proxy, CLEANUP_MOMENTS[moment], fleet.path, "--canary", "--cleanup", "--parallelism", "1")

    fleet.run("apply", "-f", str(fleet.path), "--canary", "--cleanup")

    left = fleet.agents()
    assert sorted(left) == fleet.names
    assert {name: as_seen(left[name]) for name in fleet.names} == deployed
    assert fleet.notes_blocks() == fleet.held_by(left)
    assert "No changes." in fleet.run("plan", "-f", str(fleet.path), "--canary", "--cleanup")
