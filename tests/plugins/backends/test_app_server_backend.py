"""The App Server backend's capability table: what the App Server has no counterpart for is refused at its line,
naming the backend and what to do; the keys it ignores are noted at their line; the rest passes."""

from __future__ import annotations

import pytest

from lettafleet.core import FleetError
from lettafleet.core.engine.capabilities import check_capabilities
from lettafleet.core.engine.validation import load_fleet
from tests.docs_examples import tool_source

AGENT = """
agents:
  - name: support
    llm_config: {model: openai/gpt-4o-mini}
    system_prompt: {value: You help.}
"""
TOOL_FILES = {"tools/lookup.py": tool_source("lookup")}
MCP_SERVER = "mcp_servers:\n  - {name: search, type: streamable_http, server_url: https://mcp.example.com/mcp}\n"


@pytest.fixture
def app_server(manager):
    return manager.backend_for("ws://127.0.0.1:4617")


def checked(manager, backend, write_fleet, text, files=None):
    return check_capabilities(load_fleet(write_fleet(text, files=files), manager), manager, backend)


@pytest.mark.parametrize(
    ("extra", "before", "refusal"),
    [
        (
            "    conversations:\n      - summary: T\n        isolated_blocks: [ctx]\n"
            "    memory_blocks: [{name: ctx, description: c, limit: 9, value: ''}]\n",
            "",
            "7:27: isolated_blocks: the Letta App Server backend has no isolated blocks: all conversations of an "
            "agent share its memory (one agent per conversation is the way to isolate",
        ),
        (
            "    tools: [{name: lookup, from_file: tools/lookup.py}]\n",
            "",
            "5:13: tools: the Letta App Server backend cannot define tools from source",
        ),
        (
            "    folders: [{name: faq, files: [files/faq.md]}]\n",
            "",
            "5:15: folders: the Letta App Server backend has no folders",
        ),
        (
            "    shared_folders: [handbook]\n",
            "shared_folders:\n  - {name: handbook, files: [files/faq.md]}\n",
            "2:5: shared_folders: the Letta App Server backend has no folders",
        ),
        ("    archives: [{name: notes}]\n", "", "5:16: archives: the Letta App Server backend has no archives"),
        (
            "    mcp_tools: [{server: search, tools: all}]\n",
            MCP_SERVER,
            "2:5: mcp_servers: the Letta App Server backend cannot register MCP servers",
        ),
    ],
    ids=["isolated_blocks", "tools from source", "folders", "shared_folders", "archives", "mcp"],
)
def test_what_the_app_server_lacks_is_refused_at_its_line_with_what_to_do(
    manager, app_server, write_fleet, extra, before, refusal
):
    files = {**TOOL_FILES, "files/faq.md": "Hours: 9 to 5.\n"}
    with pytest.raises(FleetError) as refused:
        checked(manager, app_server, write_fleet, before + AGENT.lstrip("\n") + extra, files)

    lines = [str(diagnostic) for diagnostic in refused.value.diagnostics]
    assert any(f"fleet.yaml:{refusal}" in line for line in lines), lines
    assert all("(" in line and line.endswith(")") for line in lines)  # each says what to do


def test_a_named_tool_is_refused_at_its_line_as_the_app_server_has_no_per_agent_choice_of_tools(
    manager, app_server, write_fleet
):
    with pytest.raises(FleetError) as refused:
        checked(manager, app_server, write_fleet, AGENT + "    tools: [web_search]\n")

    [line] = [str(diagnostic) for diagnostic in refused.value.diagnostics]
    assert "fleet.yaml:5:13: tools: the Letta App Server backend has no per-agent choice of tools" in line
    assert "Letta Code's tools are ApplyPatch, Bash, Edit" in line and "remove the agent's `tools:`" in line


def test_shared_blocks_and_secrets_pass_the_app_servers_checks(manager, app_server, write_fleet):
    fleet = "shared_blocks:\n  - {name: policy, description: p, value: Be kind.}\n" + AGENT.lstrip("\n")
    fleet += "    shared_blocks: [policy]\n    secrets: {api_key: {value: s3cret}}\n"

    assert checked(manager, app_server, write_fleet, fleet) == ()


def test_an_agent_alone_passes_the_app_servers_checks(manager, app_server, write_fleet):
    assert checked(manager, app_server, write_fleet, AGENT) == ()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("embedding", "openai/text-embedding-3-small"),
        ("embedding_config", "{embedding_endpoint_type: openai, embedding_model: m, embedding_dim: 8}"),
        ("include_base_tools", "false"),
        ("reasoning", "true"),
    ],
)
def test_a_key_the_app_server_ignores_is_noted_at_its_line(manager, app_server, write_fleet, key, value):
    notes = checked(manager, app_server, write_fleet, AGENT + f"    {key}: {value}\n")

    assert [(note.line, note.column) for note in notes] == [(5, 5)]
    assert notes[0].message.startswith(f"note: {key} has no effect on the Letta App Server backend: ")


def test_the_v1_backend_holds_everything_the_built_in_kinds_declare(manager, write_fleet):
    fleet = AGENT + "    embedding: openai/text-embedding-3-small\n    archives: [{name: notes}]\n"

    assert checked(manager, manager.backend_for("https://api.letta.com"), write_fleet, fleet) == ()
