"""`moved:` entries against the real dev server: a rename keeps the resource, its id and everything in it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli, ok

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]


@pytest.fixture
def names(letta_server: str, client: LettaClient) -> Iterator[Callable[[str], str]]:
    """Unique agent names; every agent of such a name is deleted afterwards, with what it owns."""
    suffix, made = uuid.uuid4().hex[:8], []

    def name(base: str) -> str:
        made.append(f"{base}-{suffix}")
        return made[-1]

    yield name
    for agent_name in made:
        for agent in client.list_all("/v1/agents/", name=agent_name):
            cli(letta_server, "delete", "agent", agent["id"], "--force")


def fleet_text(fake: FakeLLM, agent: str, conversation: str, block: str = "notes", moved: str = "") -> str:
    return (
        f"agents:\n  - name: {agent}\n{fake.fleet_yaml()}    system_prompt:\n      value: You are a test agent.\n"
        f"    memory_blocks:\n      - name: {block}\n        value: seeded\n"
        f'    conversations:\n      - summary: "{conversation}"\n' + (f"moved:\n{moved}" if moved else "")
    )


def moved(source: str, target: str) -> str:
    return f"  - from: '{source}'\n    to: '{target}'\n"


def plan_json(base_url: str, fleet: Path) -> dict[str, Any]:
    return json.loads(ok(cli(base_url, "plan", "-f", str(fleet), "-o", "json")))


def messages_of(client: LettaClient, conversation_id: str) -> list[str]:
    listed = client.get(f"/v1/conversations/{conversation_id}/messages")
    return [m["content"] for m in listed if m["message_type"] in ("user_message", "assistant_message")]


def one_agent(client: LettaClient, name: str) -> dict[str, Any]:
    [agent] = client.list_all("/v1/agents/", name=name)
    return agent


def test_a_conversation_renamed_with_moved_keeps_its_id_and_messages(
    letta_server, client, fake_llm, write_fleet, names
):
    agent = names("moving")
    ok(cli(letta_server, "apply", "-f", str(write_fleet(fleet_text(fake_llm, agent, "Ticket 1")))))
    agent_id = one_agent(client, agent)["id"]
    [before] = client.list_all("/v1/conversations/", agent_id=agent_id)
    ok(cli(letta_server, "send", agent, "Remember ticket one", "--conversation-id", before["id"]))
    talked = messages_of(client, before["id"])
    assert sorted(talked) == sorted(["Remember ticket one", fake_llm.reply_to("Remember ticket one")])

    old = f'agent.{agent}.conversation["Ticket 1"]'
    new = f'agent.{agent}.conversation["Ticket 1 (billing)"]'
    fleet = write_fleet(fleet_text(fake_llm, agent, "Ticket 1 (billing)", moved=moved(old, new)))
    plan = plan_json(letta_server, fleet)
    [change] = [c for c in plan["changes"] if c["action"] != "no-op"]
    assert (change["address"], change["action"]) == (new, "update")
    assert (change["before"]["summary"], change["after"]["summary"]) == ("Ticket 1", "Ticket 1 (billing)")
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    [after] = client.list_all("/v1/conversations/", agent_id=agent_id)
    assert (after["id"], after["summary"]) == (before["id"], "Ticket 1 (billing)")
    assert messages_of(client, after["id"]) == talked
    assert "No changes" in ok(cli(letta_server, "plan", "-f", str(fleet)))


def test_an_agent_renamed_with_moved_keeps_its_id_blocks_and_conversations(
    letta_server, client, fake_llm, write_fleet, names
):
    old, new = names("before"), names("after")
    ok(cli(letta_server, "apply", "-f", str(write_fleet(fleet_text(fake_llm, old, "Ticket 1")))))
    made = one_agent(client, old)
    [conversation] = client.list_all("/v1/conversations/", agent_id=made["id"])
    ok(cli(letta_server, "send", old, "Hello before the rename", "--conversation-id", conversation["id"]))

    fleet = write_fleet(fleet_text(fake_llm, new, "Ticket 1", moved=moved(f"agent.{old}", f"agent.{new}")))
    text = ok(cli(letta_server, "plan", "-f", str(fleet)))
    assert "Plan: 0 to create, 1 to update, 0 to delete; 0 new conversations." in text
    assert f"- {old}" in text and f"+ {new}" in text
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    renamed = one_agent(client, new)
    assert renamed["id"] == made["id"] and not client.list_all("/v1/agents/", name=old)
    assert {b["label"]: b["id"] for b in renamed["blocks"]} == {b["label"]: b["id"] for b in made["blocks"]}
    assert [c["id"] for c in client.list_all("/v1/conversations/", agent_id=made["id"])] == [conversation["id"]]
    assert "Hello before the rename" in messages_of(client, conversation["id"])
    assert "No changes" in ok(cli(letta_server, "plan", "-f", str(fleet)))


def test_a_block_label_renamed_with_moved_keeps_the_block_and_what_the_agent_wrote(
    letta_server, client, fake_llm, write_fleet, names
):
    agent = names("relabel")
    ok(cli(letta_server, "apply", "-f", str(write_fleet(fleet_text(fake_llm, agent, "Ticket 1")))))
    [block] = [b for b in one_agent(client, agent)["blocks"] if b["label"] == "notes"]
    client.patch(f"/v1/blocks/{block['id']}", json={"value": "written by the agent"})

    fleet = write_fleet(
        fleet_text(
            fake_llm,
            agent,
            "Ticket 1",
            block="journal",
            moved=moved(f"agent.{agent}.block.notes", f"agent.{agent}.block.journal"),
        )
    )
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    [relabelled] = [b for b in one_agent(client, agent)["blocks"] if b["id"] == block["id"]]
    assert (relabelled["label"], relabelled["value"]) == ("journal", "written by the agent")
    assert "No changes" in ok(cli(letta_server, "plan", "-f", str(fleet)))


def test_a_rename_without_moved_plans_a_delete_and_a_create_that_say_how_to_keep_the_history(
    letta_server, client, fake_llm, write_fleet, names
):
    agent = names("unmoved")
    ok(cli(letta_server, "apply", "-f", str(write_fleet(fleet_text(fake_llm, agent, "Ticket 1")))))

    plan = plan_json(letta_server, write_fleet(fleet_text(fake_llm, agent, "Ticket 2")))
    old = f'agent.{agent}.conversation["Ticket 1"]'
    new = f'agent.{agent}.conversation["Ticket 2"]'
    by_address = {c["address"]: c for c in plan["changes"]}
    assert (by_address[old]["action"], by_address[new]["action"]) == ("delete", "create")
    entry = f"moved: [{{from: '{old}', to: '{new}'}}]"
    assert entry in by_address[old]["detail"] and entry in by_address[new]["detail"]


def test_a_moved_entry_spelled_with_quotes_around_a_plain_name_renames_it_in_place(
    letta_server, client, fake_llm, write_fleet, names
):
    agent = names("spelled")
    ok(cli(letta_server, "apply", "-f", str(write_fleet(fleet_text(fake_llm, agent, "Main")))))
    [before] = client.list_all("/v1/conversations/", agent_id=one_agent(client, agent)["id"])

    # `conversation["Main"]` is how a plan would print `conversation.Main`, had "Main" not been a plain word.
    entry = moved(f'agent.{agent}.conversation["Main"]', f'agent.{agent}.conversation["Main (billing)"]')
    fleet = write_fleet(fleet_text(fake_llm, agent, "Main (billing)", moved=entry))
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    [after] = client.list_all("/v1/conversations/", agent_id=one_agent(client, agent)["id"])
    assert (after["id"], after["summary"]) == (before["id"], "Main (billing)")


def test_a_moved_entry_whose_addresses_match_nothing_on_the_server_is_an_error_at_its_line(
    letta_server, client, fake_llm, write_fleet, names
):
    agent = names("typo")
    ok(cli(letta_server, "apply", "-f", str(write_fleet(fleet_text(fake_llm, agent, "Ticket 1")))))
    [before] = client.list_all("/v1/conversations/", agent_id=one_agent(client, agent)["id"])

    entry = moved(f'agent.{agent}.conversation["Ticket one"]', f'agent.{agent}.conversation["Ticket 2"]')
    fleet = write_fleet(fleet_text(fake_llm, agent, "Ticket 2", moved=entry))
    for command in ("plan", "apply"):
        refused = cli(letta_server, command, "-f", str(fleet))
        assert refused.exit_code == 1
        line = len(fleet_text(fake_llm, agent, "Ticket 2").splitlines()) + 2
        assert f"{fleet}:{line}:" in refused.stderr and "matches nothing on" in refused.stderr, refused.stderr
        assert "nothing was changed" in refused.stderr

    assert [c["id"] for c in client.list_all("/v1/conversations/", agent_id=one_agent(client, agent)["id"])] == [
        before["id"]
    ]


def test_an_agent_renamed_with_moved_keeps_every_attachment_and_plans_none_anew(
    letta_server, client, fake_llm, tmp_path, names
):
    old, new = names("attached"), names("reattached")
    suffix = old.rsplit("-", 1)[-1]
    shared, archive, folder = f"rules_{suffix}", f"notes-{suffix}", f"docs-{suffix}"
    (tmp_path / "handbook.md").write_text("Be kind.\n")

    def fleet(agent: str, entry: str = "") -> Path:
        path = tmp_path / "fleet.yaml"
        path.write_text(
            f"shared_blocks:\n  - {{name: {shared}, value: be kind}}\nagents:\n  - name: {agent}\n"
            f"{fake_llm.fleet_yaml()}    system_prompt: {{value: You help.}}\n    shared_blocks: [{shared}]\n"
            f"    tools: [send_message]\n    archives: [{{name: {archive}, description: Meeting notes}}]\n"
            f"    folders:\n      - name: {folder}\n        files: [handbook.md]\n"
            + (f"moved:\n{entry}" if entry else "")
        )
        return path

    try:
        ok(cli(letta_server, "apply", "-f", str(fleet(old))))
        renamed = fleet(new, moved(f"agent.{old}", f"agent.{new}"))
        plan = plan_json(letta_server, renamed)
        assert {c["address"]: c["action"] for c in plan["changes"] if c["action"] != "no-op"} == {
            f"agent.{new}": "update"
        }
        ok(cli(letta_server, "apply", "-f", str(renamed)))
        assert "No changes" in ok(cli(letta_server, "plan", "-f", str(renamed)))
    finally:
        for block in client.list_all("/v1/blocks/", label=shared):
            client.delete(f"/v1/blocks/{block['id']}")
        for found in client.list_all("/v1/archives/", name=archive):
            client.delete(f"/v1/archives/{found['id']}")
        for found in client.list_all("/v1/folders/", name=folder):
            client.delete(f"/v1/folders/{found['id']}")
