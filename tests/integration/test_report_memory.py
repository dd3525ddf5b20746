"""`report memory` and `plan`'s context warning on the real dev server: the compiled memory lettafleet computes is
the server's own (`GET /v1/agents/{id}/context`, read over the REST API), for agents an application made, and
what `plan` predicts for an agent is what `report memory` finds once it is applied."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.integration.cli import cli, ok

SENTENCE = "The customer prefers short answers and writes from Lisbon about invoices and refunds. "
LLM = {
    "model": "letta-free",
    "model_endpoint_type": "openai",
    "model_endpoint": "https://inference.letta.com",
    "context_window": 4000,
}


@pytest.fixture
def prefix(client: LettaClient) -> Iterator[str]:
    """A unique name prefix; every agent and block under it is deleted afterwards."""
    name = f"memrep{uuid.uuid4().hex[:8]}"
    yield name
    for agent in client.list_all("/v1/agents/"):
        if agent["name"].startswith(name):
            client.delete(f"/v1/agents/{agent['id']}")
    for block in client.list_all("/v1/blocks/", label=f"{name}_policies"):
        client.delete(f"/v1/blocks/{block['id']}")


def application_agent(client: LettaClient, name: str, shared_id: str) -> dict[str, Any]:
    """An agent made as an application makes one, not by lettafleet: own blocks, and a shared block attached."""
    made = client.post(
        "/v1/agents/",
        json={
            "name": name,
            "system": ("You answer billing questions. " * 5).strip(),
            "llm_config": LLM,
            "embedding": "letta/letta-free",
            "memory_blocks": [
                {"label": "human", "value": SENTENCE * 12, "description": "Who you talk to.", "limit": 5000},
                {"label": "persona", "value": "I am patient.", "limit": 300},
            ],
        },
    )
    client.patch(f"/v1/agents/{made['id']}/core-memory/blocks/attach/{shared_id}")
    return made


def test_report_memory_gives_the_servers_own_compiled_memory_and_prompt_for_application_made_agents(
    letta_server: str, client: LettaClient, prefix: str
) -> None:
    shared = client.post("/v1/blocks/", json={"label": f"{prefix}_policies", "value": SENTENCE * 3, "limit": 2000})
    made = [application_agent(client, f"{prefix}-user-{index}", shared["id"]) for index in range(2)]

    document = json.loads(ok(cli(letta_server, "report", "memory", "--match", f"{prefix}-user-*", "-o", "json")))

    reported = {record["agent_id"]: record for record in document["agents"]}
    assert set(reported) == {agent["id"] for agent in made}
    for agent in made:
        record, context = reported[agent["id"]], client.get(f"/v1/agents/{agent['id']}/context")
        assert record["memory_characters"] == len(context["core_memory"])
        assert record["prompt_characters"] == len(context["system_prompt"])
        assert record["context_window"] == context["context_window_size_max"] == 4000
        server_tokens = context["num_tokens_core_memory"] + context["num_tokens_system"]
        assert 0.75 * server_tokens <= record["estimated_tokens"] <= 1.25 * server_tokens, (record, server_tokens)
        assert {block["label"] for block in record["blocks"]} == {"human", "persona", f"{prefix}_policies"}
    one = ok(cli(letta_server, "report", "memory", made[0]["name"]))
    assert made[0]["name"] in one and "1 agent; 0 over 80% of the context window." in one


def test_what_plan_warns_of_is_what_report_memory_finds_once_applied(
    letta_server: str, client: LettaClient, prefix: str, tmp_path: Path
) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        f"""agents:
  - name: {prefix}-crowded
    llm_config: {{model: letta/letta-free, context_window: 1000}}
    embedding: letta/letta-free
    system_prompt: {{value: You answer billing questions.}}
    memory_blocks:
      - {{name: history, value: "{SENTENCE * 40}", limit: 5000, agent_owned: false}}
""",
        encoding="utf-8",
    )
    planned = json.loads(ok(cli(letta_server, "plan", "-f", str(fleet), "-o", "json")))
    [warning] = planned["context_warnings"]
    assert warning["address"] == f"agent.{prefix}-crowded" and warning["percent"] > 80

    applied = ok(cli(letta_server, "apply", "-f", str(fleet)))
    assert f"Warning: agent.{prefix}-crowded would fill" in applied and "Apply complete" in applied
    report = json.loads(ok(cli(letta_server, "report", "memory", f"{prefix}-crowded", "-o", "json")))
    [record] = report["agents"]
    assert record["over_threshold"] is True
    assert record["estimated_tokens"] == warning["estimated_tokens"]
    agent = client.get(f"/v1/agents/{record['agent_id']}/context")
    assert record["memory_characters"] == len(agent["core_memory"])
