"""lettactl's canary rollout of a fleet's own agents, as a user runs it: `apply --canary` makes copies named
`CANARY-<name>` and leaves the real agents alone, `apply --canary --promote` applies the file to the real agents,
`apply --canary --cleanup` deletes the copies with what they hold; runs without `--canary` never see the copies."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from tests.fakes.letta_api import BASE_URL
from tests.plugins.resources.test_templates import runtime_agents

FLEET = """
fleet: shop
shared_blocks:
  - {{name: policies, value: "{policy}", agent_owned: false}}
agents:
  - name: support
    system_prompt: {{value: "{prompt}"}}
    llm_config: {{model: letta/letta-free}}
    shared_blocks: [policies]
    memory_blocks:
      - {{name: persona, value: "I help.", agent_owned: true}}
{more}"""
OLD, NEW = "You are support v1.", "You are support v2."


def lettafleet(*args: str) -> Result:
    """The command as a user runs it (apply without the server lock, which the fake does not keep)."""
    given = [*args, "--no-lock"] if args[0] == "apply" else list(args)
    return CliRunner().invoke(main, given, env={"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""})


def fleet_file(write_fleet, prompt: str = OLD, policy: str = "30 days.", more: str = ""):
    return write_fleet(FLEET.format(prompt=prompt, policy=policy, more=more))


def run(*args: str) -> str:
    result = lettafleet(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def by_name(letta) -> dict[str, dict]:
    return {agent["name"]: agent for agent in letta.agents.values()}


def own_block_values(letta, agent: dict) -> list[str]:
    return [letta.blocks[block_id]["value"] for block_id in agent["block_ids"] if block_id in letta.blocks]


@pytest.fixture
def deployed(letta, write_fleet):
    """The fleet applied as it was, then its prompt changed and deployed as canary copies."""
    run("apply", "-f", str(fleet_file(write_fleet)))
    path = fleet_file(write_fleet, prompt=NEW)
    run("apply", "-f", str(path), "--canary")
    return path


def test_a_canary_deploy_makes_marked_copies_with_their_own_blocks_and_leaves_the_real_agents_alone(letta, deployed):
    agents = by_name(letta)

    assert set(agents) == {"support", "CANARY-support"}
    real, copy = agents["support"], agents["CANARY-support"]
    assert real["system"] == OLD and copy["system"] == NEW
    assert copy["metadata"]["canary_of"] == "support" and copy["metadata"]["fleet"] == "shop"
    assert "canary_of" not in real["metadata"]
    shared = {block["id"] for block in letta.blocks.values() if block["label"] == "policies"}
    assert set(copy["block_ids"]) & set(real["block_ids"]) == shared  # its own persona block, the shared one
    assert "No changes" in run("plan", "-f", str(deployed), "--canary")


def test_a_plain_plan_never_sees_the_copies_not_as_removals_nor_as_duplicates(letta, deployed):
    planned = json.loads(run("plan", "-f", str(deployed), "--prune", "-o", "json"))

    addresses = {change["address"]: change["action"] for change in planned["changes"]}
    assert not [address for address in addresses if "CANARY" in address]
    assert addresses["agent.support"] == "update"  # the real agent gets the change only now
    assert not planned["ambiguities"]


def test_canary_prefix_names_the_copies(letta, write_fleet):
    path = fleet_file(write_fleet)

    run("apply", "-f", str(path), "--canary", "--canary-prefix", "TRY_")

    assert set(by_name(letta)) == {"TRY_support"}
    assert "No changes" in run("plan", "-f", str(path), "--canary", "--canary-prefix", "TRY_")


def test_a_canary_deploy_holds_a_change_to_what_the_real_agents_share(letta, write_fleet):
    run("apply", "-f", str(fleet_file(write_fleet)))
    path = fleet_file(write_fleet, prompt=NEW, policy="45 days.")

    text = run("apply", "-f", str(path), "--canary")

    assert "shared block policies (UPDATE, held: left by --canary)" in text
    assert [block["value"] for block in letta.blocks.values() if block["label"] == "policies"] == ["30 days."]
    assert by_name(letta)["CANARY-support"]["system"] == NEW


def test_cleanup_plans_only_the_copies_deletions_and_deletes_them_with_their_own_blocks(letta, deployed):
    copy_blocks = set(by_name(letta)["CANARY-support"]["block_ids"])
    shared = {block["id"] for block in letta.blocks.values() if block["label"] == "policies"}

    planned = json.loads(run("plan", "-f", str(deployed), "--canary", "--cleanup", "-o", "json"))
    run("apply", "-f", str(deployed), "--canary", "--cleanup")

    assert {c["address"]: c["action"] for c in planned["changes"] if c["action"] != "no-op"} == {
        "agent.CANARY-support": "delete",
        "agent.CANARY-support.block.persona": "delete",
        "agent.CANARY-support.shared_block.policies": "delete",
    }
    assert not [c for c in planned["changes"] if c.get("held")]
    assert set(by_name(letta)) == {"support"} and by_name(letta)["support"]["system"] == OLD
    assert not (copy_blocks - shared) & set(letta.blocks)  # the copy's own block went with it
    assert shared <= set(letta.blocks)  # the shared block stays
    assert "No changes" in run("plan", "-f", str(deployed), "--canary", "--cleanup")


def test_promote_applies_the_file_to_the_real_agents_and_with_cleanup_deletes_the_copies(letta, deployed):
    run("apply", "-f", str(deployed), "--canary", "--promote")
    promoted = by_name(letta)
    run("apply", "-f", str(deployed), "--canary", "--promote", "--cleanup")

    assert promoted["support"]["system"] == NEW and "CANARY-support" in promoted
    assert set(by_name(letta)) == {"support"}
    assert "No changes" in run("plan", "-f", str(deployed))


def test_an_agent_of_another_fleet_or_none_named_like_a_copy_is_never_cleaned_up(letta, deployed):
    letta.add_agent("CANARY-other", managed=False, metadata={"canary_of": "other"})

    run("apply", "-f", str(deployed), "--canary", "--cleanup")

    assert set(by_name(letta)) == {"support", "CANARY-other"}


def test_with_canary_a_templates_change_is_held_and_promote_needs_no_sample(letta, write_fleet):
    runtime_agents(letta, 3)
    template = '\ntemplates:\n  - name: users\n    match: "user-*"\n    system_prompt: {value: "Template prompt."}\n'
    run("apply", "-f", str(fleet_file(write_fleet)))
    path = fleet_file(write_fleet, prompt=NEW, more=template)

    deploy = run("plan", "-f", str(path), "--canary")
    run("apply", "-f", str(path), "--canary", "--promote")

    held = "template users (DRIFT)\n    not applied with --canary: a template's change rolls out with `--sample N`"
    assert held in deploy
    assert by_name(letta)["support"]["system"] == NEW
    assert {agent["system"] for name, agent in by_name(letta).items() if name.startswith("user-")} == {"You help."}


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--cleanup"], "--cleanup works on canary copies: give it with --canary"),
        (["--canary-prefix", "X-"], "--canary-prefix works on canary copies: give it with --canary"),
        (["--canary", "--scope", "prod"], "--canary cannot be combined with --scope"),
        (["--canary", "--match", "user-*"], "--canary cannot be combined with --match"),
        (["--canary", "--sample", "5"], "--canary cannot be combined with --sample"),
        (["--canary", "--canary-prefix", "A B"], "a prefix of agent names takes letters, digits, - and _ only"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_canary_option_that_makes_no_sense_with_the_others_is_a_usage_error(letta, write_fleet, command, given, said):
    result = lettafleet(command, "-f", str(fleet_file(write_fleet)), *given)

    assert result.exit_code == 1
    assert said in " ".join(result.output.replace("│", " ").split())
    assert not letta.agents


def test_a_canary_deploy_of_a_file_with_renames_to_make_says_to_make_them_first(letta, write_fleet):
    moved = "moved:\n  - {from: agent.helper, to: agent.support}\n"
    path = write_fleet(FLEET.format(prompt=OLD, policy="30 days.", more="") + moved)

    result = lettafleet("apply", "-f", str(path), "--canary")

    assert result.exit_code == 1
    assert "--canary copies the agents under the names the file gives them now" in result.stderr
    assert not letta.agents


def test_a_copy_of_a_protected_agent_is_not_protected_and_cleanup_deletes_it(letta, write_fleet):
    protected = FLEET.replace("  - name: support\n", "  - name: support\n    protect: true\n").replace(
        "agent_owned: true}", "agent_owned: true, protect: true}"
    )
    path = write_fleet(protected.format(prompt=OLD, policy="30 days.", more=""))
    run("apply", "-f", str(path), "--canary")

    planned = json.loads(run("plan", "-f", str(path), "--canary", "--cleanup", "-o", "json"))
    run("apply", "-f", str(path), "--canary", "--cleanup")

    assert not [change["address"] for change in planned["changes"] if change.get("held")]
    assert not by_name(letta)


def test_a_fleet_without_a_name_cleans_up_only_the_copies_of_the_agents_it_declares(letta, write_fleet):
    path = write_fleet(FLEET.replace("fleet: shop\n", "").format(prompt=OLD, policy="30 days.", more=""))
    run("apply", "-f", str(path), "--canary")
    # Another fleet without a name carries the same marks: its copy of an agent this file does not declare stays.
    letta.add_agent("CANARY-billing", metadata={"managed_by": "lettafleet", "canary_of": "billing"})

    run("apply", "-f", str(path), "--canary", "--cleanup")

    assert set(by_name(letta)) == {"CANARY-billing"}
