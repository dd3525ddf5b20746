"""Removal of tools and secrets against a real Letta server: a tool line, a tool the fleet defined and a secret
removed from the file are planned as deletes and applied, then the plan says "No changes"; a tool attached by
hand and a secret set by hand survive every apply."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.integration.cli import planned_changes


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique names for the fleet, its agent and three tools; all of them are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {
        "fleet": f"removal-{suffix}",
        "agent": f"removal-{suffix}",
        "lookup": f"lookup_{suffix}",
        "keep": f"keep_{suffix}",
        "hand": f"hand_{suffix}",
    }
    yield chosen
    for agent in client.list_all("/v1/agents/", name=chosen["agent"]):
        client.delete(f"/v1/agents/{agent['id']}")
    for key in ("lookup", "keep", "hand"):
        for tool in client.get("/v1/tools/", name=chosen[key]):
            client.delete(f"/v1/tools/{tool['id']}")


def cli(letta_server: str, *args: str) -> Result:
    env = {"LETTA_BASE_URL": letta_server, "REMOVAL_TOKEN": "token-value-1"}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def source(name: str) -> str:
    docstring = '    """Look up an order.\n\n    Args:\n        order_id: The id.\n    """\n'
    return f"def {name}(order_id: str) -> str:\n{docstring}    return order_id\n"


def write_fleet(folder: Path, names: dict[str, str], *, tools: list[str], secrets: list[str]) -> Path:
    (folder / "tools").mkdir(exist_ok=True)
    for key in ("lookup", "keep"):
        (folder / "tools" / f"{names[key]}.py").write_text(source(names[key]))
    declared = {
        "TOKEN": "{from_env: REMOVAL_TOKEN}",
        "REGION": "{value: eu-west}",
    }
    path = folder / "fleet.yaml"
    path.write_text(
        f"fleet: {names['fleet']}\n"
        "agents:\n"
        f"  - name: {names['agent']}\n"
        "    llm_config: {model: letta/letta-free}\n"
        "    embedding: letta/letta-free\n"
        "    system_prompt: {value: You help.}\n"
        "    tools:\n"
        + "".join(f"      - {names[key]}\n" for key in tools)
        + "    secrets:\n"
        + "".join(f"      {key}: {declared[key]}\n" for key in secrets)
    )
    return path


def agent_on_server(client: LettaClient, name: str) -> dict:
    [agent] = client.list_all("/v1/agents/", name=name, include=["agent.tools", "agent.secrets"])
    return agent


def changes(letta_server: str, fleet: Path) -> dict[str, str]:
    return planned_changes(cli(letta_server, "plan", "-f", str(fleet), "-o", "json"))


def test_removed_tool_lines_defined_tools_and_secrets_go_and_what_was_made_by_hand_stays(
    letta_server, client, names, tmp_path
):
    full = write_fleet(tmp_path, names, tools=["lookup", "keep"], secrets=["TOKEN", "REGION"])
    assert cli(letta_server, "apply", "-f", str(full)).exit_code == 0
    agent = agent_on_server(client, names["agent"])
    hand = client.post("/v1/tools/", json={"source_code": source(names["hand"])})
    client.patch(f"/v1/agents/{agent['id']}/tools/attach/{hand['id']}")
    by_hand = {secret["key"]: secret["value"] for secret in agent["secrets"]} | {"BY_HAND": "hand-value"}
    client.patch(f"/v1/agents/{agent['id']}", json={"secrets": by_hand})
    assert changes(letta_server, full) == {}  # what was made by hand is nobody's removal

    smaller = write_fleet(tmp_path, names, tools=["keep"], secrets=["TOKEN"])
    planned = changes(letta_server, smaller)
    applied = cli(letta_server, "apply", "-f", str(smaller))

    agent_address = f"agent.{names['agent']}"
    assert planned == {
        f"{agent_address}.tool.{names['lookup']}": "delete",
        f"tool.{names['lookup']}": "delete",
        f"{agent_address}.secret.REGION": "delete",
    }
    assert applied.exit_code == 0, applied.output
    after = agent_on_server(client, names["agent"])
    assert {tool["name"] for tool in after["tools"]} >= {names["keep"], names["hand"]}
    assert names["lookup"] not in {tool["name"] for tool in after["tools"]}
    assert client.get("/v1/tools/", name=names["lookup"]) == []
    assert {secret["key"]: secret["value"] for secret in after["secrets"]} == {
        "TOKEN": "token-value-1",
        "BY_HAND": "hand-value",
    }
    assert cli(letta_server, "plan", "-f", str(smaller), "--detailed-exitcode").exit_code == 0
    assert "eu-west" not in applied.output and "hand-value" not in applied.output


def test_a_tool_line_removed_detaches_it_and_the_tool_another_agent_uses_stays(letta_server, client, names, tmp_path):
    full = write_fleet(tmp_path, names, tools=["lookup", "keep"], secrets=["TOKEN"])
    assert cli(letta_server, "apply", "-f", str(full)).exit_code == 0
    [lookup] = client.get("/v1/tools/", name=names["lookup"])
    other = client.post(
        "/v1/agents/",
        json={"name": names["agent"] + "-other", "model": "letta/letta-free", "embedding": "letta/letta-free"},
    )
    try:
        client.patch(f"/v1/agents/{other['id']}/tools/attach/{lookup['id']}")
        smaller = write_fleet(tmp_path, names, tools=["keep"], secrets=["TOKEN"])

        plan = cli(letta_server, "plan", "-f", str(smaller), "-o", "json")
        applied = cli(letta_server, "apply", "-f", str(smaller))

        [tool] = [c for c in json.loads(plan.stdout)["changes"] if c["address"] == f"tool.{names['lookup']}"]
        assert tool["action"] == "no-op"
        assert f"agent {names['agent']}-other has it still attached: kept" in tool["drift"]
        assert applied.exit_code == 0, applied.output
        assert [tool["id"] for tool in client.get("/v1/tools/", name=names["lookup"])] == [lookup["id"]]
        agent = agent_on_server(client, names["agent"])
        assert names["lookup"] not in {tool["name"] for tool in agent["tools"]}
    finally:
        client.delete(f"/v1/agents/{other['id']}")
