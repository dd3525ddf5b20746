"""`report memory` against a mocked Letta API (respx): each agent's compiled memory and prompt against its
context window, the agents over the threshold marked, and what is said when nothing is chosen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import respx

from tests.plugins.commands.mocked_letta import AGENT_ID, BASE, OTHER_AGENT_ID, run


@pytest.fixture
def letta() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def block(label: str, value: str, limit: int = 10_000) -> dict[str, Any]:
    return {"id": f"block-{label}", "label": label, "value": value, "description": "d", "limit": limit}


def agent(agent_id: str, name: str, window: int, blocks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "name": name,
        "system": "You help.",
        "llm_config": {"model": "gpt-4o-mini", "context_window": window},
        "tags": [],
        "blocks": blocks,
        **extra,
    }


def fleet() -> list[dict[str, Any]]:
    """user-1 nearly full (a 7,000-character block in a 2,000-token window); user-2 with room to spare."""
    return [
        agent(AGENT_ID, "user-1", 2000, [block("persona", "x" * 7000, limit=8000)], tags=["tier:free"]),
        agent(OTHER_AGENT_ID, "user-2", 4000, [block("persona", "short", limit=100)]),
    ]


def test_json_gives_each_agent_its_estimated_memory_and_prompt_against_its_window(letta):
    listing = letta.get("/v1/agents/").respond(json=fleet())
    result = run("report", "memory", "--all", "-o", "json")
    assert result.exit_code == 0, result.output + result.stderr
    document = json.loads(result.output)
    assert document["threshold_percent"] == 80
    full, roomy = document["agents"]
    assert (full["agent"], full["agent_id"], full["context_window"]) == ("user-1", AGENT_ID, 2000)
    assert full["prompt_characters"] == len("You help.") and full["prompt_tokens"] == 3
    assert full["memory_characters"] > 7000 and full["memory_tokens"] == -(-full["memory_characters"] // 4)
    assert full["estimated_tokens"] == -(-(full["memory_characters"] + full["prompt_characters"]) // 4)
    assert full["percent"] == round(100 * full["estimated_tokens"] / 2000, 1) and full["percent"] > 80
    assert full["over_threshold"] is True and roomy["over_threshold"] is False
    assert full["blocks"] == [
        {"label": "persona", "block_id": "block-persona", "characters": 7000, "limit": 8000, "percent_full": 87.5}
    ]
    assert roomy["blocks"][0]["percent_full"] == 5.0
    # The agents and their blocks come from the listing of agents alone: no request per agent.
    assert listing.call_count == len(letta.calls)
    assert all("agent.blocks" in call.request.url.params.get_list("include") for call in letta.calls)


def test_a_table_marks_the_agent_over_the_threshold_and_says_so_below(letta):
    letta.get("/v1/agents/").respond(json=fleet())
    result = run("report", "memory", "--all")
    assert result.exit_code == 0, result.output + result.stderr
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("user-")}
    assert "!" in rows["user-1"] and "persona 88%" in rows["user-1"] and "2,000" in rows["user-1"]
    assert "!" not in rows["user-2"] and "persona 5%" in rows["user-2"]
    assert "2 agents; 1 over 80% of the context window: user-1." in result.output


def test_a_lower_threshold_marks_more_agents(letta):
    letta.get("/v1/agents/").respond(json=fleet())
    document = json.loads(run("report", "memory", "--all", "--context-threshold", "1", "-o", "json").output)
    assert [a["over_threshold"] for a in document["agents"]] == [True, True]


def test_match_and_tags_choose_agents_as_lettactl_does(letta):
    letta.get("/v1/agents/").respond(json=fleet())
    by_glob = json.loads(run("report", "memory", "--match", "user-2", "-o", "json").output)
    by_tag = json.loads(run("report", "memory", "--tags", "tier:free", "-o", "json").output)
    assert [a["agent"] for a in by_glob["agents"]] == ["user-2"]
    assert [a["agent"] for a in by_tag["agents"]] == ["user-1"]


def test_one_agent_by_name_is_found_with_its_blocks(letta):
    found = letta.get("/v1/agents/", params={"name": "user-1"}).respond(json=fleet()[:1])
    document = json.loads(run("report", "memory", "user-1", "-o", "json").output)
    assert [a["agent"] for a in document["agents"]] == ["user-1"]
    assert "agent.blocks" in found.calls[0].request.url.params.get_list("include")


def test_an_agent_without_a_known_window_is_reported_without_a_percentage(letta):
    unknown = agent(AGENT_ID, "user-1", 0, [block("persona", "hi")], llm_config={})
    letta.get("/v1/agents/").respond(json=[unknown])
    document = json.loads(run("report", "memory", "--all", "-o", "json").output)
    assert document["agents"][0]["percent"] is None and document["agents"][0]["over_threshold"] is False
    text = run("report", "memory", "--all").output
    assert "window unknown" in text and "1 without a known context window" in text


def test_a_pattern_that_matches_nothing_fails_clearly(letta):
    letta.get("/v1/agents/").respond(json=fleet())
    result = run("report", "memory", "--match", "admin-*")
    assert result.exit_code == 1
    assert "no agent on http://letta.test matches --match 'admin-*' (2 agents there)" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_nothing_chosen_or_both_ways_chosen_is_a_usage_error_that_says_what_to_give(letta):
    nothing = run("report", "memory")
    both = run("report", "memory", "user-1", "--all")
    assert nothing.exit_code == both.exit_code == 1
    assert "name an AGENT, or choose agents with --all, --match GLOB or --tags TAG" in nothing.output
    assert "not both" in both.output
    assert not letta.calls


def test_all_on_an_empty_server_says_so(letta):
    letta.get("/v1/agents/").respond(json=[])
    result = run("report", "memory", "--all")
    assert result.exit_code == 0 and "No agents on the server." in result.output
