"""`get agents`, `describe agent`, `delete agent` and agent naming, against a mocked Letta API (respx)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
import yaml

from lettafleet.core import to_yaml
from tests.plugins.commands.mocked_letta import AGENT_ID, BASE, OTHER_AGENT_ID, requests, run

SUPPORT_ID = AGENT_ID
OTHER_ID = OTHER_AGENT_ID


@pytest.fixture
def letta() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def block(block_id: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"id": block_id, "label": label, "value": f"value of {label}", "limit": 2000, **extra}


def agent(agent_id: str = SUPPORT_ID, name: str = "support-agent", **extra: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "name": name,
        "description": "Helps",
        "llm_config": {"model": "gpt-4o-mini", "handle": "openai/gpt-4o-mini", "context_window": 32000},
        "embedding_config": {"embedding_model": "text-embedding-3-small"},
        "tags": ["team:support"],
        "blocks": [],
        "tools": [],
        "metadata": {"managed_by": "lettafleet"},
        "created_at": "2026-11-25T17:38:12.767871Z",
        **extra,
    }


def test_an_unknown_agent_name_exits_1_with_a_clear_message_after_one_filtered_request(letta):
    letta.get("/v1/agents/").respond(json=[])
    result = run("describe", "agent", "nope")
    assert result.exit_code == 1
    assert "no agent named 'nope'" in result.stderr and "lettafleet get agents" in result.stderr
    assert "Did you mean" not in result.stderr  # no name is close
    assert "Traceback" not in result.output + result.stderr
    # The lookup is one filtered request; only once it found nothing are the names read, for suggestions.
    first, *suggestions = letta.calls
    assert first.request.url.params["name"] == "nope"
    assert all("name" not in call.request.url.params for call in suggestions)


def test_an_unknown_agent_name_suggests_close_names(letta):
    letta.get("/v1/agents/", params={"name": "suport-agent"}).respond(json=[])
    letta.get("/v1/agents/").mock(
        side_effect=[httpx.Response(200, json=[agent(name="support-agent")]), httpx.Response(200, json=[])]
    )
    result = run("describe", "agent", "suport-agent")
    assert result.exit_code == 1
    assert "no agent named 'suport-agent'" in result.stderr and "Did you mean support-agent?" in result.stderr


@pytest.mark.parametrize("status", [404, 422])
def test_an_unknown_agent_id_exits_1_with_a_clear_message(letta, status):
    letta.get(f"/v1/agents/{SUPPORT_ID}").respond(status, json={"detail": "not found"})
    result = run("get", "conversations", SUPPORT_ID)
    assert result.exit_code == 1
    assert f"no agent with id '{SUPPORT_ID}'" in result.stderr


def test_a_name_two_agents_share_resolves_to_the_managed_one_and_says_so(letta):
    unmanaged, managed = agent(OTHER_ID, metadata={}), agent(SUPPORT_ID)
    letta.get("/v1/agents/").respond(json=[unmanaged, managed])
    letta.get("/v1/conversations/").respond(json=[])
    result = run("describe", "agent", "support-agent", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == SUPPORT_ID
    assert "2 agents are named 'support-agent'" in result.stderr


def test_delete_refuses_a_name_two_agents_share(letta):
    letta.get("/v1/agents/").respond(json=[agent(OTHER_ID), agent(SUPPORT_ID)])
    result = run("delete", "agent", "support-agent", "--force")
    assert result.exit_code == 1 and "by its id" in result.stderr
    assert requests(letta, "DELETE") == []


@pytest.fixture
def agent_with_blocks(letta: respx.MockRouter) -> respx.MockRouter:
    """support-agent: own block `notes`, block `policies` also used by another agent, a fleet shared block used
    only by it, and a conversation with an isolated copy."""
    blocks = [
        block("block-notes", "notes"),
        block("block-policies", "policies"),
        block("block-fleet", "style", metadata={"managed_by": "lettafleet", "shared": True}),
    ]
    letta.get("/v1/agents/").respond(json=[agent(blocks=blocks)])
    letta.get("/v1/conversations/").respond(
        json=[{"id": "conv-a", "agent_id": SUPPORT_ID, "summary": "Ticket #1", "isolated_block_ids": ["block-copy"]}]
    )
    letta.get("/v1/blocks/block-notes/agents").respond(json=[agent()])
    letta.get("/v1/blocks/block-policies/agents").respond(json=[agent(), agent(OTHER_ID, name="billing")])
    letta.get("/v1/blocks/block-copy/agents").respond(json=[])
    letta.delete(f"/v1/agents/{SUPPORT_ID}").respond(json=None)
    letta.delete("/v1/blocks/block-notes").respond(json=None)
    letta.delete("/v1/blocks/block-copy").respond(404, json={"detail": "gone"})
    return letta


def test_delete_agent_without_force_says_what_would_go_and_changes_nothing(agent_with_blocks):
    result = run("delete", "agent", "support-agent")
    assert result.exit_code == 1
    assert "Would delete agent support-agent" in result.stdout
    assert "block notes (block-notes)" in result.stdout
    assert "isolated block copy block-copy of conversation 'Ticket #1'" in result.stdout
    assert "Kept block policies (block-policies): also used by billing" in result.stdout
    assert "Kept block style (block-fleet): a fleet-wide shared block" in result.stdout
    assert "--force" in result.stderr
    assert requests(agent_with_blocks, "DELETE") == []


def test_delete_agent_with_force_deletes_the_blocks_only_it_used_then_the_agent(agent_with_blocks):
    result = run("delete", "agent", "support-agent", "--force")
    assert result.exit_code == 0, result.stderr  # the copy answering 404 is already gone: fine
    deleted = [request.url.path for request in requests(agent_with_blocks, "DELETE")]
    assert deleted == ["/v1/blocks/block-notes", "/v1/blocks/block-copy", f"/v1/agents/{SUPPORT_ID}"]
    # Every block's users were checked before anything was deleted.
    calls = [(call.request.method, call.request.url.path) for call in agent_with_blocks.calls]
    first_delete = calls.index(("DELETE", "/v1/blocks/block-notes"))
    assert {path for method, path in calls[:first_delete] if path.endswith("/agents")} == {
        "/v1/blocks/block-notes/agents",
        "/v1/blocks/block-policies/agents",
        "/v1/blocks/block-copy/agents",
    }
    assert "Deleted agent support-agent" in result.stdout


def test_get_agents_lists_name_id_model_and_block_count_as_plain_text_off_a_terminal(letta):
    letta.get("/v1/agents/").respond(json=[agent(blocks=[block("block-a", "faq")])])
    result = run("get", "agents")
    assert result.exit_code == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "ID", "MODEL", "BLOCKS", "TAGS", "CREATED"]
    assert row.split()[:4] == ["support-agent", SUPPORT_ID, "openai/gpt-4o-mini", "1"]
    assert "\x1b[" not in result.stdout  # no terminal codes in a pipe


def test_get_agents_yaml_reads_back_as_the_json(letta):
    letta.get("/v1/agents/").respond(json=[agent(), agent(OTHER_ID, name="yes", description="a: b\n- c")])
    as_json = json.loads(run("get", "agents", "-o", "json").stdout)
    assert yaml.safe_load(run("get", "agents", "-o", "yaml").stdout) == as_json


@pytest.mark.parametrize(
    "value",
    [
        "yes",
        "No",
        "null",
        "~",
        "2026-11-25",
        "12",
        "1e3",
        "a: b",
        "- x",
        "#x",
        "multi\nline",
        " padded ",
        "",
        "ünïcødé",
        "line\u2028sep",
        "tab\there",
        "{}",
        "[x]",
        "*star",
        "&anchor",
        "!tag",
        "'q'",
        '"dq"',
    ],
)
def test_yaml_output_keeps_every_string_a_string(value):
    document = {"key": value, "list": [value, {"nested": value}], "empty": [], "none": None, "n": 3, "b": True}
    assert yaml.safe_load(to_yaml(document)) == document


def test_describe_agent_never_prints_credentials_in_a_model_endpoint(letta):
    secret_endpoint = {"model": "m", "model_endpoint": "https://user:hunter2@llm.example/v1?api_key=sk-123"}
    letta.get("/v1/agents/").respond(json=[agent(llm_config=secret_endpoint)])
    letta.get("/v1/conversations/").respond(json=[])
    for output in ("text", "json", "yaml"):
        result = run("describe", "agent", "support-agent", "-o", output)
        assert result.exit_code == 0, result.stderr
        assert "llm.example/v1" in result.stdout
        assert "hunter2" not in result.stdout and "sk-123" not in result.stdout


def test_a_name_that_starts_like_an_id_is_looked_up_as_a_name(letta):
    letta.get("/v1/agents/").respond(json=[agent(name="agent-smith")])
    letta.get("/v1/conversations/").respond(json=[])
    result = run("get", "conversations", "agent-smith")
    assert result.exit_code == 0, result.stderr
    assert letta.calls[0].request.url.params["name"] == "agent-smith"


def test_describe_agent_names_the_secrets_and_never_shows_their_values(letta):
    secrets = [{"key": "ORDERS_API_KEY", "value": "sk-orders-999", "value_enc": "sk-orders-999"}]
    letta.get("/v1/agents/").respond(json=[agent(secrets=secrets)])
    letta.get("/v1/conversations/").respond(json=[])
    for output in ("text", "json", "yaml"):
        result = run("describe", "agent", "support-agent", "-o", output)
        assert result.exit_code == 0, result.stderr
        assert "ORDERS_API_KEY" in result.stdout
        assert "sk-orders-999" not in result.stdout


def test_get_agents_canary_lists_only_the_canary_copies_with_the_agent_each_copies(letta):
    copy = agent(
        OTHER_ID, name="CANARY-support-agent", metadata={"managed_by": "lettafleet", "canary_of": "support-agent"}
    )
    letta.get("/v1/agents/").respond(json=[agent(), copy])

    listed = json.loads(run("get", "agents", "--canary", "-o", "json").stdout)

    assert [(found["name"], found["canary_of"]) for found in listed] == [("CANARY-support-agent", "support-agent")]


def test_describe_agent_canary_describes_the_copy_of_the_agent_named(letta):
    copy = agent(
        OTHER_ID, name="CANARY-support-agent", metadata={"managed_by": "lettafleet", "canary_of": "support-agent"}
    )
    letta.get("/v1/agents/", params={"name": "CANARY-support-agent"}).respond(json=[copy])
    letta.get(f"/v1/agents/{OTHER_ID}").respond(json=copy)
    letta.get("/v1/conversations/").respond(json=[])

    result = run("describe", "agent", "support-agent", "--canary")

    assert result.exit_code == 0, result.stderr
    assert "Name:" in result.stdout and "CANARY-support-agent" in result.stdout
    assert "Canary copy of:        support-agent" in result.stdout
