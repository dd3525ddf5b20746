"""Conversations are isolated: messages never cross between conversations and the legacy history, and an
isolated block copy changes on its own. Checked on a real Letta server, and for messages in what its model
was sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli, ok

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM, RecordedRequest

# The stand-in LLM provider's session fixture, `fake_llm`.
pytest_plugins = ["tests.fakes.llm_server"]

ORIGINAL_CONTEXT = "No customer yet."


@dataclass(frozen=True)
class Deployed:
    """One applied agent: conversations A and B each with their own copy of customer_context, C without."""

    base_url: str
    agent: str
    agent_id: str
    conversations: dict[str, dict]

    def history(self, summary: str | None = None) -> list[str]:
        """Every user and assistant text of a conversation, or of the legacy history (summary None)."""
        args = ["get", "messages", self.agent, "--all", "-o", "json"]
        if summary:
            args += ["--conversation-id", self.conversations[summary]["id"]]
        messages = json.loads(ok(cli(self.base_url, *args)))
        return [m["content"] for m in messages if m["message_type"] in ("user_message", "assistant_message")]

    def send(self, text: str, summary: str | None = None) -> str:
        args = ["send", self.agent, text]
        if summary:
            args += ["--conversation-id", self.conversations[summary]["id"]]
        return ok(cli(self.base_url, *args))


@pytest.fixture(scope="module")
def deployed(letta_server: str, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    agent = f"isolation-{uuid.uuid4().hex[:8]}"
    fleet = Path(tmp_path_factory.mktemp("isolation")) / "fleet.yaml"
    fleet.write_text(
        f"agents:\n  - name: {agent}\n{fake_llm.fleet_yaml()}"
        "    system_prompt:\n      value: You help customers.\n"
        f'    memory_blocks:\n      - name: customer_context\n        value: "{ORIGINAL_CONTEXT}"\n'
        "    conversations:\n"
        "      - summary: A\n        isolated_blocks: [customer_context]\n"
        "      - summary: B\n        isolated_blocks: [customer_context]\n"
        "      - summary: C\n"
    )
    ok(cli(letta_server, "apply", "-f", str(fleet)))
    with LettaClient(letta_server) as client:
        [live] = client.list_all("/v1/agents/", name=agent)
        conversations = {c["summary"]: c for c in client.list_all("/v1/conversations/", agent_id=live["id"])}
    try:
        yield Deployed(letta_server, agent, live["id"], conversations)
    finally:
        cli(letta_server, "delete", "agent", live["id"], "--force")


def request_for(fake: FakeLLM, text: str) -> RecordedRequest:
    """The model request Letta made to answer `text`."""
    [request] = [r for r in fake.chat_requests() if r.last_user_text == text]
    return request


def everything_sent(request: RecordedRequest) -> str:
    return json.dumps(request.body["messages"])


def test_a_conversation_message_is_absent_from_the_other_conversations_and_the_legacy_history(deployed, fake_llm):
    secret = f"I am user A {uuid.uuid4().hex[:6]}"
    assert deployed.send(secret, "A").strip() == fake_llm.reply_to(secret)
    assert secret in deployed.history("A")
    for other in ("B", "C", None):
        assert not any(secret in text for text in deployed.history(other))

    probe = f"Who was here before? {uuid.uuid4().hex[:6]}"
    deployed.send(probe, "B")
    assert secret not in everything_sent(request_for(fake_llm, probe))  # B's model never saw A's message


def test_a_legacy_message_is_absent_from_every_conversation(deployed, fake_llm):
    secret = f"legacy only {uuid.uuid4().hex[:6]}"
    deployed.send(secret)
    assert secret in deployed.history()
    for summary in ("A", "B", "C"):
        assert not any(secret in text for text in deployed.history(summary))

    probe = f"Anything before me? {uuid.uuid4().hex[:6]}"
    deployed.send(probe, "C")
    assert secret not in everything_sent(request_for(fake_llm, probe))


def test_an_isolated_copy_changes_without_touching_the_agent_block_or_another_conversation(deployed, letta_server):
    # Only the stored blocks are compared: Letta 0.16.8 compiles a conversation's system prompt when the
    # conversation is created and rebuilds it only after compaction or the agent's own memory edits, so the
    # model does not see an outside PATCH (and /recompile would compile the agent's blocks, not the copies).
    with LettaClient(letta_server) as client:
        [copy_a] = deployed.conversations["A"]["isolated_block_ids"]
        [copy_b] = deployed.conversations["B"]["isolated_block_ids"]
        [agent_block] = client.get(f"/v1/agents/{deployed.agent_id}/core-memory/blocks")
        changed = f"Customer A: Ada, plan {uuid.uuid4().hex[:6]}"
        client.patch(f"/v1/blocks/{copy_a}", json={"value": changed})

        assert client.get(f"/v1/blocks/{copy_a}")["value"] == changed
        assert client.get(f"/v1/blocks/{copy_b}")["value"] == ORIGINAL_CONTEXT
        assert client.get(f"/v1/blocks/{agent_block['id']}")["value"] == ORIGINAL_CONTEXT
        described = json.loads(
            ok(cli(letta_server, "describe", "conversation", deployed.conversations["A"]["id"], "-o", "json"))
        )
        assert described["isolated_blocks"] == [{"label": "customer_context", "id": copy_a, "value": changed}]
