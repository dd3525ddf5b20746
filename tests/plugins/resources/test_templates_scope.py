"""What a template manages beyond its settings, and how it is taken back: a template taken out of the file whole,
tools it attaches, blocks it owns or seeds, secrets it sets. Each is taken back only where the template's record
says the template put it."""

from __future__ import annotations

import json

import pytest

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.render.json import render_plan_json
from lettafleet.core.render.text import render_plan
from lettafleet.plugins.resources.template_record import RECORD_KEY
from tests.fakes.letta_api import BASE_TOOLS
from tests.plugins.resources.test_template_rollout import lettafleet
from tests.plugins.resources.test_templates import block_labels, runtime_agents

NAMED = """
fleet: acme
shared_blocks:
  - {name: policies, value: "Be kind.", agent_owned: false}
templates:
  - name: support
    match: "user-*"
    system_prompt: {value: "You are the support agent."}
    shared_blocks: [policies]
    add_tags: [support]
agents:
  - name: router
    system_prompt: {value: "You route."}
    llm_config: {model: letta/letta-free}
"""
WITHOUT_TEMPLATE = NAMED[: NAMED.index("templates:")] + NAMED[NAMED.index("agents:") :]


def test_a_template_taken_out_of_the_file_takes_back_what_it_put_there_and_leaves_the_prompt(fleet, letta):
    first, second = runtime_agents(letta, 2, tags=["customer"])
    fleet.apply(fleet.plan(NAMED))
    policies = next(b for b in letta.blocks.values() if b["label"] == "policies")
    had_it = letta.add_agent("user-3", managed=False, system="Own.", blocks=[policies], tags=["support"])

    plan = fleet.plan(WITHOUT_TEMPLATE)
    text = render_plan(plan, fleet.manager.kinds)

    assert "[~] template support (UPDATE)" in text
    assert (
        "taken out of the file: 2 agents carry what it put there; 2 would change: detach shared block policies (2), "
        "forget its record (2), remove tag support (2). Their prompt and model stay as the template last set them"
    ) in text
    assert "template.support.agent.user-3" not in fleet.actions(plan)  # no record of the template: not its to take
    fleet.apply(plan)
    for user in (first, second):
        agent = letta.agents[user["id"]]
        assert block_labels(letta, user) == ["human"]
        assert agent["tags"] == ["customer"]  # the template's tag and its mark gone, the application's kept
        assert agent["system"] == "You are the support agent."  # as the template last set it
        assert RECORD_KEY not in agent["metadata"] or not agent["metadata"][RECORD_KEY]
    assert block_labels(letta, had_it) == ["policies"] and letta.agents[had_it["id"]]["tags"] == ["support"]
    assert not fleet.plan(WITHOUT_TEMPLATE).needs_attention


def test_a_plan_reading_only_its_fleets_agents_still_finds_a_removed_templates_agents_by_their_mark(fleet, letta):
    runtime_agents(letta, 2)
    fleet.apply(fleet.plan(NAMED))
    for index in range(300):  # a server holding far more agents than the fleet: the plan reads only its own
        letta.add_agent(f"someone-{index}", managed=False)
    letta.queries.clear()

    plan = fleet.plan(WITHOUT_TEMPLATE)

    assert fleet.actions(plan)["template.support.agent.user-1"] == "update"
    assert fleet.actions(plan)["template.support.agent.user-2"] == "update"
    listed = [params for path, params in letta.queries if path == "/v1/agents/"]
    assert all(params.get("name") or params.get("tags") for params in listed)  # never every agent


def test_a_template_renamed_in_the_file_takes_back_nothing_the_new_name_still_puts_there(fleet, letta):
    users = runtime_agents(letta, 2, tags=["customer"])
    fleet.apply(fleet.plan(NAMED))

    renamed = NAMED.replace("name: support\n", "name: helpdesk\n")
    fleet.apply(fleet.plan(renamed))

    for user in users:
        agent = letta.agents[user["id"]]
        assert "acme/support" not in agent["metadata"][RECORD_KEY]  # the old name's record is gone
        assert "support" in agent["tags"] and "customer" in agent["tags"]
        assert block_labels(letta, user) == ["human", "policies"]
    assert not fleet.plan(renamed).needs_attention


def test_a_fleet_without_a_name_leaves_what_a_template_taken_out_put_there(fleet, letta):
    unnamed = NAMED.replace("fleet: acme\n", "")
    [user] = runtime_agents(letta, 1)
    fleet.apply(fleet.plan(unnamed))

    plan = fleet.plan(unnamed[: unnamed.index("templates:")] + unnamed[unnamed.index("agents:") :])

    assert not [address for address in fleet.actions(plan) if address.startswith("template.")]
    assert block_labels(letta, user) == ["human", "policies"]


def test_the_json_plan_counts_what_a_removed_template_takes_back(fleet, letta):
    runtime_agents(letta, 3)
    fleet.apply(fleet.plan(NAMED))

    document = json.loads(render_plan_json(fleet.plan(WITHOUT_TEMPLATE)))

    [template] = [change for change in document["changes"] if change["address"] == "template.support"]
    assert template["after"]["carrying"] == 3 and template["after"]["changing"] == 3
    assert template["after"]["changes"]["detach shared block policies"] == 3
    assert document["summary"]["templated_agent"] == {"update": 3}


TOOLED = """
templates:
  - name: support
    match: "user-*"
    tools: [web_search, lookup]
"""
LOOKUP = '''def lookup(order: str) -> str:
    """Look an order up.

    Args:
        order: the order's number.
    """
    return order
'''


def tool_names(letta, agent) -> list[str]:
    """The agent's tools, Letta's base tools (which every agent gets) aside."""
    attached = (letta.tools[tool_id]["name"] for tool_id in letta.agents[agent["id"]]["tool_ids"])
    return sorted(name for name in attached if name not in BASE_TOOLS)


def test_a_template_attaches_its_tools_and_detaches_only_those_it_attached_when_the_line_goes(fleet, letta):
    web_search = letta.add_tool("web_search", tool_type="letta_builtin")
    fresh = letta.add_agent("user-1", managed=False)
    had_it = letta.add_agent("user-2", managed=False)
    letta.agents[had_it["id"]]["tool_ids"].append(web_search["id"])
    files = {"tools/lookup.py": LOOKUP}

    plan = fleet.plan(TOOLED, files)
    text = render_plan(plan, fleet.manager.kinds)
    assert "2 would change: attach tool lookup (2), attach tool web_search (1)" in text
    fleet.apply(plan)

    assert tool_names(letta, fresh) == tool_names(letta, had_it) == ["lookup", "web_search"]
    assert [t["name"] for t in letta.tools.values()].count("lookup") == 1  # the tools plugin made it, once
    assert not fleet.plan(TOOLED, files).needs_attention

    fleet.apply(fleet.plan(TOOLED.replace("[web_search, lookup]", "[lookup]"), files))
    assert tool_names(letta, fresh) == ["lookup"]
    assert tool_names(letta, had_it) == ["lookup", "web_search"]  # the application attached it: it stays


def test_a_tool_a_template_names_must_be_on_the_server_or_defined_by_the_fleet(fleet, letta):
    letta.add_agent("user-1", managed=False)

    with pytest.raises(FleetError) as raised:
        fleet.plan(TOOLED.replace("lookup", "lokup"))

    errors = [str(d) for d in raised.value.diagnostics]
    assert any(":4:13:" in e and "tool 'web_search' is not on" in e for e in errors)
    assert any(":4:25:" in e and "tool 'lokup' is not on" in e for e in errors)
    assert not letta.writes


BLOCKED = """
templates:
  - name: support
    match: "user-*"
    memory_blocks:
      - {name: rules, value: "Refunds within 30 days.", agent_owned: false}
      - {name: persona, value: "I am a helpful agent.", agent_owned: true}
"""


def blocks_of(letta, agent) -> dict[str, str]:
    return {letta.blocks[i]["label"]: letta.blocks[i]["value"] for i in letta.agents[agent["id"]]["block_ids"]}


def test_a_templates_own_blocks_are_the_truth_where_agent_owned_is_false_and_seeded_where_it_is_true(fleet, letta):
    fresh, differs, current = runtime_agents(letta, 3)
    letta.agents[differs["id"]]["block_ids"] += [letta.add_block("rules", "Anything goes.")["id"]]
    persona = letta.add_block("persona", "I am user 2's own.")
    letta.agents[differs["id"]]["block_ids"].append(persona["id"])
    letta.agents[current["id"]]["block_ids"] += [letta.add_block("rules", "Refunds within 30 days.")["id"]]

    plan = fleet.plan(BLOCKED)
    text = render_plan(plan, fleet.manager.kinds)
    assert (
        "3 agents match `user-*`; 3 would change: seed block persona (2), create block rules (1), set block rules (1)"
    ) in text
    fleet.apply(plan)

    assert blocks_of(letta, fresh) == {
        "human": "The user is number 1.",
        "rules": "Refunds within 30 days.",
        "persona": "I am a helpful agent.",
    }
    assert blocks_of(letta, differs)["rules"] == "Refunds within 30 days."
    assert blocks_of(letta, differs)["persona"] == "I am user 2's own."  # the agent's: never touched
    assert not fleet.plan(BLOCKED).needs_attention

    # The agents write to their blocks: the persona is theirs; the rules are set back, told as edited.
    for agent in (fresh, differs):
        for block_id in letta.agents[agent["id"]]["block_ids"]:
            letta.blocks[block_id]["value"] += " (edited by the agent)"
    text = render_plan(fleet.plan(BLOCKED), fleet.manager.kinds)
    assert (
        "2 would change: set block rules (2) (edited by hand since the template set it, and set back: set block "
        "rules (2))" in text
    )


def test_a_block_line_taken_out_deletes_only_the_blocks_the_template_made(fleet, letta):
    made_here, had_it = runtime_agents(letta, 2)
    own = letta.add_block("rules", "Its own rules.")
    letta.agents[had_it["id"]]["block_ids"].append(own["id"])
    fleet.apply(fleet.plan(BLOCKED))
    made = next(i for i in letta.agents[made_here["id"]]["block_ids"] if letta.blocks[i]["label"] == "rules")

    without = BLOCKED.replace('      - {name: rules, value: "Refunds within 30 days.", agent_owned: false}\n', "")
    plan = fleet.plan(without)
    assert "1 would change: delete block rules (1)" in render_plan(plan, fleet.manager.kinds)
    fleet.apply(plan)

    assert made not in letta.blocks and "rules" not in blocks_of(letta, made_here)
    assert blocks_of(letta, had_it)["rules"] == "Refunds within 30 days."  # set by the template, made by the app
    assert own["id"] in letta.agents[had_it["id"]]["block_ids"]
    assert blocks_of(letta, made_here)["persona"] == "I am a helpful agent."
    assert not fleet.plan(without).needs_attention


def test_a_template_taken_out_of_the_file_deletes_the_blocks_it_made_and_leaves_the_seeded_ones(fleet, letta):
    [user] = runtime_agents(letta, 1)
    named = (
        "fleet: acme\n"
        + BLOCKED
        + 'agents:\n  - {name: router, system_prompt: {value: "You route."}, llm_config: {model: letta/letta-free}}\n'
    )
    fleet.apply(fleet.plan(named))
    without = named[: named.index("templates:")] + named[named.index("agents:") :]

    plan = fleet.plan(without)
    assert "1 would change: delete block rules (1), forget its record (1)" in render_plan(plan, fleet.manager.kinds)
    fleet.apply(plan)

    assert blocks_of(letta, user) == {"human": "The user is number 1.", "persona": "I am a helpful agent."}
    assert not fleet.plan(without).needs_attention


LETTACTL = """
agents:
  - name: support-template
    description: Support agent
    system_prompt: {value: "You are the support agent."}
    llm_config: {model: letta/letta-free}
    embedding: letta/letta-free
    memory_blocks:
      - {name: rules, description: Rules, limit: 2000, value: "Refunds within 30 days.", agent_owned: false}
      - {name: persona, description: Persona, limit: 2000, value: "I help.", agent_owned: true}
    tools: [lookup]
  - name: router
    system_prompt: {value: "You route."}
    llm_config: {model: letta/letta-free}
"""


def test_match_applies_the_first_agents_blocks_and_tools_as_a_template(fleet, letta):
    users = runtime_agents(letta, 2)
    files = {"tools/lookup.py": LOOKUP}

    plan = fleet.plan(LETTACTL, files, match="user-*")
    fleet.apply(plan)

    for user in users:
        assert blocks_of(letta, user) == {
            "human": blocks_of(letta, user)["human"],
            "rules": "Refunds within 30 days.",
            "persona": "I help.",
        }
        assert tool_names(letta, user) == ["lookup"]
        assert letta.agents[user["id"]]["system"] == "You are the support agent."
    assert not [a for a in letta.agents.values() if a["name"] == "support-template"]
    assert not fleet.plan(LETTACTL, files, match="user-*").needs_attention


SECRET = """
templates:
  - name: support
    match: "user-*"
    secrets:
      API_KEY: {value: "sk-template-4711"}
      REGION: {value: "eu"}
"""


def test_a_templates_secrets_are_set_never_shown_and_removed_only_where_it_set_them(fleet, letta):
    fresh = letta.add_agent("user-1", managed=False)
    had_key = letta.add_agent("user-2", managed=False)
    letta.agents[had_key["id"]]["secrets"] = {"API_KEY": "sk-the-apps-own", "OTHER": "kept"}

    plan = fleet.plan(SECRET)
    shown = render_plan(plan, fleet.manager.kinds, verbose=True) + render_plan_json(plan)
    assert "2 would change: set secret API_KEY (2), set secret REGION (2)" in shown
    assert "4711" not in shown and "sk-the-apps-own" not in shown
    fleet.apply(plan)

    assert letta.agents[fresh["id"]]["secrets"] == {"API_KEY": "sk-template-4711", "REGION": "eu"}
    assert letta.agents[had_key["id"]]["secrets"] == {"API_KEY": "sk-template-4711", "REGION": "eu", "OTHER": "kept"}
    # One update per agent: its secrets, whole, with its record.
    assert sorted(w.path for w in letta.writes) == sorted(f"/v1/agents/{a['id']}" for a in (fresh, had_key))
    assert not fleet.plan(SECRET).needs_attention

    fleet.apply(fleet.plan(SECRET.replace('      API_KEY: {value: "sk-template-4711"}\n', "")))
    assert letta.agents[fresh["id"]]["secrets"] == {"REGION": "eu"}  # the template set it: removed
    assert letta.agents[had_key["id"]]["secrets"] == {"API_KEY": "sk-template-4711", "REGION": "eu", "OTHER": "kept"}


def test_a_template_secret_whose_variable_is_unset_stops_the_plan_at_its_line(fleet, letta, monkeypatch):
    letta.add_agent("user-1", managed=False)
    monkeypatch.delenv("TSCOPE_UNSET_KEY", raising=False)

    with pytest.raises(FleetError) as raised:
        fleet.plan(SECRET.replace('{value: "eu"}', "{from_env: TSCOPE_UNSET_KEY}"))

    [error] = [str(d) for d in raised.value.diagnostics]
    assert ":6:7:" in error and "secret REGION: environment variable TSCOPE_UNSET_KEY is not set" in error
    assert not letta.writes


def test_a_block_made_by_an_apply_stopped_before_attaching_it_is_attached_by_the_next_not_made_again(fleet, letta):
    [user] = runtime_agents(letta, 1)
    letta.refuse("PATCH", f"/v1/agents/{user['id']}", 500, "the server went away")
    assert not fleet.apply(fleet.plan(BLOCKED)).ok  # the blocks were made; the agent's update failed
    made = sorted(block["id"] for block in letta.blocks.values() if block["label"] in ("rules", "persona"))
    assert len(made) == 2 and "rules" not in blocks_of(letta, user)

    fleet.apply(fleet.plan(BLOCKED))

    assert not [w for w in letta.writes if w.method == "POST" and w.path == "/v1/blocks/"]
    assert sorted(i for i in letta.agents[user["id"]]["block_ids"] if letta.blocks[i]["label"] != "human") == made
    assert not fleet.plan(BLOCKED).needs_attention


def test_a_sample_of_a_template_whose_secret_is_unset_is_refused_at_its_line_not_with_a_traceback(
    letta, write_fleet, monkeypatch
):
    letta.add_agent("user-1", managed=False)
    monkeypatch.delenv("TSCOPE_UNSET_KEY", raising=False)
    path = write_fleet(SECRET.replace('{value: "eu"}', "{from_env: TSCOPE_UNSET_KEY}"))

    result = lettafleet("plan", "-f", str(path), "--sample", "1")

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit | None), result.exception
    assert f"{path}:6:7: " in result.output and "TSCOPE_UNSET_KEY is not set" in result.output


def test_two_templates_changing_one_agent_both_keep_their_record_and_tags(fleet, letta):
    both = """
fleet: acme
templates:
  - {name: support, match: "user-*", system_prompt: {value: "You are the support agent."}}
  - {name: vip, tags: [vip], add_tags: [priority]}
"""
    user = letta.add_agent("user-1", managed=False, tags=["vip"])

    fleet.apply(fleet.plan(both))

    agent = letta.agents[user["id"]]
    assert sorted(agent["metadata"][RECORD_KEY]) == ["acme/support", "acme/vip"]
    assert sorted(agent["tags"]) == ["lettafleet-template:acme", "priority", "vip"]
    assert not fleet.plan(both).needs_attention
