"""The seed's conversation workflow end to end, against a real Letta server whose LLM provider is stood in for."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lettafleet.core import LettaAPIError
from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli, ok

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM

# The stand-in LLM provider's session fixture, `fake_llm`.
pytest_plugins = ["tests.fakes.llm_server"]

SEED_MODEL = re.compile(r"    llm_config:\n      model: .*\n      context_window: .*\n")
SEED_EMBEDDING = re.compile(r"    embedding: .*\n")


@pytest.fixture
def unique() -> Callable[[str], str]:
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"


@pytest.fixture
def cleanup(letta_server: str, client: LettaClient) -> Iterator[list[str]]:
    """Names of agents (and labels of shared blocks) to remove after the test, with everything they own."""
    names: list[str] = []
    yield names
    for name in names:
        for agent in client.list_all("/v1/agents/", name=name):
            cli(letta_server, "delete", "agent", agent["id"], "--force")
        for block in client.list_all("/v1/blocks/", label=name):
            client.delete(f"/v1/blocks/{block['id']}")


def seed_fleet_for(seed_fleet: Path, agent: str, fake: FakeLLM) -> Path:
    """The seed's fleet.yaml with a unique agent name and its model pointed at the stand-in LLM."""
    text = seed_fleet.read_text()
    text, models = SEED_MODEL.subn(fake.fleet_yaml(), text)
    text, embeddings = SEED_EMBEDDING.subn("", text)
    assert models == 1 and embeddings == 1, "the seed fleet changed shape; update this test's rewrite"
    seed_fleet.write_text(text.replace("name: support-agent", f"name: {agent}"))
    return seed_fleet


def conversation_ids(base_url: str, agent: str) -> dict[str, str]:
    listed = json.loads(ok(cli(base_url, "get", "conversations", agent, "-o", "json")))
    return {conversation["summary"]: conversation["id"] for conversation in listed}


def history(base_url: str, agent: str, conversation_id: str | None = None) -> list[dict[str, Any]]:
    args = ["get", "messages", agent, "--all", "-o", "json"]
    if conversation_id:
        args += ["--conversation-id", conversation_id]
    return json.loads(ok(cli(base_url, *args)))


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["message_type"] in ("user_message", "assistant_message")]


def test_the_seed_workflow_from_yaml_to_isolated_conversations(letta_server, fake_llm, seed_fleet, unique, cleanup):
    agent = unique("support-agent")
    cleanup.append(agent)
    fleet = seed_fleet_for(seed_fleet, agent, fake_llm)

    # 1. Deploy the agent: conversations are created automatically.
    applied = ok(cli(letta_server, "apply", "-f", str(fleet)))
    assert "2 new conversations" in applied

    # 2. Find the conversation ids, then send a message to each.
    ids = conversation_ids(letta_server, agent)
    assert set(ids) == {"Ticket #101", "Ticket #102"}
    reply_a = ok(cli(letta_server, "send", agent, "I can't log in", "--conversation-id", ids["Ticket #101"]))
    reply_b = ok(cli(letta_server, "send", agent, "How do I upgrade?", "--conversation-id", ids["Ticket #102"]))
    assert reply_a.strip() == fake_llm.reply_to("I can't log in")
    assert reply_b.strip() == fake_llm.reply_to("How do I upgrade?")

    # 3. Each conversation has its own history only.
    assert texts(history(letta_server, agent, ids["Ticket #101"])) == [
        "I can't log in",
        fake_llm.reply_to("I can't log in"),
    ]
    assert texts(history(letta_server, agent, ids["Ticket #102"])) == [
        "How do I upgrade?",
        fake_llm.reply_to("How do I upgrade?"),
    ]
    table = ok(cli(letta_server, "get", "messages", agent, "--conversation-id", ids["Ticket #101"]))
    assert "I can't log in" in table and "upgrade" not in table
    listing = ok(cli(letta_server, "get", "conversations", agent))
    assert re.search(r"Ticket #101\s+2\s", listing) and re.search(r"Ticket #102\s+2\s", listing)

    # 4. Re-apply is idempotent: no new conversations.
    dry_run = ok(cli(letta_server, "apply", "-f", str(fleet), "--dry-run"))
    assert "No changes. The server matches the fleet; 0 new conversations." in dry_run
    plan = json.loads(ok(cli(letta_server, "apply", "-f", str(fleet), "--dry-run", "-o", "json")))
    assert plan["summary"]["conversation"].get("create", 0) == 0

    # 5. Add "Ticket #103" and re-apply: only that one is created.
    fleet.write_text(fleet.read_text() + '      - summary: "Ticket #103"\n')
    added = ok(cli(letta_server, "apply", "-f", str(fleet)))
    assert "Plan: 0 to create, 0 to update, 0 to delete; 1 new conversation." in added
    assert "Apply complete: 0 created, 0 updated, 0 deleted; 1 new conversation." in added
    after = conversation_ids(letta_server, agent)
    assert set(after) == {"Ticket #101", "Ticket #102", "Ticket #103"}
    assert after["Ticket #101"] == ids["Ticket #101"] and after["Ticket #102"] == ids["Ticket #102"]
    assert texts(history(letta_server, agent, ids["Ticket #101"])) == [
        "I can't log in",
        fake_llm.reply_to("I can't log in"),
    ]


def test_reapply_after_a_system_prompt_change_keeps_every_conversation_and_its_messages(
    letta_server, client, fake_llm, seed_fleet, unique, cleanup
):
    agent = unique("support-agent")
    cleanup.append(agent)
    fleet = seed_fleet_for(seed_fleet, agent, fake_llm)
    ok(cli(letta_server, "apply", "-f", str(fleet)))
    ids = conversation_ids(letta_server, agent)
    ok(cli(letta_server, "send", agent, "Remember ticket 101", "--conversation-id", ids["Ticket #101"]))
    ok(
        cli(
            letta_server,
            "send",
            agent,
            "Legacy hello",
        )
    )

    fleet.write_text(fleet.read_text().replace("You are a customer support agent.", "You are a billing agent."))
    dry_run = ok(cli(letta_server, "apply", "-f", str(fleet), "--dry-run"))
    assert "(UPDATE) - 2 conversations" in dry_run
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    [live] = client.list_all("/v1/agents/", name=agent)
    assert live["system"].startswith("You are a billing agent.")
    assert conversation_ids(letta_server, agent) == ids
    assert texts(history(letta_server, agent, ids["Ticket #101"])) == [
        "Remember ticket 101",
        fake_llm.reply_to("Remember ticket 101"),
    ]
    assert texts(history(letta_server, agent)) == ["Legacy hello", fake_llm.reply_to("Legacy hello")]


def fleet_with_a_shared_block(fake: FakeLLM, owner: str, other: str, shared: str) -> str:
    agent = """
  - name: {name}
{model}    system_prompt:
      value: You are a test agent.
    shared_blocks: [{shared}]
    memory_blocks:
      - name: notes
        value: "notes of {name}"
      - name: customer_context
        value: ""
{conversations}"""
    conversations = '    conversations:\n      - summary: "Ticket #1"\n        isolated_blocks: [customer_context]\n'
    return (
        f"shared_blocks:\n  - name: {shared}\n    value: Be kind.\nagents:"
        + agent.format(name=owner, model=fake.fleet_yaml(), shared=shared, conversations=conversations)
        + agent.format(name=other, model=fake.fleet_yaml(), shared=shared, conversations="")
    )


def test_delete_agent_removes_its_own_blocks_and_conversation_copies_and_keeps_shared_ones(
    letta_server, client, fake_llm, write_fleet, unique, cleanup
):
    owner, other, shared = unique("doomed"), unique("survivor"), unique("policies")
    cleanup.extend([owner, other, shared])
    ok(cli(letta_server, "apply", "-f", str(write_fleet(fleet_with_a_shared_block(fake_llm, owner, other, shared)))))
    [doomed] = client.list_all("/v1/agents/", name=owner)
    own_blocks = {block["label"]: block["id"] for block in doomed["blocks"]}
    [conversation] = client.list_all("/v1/conversations/", agent_id=doomed["id"])
    [copy_id] = conversation["isolated_block_ids"]

    preview = cli(letta_server, "delete", "agent", owner)
    assert preview.exit_code == 1 and "--force" in preview.stderr
    assert client.get(f"/v1/agents/{doomed['id']}")["id"] == doomed["id"]  # nothing changed
    assert client.get(f"/v1/blocks/{copy_id}")["id"] == copy_id

    deleted = ok(cli(letta_server, "delete", "agent", owner, "--force"))
    assert f"Kept block {shared}" in deleted
    gone = [own_blocks["notes"], own_blocks["customer_context"], copy_id]
    for block_id in [*gone, doomed["id"]]:
        path = f"/v1/blocks/{block_id}" if block_id.startswith("block-") else f"/v1/agents/{block_id}"
        with pytest.raises(LettaAPIError) as missing:
            client.get(path)
        assert missing.value.status == 404
    [survivor] = client.list_all("/v1/agents/", name=other)
    assert {block["id"] for block in survivor["blocks"]} >= {own_blocks[shared]}
    assert client.get(f"/v1/blocks/{own_blocks[shared]}")["value"] == "Be kind."


def test_create_describe_and_delete_a_conversation_from_the_command_line(
    letta_server, client, fake_llm, seed_fleet, unique, cleanup
):
    agent = unique("support-agent")
    cleanup.append(agent)
    ok(cli(letta_server, "apply", "-f", str(seed_fleet_for(seed_fleet, agent, fake_llm))))

    created = ok(cli(letta_server, "create", "conversation", agent, "--summary", "VIP", "--isolated-block", "faq"))
    assert created.startswith(f"Conversation created for agent {agent}\nConversation ID: conv-")
    conversation_id = re.search(r"Conversation ID: (conv-\S+)", created).group(1)
    refused = cli(letta_server, "create", "conversation", agent, "--isolated-block", "nope")
    assert refused.exit_code == 1 and "no block labelled 'nope'" in refused.stderr
    assert len(conversation_ids(letta_server, agent)) == 3  # the refused one was never asked for

    ok(cli(letta_server, "send", agent, "Hi", "--conversation-id", conversation_id))
    described = json.loads(ok(cli(letta_server, "describe", "conversation", conversation_id, "-o", "json")))
    assert described["agent_name"] == agent and described["summary"] == "VIP" and described["message_count"] == 2
    [copy] = described["isolated_blocks"]
    assert copy["label"] == "faq" and copy["value"].startswith("# FAQ")

    compacted = cli(letta_server, "compact-messages", agent, "--conversation-id", conversation_id, "--mode", "all")
    assert compacted.exit_code == 0, compacted.output + compacted.stderr
    assert f"Compacted conversation {conversation_id}" in compacted.stdout
    assert fake_llm.chat_requests()[-1].tool_names == []  # the summary was asked of the agent's own model

    assert cli(letta_server, "delete", "conversation", conversation_id).exit_code == 1
    ok(cli(letta_server, "delete", "conversation", conversation_id, "--force"))
    assert "VIP" not in conversation_ids(letta_server, agent)
    with pytest.raises(LettaAPIError):
        client.get(f"/v1/blocks/{copy['id']}")
