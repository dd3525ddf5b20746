"""Removing blocks from a fleet file, on the real dev server: each line removed plans its removal (`-` in text,
`delete` in JSON), applies it (with `--prune` where it deletes memory), and a second plan says "No changes"; a block
attached by hand stays; `protect: true` refuses a removal even with `--prune`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.core.letta.connection import LettaAPIError
from lettafleet.plugins.backends.letta_v1.client import LettaClient


@pytest.fixture
def suffix(client: LettaClient) -> Iterator[str]:
    """A unique suffix for one test's names; its agents and the blocks labelled with it are deleted afterwards."""
    chosen = uuid.uuid4().hex[:8]
    yield chosen
    for agent in client.list_all("/v1/agents/"):
        if agent["name"].endswith(chosen):
            client.delete(f"/v1/agents/{agent['id']}")
    for label in ("notes", "facts", "policies", "hand"):
        for block in client.list_all("/v1/blocks/", label=f"{label}_{chosen}"):
            client.delete(f"/v1/blocks/{block['id']}")


def fleet_text(suffix: str, *, facts: bool = True, a_shares: bool = True, shared: bool = True, protect: bool = False):
    """A named fleet: agent a with two own blocks, and a shared block attached to agents a and b."""
    own = f"      - {{name: notes_{suffix}, value: seed, protect: {str(protect).lower()}}}\n"
    if facts:
        own += f"      - {{name: facts_{suffix}, value: fleet truth, agent_owned: false}}\n"
    text = f"fleet: blocks-{suffix}\n"
    if shared:
        text += f"shared_blocks:\n  - {{name: policies_{suffix}, value: Be kind.}}\n"
    text += "agents:\n"
    for name, shares in ((f"a-{suffix}", a_shares), (f"b-{suffix}", shared)):
        text += f"  - name: {name}\n    llm_config: {{model: letta/letta-free}}\n"
        text += "    system_prompt: {value: You help.}\n"
        if name.startswith("a-"):
            text += "    memory_blocks:\n" + own
        if shares:
            text += f"    shared_blocks: [policies_{suffix}]\n"
    return text


def cli(letta_server: str, fleet: Path, *args: str):
    result = CliRunner().invoke(main, [*args, "-f", str(fleet)], env={"LETTA_BASE_URL": letta_server})
    assert result.exit_code in (0, 2), result.output + str(result.exception)
    return result


def planned(letta_server: str, fleet: Path, text: str) -> tuple[str, dict[str, dict]]:
    """The plan of `text` in text (with `--prune`: held removals show as drift without it), and its changes by
    address from `-o json` (without `--prune`)."""
    fleet.write_text(text)
    shown = cli(letta_server, fleet, "plan", "--prune").output
    document = json.loads(cli(letta_server, fleet, "plan", "-o", "json").output)
    return shown, {change["address"]: change for change in document["changes"]}


def no_changes(letta_server: str, fleet: Path) -> None:
    result = cli(letta_server, fleet, "plan", "--detailed-exitcode")
    assert result.exit_code == 0 and "No changes" in result.output, result.output


def agent_named(client: LettaClient, name: str) -> dict:
    [agent] = client.list_all("/v1/agents/", name=name)
    return agent


def labels_of(client: LettaClient, name: str) -> set[str]:
    return {block["label"] for block in agent_named(client, name)["blocks"]}


def gone(client: LettaClient, block_id: str) -> bool:
    try:
        client.get(f"/v1/blocks/{block_id}")
    except LettaAPIError as error:
        return error.status == 404
    return False


def test_each_block_line_removed_is_planned_applied_and_then_planned_as_no_change(
    letta_server, client, suffix, tmp_path
):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(fleet_text(suffix))
    cli(letta_server, fleet, "apply")
    a, b = f"a-{suffix}", f"b-{suffix}"
    blocks = {block["label"]: block for block in agent_named(client, a)["blocks"]}
    hand = client.post("/v1/blocks/", json={"label": f"hand_{suffix}", "value": "attached by hand"})
    client.patch(f"/v1/agents/{agent_named(client, a)['id']}/core-memory/blocks/attach/{hand['id']}")
    no_changes(letta_server, fleet)

    # An own block: held until --prune (it holds memory), then deleted.
    shown, changes = planned(letta_server, fleet, fleet_text(suffix, facts=False))
    facts = changes[f"agent.{a}.block.facts_{suffix}"]
    assert (facts["action"], facts["held"]) == ("delete", "prune") and f"    - block facts_{suffix}" in shown
    cli(letta_server, fleet, "apply")
    assert f"facts_{suffix}" in labels_of(client, a)
    cli(letta_server, fleet, "apply", "--prune")
    assert gone(client, blocks[f"facts_{suffix}"]["id"])
    no_changes(letta_server, fleet)

    # A shared block's attachment: detached by default; the block stays for agent b.
    shown, changes = planned(letta_server, fleet, fleet_text(suffix, facts=False, a_shares=False))
    link = changes[f"agent.{a}.shared_block.policies_{suffix}"]
    assert link["action"] == "delete" and "held" not in link
    cli(letta_server, fleet, "apply")
    assert f"policies_{suffix}" not in labels_of(client, a) and f"policies_{suffix}" in labels_of(client, b)
    no_changes(letta_server, fleet)

    # The shared block itself (a named fleet's): held until --prune, then deleted and detached from b.
    shown, changes = planned(letta_server, fleet, fleet_text(suffix, facts=False, a_shares=False, shared=False))
    policies = changes[f"shared_block.policies_{suffix}"]
    assert (policies["action"], policies["held"]) == ("delete", "prune")
    assert f"[-] shared block policies_{suffix} (DELETE)" in shown
    cli(letta_server, fleet, "apply", "--prune")
    assert gone(client, blocks[f"policies_{suffix}"]["id"]) and f"policies_{suffix}" not in labels_of(client, b)
    no_changes(letta_server, fleet)

    assert labels_of(client, a) == {f"notes_{suffix}", f"hand_{suffix}"}  # the block attached by hand stays


def test_a_protected_block_is_not_removed_even_with_prune(letta_server, client, suffix, tmp_path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(fleet_text(suffix, protect=True))
    cli(letta_server, fleet, "apply")
    notes = next(b for b in agent_named(client, f"a-{suffix}")["blocks"] if b["label"] == f"notes_{suffix}")
    without = fleet_text(suffix).replace(f"      - {{name: notes_{suffix}, value: seed, protect: false}}\n", "")

    _, changes = planned(letta_server, fleet, without)

    change = changes[f"agent.a-{suffix}.block.notes_{suffix}"]
    assert (change["action"], change["held"], change["protected"]) == ("delete", "protect", True)
    result = cli(letta_server, fleet, "apply", "--prune")
    assert "protected" in result.output
    assert not gone(client, notes["id"]) and f"notes_{suffix}" in labels_of(client, f"a-{suffix}")
