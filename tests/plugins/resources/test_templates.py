"""Templates: one declaration applied to every live agent a selector matches, agents the fleet did not make.

What a user sees: the plan's one line per template with counts and a sample, the JSON counts, the writes apply
sends, and what is left of each agent's own memory and of what the application added."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.render.json import render_plan_json
from lettafleet.core.render.markdown import render_plan_markdown
from lettafleet.core.render.text import render_plan

SUPPORT = """
shared_blocks:
  - {name: policies, value: "Be kind.", agent_owned: false}
templates:
  - name: support
    match: "user-*"
    system_prompt: {value: "You are the support agent."}
    shared_blocks: [policies]
agents:
  - name: router
    system_prompt: {value: "You route."}
    llm_config: {model: letta/letta-free}
"""
WITHOUT_POLICIES = SUPPORT.replace("    shared_blocks: [policies]\n", "")


def runtime_agents(letta, count: int, prefix: str = "user", **fields):
    """Agents as an application makes them at runtime: not lettafleet's, each with a memory block of its own."""
    return [
        letta.add_agent(
            f"{prefix}-{index}",
            managed=False,
            system="You help.",
            blocks=[letta.add_block("human", f"The user is number {index}.")],
            **fields,
        )
        for index in range(1, count + 1)
    ]


def block_labels(letta, agent) -> list[str]:
    return sorted(letta.blocks[block_id]["label"] for block_id in letta.agents[agent["id"]]["block_ids"])


def test_the_plan_sums_up_a_template_in_one_line_with_counts_and_a_sample(fleet, letta):
    runtime_agents(letta, 7)
    letta.add_agent("user-current", managed=False, system="You are the support agent.")

    plan = fleet.plan(SUPPORT.replace("    shared_blocks: [policies]\n", ""))
    text = render_plan(plan, fleet.manager.kinds)

    assert "[~] template support (UPDATE)" in text
    assert (
        "8 agents match `user-*`; 7 would change: system prompt (7); 1 already current. For example: user-1, "
        "user-2, user-3, user-4, user-5 and 2 more"
    ) in text
    assert "user-6" not in text  # the agents are summed up, not listed one by one
    assert text.endswith("Plan: 2 to create, 7 to update, 0 to delete.")  # router, shared block; seven agents


def test_the_json_plan_counts_what_a_template_would_change(fleet, letta):
    runtime_agents(letta, 3)

    document = json.loads(render_plan_json(fleet.plan(SUPPORT)))

    [template] = [change for change in document["changes"] if change["address"] == "template.support"]
    assert template["after"] == {
        "matched": 3,
        "changing": 3,
        "current": 0,
        "changes": {"attach shared block policies": 3, "system prompt": 3},
        "edited_by_hand": {},
        "sample": ["user-1", "user-2", "user-3"],
    }
    assert document["summary"]["templated_agent"] == {"update": 3}


def test_apply_changes_only_what_the_template_manages_and_never_creates_or_deletes_agents(fleet, letta):
    users = runtime_agents(letta, 3)
    other = letta.add_agent("sales-1", managed=False, system="You sell.")
    made = letta.add_agent("user-made-by-the-fleet", system="Fleet's own.")  # lettafleet's: never a template's

    report = fleet.apply(fleet.plan(SUPPORT))

    assert report.ok
    for user in users:
        agent = letta.agents[user["id"]]
        assert agent["system"] == "You are the support agent."
        assert block_labels(letta, user) == ["human", "policies"]
        [own] = [letta.blocks[i] for i in agent["block_ids"] if letta.blocks[i]["label"] == "human"]
        assert own["value"] == user["blocks"][0]["value"]  # its own memory untouched
    assert letta.agents[other["id"]]["system"] == "You sell."
    assert letta.agents[made["id"]]["system"] == "Fleet's own."
    assert [w.method for w in letta.writes if w.path == "/v1/agents/"] == ["POST"]  # the router alone is created
    assert not [w for w in letta.writes if w.method == "DELETE"]
    assert not fleet.plan(SUPPORT).needs_attention  # then: No changes


def test_a_shared_block_taken_out_of_the_template_is_detached_only_where_the_template_attached_it(fleet, letta):
    first, second = runtime_agents(letta, 2)
    fleet.apply(fleet.plan(SUPPORT))
    policies = next(b for b in letta.blocks.values() if b["label"] == "policies")
    attached_by_hand = letta.add_agent("user-3", managed=False, system="You are the support agent.", blocks=[policies])

    plan = fleet.plan(WITHOUT_POLICIES)
    text = render_plan(plan, fleet.manager.kinds)
    assert "3 agents match `user-*`; 2 would change: detach shared block policies (2); 1 already current" in text
    fleet.apply(plan)

    assert block_labels(letta, first) == block_labels(letta, second) == ["human"]
    assert block_labels(letta, attached_by_hand) == ["policies"]  # the application attached it: it stays
    assert not fleet.plan(WITHOUT_POLICIES).needs_attention


def test_a_shared_block_the_application_had_attached_already_stays_when_the_line_goes(fleet, letta):
    fleet.apply(fleet.plan(SUPPORT))  # makes the shared block
    policies = next(b for b in letta.blocks.values() if b["label"] == "policies")
    had_it = letta.add_agent("user-1", managed=False, system="You help.", blocks=[policies])
    fleet.apply(fleet.plan(SUPPORT))  # the template finds it attached: nothing of its own to record

    fleet.apply(fleet.plan(WITHOUT_POLICIES))

    assert block_labels(letta, had_it) == ["policies"]


def test_tags_a_template_adds_are_taken_away_only_where_it_added_them(fleet, letta):
    tagged = SUPPORT.replace("    shared_blocks: [policies]\n", "    add_tags: [support, beta]\n")
    added = letta.add_agent("user-1", managed=False, system="You help.", tags=["customer:42"])
    had_beta = letta.add_agent("user-2", managed=False, system="You help.", tags=["beta"])
    fleet.apply(fleet.plan(tagged))
    assert letta.agents[added["id"]]["tags"] == ["customer:42", "beta", "support"]

    fleet.apply(fleet.plan(tagged.replace("[support, beta]", "[support]")))

    assert letta.agents[added["id"]]["tags"] == ["customer:42", "support"]
    assert sorted(letta.agents[had_beta["id"]]["tags"]) == ["beta", "support"]  # beta was the application's


def test_a_tag_selector_takes_only_agents_carrying_every_tag(fleet, letta):
    pro, free = (
        letta.add_agent("user-1", managed=False, tags=["tier:pro", "eu"]),
        letta.add_agent("user-2", managed=False, tags=["tier:free", "eu"]),
    )
    by_tags = SUPPORT.replace('    match: "user-*"\n', "    tags: [tier:pro, eu]\n")

    fleet.apply(fleet.plan(by_tags))

    assert letta.agents[pro["id"]]["system"] == "You are the support agent."
    assert letta.agents[free["id"]]["system"] != "You are the support agent."


def test_a_selector_matching_no_agent_is_said_loudly(fleet, letta):
    runtime_agents(letta, 2, prefix="customer")

    plan = fleet.plan(SUPPORT)
    text = render_plan(plan, fleet.manager.kinds)

    assert plan.needs_attention and plan.has_drift
    assert "[!] template support (DRIFT)" in text
    assert "no live agent matches `user-*`" in text


def test_a_template_without_a_selector_or_with_an_unknown_shared_block_is_refused_at_its_line(fleet):
    text = SUPPORT.replace('    match: "user-*"\n', "").replace("[policies]", "[policies, rules]")

    with pytest.raises(FleetError) as raised:
        fleet.load(text)

    errors = [str(d) for d in raised.value.diagnostics]
    assert any(":4:5:" in e and "template 'support' selects no agents" in e for e in errors)
    assert any(":6:31:" in e and "shared block 'rules' is not declared" in e for e in errors)


LETTACTL = """
shared_blocks:
  - {name: policies, description: Policies, limit: 2000, value: "Be kind.", agent_owned: false}
agents:
  - name: support-template
    description: Support agent
    system_prompt: {value: "You are the support agent."}
    llm_config: {model: letta/letta-free, context_window: 32000}
    embedding: letta/letta-free
    shared_blocks: [policies]
    tags: [support]
  - name: router
    system_prompt: {value: "You route."}
    llm_config: {model: letta/letta-free}
"""


def test_match_makes_a_lettactl_files_first_agent_the_template_and_does_not_create_it(fleet, letta):
    users = runtime_agents(letta, 2)

    plan = fleet.plan(LETTACTL, match="user-*")
    assert "agent.support-template" not in fleet.actions(plan)
    assert fleet.actions(plan)["agent.router"] == "create"
    fleet.apply(plan)

    for user in users:
        agent = letta.agents[user["id"]]
        assert agent["system"] == "You are the support agent."
        assert agent["description"] == "Support agent"
        assert agent["llm_config"]["context_window"] == 32000
        assert agent["tags"] == ["support"]
        assert block_labels(letta, user) == ["human", "policies"]
    assert not [a for a in letta.agents.values() if a["name"] == "support-template"]
    assert not fleet.plan(LETTACTL, match="user-*").needs_attention


def test_match_refuses_the_first_agents_keys_templates_do_not_apply_yet(fleet):
    with_blocks = LETTACTL.replace("    tags: [support]\n", "    tags: [support]\n    folders: []\n", 1)

    with pytest.raises(FleetError) as raised:
        fleet.load(with_blocks, match="user-*")

    [error] = [str(d) for d in raised.value.diagnostics]
    assert ":11:5:" in error and "folders is not applied by templates yet" in error


OVERLAPPING = """
templates:
  - name: support
    match: "user-*"
    system_prompt: {value: "You are the support agent."}
  - name: vip
    tags: [vip]
    system_prompt: {value: "You are the VIP agent."}
"""


def test_two_templates_setting_one_thing_on_the_same_agent_stop_the_plan_at_the_later_one(fleet, letta):
    letta.add_agent("user-1", managed=False, tags=["vip"])
    letta.add_agent("user-2", managed=False)

    with pytest.raises(FleetError) as raised:
        fleet.plan(OVERLAPPING)

    [error] = [str(d) for d in raised.value.diagnostics]
    assert ":5:5:" in error
    assert "template 'vip' and template 'support' both set system on 1 agent(s), such as user-1" in error
    assert "narrow one selector" in error
    assert not letta.writes


def test_two_templates_on_agents_apart_plan_together(fleet, letta):
    letta.add_agent("user-1", managed=False)
    letta.add_agent("sales-1", managed=False, tags=["vip"])

    plan = fleet.plan(OVERLAPPING)

    assert fleet.actions(plan)["template.support.agent.user-1"] == "update"
    assert fleet.actions(plan)["template.vip.agent.sales-1"] == "update"


def test_a_file_of_templates_alone_needs_no_agents_and_a_file_of_neither_is_refused(fleet, letta):
    letta.add_agent("user-1", managed=False)
    alone = 'templates:\n  - {name: support, match: "user-*", system_prompt: {value: "You help."}}\n'

    assert fleet.actions(fleet.plan(alone)) == {"template.support": "no-op", "template.support.agent.user-1": "update"}
    with pytest.raises(FleetError) as raised:
        fleet.load("fleet: empty\n")
    [error] = [str(d) for d in raised.value.diagnostics]
    assert "the fleet file declares no `agents:`" in error


def test_a_pull_request_comment_of_a_template_over_a_thousand_agents_stays_one_short_line(fleet, letta):
    runtime_agents(letta, 1000)

    markdown = render_plan_markdown(fleet.plan(WITHOUT_POLICIES), fleet.manager.kinds)

    assert "1,000 agents match `user-*`; 1,000 would change: system prompt (1,000)" in markdown
    assert "user-999" not in markdown and len(markdown) < 3000


def test_a_sensitive_template_prompt_never_shows_in_the_plan(fleet, letta):
    runtime_agents(letta, 2)
    secret = WITHOUT_POLICIES.replace('{value: "You are the support agent."}', '{value: "Code 4711.", sensitive: true}')

    plan = fleet.plan(secret)

    assert "4711" not in render_plan(plan, fleet.manager.kinds, verbose=True)
    assert "4711" not in render_plan_json(plan) and "4711" not in render_plan_markdown(plan, fleet.manager.kinds)


def test_validate_match_checks_a_file_as_match_reads_it_and_notes_what_a_template_ignores(write_fleet):
    path = write_fleet(LETTACTL)

    result = CliRunner().invoke(main, ["validate", str(path), "--match", "user-*"])

    assert result.exit_code == 0, result.output
    assert "template" in result.stdout and "1 agent" in result.stdout  # the router; the first agent is the template
    assert f"{path}:8:5: note: embedding is not applied by --match: a template creates no agent" in result.stderr


def test_a_prompt_edited_by_hand_since_the_template_set_it_is_counted_apart_and_set_back(fleet, letta):
    edited, kept = runtime_agents(letta, 2)
    fleet.apply(fleet.plan(WITHOUT_POLICIES))
    letta.agents[edited["id"]]["system"] = "Someone's own words."

    plan = fleet.plan(WITHOUT_POLICIES)
    text = render_plan(plan, fleet.manager.kinds)

    assert (
        "2 agents match `user-*`; 1 would change: system prompt (1) (edited by hand since the template set it, and "
        "set back: system prompt (1)); 1 already current"
    ) in text
    change = plan.by_address()["template.support.agent.user-1"]
    assert change.detail == "system prompt (edited by hand since the template set it)"
    fleet.apply(plan)
    assert letta.agents[edited["id"]]["system"] == letta.agents[kept["id"]]["system"] == "You are the support agent."


def test_a_changed_template_prompt_is_not_taken_for_a_hand_edit(fleet, letta):
    runtime_agents(letta, 2)
    fleet.apply(fleet.plan(WITHOUT_POLICIES))

    plan = fleet.plan(WITHOUT_POLICIES.replace("You are the support agent.", "You are ACME support."))

    assert "2 would change: system prompt (2); 0 already current" in render_plan(plan, fleet.manager.kinds)
