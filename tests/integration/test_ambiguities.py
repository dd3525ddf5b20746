"""Duplicates are never hidden, and a conversation left without its isolated copy is repaired when nothing is
lost: checked on a real Letta server, with the duplicate states made by hand through its HTTP API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import Result

from lettafleet.core import LettaAPIError
from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli, ok

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM

# The stand-in LLM provider's session fixture, `fake_llm`: one test needs a conversation with messages.
pytest_plugins = ["tests.fakes.llm_server"]

FREE_MODEL = "    llm_config: {model: letta/letta-free, context_window: 32000}\n    embedding: letta/letta-free\n"


@pytest.fixture
def agent_name(letta_server: str, client: LettaClient) -> Iterator[str]:
    """A unique agent name; every agent of that name is deleted afterwards, with the blocks only it used."""
    name = f"ambiguous-{uuid.uuid4().hex[:8]}"
    yield name
    for agent in client.list_all("/v1/agents/", name=name):
        cli(letta_server, "delete", "agent", agent["id"], "--force")


@pytest.fixture
def write_fleet(tmp_path: Path, agent_name: str) -> Callable[..., Path]:
    def write(*, isolated: bool = True, model: str = FREE_MODEL, extra: str = "") -> Path:
        path = tmp_path / "fleet.yaml"
        path.write_text(
            f"agents:\n  - name: {agent_name}\n{model}"
            "    system_prompt:\n      value: You help.\n"
            '    memory_blocks:\n      - name: ctx\n        value: "No customer yet."\n'
            "    conversations:\n      - summary: T\n"
            + ("        isolated_blocks: [ctx]\n" if isolated else "")
            + extra
        )
        return path

    return write


def plan_outputs(base_url: str, fleet: Path) -> tuple[Result, dict, str]:
    """The text plan (with --detailed-exitcode), the JSON plan and the Markdown plan."""
    text = cli(base_url, "plan", "-f", str(fleet), "--detailed-exitcode")
    document = json.loads(ok(cli(base_url, "plan", "-f", str(fleet), "-o", "json")))
    markdown = ok(cli(base_url, "plan", "-f", str(fleet), "-o", "markdown"))
    return text, document, markdown


def made_by_hand(client: LettaClient, name: str) -> dict:
    return client.post("/v1/agents/", json={"name": name, "model": "letta/letta-free", "embedding": "letta/letta-free"})


def test_a_second_agent_of_the_fleet_name_is_reported_with_both_ids_and_the_remedy(
    letta_server, client, agent_name, write_fleet
):
    fleet = write_fleet()
    ok(cli(letta_server, "apply", "-f", str(fleet)))
    [managed] = client.list_all("/v1/agents/", name=agent_name)
    by_hand = made_by_hand(client, agent_name)

    text, document, markdown = plan_outputs(letta_server, fleet)

    assert text.exit_code == 2, text.output
    assert "No changes" not in text.output
    assert f"agent.{agent_name} (AMBIGUOUS): 2 agents are named '{agent_name}'" in text.output
    assert f"the plan uses lettafleet's own first, then the oldest, {managed['id']}" in text.output
    assert f"leaves {by_hand['id']} alone" in text.output
    assert "To fix: delete the agents that should not be there (`lettafleet delete agent ID --force`)" in text.output
    [found] = document["ambiguities"]
    assert document["has_ambiguities"] is True and document["has_changes"] is False
    assert found["address"] == f"agent.{agent_name}"
    assert found["ids"] == [managed["id"], by_hand["id"]] and found["used"] == managed["id"]
    assert "lettafleet delete agent" in found["remedy"]
    warning = markdown.split("<details>")[0]  # above the fold
    assert "[!WARNING]" in warning and managed["id"] in warning and by_hand["id"] in warning

    client.delete(f"/v1/agents/{by_hand['id']}")
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


def test_two_conversations_of_one_summary_are_reported_and_the_oldest_is_used(
    letta_server, client, agent_name, write_fleet
):
    fleet = write_fleet(isolated=False)
    ok(cli(letta_server, "apply", "-f", str(fleet)))
    [agent] = client.list_all("/v1/agents/", name=agent_name)
    [declared] = client.list_all("/v1/conversations/", agent_id=agent["id"])
    second = client.post("/v1/conversations/", json={"summary": "T"}, agent_id=agent["id"])

    text, document, markdown = plan_outputs(letta_server, fleet)

    assert text.exit_code == 2, text.output
    assert "2 conversations of the agent have the summary 'T'" in text.output
    assert f"the one the last apply made, {declared['id']}, and leaves {second['id']} alone" in text.output
    assert "`lettafleet delete conversation ID --force`" in text.output
    [found] = document["ambiguities"]
    assert found["address"] == f"agent.{agent_name}.conversation.T"
    assert found["ids"] == [declared["id"], second["id"]]
    assert second["id"] in markdown.split("<details>")[0]


def test_a_private_block_another_agent_holds_is_reported_with_the_block_and_both_agents(
    letta_server, client, agent_name, write_fleet
):
    fleet = write_fleet(isolated=False)
    ok(cli(letta_server, "apply", "-f", str(fleet)))
    [agent] = client.list_all("/v1/agents/", name=agent_name)
    [block] = agent["blocks"]
    other = made_by_hand(client, f"{agent_name}-other")
    try:
        client.patch(f"/v1/agents/{other['id']}/core-memory/blocks/attach/{block['id']}")

        text, document, markdown = plan_outputs(letta_server, fleet)

        assert text.exit_code == 2, text.output
        assert f"block {block['id']} ('ctx') is private to its agent in the fleet, yet 2 agents hold it" in text.output
        assert f"{agent_name}-other ({other['id']})" in text.output
        assert f"core-memory/blocks/detach/{block['id']}" in text.output
        [found] = document["ambiguities"]
        assert found["address"] == f"agent.{agent_name}.block.ctx"
        assert set(found["ids"]) == {block["id"], agent["id"], other["id"]}
        assert other["id"] in markdown.split("<details>")[0]
    finally:
        client.delete(f"/v1/agents/{other['id']}")


def test_two_shared_blocks_of_one_label_are_reported(letta_server, client, agent_name, write_fleet):
    label = f"policies_{uuid.uuid4().hex[:8]}"
    fleet = write_fleet(isolated=False, extra=f"shared_blocks:\n  - name: {label}\n    value: Be kind.\n")
    fleet.write_text(
        fleet.read_text().replace("    conversations:", f"    shared_blocks: [{label}]\n    conversations:")
    )
    try:
        ok(cli(letta_server, "apply", "-f", str(fleet)))
        [first] = client.list_all("/v1/blocks/", label=label)
        metadata = {"managed_by": "lettafleet", "shared": True}
        copy = client.post("/v1/blocks/", json={"label": label, "value": "Be kind.", "metadata": metadata})

        text, document, _ = plan_outputs(letta_server, fleet)

        assert text.exit_code == 2, text.output
        assert f"2 blocks are lettafleet's shared block '{label}'" in text.output
        assert f"{first['id']}, and leaves {copy['id']} alone" in text.output
        assert [found["address"] for found in document["ambiguities"]] == [f"shared_block.{label}"]
    finally:
        for agent in client.list_all("/v1/agents/", name=agent_name):
            client.delete(f"/v1/agents/{agent['id']}")
        for block in client.list_all("/v1/blocks/", label=label):
            client.delete(f"/v1/blocks/{block['id']}")


def test_a_conversation_without_its_isolated_copy_and_no_messages_is_replaced_and_converges(
    letta_server, client, agent_name, write_fleet
):
    # As after a server killed mid-apply: the conversation exists, made without its isolated label.
    ok(cli(letta_server, "apply", "-f", str(write_fleet(isolated=False))))
    [agent] = client.list_all("/v1/agents/", name=agent_name)
    [old] = client.list_all("/v1/conversations/", agent_id=agent["id"])
    assert old["isolated_block_ids"] == []
    fleet = write_fleet(isolated=True)

    text, document, markdown = plan_outputs(letta_server, fleet)

    assert text.exit_code == 2, text.output
    assert (
        "-/+ conversation T: replace (delete and create): it lacks its isolated copy of ctx and has no messages yet"
        in text.output
    )
    assert "+ isolated block ctx of conversation.T" in text.output
    actions = {change["address"].split(".", 2)[-1]: change["action"] for change in document["changes"]}
    assert actions["conversation.T"] == "replace" and actions["conversation.T.isolated_block.ctx"] == "create"
    assert "will be deleted and created again" in markdown.split("<details>")[0]

    applied = ok(cli(letta_server, "apply", "-f", str(fleet)))
    assert "0 new conversations, 1 replaced" in applied
    [new] = client.list_all("/v1/conversations/", agent_id=agent["id"])
    assert new["id"] != old["id"] and new["summary"] == "T"
    [copy_id] = new["isolated_block_ids"]
    assert client.get(f"/v1/blocks/{copy_id}")["label"] == "ctx"
    with pytest.raises(LettaAPIError):
        client.get(f"/v1/conversations/{old['id']}")
    again = cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes" in again.output, again.output


def test_a_conversation_without_its_isolated_copy_but_with_messages_is_drift_and_never_deleted(
    letta_server, client, agent_name, write_fleet, fake_llm: FakeLLM
):
    ok(cli(letta_server, "apply", "-f", str(write_fleet(isolated=False, model=fake_llm.fleet_yaml()))))
    [agent] = client.list_all("/v1/agents/", name=agent_name)
    [talked] = client.list_all("/v1/conversations/", agent_id=agent["id"])
    ok(cli(letta_server, "send", agent_name, "hello", "--conversation-id", talked["id"]))
    fleet = write_fleet(isolated=True, model=fake_llm.fleet_yaml())

    text, document, _ = plan_outputs(letta_server, fleet)

    assert text.exit_code == 2, text.output
    assert "-/+" not in text.output and "replace (delete and create)" not in text.output
    assert f"`lettafleet delete conversation {talked['id']} --force`, then apply again" in text.output
    [drift] = [change for change in document["changes"] if change.get("drift")]
    assert drift["action"] == "no-op" and "has messages" in drift["drift"]

    manager = get_plugin_manager()
    with LettaClient(letta_server) as counting:
        plan = plan_fleet(load_fleet(fleet, manager), counting, manager)
        assert apply_plan(plan, counting, manager).results == ()
    assert counting.stats.writes == 0
    [still] = client.list_all("/v1/conversations/", agent_id=agent["id"])
    assert still["id"] == talked["id"]
    messages = client.get(f"/v1/conversations/{talked['id']}/messages", order="asc")
    assert any(message["message_type"] == "user_message" for message in messages)
