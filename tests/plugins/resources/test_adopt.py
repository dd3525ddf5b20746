"""`lettafleet import` against the stand-in Letta: an agent made by hand is marked as lettafleet's (exactly the
expected PATCHes, its other metadata kept), appended to a fleet file whose text and comments stay, and then plans
no changes; refusals change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.letta_api import BASE_URL, FakeLetta
from tests.plugins.resources.test_export import LOOKUP

FLEET = """\
# The support team's fleet: keep this comment.
agents:
  - name: other  # declared by hand
    system_prompt: {value: You help.}
    llm_config: {model: letta/letta-free}

# trailing remark
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""})


@pytest.fixture
def hand_made(letta: FakeLetta) -> dict:
    """An agent made without lettafleet: metadata of its own, two blocks, a custom tool."""
    tool = letta.add_tool("lookup_order", LOOKUP)
    blocks = [letta.add_block("persona", "I am Sam."), letta.add_block("human", "A customer.")]
    return letta.add_agent(
        "hand", blocks=blocks, managed=False, metadata={"owner": "ops"}, system="You help.", tool_ids=[tool["id"]]
    )


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET, encoding="utf-8")
    return path


def test_import_marks_the_agent_its_blocks_and_tools_and_keeps_other_metadata(letta, hand_made, fleet_file):
    result = run("import", "hand", "-f", str(fleet_file))

    assert result.exit_code == 0, result.output
    patches = {write.path: write.body for write in letta.resource_writes if write.method == "PATCH"}
    persona, human = (block["id"] for block in hand_made["blocks"])
    [tool] = [tool for tool in hand_made["tools"] if tool["name"] == "lookup_order"]
    assert patches == {
        f"/v1/agents/{hand_made['id']}": {"metadata": {"owner": "ops", "managed_by": "lettafleet"}},
        f"/v1/blocks/{persona}": {"metadata": {"managed_by": "lettafleet", "agent": "hand"}},
        f"/v1/blocks/{human}": {"metadata": {"managed_by": "lettafleet", "agent": "hand"}},
        f"/v1/tools/{tool['id']}": {"tags": ["managed_by:lettafleet"]},
    }
    assert not letta.writes_to("POST") and not letta.writes_to("DELETE")
    [record] = letta.record_writes  # what the entry declares under the agent, as apply records it
    recorded = {entry["address"]: entry.get("id") for entry in record.body["metadata"]["lettafleet_applied"]}
    assert recorded["block.persona"] == persona and recorded["block.human"] == human
    assert recorded["tool.lookup_order"] == tool["id"]


def test_the_fleet_file_keeps_its_text_and_then_plans_no_changes(letta, hand_made, fleet_file, manager):
    letta.add_agent("other", system="You help.")
    assert run("import", "hand", "-f", str(fleet_file)).exit_code == 0

    text = fleet_file.read_text()
    assert text.startswith(FLEET.split("\n\n")[0])  # the file's own lines, comments included, untouched
    assert "# trailing remark" in text and "# declared by hand" in text
    assert [agent["name"] for agent in load_fleet(fleet_file, manager).data["agents"]] == ["other", "hand"]
    with LettaClient(BASE_URL, api_key="", retries=0) as client:
        plan = plan_fleet(load_fleet(fleet_file, manager), client, manager)
    assert {change.action.value for change in plan.changes} == {"no-op"}
    assert {"agent.hand", "agent.hand.block.persona", "agent.hand.block.human", "tool.lookup_order"} <= {
        change.address for change in plan.changes
    }
    assert (fleet_file.parent / "tools" / "lookup_order.py").read_text() == LOOKUP


def test_a_block_other_agents_hold_is_left_alone_and_reported(letta, fleet_file):
    common = letta.add_block("policies", "Refunds within 30 days.")
    letta.add_agent("helper", blocks=[common], managed=False)
    letta.add_agent("hand", blocks=[common], managed=False)

    result = run("import", "hand", "-f", str(fleet_file))

    assert result.exit_code == 0, result.output
    assert f"leave block policies ({common['id']}) of agent hand alone: agents helper hold it too" in result.output
    assert not [write for write in letta.writes_to("PATCH") if write.path.startswith("/v1/blocks/")]
    assert common["metadata"] == {}


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(letta, hand_made, fleet_file):
    result = run("import", "hand", "-f", str(fleet_file), "--dry-run")

    assert result.exit_code == 0, result.output
    assert f"mark agent hand ({hand_made['id']}) as lettafleet's" in result.output
    assert "append hand to" in result.output
    assert not letta.writes and fleet_file.read_text() == FLEET


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["other"], "other is declared in"),
        (["nobody*"], "no agent on http://letta.test matches nobody*"),
        (["twin"], "2 agents are named 'twin' (agent-"),
    ],
)
def test_refusals_change_nothing(letta, hand_made, fleet_file, names, message):
    letta.add_agent("other", managed=False)
    letta.add_agent("twin", managed=False)
    letta.add_agent("twin", managed=False)

    result = run("import", *names, "-f", str(fleet_file))

    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not letta.writes and fleet_file.read_text() == FLEET


def test_files_beside_the_fleet_file_are_not_overwritten_without_force(letta, hand_made, fleet_file):
    (fleet_file.parent / "tools").mkdir()
    (fleet_file.parent / "tools" / "lookup_order.py").write_text("mine")

    refused = run("import", "hand", "-f", str(fleet_file))

    assert refused.exit_code == 1 and "already exists" in refused.output
    assert not letta.writes and fleet_file.read_text() == FLEET
    assert run("import", "hand", "-f", str(fleet_file), "--force").exit_code == 0
    assert (fleet_file.parent / "tools" / "lookup_order.py").read_text() == LOOKUP


def test_entries_go_at_the_end_of_the_agents_list_not_the_end_of_the_file(letta, hand_made, tmp_path, manager):
    fleet_file = tmp_path / "fleet.yaml"
    before = "agents:\n- name: other\n  system_prompt: {value: Hi.}\n  llm_config: {model: letta/letta-free}\n"
    after = "# shared below\nshared_blocks:\n  - {name: policies, value: Refunds.}\n"
    fleet_file.write_text(before + after)

    assert run("import", "hand", "-f", str(fleet_file)).exit_code == 0

    text = fleet_file.read_text()
    assert text.startswith(before + "- name: hand\n") and text.endswith(after)
    assert [agent["name"] for agent in load_fleet(fleet_file, manager).data["agents"]] == ["other", "hand"]
