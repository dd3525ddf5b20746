"""Agents' `mcp_tools` against a fake Letta (respx): the named tools of a registered MCP server are attached by the
ids Letta gave them, `all` is every tool the server lists, and an entry removed from the file detaches them (and
only them). The
dev server cannot list an MCP server's tools (it refuses private URLs), so these are proven here only."""

from __future__ import annotations

import json

FLEET = """\
mcp_servers:
  - {{name: search, type: streamable_http, server_url: "https://mcp.example.com/mcp", auth_token: tok-Secret9}}
agents:
  - name: support
    llm_config: {{model: openai/gpt-4o-mini}}
    embedding: openai/text-embedding-3-small
    system_prompt: {{value: You help.}}
{tools}"""


def test_named_mcp_tools_are_attached_by_their_ids_and_the_token_never_shows(fleet, letta):
    server = letta.add_mcp_server(
        "search", ["web_find", "web_read"], server_url="https://mcp.example.com/mcp", auth_token="tok-Secret9"
    )
    agent = letta.add_agent("support", system="You help.")

    plan = fleet.plan(FLEET.format(tools="    mcp_tools: [{server: search, tools: [web_find]}]"))

    assert "tok-Secret9" not in json.dumps(plan.to_json())
    assert fleet.actions(plan)["agent.support.mcp_tools.search"] == "update"
    fleet.apply(plan)
    [find] = [i for i in letta.mcp_servers[server["id"]]["tool_ids"] if letta.tools[i]["name"] == "web_find"]
    attached = [w.path for w in letta.writes_to("PATCH") if "/tools/" in w.path]
    assert attached == [f"/v1/agents/{agent['id']}/tools/attach/{find}"]


def test_all_means_every_tool_the_server_lists(fleet, letta):
    letta.add_mcp_server(
        "search", ["web_find", "web_read"], server_url="https://mcp.example.com/mcp", auth_token="tok-Secret9"
    )
    letta.add_agent("support", system="You help.")

    plan = fleet.plan(FLEET.format(tools="    mcp_tools: [{server: search, tools: all}]"))

    [change] = [c for c in plan.changes if c.kind == "mcp_tools"]
    assert (change.before, change.after) == ({"tools": []}, {"tools": ["web_find", "web_read"]})


def test_a_tool_the_server_does_not_offer_stops_the_plan(fleet, letta):
    letta.add_mcp_server("search", ["web_find"], server_url="https://mcp.example.com/mcp", auth_token="tok-Secret9")
    letta.add_agent("support", system="You help.")

    try:
        fleet.plan(FLEET.format(tools="    mcp_tools: [{server: search, tools: [web_fnd]}]"))
    except Exception as error:  # the plan's FleetError, with the line
        assert "offers no tool 'web_fnd'" in str(error) and "web_find" in str(error)
    else:
        raise AssertionError("the plan went ahead")


def test_a_new_auth_token_the_server_ignores_fails_the_change_and_says_what_to_do(fleet, letta):
    server = letta.add_mcp_server("search", [], server_url="https://mcp.example.com/mcp", auth_token="tok-Old1")
    letta.add_agent("support", system="You help.")

    report = fleet.apply(fleet.plan(FLEET.format(tools="")))

    status, message = fleet.results(report)["mcp_server.search"]
    assert status == "failed"
    assert "kept the old auth_token" in message and f"DELETE /v1/mcp-servers/{server['id']}" in message
    assert "tok-Secret9" not in message and "tok-Old1" not in message


def test_an_mcp_tools_entry_taken_out_of_the_file_detaches_its_tools(fleet, letta):
    server = letta.add_mcp_server(
        "search", ["web_find", "web_read"], server_url="https://mcp.example.com/mcp", auth_token="tok-Secret9"
    )
    agent = letta.add_agent("support", system="You help.")
    fleet.apply(fleet.plan(FLEET.format(tools="    mcp_tools: [{server: search, tools: all}]")))
    ids = letta.mcp_servers[server["id"]]["tool_ids"]
    assert set(ids) <= set(letta.agents[agent["id"]]["tool_ids"])

    plan = fleet.plan(FLEET.format(tools=""))

    [change] = [c for c in plan.changes if c.kind == "mcp_tools"]
    assert (change.address, change.action.value) == ("agent.support.mcp_tools.search", "delete")
    assert change.before == {"tools": ["web_find", "web_read"]}
    assert fleet.apply(plan).ok
    detached = sorted(w.path for w in letta.writes_to("PATCH") if "/tools/" in w.path)
    assert detached == sorted(f"/v1/agents/{agent['id']}/tools/detach/{i}" for i in ids)
    assert not set(ids) & set(letta.agents[agent["id"]]["tool_ids"])
    assert fleet.actions(fleet.plan(FLEET.format(tools=""))).get("agent.support.mcp_tools.search") is None
