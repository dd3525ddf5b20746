"""`plan` warns when a change would fill an agent's context window past `--context-threshold`: the agents and
blocks plugins say what each change puts into it, against a fake Letta (respx), as a user sees it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from lettafleet.core import render_plan_markdown
from lettafleet.core.cli.app import main
from tests.fakes.letta_api import BASE_URL

# A 1,000-token window, a 3,500-character block and a shared one: with the tags Letta wraps them in, about
# 970 tokens.
FLEET = """
shared_blocks:
  - {name: policies, value: Be kind., agent_owned: false}
agents:
  - name: crowded
    llm_config: {model: letta/letta-free, context_window: 1000}
    system_prompt: {value: You help.}
    memory_blocks:
      - {name: notes, value: BIG, limit: 5000}
    shared_blocks: [policies]
  - name: roomy
    llm_config: {model: letta/letta-free, context_window: 32000}
    system_prompt: {value: You help.}
    shared_blocks: [policies]
"""


def plan(letta, write_fleet, *options: str, value: str = "x" * 3500) -> Result:
    path: Path = write_fleet(FLEET.replace("BIG", value))
    return CliRunner().invoke(
        main, ["plan", "-f", str(path), *options], env={"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""}
    )


def test_plan_warns_of_the_agent_whose_window_the_change_would_nearly_fill(letta, write_fleet):
    result = plan(letta, write_fleet)
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert warning.startswith("Warning: agent.crowded would fill 9")
    assert "of 1,000 tokens, over 80%), leaving little room for messages." in warning
    assert "Shorten its system prompt or memory blocks, or raise llm_config.context_window." in warning
    assert "roomy" not in warning


def test_the_json_plan_carries_the_warning_with_its_figures(letta, write_fleet):
    document = json.loads(plan(letta, write_fleet, "-o", "json").output)
    [warning] = document["context_warnings"]
    assert warning["address"] == "agent.crowded" and warning["context_window"] == 1000
    assert 900 < warning["estimated_tokens"] < 1000 and warning["threshold_percent"] == 80
    assert warning["percent"] == round(100 * warning["estimated_tokens"] / 1000, 1)
    assert document["format_version"] == "1.3"


def test_a_higher_threshold_or_a_shorter_block_says_nothing(letta, write_fleet):
    assert "Warning:" not in plan(letta, write_fleet, "--context-threshold", "99").output
    assert json.loads(plan(letta, write_fleet, "-o", "json", value="short").output)["context_warnings"] == []


def test_a_threshold_outside_1_to_100_percent_is_refused_before_anything_is_read(letta, write_fleet):
    result = plan(letta, write_fleet, "--context-threshold", "0")
    assert result.exit_code == 1 and "--context-threshold" in result.output and "1<=x<=100" in result.output
    assert not letta.writes


def test_the_pull_request_comment_calls_the_warning_out(letta, write_fleet, fleet):
    from lettafleet.core.engine.context_budget import with_context_warnings

    the_plan = with_context_warnings(fleet.plan(FLEET.replace("BIG", "x" * 3500)), fleet.manager)
    kinds = {kind.name: kind for found in fleet.manager.hook.lettafleet_kinds() for kind in found}
    comment = render_plan_markdown(the_plan, kinds)
    assert "> **1 context window would be more than 80% full, leaving little room for messages:**" in comment
    assert "> - `agent.crowded`: about 9" in comment and "of 1,000 tokens" in comment


def test_blocks_the_application_gave_the_agent_count_though_the_fleet_does_not_declare_them(letta, write_fleet):
    human = letta.add_block("human", "x" * 3500, limit=5000)
    letta.add_agent("app-user", blocks=[human], system="You help.", context_window_limit=1000, managed=False)
    path = write_fleet(
        "agents:\n  - name: app-user\n    llm_config: {model: letta/letta-free, context_window: 1000}\n"
        "    system_prompt: {value: You help politely.}\n"
    )
    env = {"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""}
    document = json.loads(CliRunner().invoke(main, ["plan", "-f", str(path), "-o", "json"], env=env).output)
    assert [change["address"] for change in document["changes"] if change["action"] == "update"] == ["agent.app-user"]
    [warning] = document["context_warnings"]
    assert warning["address"] == "agent.app-user" and 900 < warning["estimated_tokens"] < 1000


def test_a_block_the_plan_shortens_takes_its_agent_back_under_the_threshold(letta, write_fleet):
    notes = letta.add_block("notes", "x" * 3500, limit=5000, metadata={"managed_by": "lettafleet", "agent": "full"})
    letta.add_agent("full", blocks=[notes], system="You help.", context_window_limit=1000)
    path = write_fleet(
        "agents:\n  - name: full\n    llm_config: {model: letta/letta-free, context_window: 1000}\n"
        "    system_prompt: {value: You help.}\n"
        "    memory_blocks:\n      - {name: notes, value: short now, limit: 5000, agent_owned: false}\n"
    )
    env = {"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""}
    document = json.loads(CliRunner().invoke(main, ["plan", "-f", str(path), "-o", "json"], env=env).output)
    updated = [change["address"] for change in document["changes"] if change["action"] == "update"]
    assert updated == ["agent.full.block.notes"]
    assert document["context_warnings"] == []
