"""Import against the real Letta server: an agent made by hand with the HTTP API (two memory blocks) is adopted
into a fleet file that declares another agent; the next plan shows "No changes" (exit 0 with
--detailed-exitcode), the agent and its blocks keep their ids, and the file keeps its comment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique names; the agents and blocks carrying them are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {"hand": f"adopt-hand-{suffix}", "declared": f"adopt-declared-{suffix}", "notes": f"notes_{suffix}"}
    yield chosen
    for name in (chosen["hand"], chosen["declared"]):
        for agent in client.list_all("/v1/agents/", name=name):
            for block in agent.get("blocks") or []:
                client.delete(f"/v1/blocks/{block['id']}")
            client.delete(f"/v1/agents/{agent['id']}")


def cli(letta_server: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": letta_server}, catch_exceptions=False)


def test_an_agent_made_by_hand_is_adopted_without_being_re_created(
    letta_server: str, client: LettaClient, names: dict[str, str], tmp_path: Path
) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(
        f"""# Our fleet. This comment stays.
agents:
  - name: {names["declared"]}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
"""
    )
    assert cli(letta_server, "apply", "-f", str(fleet_file)).exit_code == 0
    made = client.post(
        "/v1/agents/",
        json={
            "name": names["hand"],
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "metadata": {"team": "ops"},
            "memory_blocks": [
                {"label": "persona", "value": "I am Sam."},
                {"label": names["notes"], "value": "Opening hours 9 to 5."},
            ],
        },
    )
    block_ids = sorted(block["id"] for block in made["blocks"])

    imported = cli(letta_server, "import", names["hand"], "-f", str(fleet_file))
    assert imported.exit_code == 0, imported.output
    planned = cli(letta_server, "plan", "-f", str(fleet_file), "--detailed-exitcode")

    assert planned.exit_code == 0, planned.output
    assert "No changes" in planned.output
    [agent] = client.list_all("/v1/agents/", name=names["hand"], include=["agent.blocks"])
    assert agent["id"] == made["id"]
    assert sorted(block["id"] for block in agent["blocks"]) == block_ids
    record = agent["metadata"].pop("lettafleet_applied")
    assert agent["metadata"] == {"team": "ops", "managed_by": "lettafleet"}
    blocks = [entry for entry in record if entry["kind"] == "block"]  # beside the tools the import declared
    assert blocks == sorted(
        ({"address": f"block.{block['label']}", "kind": "block", "id": block["id"]} for block in agent["blocks"]),
        key=lambda entry: entry["address"],
    )
    assert {block["metadata"].get("agent") for block in agent["blocks"]} == {names["hand"]}
    assert fleet_file.read_text().startswith("# Our fleet. This comment stays.\nagents:\n")


def test_an_agent_imported_into_a_named_fleet_is_that_fleets_and_its_removal_is_planned(
    letta_server: str, client: LettaClient, names: dict[str, str], tmp_path: Path
) -> None:
    fleet_name = f"adopters-{names['hand']}"
    fleet_file = tmp_path / "fleet.yaml"
    declared = f"""fleet: {fleet_name}
agents:
  - name: {names["declared"]}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
"""
    fleet_file.write_text(declared)
    assert cli(letta_server, "apply", "-f", str(fleet_file)).exit_code == 0
    made = client.post(
        "/v1/agents/",
        json={"name": names["hand"], "model": "letta/letta-free", "embedding": "letta/letta-free", "system": "Hi."},
    )

    assert cli(letta_server, "import", names["hand"], "-f", str(fleet_file)).exit_code == 0
    planned = cli(letta_server, "plan", "-f", str(fleet_file), "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    [agent] = client.list_all("/v1/agents/", name=names["hand"])
    assert agent["metadata"]["fleet"] == fleet_name
    assert {entry["kind"] for entry in agent["metadata"]["lettafleet_applied"]} == {"tool_attachment"}

    fleet_file.write_text(declared)  # the imported agent's entry taken out again
    removal = cli(letta_server, "plan", "-f", str(fleet_file))

    assert f"[-] {names['hand']} (DELETE, held: needs --prune)" in removal.output
    assert [agent["id"] for agent in client.list_all("/v1/agents/", name=names["hand"])] == [made["id"]]
