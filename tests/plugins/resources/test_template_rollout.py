"""A template's safe rollout, as a user runs it: `plan/apply --sample N` changes a deterministic sample and stops,
`apply --promote` rolls the same change to the rest in batches only while the sample holds it, and a promotion
stopped partway is finished by the next run without changing any agent twice."""

from __future__ import annotations

import json
import threading

from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.resources.template_rollout import rollout_order
from tests.fakes.letta_api import BASE_URL
from tests.plugins.resources.test_templates import runtime_agents

SUPPORT = """
templates:
  - name: support
    match: "user-*"
    system_prompt: {value: "You are the support agent."}
"""
NEW_PROMPT = "You are the support agent."


def lettafleet(*args: str) -> Result:
    """The command as a user runs it (apply without the server lock, which the fake does not keep)."""
    given = [*args, "--no-lock"] if args[0] == "apply" else list(args)
    return CliRunner().invoke(main, given, env={"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""})


def changed(letta) -> set[str]:
    """The names of the agents that hold the template's prompt now."""
    return {agent["name"] for agent in letta.agents.values() if agent["system"] == NEW_PROMPT}


def sample_of(fleet_file, *args: str) -> list[str]:
    result = lettafleet("plan", "-f", str(fleet_file), "-o", "json", *args)
    assert result.exit_code == 0, result.output
    [template] = [c for c in json.loads(result.stdout)["changes"] if c["address"] == "template.support"]
    return template["after"]["rollout"]["agents"]


def test_the_sample_is_the_same_agents_on_every_run_and_of_the_size_asked(letta, write_fleet):
    runtime_agents(letta, 20)
    path = write_fleet(SUPPORT)

    first, again, share = (
        sample_of(path, "--sample", "5"),
        sample_of(path, "--sample", "5"),
        sample_of(path, "--sample", "25%"),
    )

    assert len(first) == 5 and first == again == share  # 25% of 20 agents is the same 5
    assert first != [f"user-{index}" for index in range(1, 6)]  # spread over the agents, not the first names
    text = lettafleet("plan", "-f", str(path), "--sample", "5").stdout
    assert f"Sample (5, 5 agents): {', '.join(first)}" in text
    assert (
        "The other 15 that would change stay as they are: check the sample, then `lettafleet apply --promote`" in text
    )
    assert "Plan: 0 to create, 5 to update, 0 to delete." in text


def test_apply_sample_changes_exactly_the_sample_and_a_saved_plan_names_it(letta, write_fleet, tmp_path):
    users = runtime_agents(letta, 20)
    path = write_fleet(SUPPORT)
    saved = tmp_path / "plan.json"
    assert lettafleet("plan", "-f", str(path), "--sample", "5", "--out", str(saved)).exit_code == 0
    [template] = [c for c in json.loads(saved.read_text())["changes"] if c["address"] == "template.support"]

    result = lettafleet("apply", "-f", str(path), "--sample", "5", "--plan", str(saved))

    assert result.exit_code == 0, result.output
    assert changed(letta) == set(template["after"]["rollout"]["agents"])
    assert "then `lettafleet apply --promote`" in result.stdout
    for user in users:  # their own memory untouched
        [own] = [letta.blocks[i] for i in letta.agents[user["id"]]["block_ids"]]
        assert own["value"] == user["blocks"][0]["value"]
    again = lettafleet("apply", "-f", str(path), "--sample", "5")
    assert again.exit_code == 0 and changed(letta) == set(template["after"]["rollout"]["agents"])  # same five


def test_promote_rolls_the_change_to_the_rest_in_batches(letta, write_fleet):
    runtime_agents(letta, 20)
    path = write_fleet(SUPPORT)
    assert lettafleet("apply", "-f", str(path), "--sample", "5").exit_code == 0

    result = lettafleet("apply", "-f", str(path), "--promote", "--batch-size", "4", "-o", "json")

    assert result.exit_code == 0, result.output
    assert len(changed(letta)) == 20
    document = json.loads(result.stdout)
    assert document["summary"]["templated_agent"] == {"update": 15}
    [template] = [c for c in document["changes"] if c["address"] == "template.support"]
    assert template["after"]["rollout"] == {"mode": "promote", "batch_size": 4, "batches": 4}
    assert [r["status"] for r in document["apply"]["results"]] == ["applied"] * 15
    assert not lettafleet("plan", "-f", str(path), "--detailed-exitcode").exit_code  # nothing left


def test_promote_refuses_when_a_sampled_agent_no_longer_holds_the_change(letta, write_fleet):
    runtime_agents(letta, 20)
    path = write_fleet(SUPPORT)
    sample = sample_of(path, "--sample", "3")
    assert lettafleet("apply", "-f", str(path), "--sample", "3").exit_code == 0
    letta.agent_named(sample[1])["system"] = "You help."  # changed back by hand
    letta.writes.clear()

    result = lettafleet("apply", "-f", str(path), "--promote")

    assert result.exit_code == 1
    assert (
        f"--promote refused: 1 of the 3 sampled agent(s) of template 'support' no longer hold its change: {sample[1]}"
        in result.stderr
    )
    assert not letta.writes and changed(letta) == {sample[0], sample[2]}


def test_promote_without_a_sample_of_the_change_refuses(letta, write_fleet):
    runtime_agents(letta, 4)
    path = write_fleet(SUPPORT)
    assert lettafleet("apply", "-f", str(path), "--sample", "1").exit_code == 0
    changed_file = write_fleet(SUPPORT.replace("the support agent", "ACME support"))  # a new change, never sampled

    result = lettafleet("apply", "-f", str(changed_file), "--promote")

    assert result.exit_code == 1
    assert "--promote: no agent template 'support' matches holds a sample of its change" in result.stderr
    assert "lettafleet apply --sample N" in result.stderr


def test_a_promotion_stopped_partway_is_finished_by_the_next_without_changing_any_agent_twice(
    letta, manager, write_fleet
):
    runtime_agents(letta, 20)
    path = write_fleet(SUPPORT)
    assert lettafleet("apply", "-f", str(path), "--sample", "2").exit_code == 0
    letta.writes.clear()
    stop = threading.Event()
    done: list[str] = []

    def ctrl_c_after_seven(change, result):  # as the CLI's Ctrl-C does: no change starts after it
        done.append(change.address)
        if len(done) == 7:
            stop.set()

    with LettaClient(BASE_URL, api_key="", retries=0) as client:
        promote = load_fleet(path, manager, options={"promote": True, "batch_size": 5})
        the_plan = plan_fleet(promote, client, manager)
        report = apply_plan(the_plan, client, manager, parallelism=1, stop=stop, on_result=ctrl_c_after_seven)
    assert report.interrupted and report.count("applied") == 7 and len(changed(letta)) == 2 + 7

    result = lettafleet("apply", "-f", str(path), "--promote", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["templated_agent"] == {"update": 11}  # only what was left
    assert len(changed(letta)) == 20
    patched = [w.path for w in letta.writes_to("PATCH", "/v1/agents/") if w.path.count("/") == 3]
    assert len(patched) == len(set(patched)) == 18  # each promoted agent written once, none twice


def test_a_failure_in_a_batch_stops_the_promotion_there_and_the_next_promote_finishes_it(letta, write_fleet):
    users = runtime_agents(letta, 12)
    path = write_fleet(SUPPORT)
    sample = sample_of(path, "--sample", "2")
    assert lettafleet("apply", "-f", str(path), "--sample", "2").exit_code == 0
    in_order = [u for u in rollout_order("support", [u["id"] for u in users]) if letta.agents[u]["name"] not in sample]
    letta.refuse("PATCH", f"/v1/agents/{in_order[0]}", 422, "agent is locked")  # the first batch's first agent

    stopped = lettafleet("apply", "-f", str(path), "--promote", "--batch-size", "4", "-o", "json")

    assert stopped.exit_code == 1
    results = {r["address"]: r for r in json.loads(stopped.stdout)["apply"]["results"]}
    assert [r["status"] for r in results.values()].count("applied") == 3  # the rest of the first batch
    skipped = [r for r in results.values() if r["status"] == "skipped"]
    assert len(skipped) == 6 and all("so the rollout stopped" in r["message"] for r in skipped)
    assert len(changed(letta)) == 2 + 3

    finished = lettafleet("apply", "-f", str(path), "--promote", "-o", "json")

    assert finished.exit_code == 0, finished.output
    assert json.loads(finished.stdout)["summary"]["templated_agent"] == {"update": 7}  # only what was left
    assert len(changed(letta)) == 12


def test_sample_and_promote_together_or_without_a_template_are_refused(letta, write_fleet):
    path = write_fleet(SUPPORT)
    plain = write_fleet("agents:\n  - {name: a, llm_config: {model: letta/letta-free}, system_prompt: {value: hi}}\n")

    both = lettafleet("apply", "-f", str(path), "--sample", "5", "--promote")
    alone = lettafleet("plan", "-f", str(plain), "--sample", "5")

    assert both.exit_code == 1 and "--sample and --promote cannot be given together" in both.stderr
    assert alone.exit_code == 1 and "--sample rolls out a template's change, and this file declares no template" in (
        alone.stderr
    )
    assert lettafleet("plan", "-f", str(path), "--sample", "0").exit_code == 1
    assert not letta.writes
