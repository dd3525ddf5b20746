"""Removing conversations from a fleet file, against the real dev server: an empty one is deleted by default, one
with messages waits for `--prune`, a conversation made at runtime survives every apply, and a removed isolated
label gives an empty conversation a new start without the copy."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lettafleet.core import LettaAPIError
from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli, ok

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]

FLEET = """\
agents:
  - name: {agent}
    system_prompt: {{value: You answer tickets.}}
{model}    memory_blocks:
      - {{name: customer, value: unknown}}
    conversations:
{conversations}"""


@pytest.fixture
def agent(letta_server: str, client: LettaClient) -> Iterator[str]:
    """A unique agent name; the agent, its conversations and blocks are deleted afterwards."""
    name = f"removal-{uuid.uuid4().hex[:8]}"
    yield name
    for found in client.list_all("/v1/agents/", name=name):
        cli(letta_server, "delete", "agent", found["id"], "--force")


@pytest.fixture
def write_fleet(tmp_path: Path, agent: str, fake_llm: FakeLLM) -> Callable[..., Path]:
    """The fleet file declaring `conversations` (lines under `conversations:`) for the test's agent."""

    def write(*conversations: str) -> Path:
        lines = "".join(f"      - {line}\n" for line in conversations) or "      []\n"
        text = FLEET.format(agent=agent, model=fake_llm.fleet_yaml(), conversations=lines)
        if not conversations:
            text = text.replace("    conversations:\n      []\n", "")
        path = tmp_path / "fleet.yaml"
        path.write_text(text)
        return path

    return write


def conversations_of(client: LettaClient, agent: str) -> dict[str, list[str]]:
    """Summary -> ids of the agent's conversations on the server, oldest first."""
    [found] = client.list_all("/v1/agents/", name=agent)
    listed: dict[str, list[str]] = {}
    for conversation in client.list_all("/v1/conversations/", agent_id=found["id"], order="asc"):
        listed.setdefault(conversation["summary"], []).append(conversation["id"])
    return listed


def planned(base_url: str, fleet: Path, *options: str) -> dict[str, dict]:
    result = cli(base_url, "plan", "-f", str(fleet), "-o", "json", *options)
    assert result.exit_code in (0, 2), result.output + result.stderr
    return {change["address"]: change for change in json.loads(result.stdout)["changes"]}


def gone(client: LettaClient, conversation_id: str) -> bool:
    try:
        client.get(f"/v1/conversations/{conversation_id}")
    except LettaAPIError as error:
        return error.status == 404
    return False


def test_removed_conversations_go_empty_at_once_talked_in_on_prune_and_runtime_ones_stay(
    letta_server, client, agent, write_fleet
):
    fleet = write_fleet('summary: "Ticket A"', '{summary: "Ticket B", isolated_blocks: [customer]}')
    ok(cli(letta_server, "apply", "-f", str(fleet)))
    made = conversations_of(client, agent)
    [ticket_a], [ticket_b] = made["Ticket A"], made["Ticket B"]
    ok(cli(letta_server, "send", agent, "My order is late", "--conversation-id", ticket_a))
    # Made at runtime, with the summary of a declared conversation that the file is about to remove.
    runtime = ok(cli(letta_server, "create", "conversation", agent, "--summary", "Ticket B", "-o", "json"))
    runtime_id = json.loads(runtime)["id"]

    fleet = write_fleet()
    plan = planned(letta_server, fleet)
    a, b = plan[f'agent.{agent}.conversation["Ticket A"]'], plan[f'agent.{agent}.conversation["Ticket B"]']
    assert (a["action"], a.get("held"), a["detail"]) == ("delete", "prune", "it holds 2 messages")
    assert (b["action"], b.get("held")) == ("delete", None)
    assert b["detail"] == "it has no messages; its 1 isolated copy goes with it"
    assert not any(runtime_id in json.dumps(change) for change in plan.values())

    applied = ok(cli(letta_server, "apply", "-f", str(fleet)))
    assert "--prune" in applied
    assert gone(client, ticket_b) and not gone(client, ticket_a) and not gone(client, runtime_id)

    ok(cli(letta_server, "apply", "-f", str(fleet), "--prune"))
    assert gone(client, ticket_a) and not gone(client, runtime_id)
    assert conversations_of(client, agent) == {"Ticket B": [runtime_id]}
    again = ok(cli(letta_server, "plan", "-f", str(fleet), "--prune"))
    assert again.splitlines()[1].startswith("No changes."), again


def test_a_protected_conversation_stays_even_with_prune(letta_server, client, agent, write_fleet):
    ok(cli(letta_server, "apply", "-f", str(write_fleet('{summary: "Keep", protect: true}'))))
    [kept] = conversations_of(client, agent)["Keep"]

    result = cli(letta_server, "apply", "-f", str(write_fleet()), "--prune")

    assert "protect" in result.output + result.stderr
    assert not gone(client, kept)


def test_a_removed_isolated_label_recreates_an_empty_conversation_without_the_copy(
    letta_server, client, agent, write_fleet
):
    ok(cli(letta_server, "apply", "-f", str(write_fleet('{summary: "T", isolated_blocks: [customer]}'))))
    [old] = conversations_of(client, agent)["T"]
    [copy] = client.get(f"/v1/conversations/{old}")["isolated_block_ids"]

    fleet = write_fleet('summary: "T"')
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    [new] = conversations_of(client, agent)["T"]
    assert new != old and client.get(f"/v1/conversations/{new}")["isolated_block_ids"] == []
    with pytest.raises(LettaAPIError) as raised:
        client.get(f"/v1/blocks/{copy}")
    assert raised.value.status == 404
    assert ok(cli(letta_server, "plan", "-f", str(fleet))).splitlines()[1].startswith("No changes.")


def test_an_export_with_conversations_reapplies_with_no_changes(letta_server, client, agent, write_fleet, tmp_path):
    ok(cli(letta_server, "apply", "-f", str(write_fleet('{summary: "T", isolated_blocks: [customer]}', "summary: U"))))
    ok(cli(letta_server, "create", "conversation", agent, "--summary", "Made at runtime"))
    out = tmp_path / "export" / "fleet.yaml"

    ok(cli(letta_server, "export", agent, "--conversations", "--out", str(out)))

    text = out.read_text()
    assert "Made at runtime" in text and re.search(r"isolated_blocks:\s+- customer", text)
    assert ok(cli(letta_server, "plan", "-f", str(out))).splitlines()[1].startswith("No changes.")
    assert ok(cli(letta_server, "apply", "-f", str(out))).splitlines()[1].startswith("No changes.")
