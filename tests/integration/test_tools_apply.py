"""Tools against a real Letta server: custom tools made from source, server tools attached by name, updates that
converge, and a tool name the server lacks caught before any write."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique agent and tool names; the agents and tools carrying them are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {"agent": f"tools-{suffix}", "other": f"tools-other-{suffix}", "tool": f"lookup_{suffix}"}
    yield chosen
    for name in (chosen["agent"], chosen["other"]):
        for agent in client.list_all("/v1/agents/", name=name):
            client.delete(f"/v1/agents/{agent['id']}")
    for tool in client.get("/v1/tools/", name=chosen["tool"]):
        client.delete(f"/v1/tools/{tool['id']}")


def cli(letta_server: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": letta_server}, catch_exceptions=False)


def tool_source(name: str, status: str) -> str:
    return (
        "def _clean(order_id: str) -> str:\n"
        "    return order_id.strip().upper()\n\n\n"
        f"def {name}(order_id: str) -> str:\n"
        '    """Look up an order.\n\n    Args:\n        order_id: The order\'s id.\n    """\n'
        f'    return _clean(order_id) + ": {status}"\n'
    )


def write_fleet(folder: Path, names: dict[str, str], *, status: str = "shipped", other_tools: str = "[]") -> Path:
    tools = folder / "tools"
    tools.mkdir(exist_ok=True)
    (tools / f"{names['tool']}.py").write_text(tool_source(names["tool"], status))
    path = folder / "agents.yml"
    path.write_text(
        f"""agents:
  - name: {names["agent"]}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
    tools: [web_search, "tools/*"]
  - name: {names["other"]}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help too.}}
    tools: {other_tools}
"""
    )
    return path


def tools_of(client: LettaClient, agent_name: str) -> set[str]:
    [agent] = client.list_all("/v1/agents/", name=agent_name, include=["agent.tools"])
    return {tool["name"] for tool in agent["tools"]}


def requests(result: Result) -> str:
    match = re.search(r"^Requests: \d+ \((.*)\)$", result.stderr, re.MULTILINE)
    assert match, result.stderr
    return match.group(1)


def test_tools_are_made_and_attached_and_a_second_apply_writes_nothing(letta_server, client, names, tmp_path):
    fleet = write_fleet(tmp_path, names)

    first = cli(letta_server, "apply", "-f", str(fleet))

    assert first.exit_code == 0, first.output
    assert {"web_search", names["tool"]} <= tools_of(client, names["agent"])
    [tool] = client.get("/v1/tools/", name=names["tool"])
    assert tool["source_code"] == tool_source(names["tool"], "shipped")
    assert "managed_by:lettafleet" in tool["tags"]
    again = cli(letta_server, "apply", "-f", str(fleet), "-v")
    assert "No changes. The server matches the fleet." in again.output
    assert requests(again).startswith("GET") and "POST" not in requests(again) and "PATCH" not in requests(again)


def test_a_changed_source_updates_the_tool_and_a_tool_added_to_an_agent_is_attached(
    letta_server, client, names, tmp_path
):
    fleet = write_fleet(tmp_path, names)
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    write_fleet(tmp_path, names, status="delivered", other_tools=f"[{names['tool']}, fetch_webpage]")

    plan = cli(letta_server, "plan", "-f", str(fleet))
    applied = cli(letta_server, "apply", "-f", str(fleet))

    assert '-     return _clean(order_id) + ": shipped"' in plan.output
    assert '+     return _clean(order_id) + ": delivered"' in plan.output
    assert "Plan: 2 to create, 1 to update, 0 to delete." in plan.output  # two attachments, one tool source
    assert applied.exit_code == 0, applied.output
    [tool] = client.get("/v1/tools/", name=names["tool"])
    assert tool["source_code"] == tool_source(names["tool"], "delivered")
    assert {names["tool"], "fetch_webpage"} <= tools_of(client, names["other"])
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


def test_a_tool_the_server_lacks_is_reported_at_its_line_before_any_write(letta_server, client, names, tmp_path):
    fleet = write_fleet(tmp_path, names, other_tools="[web_serch]")

    result = cli(letta_server, "apply", "-f", str(fleet))

    assert result.exit_code == 1
    assert f"{fleet}:11:13: tool 'web_serch' is not on {letta_server} (did you mean web_search?)" in result.stderr
    assert client.list_all("/v1/agents/", name=names["agent"]) == []
    assert client.get("/v1/tools/", name=names["tool"]) == []


def test_a_fleet_never_redefines_one_of_lettas_own_tools(
    tmp_path: Path, names: dict[str, str], letta_server: str, client: LettaClient
):
    """send_message is Letta's own (tool_type letta_core), used by every agent on the server: a fleet that defines a
    function of that name is stopped at its line before anything is written."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "send_message.py").write_text(
        'def send_message(message: str) -> str:\n    """Say it.\n\n    Args:\n        message: What.\n    """\n'
        "    return message\n"
    )
    fleet = tmp_path / "agents.yml"
    fleet.write_text(
        f"agents:\n  - name: {names['agent']}\n    llm_config: {{model: letta/letta-free}}\n"
        "    embedding: letta/letta-free\n    system_prompt: {value: Hi.}\n    tools: [send_message]\n"
    )

    result = cli(letta_server, "apply", "-f", str(fleet))

    assert result.exit_code == 1
    assert f"{fleet}:6:" in result.output
    assert "tool 'send_message' is one of Letta's own tools (letta_core)" in result.output
    assert "give your function another name" in result.output
    assert client.list_all("/v1/agents/", name=names["agent"]) == []  # nothing was written
