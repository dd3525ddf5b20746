"""An apply through a server that answers a fifth of its writes 429: it slows down as told, every change lands
exactly once, the recompiles after it are paced the same way, and the report says the rate it ran at."""

from __future__ import annotations

import json

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import FaultProxy, Faults, Refusal
from tests.integration.cli import cli, ok
from tests.integration.test_server_faults import fleet_writes, landed, light_fleet  # noqa: F401  (a fixture)

TOO_MANY = (Refusal(429, "1"), Refusal(429), Refusal(429, "0"))


def test_thirty_agents_apply_through_a_fifth_of_writes_refused_429_each_change_once_at_a_stated_rate(
    letta_server,
    client: LettaClient,
    fault_proxy: FaultProxy,
    light_fleet,  # noqa: F811  (the fixture imported above)
):
    fleet = light_fleet(30)
    fault_proxy.faults = Faults(seed=16, refuse=0.2, refusals=TOO_MANY)
    # Without the lock, whose own client the proxy refuses too, every refusal the proxy made is the apply's.
    document = json.loads(ok(cli(fault_proxy.url, "apply", "-f", str(fleet.path), "-o", "json", "--no-lock")))

    refused = fault_proxy.counts.refused[429]
    assert refused > 0
    assert document["apply"]["ok"] is True
    # Each agent: its create (with its block), its conversation, its record; none twice.
    assert fleet_writes(fault_proxy) == {"POST": 2 * fleet.size, "PATCH": fleet.size}
    state = landed(client, fleet)
    assert state.is_exactly(fleet), state.duplicates()
    pace = document["apply"]["pace"]
    assert pace["refusals"] == refused
    assert pace["requests"] >= 3 * fleet.size + refused
    assert pace["requests_per_second"] > 0 and pace["paused_seconds"] > 0
    assert 1 <= pace["concurrency_lowest"] < pace["concurrency_highest"] == 8


def test_the_recompiles_after_a_prompt_change_are_paced_through_429s_too(
    letta_server,
    client: LettaClient,
    fault_proxy: FaultProxy,
    light_fleet,  # noqa: F811  (the fixture imported above)
):
    fleet = light_fleet(30)
    ok(cli(letta_server, "apply", "-f", str(fleet.path)))
    fleet.path.write_text(fleet.path.read_text().replace("You help.", "You help politely."), encoding="utf-8")

    fault_proxy.faults = Faults(seed=3, refuse=0.2, refusals=TOO_MANY)
    output = ok(cli(fault_proxy.url, "apply", "-f", str(fleet.path), "--no-lock"))
    assert fault_proxy.counts.refused[429] > 0
    assert fault_proxy.counts.forwarded_to[("POST", "conversations")] == fleet.size  # each recompiled once
    assert f"Recompiled {fleet.size} conversations of {fleet.size} agents" in output
    [rate] = [line for line in output.splitlines() if line.startswith("Rate: ")]
    assert f"{fault_proxy.counts.refused[429]} refused (429/503)" in rate
    assert "Apply complete" in output
    prompts = {a["system"] for a in client.list_all("/v1/agents/") if a["name"] in fleet.names}
    assert prompts == {"You help politely."}
