"""What a template plan reads on a server holding many agents it can never match: only the relations the templates
need, and, on self-hosted Letta 0.16 (whose `query_text` keeps every agent whose name contains it), only the agents
whose names hold the glob's literal prefix. The glob still decides; no agent it matches is missed."""

from __future__ import annotations

import pytest

from lettafleet.core.render.text import render_plan
from tests.plugins.resources.test_templates import runtime_agents

PROMPT_ONLY = """
fleet: acme
templates:
  - name: support
    match: "{glob}"
    system_prompt: {{value: "You are the support agent."}}
"""
TAGS_ONLY = """
fleet: acme
templates:
  - name: support
    tags: [customer]
    system_prompt: {value: "You are the support agent."}
"""
WITH_POLICIES = """
fleet: acme
shared_blocks:
  - {name: policies, value: "Be kind.", agent_owned: false}
templates:
  - name: support
    match: "user-*"
    system_prompt: {value: "You are the support agent."}
    shared_blocks: [policies]
"""
WITHOUT_POLICIES = WITH_POLICIES.replace("    shared_blocks: [policies]\n", "")


@pytest.fixture
def crowded(letta):
    """Letta 0.16.8 holding 300 agents no template matches (so the plan does not read every agent for its agents)."""
    letta.version = "0.16.8"
    for index in range(300):
        letta.add_agent(f"someone-{index}", managed=False)
    return letta


def agent_lists(letta) -> list[dict[str, list[str]]]:
    """The query of each `GET /v1/agents/` the plan sent, cursors aside."""
    return [
        {key: value for key, value in params.items() if key not in ("after", "before", "limit")}
        for path, params in letta.queries
        if path == "/v1/agents/"
    ]


def matched(fleet, plan) -> set[str]:
    return {address.removeprefix("template.support.agent.") for address in fleet.actions(plan) if ".agent." in address}


def test_a_prefix_glob_reads_only_the_agents_whose_names_hold_its_prefix_with_their_tags(fleet, crowded):
    runtime_agents(crowded, 3)
    crowded.queries.clear()

    plan = fleet.plan(PROMPT_ONLY.format(glob="user-*"))

    assert matched(fleet, plan) == {"user-1", "user-2", "user-3"}
    lists = agent_lists(crowded)
    assert {"include": ["agent.tags"], "order": ["asc"], "query_text": ["user-"]} in lists
    assert all(query.get("name") or query.get("tags") or query.get("query_text") for query in lists)  # never all
    assert not any("agent.blocks" in query.get("include", []) for query in lists if query.get("query_text"))


def test_the_glob_still_decides_among_the_agents_the_prefix_finds_and_misses_none(fleet, crowded):
    runtime_agents(crowded, 3)
    crowded.add_agent("old-user-7", managed=False)  # the prefix in the middle of its name
    crowded.add_agent("USER-9", managed=False)  # the prefix in another case
    crowded.add_agent("user-", managed=False)  # the prefix alone: `user-*` matches it

    plan = fleet.plan(PROMPT_ONLY.format(glob="user-*"))

    assert matched(fleet, plan) == {"user-1", "user-2", "user-3", "user-"}
    assert "4 agents match `user-*`" in render_plan(plan, fleet.manager.kinds)


def test_a_glob_starting_with_a_wildcard_reads_every_agent(fleet, crowded):
    runtime_agents(crowded, 2)
    crowded.add_agent("old-user-7", managed=False)
    crowded.queries.clear()

    plan = fleet.plan(PROMPT_ONLY.format(glob="*user-*"))

    assert matched(fleet, plan) == {"user-1", "user-2", "old-user-7"}
    lists = agent_lists(crowded)
    assert {"include": ["agent.tags"], "order": ["asc"]} in lists  # every agent, with its tags only
    assert not any(query.get("query_text") for query in lists)


def test_a_tags_only_selector_reads_every_agent_without_a_name_search(fleet, crowded):
    runtime_agents(crowded, 2, tags=["customer"])
    crowded.add_agent("user-3", managed=False)
    crowded.queries.clear()

    plan = fleet.plan(TAGS_ONLY)

    assert matched(fleet, plan) == {"user-1", "user-2"}
    lists = agent_lists(crowded)
    assert {"include": ["agent.tags"], "order": ["asc"]} in lists
    assert not any(query.get("query_text") for query in lists)


def test_a_server_of_unknown_version_is_not_searched_by_name(fleet, crowded):
    crowded.version = None  # hosted Letta documents `query_text` as a search, not as a name substring
    runtime_agents(crowded, 2)
    crowded.queries.clear()

    plan = fleet.plan(PROMPT_ONLY.format(glob="user-*"))

    assert matched(fleet, plan) == {"user-1", "user-2"}
    assert not any(query.get("query_text") for query in agent_lists(crowded))


def test_a_template_with_shared_blocks_reads_the_agents_blocks(fleet, crowded):
    runtime_agents(crowded, 2)
    crowded.queries.clear()

    fleet.plan(WITH_POLICIES)

    searched = [query for query in agent_lists(crowded) if query.get("query_text") == ["user-"]]
    assert searched and all(query["include"] == ["agent.blocks", "agent.tags"] for query in searched)


def test_a_shared_block_line_taken_out_is_still_detached_where_the_record_says_it_was_attached(fleet, crowded):
    users = runtime_agents(crowded, 2)
    fleet.apply(fleet.plan(WITH_POLICIES))

    plan = fleet.plan(WITHOUT_POLICIES)

    details = {change.address: change.detail for change in plan.changes}
    for user in users:
        assert "detach shared block policies" in details[f"template.support.agent.{user['name']}"]


def test_agents_carrying_a_removed_templates_record_are_found_whatever_their_name(fleet, crowded):
    users = runtime_agents(crowded, 2)
    fleet.apply(fleet.plan(WITH_POLICIES))
    crowded.agents[users[0]["id"]]["name"] = "renamed-by-the-app"
    other = PROMPT_ONLY.format(glob="client-*").replace("name: support", "name: clients")

    plan = fleet.plan(other)

    assert fleet.actions(plan)["template.support.agent.renamed-by-the-app"] == "update"
    assert fleet.actions(plan)["template.support.agent.user-2"] == "update"
    lists = agent_lists(crowded)
    assert any(query.get("query_text") == ["client-"] for query in lists)
