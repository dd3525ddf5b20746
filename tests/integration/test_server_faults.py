"""plan and apply through a fault-injecting proxy in front of the real dev server: short pages, refused writes,
dropped connections and a dying server never make a duplicate, and the next apply converges."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from lettafleet.core.letta.connection import LettaAPIError
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import FaultProxy, Faults
from tests.integration.cli import cli


@dataclass(frozen=True)
class LightFleet:
    """N agents named `prefix-NNN`, each with one own block labelled `label` and one conversation."""

    path: Path
    prefix: str
    label: str
    size: int

    @property
    def names(self) -> list[str]:
        return [f"{self.prefix}-{index:03d}" for index in range(self.size)]


@pytest.fixture
def light_fleet(client: LettaClient, tmp_path: Path) -> Iterator[Callable[[int], LightFleet]]:
    """Writes a LightFleet with unique names; everything carrying them is deleted afterwards."""
    made: list[LightFleet] = []

    def write(size: int) -> LightFleet:
        suffix = uuid.uuid4().hex[:8]
        fleet = LightFleet(tmp_path / f"fleet-{suffix}.yaml", f"faults-{suffix}", f"notes_{suffix}", size)
        agents = "".join(
            f"""  - name: {name}
    llm_config: {{model: letta/letta-free, context_window: 16000}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
    memory_blocks: [{{name: {fleet.label}, limit: 200, value: hi}}]
    conversations: [{{summary: ticket}}]
"""
            for name in fleet.names
        )
        fleet.path.write_text("agents:\n" + agents, encoding="utf-8")
        made.append(fleet)
        return fleet

    yield write
    for fleet in made:
        agents = [a["id"] for a in client.list_all("/v1/agents/") if a["name"].startswith(fleet.prefix + "-")]
        blocks = [b["id"] for b in client.list_all("/v1/blocks/", label=fleet.label)]
        with ThreadPoolExecutor(max_workers=8) as pool:  # a 120-agent fleet takes a minute one by one
            list(pool.map(client.delete, [f"/v1/agents/{agent_id}" for agent_id in agents]))
            list(pool.map(client.delete, [f"/v1/blocks/{block_id}" for block_id in blocks]))


@dataclass(frozen=True)
class Landed:
    """What the server holds for a LightFleet, counted to show duplicates."""

    agents: Counter[str]  # by name
    conversations: Counter[str]  # by agent name
    blocks: int  # blocks with the fleet's label
    attachments: Counter[str]  # by block id: how many agents have it

    def duplicates(self) -> dict[str, int]:
        return {
            "agents": sum(count - 1 for count in self.agents.values() if count > 1),
            "conversations": sum(count - 1 for count in self.conversations.values() if count > 1),
            "blocks attached twice": sum(1 for count in self.attachments.values() if count > 1),
        }

    def is_exactly(self, fleet: LightFleet) -> bool:
        one_each = Counter({name: 1 for name in fleet.names})
        return (
            self.agents == one_each
            and self.conversations == one_each
            and self.blocks == fleet.size
            and sorted(self.attachments.values()) == [1] * fleet.size
        )


def landed(client: LettaClient, fleet: LightFleet) -> Landed:
    agents = [a for a in client.list_all("/v1/agents/", include=["agent.blocks"]) if a["name"] in fleet.names]
    names_by_id = {agent["id"]: agent["name"] for agent in agents}
    conversations = Counter(
        names_by_id[c["agent_id"]] for c in client.list_all("/v1/conversations/") if c["agent_id"] in names_by_id
    )
    attachments = Counter(b["id"] for agent in agents for b in agent["blocks"] if b["label"] == fleet.label)
    blocks = len(client.list_all("/v1/blocks/", label=fleet.label))
    return Landed(Counter(a["name"] for a in agents), conversations, blocks, attachments)


LOCKS = "identities"  # the collection the apply's lock lives in (docs/locking.md)


def fleet_writes(proxy: FaultProxy) -> dict[str, int]:
    """Writes the proxy forwarded about the fleet's resources, by method: everything but the apply's lock."""
    return _writes(proxy, lambda collection: collection != LOCKS)


def lock_writes(proxy: FaultProxy) -> dict[str, int]:
    return _writes(proxy, lambda collection: collection == LOCKS)


def _writes(proxy: FaultProxy, about: Callable[[str], bool]) -> dict[str, int]:
    found: Counter[str] = Counter()
    for (method, collection), count in proxy.counts.forwarded_to.items():
        if method != "GET" and about(collection):
            found[method] += count
    return dict(found)


def test_a_plan_through_a_page_cap_equals_the_plan_without_it(
    letta_server, client, fault_proxy: FaultProxy, light_fleet
):
    # Hosted Letta caps pages at a value it does not publish: a cap of 10 makes every list the plan reads (30
    # agents, their 30 conversations and blocks) several short pages, as 100 would a fleet of hundreds.
    fleet = light_fleet(30)
    applied = cli(letta_server, "apply", "-f", str(fleet.path), "--parallelism", "8")
    assert applied.exit_code == 0, applied.output

    fault_proxy.faults = Faults(list_limit=10)
    planned = cli(fault_proxy.url, "plan", "-f", str(fleet.path), "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes." in planned.output
    reapplied = cli(fault_proxy.url, "apply", "-f", str(fleet.path))
    assert reapplied.exit_code == 0, reapplied.output
    assert fault_proxy.counts.capped > 0
    assert fleet_writes(fault_proxy) == {}  # nothing was written but the apply's lock (taken and released)
    assert lock_writes(fault_proxy) == {"POST": 1, "DELETE": 1}
    state = landed(client, fleet)
    assert state.is_exactly(fleet), state.duplicates()


def test_an_apply_with_a_fifth_of_its_writes_refused_applies_every_change(
    letta_server, client, fault_proxy: FaultProxy, light_fleet
):
    fleet = light_fleet(12)
    fault_proxy.faults = Faults(seed=11, refuse=0.2)
    applied = cli(fault_proxy.url, "apply", "-f", str(fleet.path))
    refused = fault_proxy.counts.refused
    assert applied.exit_code == 0, applied.output
    assert "Apply complete" in applied.output
    assert refused[429] > 0 and refused[503] > 0
    # Every refused write was sent again; none of them reached the server twice. An agent's block is made inside
    # its create request, so each agent costs a POST for itself and one for its conversation; its record of what
    # the apply made under it is one PATCH after its children.
    assert fleet_writes(fault_proxy) == {"POST": 2 * fleet.size, "PATCH": fleet.size}
    state = landed(client, fleet)
    assert state.is_exactly(fleet), state.duplicates()
    replanned = cli(letta_server, "plan", "-f", str(fleet.path), "--detailed-exitcode")
    assert replanned.exit_code == 0 and "No changes." in replanned.output, replanned.output


def test_writes_whose_outcome_is_unknown_fail_clearly_and_the_next_apply_converges(
    letta_server, client, fault_proxy: FaultProxy, light_fleet
):
    fleet = light_fleet(10)
    fault_proxy.faults = Faults(seed=5, drop=0.15, fail=0.15)
    broken = cli(fault_proxy.url, "apply", "-f", str(fleet.path))
    assert fault_proxy.counts.dropped["POST"] > 0 and fault_proxy.counts.failed.total() > 0
    assert broken.exit_code == 1
    assert "Traceback" not in broken.output
    assert "Apply failed:" in broken.output
    assert "the connection dropped before the server answered" in broken.output
    assert "answered 50" in broken.output  # an injected 500, 502 or 504
    # The writes were not sent twice:
    assert fleet_writes(fault_proxy)["POST"] <= 2 * fleet.size

    converged = cli(letta_server, "apply", "-f", str(fleet.path))
    assert converged.exit_code == 0, converged.output
    state = landed(client, fleet)
    assert state.is_exactly(fleet), state.duplicates()
    assert cli(letta_server, "plan", "-f", str(fleet.path), "--detailed-exitcode").exit_code == 0


def test_an_agent_created_with_its_block_whose_answer_was_lost_is_completed_without_a_second_block(
    letta_server, client, fault_proxy: FaultProxy, light_fleet
):
    fleet = light_fleet(1)
    # With this seed the writes go: the lock's POST forwarded, the agent's POST forwarded and its connection dropped
    # before the answer, the lock's DELETE forwarded.
    fault_proxy.faults = Faults(seed=5, drop=0.5)
    broken = cli(fault_proxy.url, "apply", "-f", str(fleet.path), "--parallelism", "1")
    assert broken.exit_code == 1 and "the connection dropped before the server answered" in broken.output
    assert dict(fault_proxy.counts.dropped) == {"POST": 1}
    assert fault_proxy.counts.forwarded_to[("POST", "agents")] == 1
    assert fault_proxy.counts.forwarded_to[("POST", "blocks")] == 0  # the block went inside the agent's request
    [agent] = [a for a in client.list_all("/v1/agents/", include=["agent.blocks"]) if a["name"] in fleet.names]
    [block] = [b for b in agent["blocks"] if b["label"] == fleet.label]  # the server made both
    assert (block["value"], block["limit"]) == ("hi", 200)

    fault_proxy.faults = Faults()
    before = Counter(fault_proxy.counts.forwarded_to)
    converged = cli(fault_proxy.url, "apply", "-f", str(fleet.path))
    assert converged.exit_code == 0, converged.output
    written = {key: count for key, count in (fault_proxy.counts.forwarded_to - before).items() if key[0] != "GET"}
    assert written == {("POST", "conversations"): 1, ("PATCH", "agents"): 1, ("POST", LOCKS): 1, ("DELETE", LOCKS): 1}
    state = landed(client, fleet)
    assert state.is_exactly(fleet), state.duplicates()
    recorded = client.get(f"/v1/agents/{agent['id']}")["metadata"]["lettafleet_applied"]
    assert {"address": f"block.{fleet.label}", "kind": "block", "id": block["id"]} in recorded
    assert cli(letta_server, "plan", "-f", str(fleet.path), "--detailed-exitcode").exit_code == 0


def test_a_server_that_dies_mid_apply_fails_the_rest_clearly_and_the_next_apply_converges(
    letta_server, client, fault_proxy: FaultProxy, light_fleet
):
    fleet = light_fleet(8)
    # The plan's reads, then about a third of the writes, then nothing.
    fault_proxy.faults = Faults(kill_after=15)
    broken = cli(fault_proxy.url, "apply", "-f", str(fleet.path), "--parallelism", "4")
    assert fault_proxy.dead
    assert broken.exit_code == 1
    assert "Traceback" not in broken.output
    assert "cannot reach the Letta server" in broken.output or "the connection dropped" in broken.output
    # The dead server could not be asked to release the apply's lock: the apply says so, and how to release it.
    assert "could not be released" in broken.output
    [unlock] = re.findall(r"`(lettafleet force-unlock [^`]+)`", broken.output)

    still_locked = cli(letta_server, "apply", "-f", str(fleet.path))
    assert still_locked.exit_code == 1 and "the fleet is locked" in still_locked.output
    released = cli(letta_server, *unlock.split()[1:], "--force")
    assert released.exit_code == 0, released.output
    converged = cli(letta_server, "apply", "-f", str(fleet.path))
    assert converged.exit_code == 0, converged.output
    state = landed(client, fleet)
    assert state.is_exactly(fleet), state.duplicates()


def test_a_conflict_says_what_conflicted_without_sql(client: LettaClient):
    """Letta 0.16.8 answers attaching a second block with an agent's label with a 409 whose detail is the raw
    database error: SQL, parameters and a link to sqlalchemy's docs."""
    suffix = uuid.uuid4().hex[:8]
    agent = client.post(
        "/v1/agents/",
        json={
            "name": f"faults-conflict-{suffix}",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "memory_blocks": [{"label": f"probe_{suffix}", "value": "first"}],
        },
    )
    second = client.post("/v1/blocks/", json={"label": f"probe_{suffix}", "value": "second secret-ish value"})
    try:
        with pytest.raises(LettaAPIError) as caught:
            client.patch(f"/v1/agents/{agent['id']}/core-memory/blocks/attach/{second['id']}")
    finally:
        client.delete(f"/v1/agents/{agent['id']}")
        for block in client.list_all("/v1/blocks/", label=f"probe_{suffix}"):
            client.delete(f"/v1/blocks/{block['id']}")
    message = str(caught.value)
    assert caught.value.status == 409
    assert "unique_label_per_agent" in message and f"probe_{suffix}" in message
    for leaked in ("SQL", "INSERT INTO", "parameters", "sqlalche.me", "asyncpg", "second secret-ish value"):
        assert leaked not in message
