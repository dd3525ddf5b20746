"""Removing agents against the real Letta server: a named fleet's agent taken out of the file is planned held
without --prune and deleted with it; a protected one is refused even then; a fleet without a name never plans an
agent's removal; duplicates the fleet made are proposed for deletion, keeping the one with the messages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient


@pytest.fixture
def suffix(client: LettaClient) -> Iterator[str]:
    """A unique suffix for one test's fleet and agent names; every agent whose name ends in it is deleted after."""
    chosen = uuid.uuid4().hex[:8]
    yield chosen
    for agent in client.list_all("/v1/agents/"):
        if agent["name"].endswith(f"-{chosen}"):
            client.delete(f"/v1/agents/{agent['id']}")


def cli(letta_server: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": letta_server}, catch_exceptions=False)


def fleet_text(agents: list[str], *, fleet: str | None = None, protect: tuple[str, ...] = ()) -> str:
    head = f"fleet: {fleet}\n" if fleet else ""
    entries = "".join(
        f"""  - name: {name}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
"""
        + ("    protect: true\n" if name in protect else "")
        for name in agents
    )
    return f"{head}agents:\n{entries}"


def ids_named(client: LettaClient, name: str) -> list[str]:
    return [agent["id"] for agent in client.list_all("/v1/agents/", name=name)]


def test_a_named_fleets_removed_agent_is_held_until_prune_then_deleted(
    letta_server: str, client: LettaClient, suffix: str, tmp_path: Path
) -> None:
    keep, gone, fleet = f"keep-{suffix}", f"gone-{suffix}", f"removal-{suffix}"
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet_text([keep, gone], fleet=fleet))
    assert cli(letta_server, "apply", "-f", str(path)).exit_code == 0
    [gone_id] = ids_named(client, gone)

    path.write_text(fleet_text([keep], fleet=fleet))
    held = cli(letta_server, "apply", "-f", str(path))
    assert held.exit_code == 0, held.output
    assert f"[-] {gone} (DELETE, held: needs --prune)" in held.output
    assert "`--prune` (or `prune: true` in the fleet file) deletes it" in held.output
    assert "Plan: 0 to create, 0 to update, 0 to delete, 1 held." in held.output
    assert ids_named(client, gone) == [gone_id]

    pruned = cli(letta_server, "apply", "-f", str(path), "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert "Plan: 0 to create, 0 to update, 1 to delete." in pruned.output
    assert "Apply complete: 0 created, 0 updated, 1 deleted." in pruned.output
    assert ids_named(client, gone) == []
    again = cli(letta_server, "plan", "-f", str(path), "--prune", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes" in again.output
    assert len(ids_named(client, keep)) == 1


def test_a_protected_agent_removed_from_the_file_is_refused_even_with_prune(
    letta_server: str, client: LettaClient, suffix: str, tmp_path: Path
) -> None:
    keep, guarded, fleet = f"keep-{suffix}", f"guarded-{suffix}", f"guard-{suffix}"
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet_text([keep, guarded], fleet=fleet, protect=(guarded,)))
    assert cli(letta_server, "apply", "-f", str(path)).exit_code == 0
    [guarded_id] = ids_named(client, guarded)

    path.write_text(fleet_text([keep], fleet=fleet))
    result = cli(letta_server, "apply", "-f", str(path), "--prune")

    assert result.exit_code == 0, result.output
    assert f"[-] {guarded} (DELETE, held: protected)" in result.output
    assert "protected (`protect: true` when it was last applied): not removed" in result.output
    assert "declare it again with `protect: false`, apply, then remove it" in result.output
    assert ids_named(client, guarded) == [guarded_id]


def test_a_fleet_without_a_name_never_plans_an_agents_removal(
    letta_server: str, client: LettaClient, suffix: str, tmp_path: Path
) -> None:
    keep, left = f"keep-{suffix}", f"left-{suffix}"
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet_text([keep, left]))
    assert cli(letta_server, "apply", "-f", str(path)).exit_code == 0

    path.write_text(fleet_text([keep]))
    result = cli(letta_server, "plan", "-f", str(path), "--prune", "--detailed-exitcode")

    assert result.exit_code == 0, result.output
    assert "No changes" in result.output and left not in result.output
    assert len(ids_named(client, left)) == 1


def test_two_named_fleets_on_one_server_never_touch_each_others_agents(
    letta_server: str, client: LettaClient, suffix: str, tmp_path: Path
) -> None:
    a_file, b_file = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a_agent, b_agent, b_gone = f"a-agent-{suffix}", f"b-agent-{suffix}", f"b-gone-{suffix}"
    a_file.write_text(fleet_text([a_agent], fleet=f"a-{suffix}"))
    b_file.write_text(fleet_text([b_agent, b_gone], fleet=f"b-{suffix}"))
    assert cli(letta_server, "apply", "-f", str(a_file)).exit_code == 0
    assert cli(letta_server, "apply", "-f", str(b_file)).exit_code == 0
    [a_id] = ids_named(client, a_agent)

    b_file.write_text(fleet_text([b_agent], fleet=f"b-{suffix}"))
    pruned = cli(letta_server, "apply", "-f", str(b_file), "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert ids_named(client, b_gone) == [] and ids_named(client, a_agent) == [a_id]
    assert a_agent not in pruned.output

    b_file.write_text(fleet_text([b_agent, a_agent], fleet=f"b-{suffix}"))
    claimed = cli(letta_server, "plan", "-f", str(b_file))
    assert claimed.exit_code == 1
    assert "b.yaml:7:" in claimed.output + claimed.stderr
    assert f"agent '{a_agent}' on {letta_server} belongs to fleet 'a-{suffix}', not to fleet 'b-{suffix}'" in (
        claimed.output + claimed.stderr
    )
    assert ids_named(client, a_agent) == [a_id]
