"""The commands lettactl users type, against the real dev server (its LLM provider stood in for): listings of
blocks, tools and server-level objects, `send --all`, `reset-messages`, `recompile`, `cancel-messages`, `health`."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from lettafleet.core import LettaAPIError
from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli, ok

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]


def as_json(base_url: str, *args: str) -> Any:
    return json.loads(ok(cli(base_url, *args, "-o", "json")))


@pytest.fixture
def prefix() -> str:
    return f"lc-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def made(client: LettaClient) -> Iterator[dict[str, list[str]]]:
    """Ids of what a test created, deleted afterwards: agents (with their conversations), blocks, archives."""
    ids: dict[str, list[str]] = {"agents": [], "blocks": [], "archives": []}
    yield ids
    for kind in ("agents", "blocks", "archives"):
        for item_id in ids[kind]:
            with contextlib.suppress(LettaAPIError):  # already gone
                client.delete(f"/v1/{kind}/{item_id}")


@pytest.fixture
def new_agent(client: LettaClient, fake_llm: FakeLLM, made) -> Callable[..., dict[str, Any]]:
    def create(name: str, tags: list[str] | None = None, block_ids: list[str] | None = None) -> dict[str, Any]:
        agent = client.post(
            "/v1/agents/",
            json={
                "name": name,
                "tags": tags or [],
                "llm_config": fake_llm.llm_config(),
                "embedding_config": fake_llm.embedding_config(),
                "memory_blocks": [{"label": "persona", "value": f"I am {name}."}],
                "block_ids": block_ids or [],
            },
        )
        made["agents"].append(agent["id"])
        made["blocks"] += [block["id"] for block in agent.get("blocks") or []]
        return agent

    return create


def new_block(client: LettaClient, made, label: str, value: str) -> dict[str, Any]:
    block = client.post("/v1/blocks/", json={"label": label, "value": value})
    made["blocks"].append(block["id"])
    return block


# ---------------------------------------------------------------------------------------------- get blocks, tools


def test_get_blocks_tells_shared_from_orphaned_and_filters_by_agent_and_tags(
    letta_server, client, new_agent, made, prefix
):
    shared = new_block(client, made, f"{prefix}-policy", "Refunds within 30 days.")
    orphan = new_block(client, made, f"{prefix}-orphan", "Nobody reads me.")
    first = new_agent(f"{prefix}-one", tags=[f"{prefix}-team", "eu"], block_ids=[shared["id"]])
    second = new_agent(f"{prefix}-two", tags=[f"{prefix}-team"], block_ids=[shared["id"]])

    listed = {b["id"]: b for b in as_json(letta_server, "get", "blocks", "--shared")}
    assert listed[shared["id"]]["agents"] == sorted([first["name"], second["name"]])
    assert orphan["id"] not in listed
    assert all(len(b["agents"]) >= 2 for b in listed.values())

    orphans = {b["id"] for b in as_json(letta_server, "get", "blocks", "--orphaned")}
    assert orphan["id"] in orphans and shared["id"] not in orphans

    of_first = {b["label"] for b in as_json(letta_server, "get", "blocks", "-a", first["name"])}
    assert of_first == {"persona", shared["label"]}
    tagged = as_json(letta_server, "get", "blocks", "--tags", f"{prefix}-team,eu")
    assert {b["value"] for b in tagged} == {f"I am {first['name']}.", "Refunds within 30 days."}

    as_yaml = yaml.safe_load(ok(cli(letta_server, "get", "blocks", "-a", first["name"], "-o", "yaml")))
    assert as_yaml == as_json(letta_server, "get", "blocks", "-a", first["name"])
    table = ok(cli(letta_server, "get", "blocks", "-a", second["name"]))
    assert shared["id"] in table and "LABEL" in table


def test_get_blocks_never_calls_a_conversations_isolated_copy_orphaned(letta_server, client, new_agent, prefix):
    agent = new_agent(f"{prefix}-iso")
    conversation = client.post(
        "/v1/conversations/", json={"summary": "t", "isolated_block_labels": ["persona"]}, agent_id=agent["id"]
    )
    (copy_id,) = conversation["isolated_block_ids"]
    try:
        orphans = {b["id"] for b in as_json(letta_server, "get", "blocks", "--orphaned")}
        assert copy_id not in orphans
        every = {b["id"]: b for b in as_json(letta_server, "get", "blocks")}
        assert every[copy_id]["conversations"] == [conversation["id"]]
    finally:
        client.delete(f"/v1/conversations/{conversation['id']}")  # takes its isolated copy with it


def test_get_tools_counts_the_agents_using_each_and_filters_by_agent(letta_server, new_agent, prefix):
    first = new_agent(f"{prefix}-one", tags=[f"{prefix}-t"])
    new_agent(f"{prefix}-two")
    tools = as_json(letta_server, "get", "tools", "-a", first["name"])
    names = {t["name"] for t in tools}
    assert names == {t["name"] for t in first["tools"]}
    assert all(first["name"] in t["agents"] and "source_code" not in t for t in tools)
    tagged = {t["name"] for t in as_json(letta_server, "get", "tools", "--tags", f"{prefix}-t")}
    assert tagged == names
    shared = {t["name"] for t in as_json(letta_server, "get", "tools", "--shared")}
    assert names <= shared  # both agents have Letta's base tools


def test_server_level_listings_on_letta_0_16_8(letta_server, client, new_agent, made, prefix):
    agent = new_agent(f"{prefix}-arch")
    archive = client.post("/v1/archives/", json={"name": f"{prefix}-notes", "description": "what we learnt"})
    made["archives"].append(archive["id"])
    client.patch(f"/v1/agents/{agent['id']}/archives/attach/{archive['id']}")

    archives = as_json(letta_server, "get", "archives", "-a", agent["name"])
    assert [(a["name"], a["description"]) for a in archives] == [(f"{prefix}-notes", "what we learnt")]
    assert "No archives of agent" in ok(cli(letta_server, "get", "archives", "-a", new_agent(f"{prefix}-x")["name"]))
    assert "letta/letta-free" in {m["handle"] for m in as_json(letta_server, "get", "models")}
    for kind in ("folders", "mcp-servers", "providers"):
        assert isinstance(as_json(letta_server, "get", kind), list)


# ---------------------------------------------------------------------------------------------- send --all


def test_send_all_reaches_every_agent_matching_the_glob_and_no_other(letta_server, new_agent, fake_llm, prefix):
    for name in (f"{prefix}-support-1", f"{prefix}-support-2", f"{prefix}-sales-1"):
        new_agent(name)
    report = as_json(letta_server, "send", "--all", f"{prefix}-support-*", "ping all")
    assert report["summary"] == {"pattern": f"{prefix}-support-*", "agents": 2, "replied": 2, "failed": 0}
    assert {r["agent"]: r["reply"] for r in report["results"]} == {
        f"{prefix}-support-1": fake_llm.reply_to("ping all"),
        f"{prefix}-support-2": fake_llm.reply_to("ping all"),
    }
    sales = as_json(letta_server, "get", "messages", f"{prefix}-sales-1", "--all")
    assert not [m for m in sales if m["message_type"] == "user_message"]

    text = ok(cli(letta_server, "send", "--all", f"{prefix}-sales-*", "hello"))
    assert f"{prefix}-sales-1: {fake_llm.reply_to('hello')}" in text
    assert f"Sent to 1 agent matching '{prefix}-sales-*': 1 replied, 0 failed." in text


def test_send_all_with_no_match_or_an_agent_too_is_a_clear_error(letta_server, prefix):
    nothing = cli(letta_server, "send", "--all", f"{prefix}-nobody-*", "hi")
    assert nothing.exit_code == 1
    assert f"no agent name on {letta_server} matches '{prefix}-nobody-*'" in nothing.stderr
    both = cli(letta_server, "send", "--all", f"{prefix}-*", "agent", "hi")
    assert both.exit_code == 1 and "give MESSAGE only" in both.stderr


# ---------------------------------------------------------------------------------------------- reset, recompile


def test_reset_messages_starts_the_legacy_context_afresh(letta_server, client, new_agent, fake_llm, prefix):
    agent = new_agent(f"{prefix}-reset")
    ok(cli(letta_server, "send", agent["name"], "remember this"))
    assert len(client.get(f"/v1/agents/{agent['id']}")["message_ids"]) == 3  # system, user, assistant
    said = ok(cli(letta_server, "reset-messages", agent["name"]))
    assert f"Reset the legacy history of {agent['name']}: the agent's context now holds only its system" in said
    assert len(client.get(f"/v1/agents/{agent['id']}")["message_ids"]) == 1
    ok(cli(letta_server, "send", agent["name"], "what did I say?"))
    (asked,) = [r for r in fake_llm.chat_requests() if r.last_user_text == "what did I say?"]
    assert "remember this" not in json.dumps(asked.body["messages"])  # the model no longer sees it


def test_reset_messages_of_one_conversation_on_0_16_8_says_the_server_lacks_it(letta_server, client, new_agent, prefix):
    agent = new_agent(f"{prefix}-reset-conv")
    conversation = client.post("/v1/conversations/", json={"summary": "t"}, agent_id=agent["id"])
    result = cli(letta_server, "reset-messages", agent["name"], "--conversation-id", conversation["id"])
    assert result.exit_code == 1
    assert "cannot reset one conversation" in result.stderr and "Nothing was changed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def system_prompt(client: LettaClient, conversation_id: str) -> str:
    (system,) = [
        m
        for m in client.get(f"/v1/conversations/{conversation_id}/messages", order="asc", limit=5)
        if m["message_type"] == "system_message"
    ]
    return str(system["content"])


def test_recompile_lets_running_conversations_see_an_edited_block(letta_server, client, new_agent, prefix):
    agent = new_agent(f"{prefix}-recompile")
    ids = [client.post("/v1/conversations/", json={"summary": s}, agent_id=agent["id"])["id"] for s in "ab"]
    (persona,) = [b for b in agent["blocks"] if b["label"] == "persona"]
    client.patch(f"/v1/blocks/{persona['id']}", json={"value": "I now speak French."})
    assert all("I now speak French." not in system_prompt(client, i) for i in ids)  # stale until recompiled

    one = as_json(letta_server, "recompile", agent["name"], "--conversation-id", ids[0])
    assert one["results"] == [{"conversation_id": ids[0], "ok": True, "error": None, "skipped": None}]
    assert "I now speak French." in system_prompt(client, ids[0])
    assert "I now speak French." not in system_prompt(client, ids[1])

    text = ok(cli(letta_server, "recompile", agent["name"]))
    assert f"Recompiled 3/3: the legacy history and 2 conversations of {agent['name']}." in text
    assert "I now speak French." in system_prompt(client, ids[1])


def test_recompile_leaves_a_conversation_with_isolated_copies_as_it_is(letta_server, client, new_agent, prefix):
    agent = new_agent(f"{prefix}-recompile-iso")
    conversation = client.post(
        "/v1/conversations/", json={"summary": "t", "isolated_block_labels": ["persona"]}, agent_id=agent["id"]
    )
    (copy_id,) = conversation["isolated_block_ids"]
    client.patch(f"/v1/blocks/{copy_id}", json={"value": "Only this conversation's persona."})
    before = system_prompt(client, conversation["id"])
    result = cli(letta_server, "recompile", agent["name"])
    assert result.exit_code == 0, result.stderr
    assert f"note: {conversation['id']} skipped: it has isolated block copies" in result.stderr
    assert "Recompiled 1/2: the legacy history and 1 conversation" in result.stdout
    assert system_prompt(client, conversation["id"]) == before


def test_recompile_refuses_a_conversation_of_another_agent(letta_server, client, new_agent, prefix):
    mine, theirs = new_agent(f"{prefix}-mine"), new_agent(f"{prefix}-theirs")
    conversation = client.post("/v1/conversations/", json={}, agent_id=theirs["id"])
    result = cli(letta_server, "recompile", mine["name"], "--conversation-id", conversation["id"])
    assert result.exit_code == 1 and f"belongs to agent {theirs['id']}" in result.stderr


# ---------------------------------------------------------------------------------------------- cancel, health


def test_cancel_messages_with_nothing_running_says_so(letta_server, new_agent, prefix):
    agent = new_agent(f"{prefix}-idle")["name"]
    assert f"Nothing to cancel: agent {agent} has no active run." in ok(cli(letta_server, "cancel-messages", agent))
    assert as_json(letta_server, "cancel-messages", agent)["runs"] == {}


def test_cancel_messages_refuses_a_run_it_does_not_know(letta_server, new_agent, prefix):
    agent = new_agent(f"{prefix}-runs")["name"]
    unknown = "run-00000000-0000-4000-8000-000000000000"
    result = cli(letta_server, "cancel-messages", agent, "--run-ids", unknown)
    assert result.exit_code == 1
    assert f"no run with id '{unknown}'" in result.stderr and "Nothing was cancelled" in result.stderr


def test_health_names_the_version_and_counts(letta_server, new_agent, prefix):
    new_agent(f"{prefix}-health")
    record = as_json(letta_server, "health")
    assert record["status"] == "ok" and record["version"] == "0.16.8" and record["server"] == letta_server
    assert record["counts"]["agents"] >= 1 and isinstance(record["counts"]["folders"], int)
    text = ok(cli(letta_server, "health"))
    assert "Status:" in text and "0.16.8" in text and "Agents:" in text


def test_health_of_an_unreachable_server_is_one_line_and_exit_1():
    result = cli("http://127.0.0.1:9", "health")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_agent_is_named_with_close_names(letta_server, new_agent, prefix):
    agent = new_agent(f"{prefix}-spelled")["name"]
    result = cli(letta_server, "recompile", agent[:-1])
    assert result.exit_code == 1
    assert f"no agent named '{agent[:-1]}'" in result.stderr and f"Did you mean {agent}" in result.stderr
