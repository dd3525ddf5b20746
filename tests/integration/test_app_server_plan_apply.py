"""plan and apply of a fleet file against the real dev App Server (Letta Code 0.34.12), through the App Server
backend's own handlers: what lands, what a second plan says, updates, `--prune`, and refusals before any write."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.llm_server import FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]

MODEL = "openai-compatible/fake-echo-model"


@pytest.fixture(scope="module")
def app_server(app_server_url: str, fake_llm: FakeLLM) -> str:
    """The dev App Server with the suite's LLM stand-in connected, so that its model is one the server lists."""
    with AppServerClient(app_server_url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
    return app_server_url


@pytest.fixture
def suffix(app_server_client: AppServerClient) -> Iterator[str]:
    """A suffix unique to one test; every agent whose name ends with it is deleted afterwards."""
    chosen = uuid.uuid4().hex[:8]
    yield chosen
    for agent in app_server_client.list_agents():
        if str(agent.get("name", "")).endswith(chosen):
            app_server_client.delete_agent(agent["id"])


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": url}, catch_exceptions=False)


def agent_yaml(name: str, description: str = "helps", tags: str = "[team-a]", extra: str = "") -> str:
    return (
        f"  - name: {name}\n    description: {description}\n    tags: {tags}\n"
        f"    llm_config:\n      model: {MODEL}\n      context_window: 16000\n"
        f"    system_prompt:\n      value: You are {name}.\n{extra}"
    )


def blocks_yaml(*blocks: tuple[str, str, bool]) -> str:
    """`memory_blocks:` with (name, value, agent_owned) each."""
    return "    memory_blocks:\n" + "".join(
        f"      - name: {name}\n        description: the {name}\n        value: {json.dumps(value)}\n"
        f"        agent_owned: {str(owned).lower()}\n"
        for name, value, owned in blocks
    )


def files_of(client: AppServerClient, agent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(entry["relative_path"]): entry for entry in client.list_memory(agent["id"])}


def fleet_file(tmp_path: Path, fleet: str, *agents: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"fleet: {fleet}\nagents:\n" + "".join(agents))
    return path


def by_name(client: AppServerClient, suffix: str) -> dict[str, dict[str, Any]]:
    return {str(a["name"]): a for a in client.list_agents() if str(a.get("name", "")).endswith(suffix)}


def test_a_fleet_of_agents_applies_then_plans_no_changes_with_the_server_named(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names = [f"as-{role}-{suffix}" for role in ("triage", "billing", "refunds")]
    blocks = blocks_yaml(("persona", "I route tickets.", True), ("policies", "Refunds: 30 days: ask first.", False))
    blocks += "    compaction_settings:\n      mode: sliding_window\n"
    fleet = fleet_file(tmp_path, f"as-{suffix}", *(agent_yaml(name, extra=blocks) for name in names))

    applied = cli(app_server, "apply", "-f", str(fleet), "--no-lock")
    assert applied.exit_code == 0, applied.output
    assert "Letta App Server 0.34.12 (local backend, protocol 1)" in applied.output
    assert "Apply complete: 9 created, 0 updated, 0 deleted." in applied.output

    live = by_name(app_server_client, suffix)
    assert sorted(live) == sorted(names)
    made = live[names[0]]
    assert made["system"] == f"You are {names[0]}." and made["model"] == MODEL and made["description"] == "helps"
    assert made["compaction_settings"]["mode"] == "sliding_window"
    assert made["model_settings"]["context_window_limit"] == 16000
    # Ownership rides on tags (the server drops metadata); the server's own tag stays.
    assert {"team-a", "managed_by:lettafleet", f"lettafleet-fleet:as-{suffix}", "git-memory-enabled"} <= set(
        made["tags"]
    )

    # Memory blocks are memory files in the v2 layout 0.34.x makes: `<label>.md` with name and description.
    files = files_of(app_server_client, made)
    assert files["persona.md"]["content"] == "I route tickets." and files["persona.md"]["description"] == "the persona"
    assert files["policies.md"]["content"] == "Refunds: 30 days: ask first."
    # Made by the server inside the agent's create request, in the layout it makes (it names the file itself).
    assert app_server_client.read_memory_file(made["id"], "policies.md").startswith("---\nname: ")

    replanned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output
    assert "No changes." in replanned.output
    again = cli(app_server, "apply", "-f", str(fleet), "--no-lock", "-v")
    assert "No changes." in again.output
    assert "Requests: " in again.stderr and all(
        method == "GET" for method in re.findall(r"(\w+) \d+", again.stderr.split("Requests: ")[1].split("\n")[0])
    ), again.stderr  # zero writes


def test_a_changed_block_value_reaches_the_file_and_an_agent_owned_file_the_agent_edited_is_left(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-mem-{suffix}"
    first = blocks_yaml(("persona", "Seeded.", True), ("policies", "Old policy.", False))
    assert cli(
        app_server, "apply", "-f", str(fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, extra=first))), "--no-lock"
    )
    agent = by_name(app_server_client, suffix)[name]
    app_server_client.write_memory_file(
        agent["id"], "persona.md", "---\nname: persona\ndescription: the persona\n---\nMine now."
    )
    second = blocks_yaml(("persona", "Seeded again.", True), ("policies", "New policy.", False))
    changed = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, extra=second))

    applied = cli(app_server, "apply", "-f", str(changed), "--no-lock")

    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 0 created, 1 updated, 0 deleted." in applied.output
    files = files_of(app_server_client, agent)
    assert files["policies.md"]["content"] == "New policy."
    assert files["persona.md"]["content"] == "Mine now."  # seeded once: the agent's edit is its own
    assert "No changes." in cli(app_server, "plan", "-f", str(changed)).output


def test_a_changed_description_and_tags_update_the_agent_keeping_the_servers_own_tag(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-upd-{suffix}"
    assert cli(app_server, "apply", "-f", str(fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name))), "--no-lock")
    changed = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, description="now billing", tags="[team-b]"))

    applied = cli(app_server, "apply", "-f", str(changed), "--no-lock")

    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 0 created, 1 updated, 0 deleted." in applied.output
    agent = by_name(app_server_client, suffix)[name]
    assert agent["description"] == "now billing"
    assert "team-b" in agent["tags"] and "team-a" not in agent["tags"] and "git-memory-enabled" in agent["tags"]
    assert "No changes." in cli(app_server, "plan", "-f", str(changed)).output


def test_prune_removes_only_the_fleets_agents_not_a_hand_made_one(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    kept, dropped = f"as-kept-{suffix}", f"as-dropped-{suffix}"
    hand_made = app_server_client.create_agent({"name": f"as-by-hand-{suffix}", "model": MODEL, "tags": ["team-a"]})
    both = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(kept), agent_yaml(dropped))
    assert cli(app_server, "apply", "-f", str(both), "--no-lock").exit_code == 0
    one = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(kept))

    held = cli(app_server, "plan", "-f", str(one))
    pruned = cli(app_server, "apply", "-f", str(one), "--prune", "--no-lock")

    assert dropped in held.output and "--prune" in held.output, held.output
    assert pruned.exit_code == 0, pruned.output
    assert "1 deleted" in pruned.output
    assert sorted(by_name(app_server_client, suffix)) == sorted([kept, hand_made["name"]])


def test_an_unknown_model_is_refused_at_its_line_before_anything_is_written(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(f"as-model-{suffix}").replace(MODEL, "nope/no-model"))

    applied = cli(app_server, "apply", "-f", str(fleet), "--no-lock")

    assert applied.exit_code == 1
    assert "fleet.yaml:7:7: model handle 'nope/no-model' is not offered" in applied.output
    assert by_name(app_server_client, suffix) == {}


def test_a_fleet_with_isolated_blocks_stops_at_that_line_with_nothing_written(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    blocks = "    memory_blocks:\n      - name: notes\n        description: notes\n        value: ''\n"
    conversations = "    conversations:\n      - summary: Ticket 1\n        isolated_blocks: [notes]\n"
    fleet = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(f"as-iso-{suffix}", extra=blocks + conversations))

    applied = cli(app_server, "apply", "-f", str(fleet), "--no-lock")

    assert applied.exit_code == 1
    assert "fleet.yaml:17:27: isolated_blocks" in applied.output, applied.output
    assert "one agent per conversation is the way to isolate" in applied.output
    assert by_name(app_server_client, suffix) == {}


def test_a_block_taken_out_of_the_file_is_removed_with_prune_by_the_agents_record_and_a_hand_made_file_stays(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-rec-{suffix}"
    both = blocks_yaml(("persona", "Me.", True), ("scratch", "Notes.", True))
    assert cli(
        app_server, "apply", "-f", str(fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, extra=both))), "--no-lock"
    )
    agent = by_name(app_server_client, suffix)[name]
    # The record of what the apply made lives in the agent's secret, not in its memory (its context).
    record = json.loads(app_server_client.secret_values(agent["id"])["LETTAFLEET_RECORD"])
    assert [(entry["address"], entry["id"]) for entry in record["lettafleet_applied"]] == [
        ("block.persona", "persona.md"),
        ("block.scratch", "scratch.md"),
    ]
    assert not any("lettafleet" in path.lower() for path in files_of(app_server_client, agent))
    app_server_client.write_memory_file(agent["id"], "by-hand.md", "---\nname: by-hand\ndescription: mine\n---\nKeep.")
    one = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, extra=blocks_yaml(("persona", "Me.", True))))

    held = cli(app_server, "plan", "-f", str(one))
    pruned = cli(app_server, "apply", "-f", str(one), "--prune", "--no-lock")

    assert "scratch" in held.output and "--prune" in held.output and "by-hand" not in held.output, held.output
    assert pruned.exit_code == 0, pruned.output
    assert sorted(files_of(app_server_client, agent)) == ["MEMORY.md", "by-hand.md", "persona.md"]
    assert "No changes." in cli(app_server, "plan", "-f", str(one)).output


def test_an_agent_made_by_0_32_gets_its_blocks_as_v1_memory_files_and_replans_no_changes(
    app_server_v1_layout_url: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    url, suffix = app_server_v1_layout_url, uuid.uuid4().hex[:8]
    name = f"as-v1-{suffix}"
    fleet = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, extra=blocks_yaml(("policies", "Be kind.", False))))
    with AppServerClient(url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
        try:
            applied = cli(url, "apply", "-f", str(fleet), "--no-lock")
            assert applied.exit_code == 0, applied.output
            agent = by_name(client, suffix)[name]
            files = files_of(client, agent)
            assert files["system/policies.md"]["content"] == "Be kind."
            assert "policies.md" not in files
            assert client.read_memory_file(agent["id"], "system/policies.md").startswith(
                "---\ndescription: the policies\n---\n"
            )
            assert "No changes." in cli(url, "plan", "-f", str(fleet)).output
        finally:
            for agent in by_name(client, suffix).values():
                client.delete_agent(agent["id"])
