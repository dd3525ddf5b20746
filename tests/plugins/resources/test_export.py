"""Export against the stand-in Letta: a fleet applied to the server, exported by name, written beside a new fleet
file and planned again changes nothing, for agents with own and shared blocks, server and custom tools and
secrets; and the export names secrets without their values."""

from __future__ import annotations

from pathlib import Path

import pytest

from lettafleet.core import ExportedFleet, ExportError, LiveReader, export_fleet, write_export
from lettafleet.core.engine.model import Plan
from lettafleet.core.engine.planning import desired_resources, plan_fleet
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.commands.export import chosen_agents
from lettafleet.plugins.resources.agents import agents_named
from tests.fakes.letta_api import BASE_URL

LOOKUP = '''def lookup_order(order_id: str) -> str:
    """Look up an order.

    Args:
        order_id: the order's number.
    """
    return order_id
'''
LONG_PROMPT = "You are the support agent.\n\nBe kind.\nBe brief.\nSay when you do not know.\n"
FLEET = """
shared_blocks:
  - name: policies
    value: Refunds within 30 days.
agents:
  - name: support
    description: Answers customers
    system_prompt: {from_file: prompt.md}
    llm_config: {model: letta/letta-free, context_window: 16000}
    embedding: letta/letta-free
    tags: [team-a, support]
    memory_blocks:
      - {name: persona, value: I am Sam., limit: 5000}
      - {name: notes, from_file: notes.md}
    shared_blocks: [policies]
    tools: [web_search, lookup_order]
    secrets:
      ORDERS_KEY: {value: s3cr3t-value}
  - name: sales
    system_prompt: {value: You sell.}
    llm_config: {model: openai/gpt-4o-mini}
    tags: [team-b]
    shared_blocks: [policies]
  - name: other
    system_prompt: {value: Not exported.}
    llm_config: {model: letta/letta-free}
"""
FILES = {"prompt.md": LONG_PROMPT, "notes.md": "line 1\nline 2\nline 3\nline 4\n", "tools/lookup_order.py": LOOKUP}


@pytest.fixture
def applied(fleet) -> None:
    fleet.letta.add_tool("web_search", tool_type="letta_builtin")
    report = fleet.apply(fleet.plan(FLEET, FILES))
    assert all(result.status == "applied" for result in report.results), fleet.results(report)


def exported(manager, names: list[str], tags: tuple[str, ...] = (), *, conversations: bool = False) -> ExportedFleet:
    """What `lettafleet export NAMES --tags TAGS [--conversations]` gathers from the server."""
    with LettaClient(BASE_URL, api_key="", retries=0) as client:
        reader = LiveReader(client)
        try:
            chosen = chosen_agents(agents_named(reader), names, list(tags))
            return export_fleet(manager, reader, chosen, with_runtime=conversations)
        finally:
            reader.close()


def plan_of(path: Path, manager) -> Plan:
    with LettaClient(BASE_URL, api_key="", retries=0) as client:
        return plan_fleet(load_fleet(path, manager), client, manager)


def test_an_export_of_applied_agents_plans_no_changes(applied, manager, tmp_path: Path) -> None:
    out = tmp_path / "export" / "fleet.yaml"
    write_export(exported(manager, ["support", "sales"]), out)

    plan = plan_of(out, manager)

    assert {change.action.value for change in plan.changes} == {"no-op"}
    assert not plan.ambiguities
    addresses = {change.address for change in plan.changes}
    assert {"agent.support", "agent.sales", "shared_block.policies", "agent.support.block.notes"} <= addresses
    assert {"tool.lookup_order", "agent.support.tool.web_search", "agent.support.secret.ORDERS_KEY"} <= addresses
    assert "agent.other" not in addresses


def test_an_export_declares_what_the_applied_fleet_declared(applied, fleet, manager, tmp_path: Path) -> None:
    out = tmp_path / "export" / "fleet.yaml"
    write_export(exported(manager, ["support", "sales"]), out)

    again = {r.address: r.attributes for r in desired_resources(load_fleet(out, manager), manager)}
    before = {r.address: r.attributes for r in desired_resources(fleet.load(FLEET, FILES), manager)}

    for address in ("agent.support", "agent.sales", "agent.support.block.notes", "shared_block.policies"):
        assert again[address].items() >= before[address].items(), address  # and what the server filled in
    assert again["tool.lookup_order"]["source_code"] == LOOKUP


def test_long_texts_and_custom_tools_go_to_files_beside_the_fleet_file(applied, manager, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    out = folder / "fleet.yaml"
    write_export(exported(manager, ["sup*"]), out)

    assert (folder / "prompts" / "support.md").read_text() == LONG_PROMPT.strip()
    assert (folder / "blocks" / "support" / "notes.md").read_text() == FILES["notes.md"]
    assert (folder / "tools" / "lookup_order.py").read_text() == LOOKUP
    [support] = load_fleet(out, manager).data["agents"]
    assert support["system_prompt"] == {"from_file": "prompts/support.md"}
    blocks = {block["name"]: block for block in support["memory_blocks"]}
    assert blocks["persona"]["value"] == "I am Sam." and blocks["persona"]["limit"] == 5000
    assert blocks["notes"]["from_file"] == "blocks/support/notes.md"


def test_secrets_are_exported_by_name_only_and_keep_the_servers_value(applied, manager, tmp_path: Path) -> None:
    document = exported(manager, ["support"]).document

    assert document["agents"][0]["secrets"] == {"ORDERS_KEY": {"from_env": "ORDERS_KEY", "preserve_existing": True}}
    assert "s3cr3t-value" not in str(document)


def test_agents_are_chosen_by_tag(applied, manager) -> None:
    document = exported(manager, [], ["team-b"]).document

    assert [agent["name"] for agent in document["agents"]] == ["sales"]


def test_an_existing_file_is_not_overwritten_without_force(applied, manager, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    (folder / "prompts").mkdir(parents=True)
    (folder / "prompts" / "support.md").write_text("mine")
    export = exported(manager, ["support"])

    with pytest.raises(ExportError, match="already exist"):
        write_export(export, folder / "fleet.yaml")

    assert not (folder / "fleet.yaml").exists()
    assert (folder / "prompts" / "support.md").read_text() == "mine"
    write_export(export, folder / "fleet.yaml", force=True)
    assert (folder / "prompts" / "support.md").read_text() == LONG_PROMPT.strip()


CONVERSATIONS = """
agents:
  - name: desk
    system_prompt: {value: You help.}
    llm_config: {model: letta/letta-free}
    memory_blocks:
      - {name: customer, value: unknown}
    conversations:
      - {summary: Ticket 1, isolated_blocks: [customer], protect: true}
      - summary: Ticket 2
"""


@pytest.fixture
def desk(fleet):
    """CONVERSATIONS applied, and then conversations made at runtime: one without a summary, one with a declared
    summary, one with its own."""
    assert fleet.apply(fleet.plan(CONVERSATIONS)).ok
    agent = fleet.letta.agent_named("desk")
    for summary in (None, "Ticket 1", "Runtime"):
        fleet.letta.add_conversation(agent, summary, talked=True)
    return agent


def test_declared_conversations_are_always_exported_and_runtime_ones_only_when_asked(desk, manager) -> None:
    [declared] = exported(manager, ["desk"]).document["agents"]
    assert sorted(declared["conversations"], key=lambda entry: entry["summary"]) == [
        {"summary": "Ticket 1", "isolated_blocks": ["customer"], "protect": True},
        {"summary": "Ticket 2"},
    ]

    [agent] = exported(manager, ["desk"], conversations=True).document["agents"]

    assert sorted(agent["conversations"], key=lambda entry: entry["summary"]) == [
        {"summary": "Runtime"},
        {"summary": "Ticket 1", "isolated_blocks": ["customer"], "protect": True},
        {"summary": "Ticket 2"},
    ]


def test_an_export_with_conversations_plans_no_changes(desk, manager, tmp_path: Path) -> None:
    out = tmp_path / "export" / "fleet.yaml"
    write_export(exported(manager, ["desk"], conversations=True), out)

    plan = plan_of(out, manager)

    assert not plan.has_changes and not plan.has_drift, [c.to_json() for c in plan.changes if c.changes_something]
    [ambiguity] = plan.ambiguities  # the runtime conversation with a declared summary is left alone, and said so
    assert "the plan uses the one the last apply made" in ambiguity.message
