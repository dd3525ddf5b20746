"""Declared conversations on the real dev App Server (Letta Code 0.34.12): matched by exact summary, duplicates
shown, removed ones archived (the server has no delete) and only those an apply made, archived ones matched, and
a conversation id the server reuses after a restart never taken for the recorded one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.devserver import app_server as dev_app_server
from lettafleet.plugins.devserver.app_server_home import AppServerHome
from lettafleet.plugins.devserver.home import DevServerHome
from lettafleet.plugins.devserver.progress import SilentProgress
from tests.fakes.llm_server import FakeLLM
from tests.integration.conftest import home_with_the_shared_app_server
from tests.integration.test_app_server_plan_apply import agent_yaml, app_server, by_name, cli, fleet_file, suffix

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "suffix"]  # the fixtures this module shares with test_app_server_plan_apply


def connect_stand_in(url: str, fake_llm: FakeLLM) -> None:
    with AppServerClient(url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})


def with_conversations(name: str, *summaries: str) -> str:
    listed = "".join(f"      - summary: {json.dumps(summary)}\n" for summary in summaries)
    return agent_yaml(name, extra="    conversations:\n" + listed if summaries else "")


def conversations(client: AppServerClient, agent: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The agent's conversations by summary."""
    found: dict[str, list[dict[str, Any]]] = {}
    for conversation in client.list_conversations(agent["id"]):
        found.setdefault(str(conversation.get("summary")), []).append(conversation)
    return found


def record_of(client: AppServerClient, agent: dict[str, Any]) -> dict[str, str]:
    entries = json.loads(client.secret_values(agent["id"])["LETTAFLEET_RECORD"])["lettafleet_applied"]
    return {entry["address"]: entry.get("id") for entry in entries}


def test_declared_conversations_are_made_by_exact_summary_and_a_second_plan_says_no_changes(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-conv-{suffix}"
    fleet = fleet_file(tmp_path, f"as-{suffix}", with_conversations(name, "Ticket 1", "Ticket 2"))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    agent = by_name(app_server_client, suffix)[name]
    # A conversation whose summary only contains a declared one is another conversation (summary_search would
    # find it): the next plan must not take it for "Ticket 1".
    app_server_client.create_conversation(agent["id"], "Ticket 1 follow-up")

    replanned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")

    assert replanned.exit_code == 0, replanned.output
    assert "No changes." in replanned.output
    made = conversations(app_server_client, agent)
    assert sorted(made) == ["Ticket 1", "Ticket 1 follow-up", "Ticket 2"]
    assert all(len(same) == 1 for same in made.values())
    # The record names each by its id and its creation time: ids alone are reused by the server.
    ticket = made["Ticket 1"][0]
    assert record_of(app_server_client, agent)['conversation["Ticket 1"]'] == f"{ticket['id']}@{ticket['created_at']}"


def test_two_conversations_of_one_declared_summary_are_shown_as_an_ambiguity_and_none_is_made(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-dup-{suffix}"
    assert cli(app_server, "apply", "-f", str(fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name))), "--no-lock")
    agent = by_name(app_server_client, suffix)[name]
    first = app_server_client.create_conversation(agent["id"], "Ticket 7")
    second = app_server_client.create_conversation(agent["id"], "Ticket 7")
    fleet = fleet_file(tmp_path, f"as-{suffix}", with_conversations(name, "Ticket 7"))

    planned = cli(app_server, "plan", "-f", str(fleet))
    applied = cli(app_server, "apply", "-f", str(fleet), "--no-lock")

    assert "2 conversations of the agent have the summary 'Ticket 7'" in planned.output, planned.output
    assert f"the plan uses the oldest, {first['id']}, and leaves {second['id']} alone" in planned.output
    assert applied.exit_code == 0, applied.output
    assert len(conversations(app_server_client, agent)["Ticket 7"]) == 2  # none made, none archived


def test_a_conversation_taken_out_of_the_file_is_archived_and_one_made_at_runtime_is_untouched(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-arc-{suffix}"
    both = fleet_file(tmp_path, f"as-{suffix}", with_conversations(name, "Ticket 1", "Ticket 2"))
    assert cli(app_server, "apply", "-f", str(both), "--no-lock").exit_code == 0
    agent = by_name(app_server_client, suffix)[name]
    runtime = app_server_client.create_conversation(agent["id"], "Chat from the app")
    one = fleet_file(tmp_path, f"as-{suffix}", with_conversations(name, "Ticket 1"))

    planned = cli(app_server, "plan", "-f", str(one), "--prune")
    pruned = cli(app_server, "apply", "-f", str(one), "--prune", "--no-lock")

    assert 'conversation "Ticket 2": it has no messages; it is archived (the App Server has no delete)' in (
        planned.output
    ), planned.output
    assert "Chat from the app" not in planned.output, planned.output
    assert pruned.exit_code == 0, pruned.output
    assert "0 new conversations, 1 deleted." in pruned.output
    made = conversations(app_server_client, agent)
    assert made["Ticket 2"][0]["archived"] is True
    assert made["Ticket 1"][0]["archived"] is False
    assert [c["archived"] for c in made["Chat from the app"]] == [False] and made["Chat from the app"][0]["id"] == (
        runtime["id"]
    )
    assert 'conversation["Ticket 2"]' not in record_of(app_server_client, agent)
    assert "No changes." in cli(app_server, "plan", "-f", str(one), "--prune").output


def test_a_declared_conversation_archived_on_the_server_is_matched_and_never_made_again(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-kept-{suffix}"
    fleet = fleet_file(tmp_path, f"as-{suffix}", with_conversations(name, "Ticket 1"))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    agent = by_name(app_server_client, suffix)[name]
    app_server_client.archive_conversation(conversations(app_server_client, agent)["Ticket 1"][0]["id"])

    planned = cli(app_server, "plan", "-f", str(fleet))
    applied = cli(app_server, "apply", "-f", str(fleet), "--no-lock")

    assert "archived on the App Server" in planned.output, planned.output
    assert applied.exit_code == 0, applied.output
    assert [c["archived"] for c in conversations(app_server_client, agent)["Ticket 1"]] == [True]


@pytest.fixture
def private_app_server(tmp_path: Path, fake_llm: FakeLLM, app_server_url: str) -> Iterator[DevServerHome]:
    """An App Server of our own, in a temporary dev-server home (the shared install's venv linked in: so after the
    shared one's install, `app_server_url`), that a test may stop and start again; stopped by its recorded PID
    afterwards. The shared one is never touched."""
    home = home_with_the_shared_app_server(tmp_path / "dev-home")
    try:
        yield home
    finally:
        dev_app_server.down(home=home, progress=SilentProgress())


def start(home: DevServerHome, fake_llm: FakeLLM) -> str:
    url = str(dev_app_server.up(port=0, home=home, progress=SilentProgress()).base_url)
    connect_stand_in(url, fake_llm)
    return url


def test_a_conversation_id_the_server_reuses_after_a_restart_is_never_taken_for_the_recorded_one(
    private_app_server: DevServerHome, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    name = "as-reuse"
    declared = fleet_file(tmp_path, "as-reuse", with_conversations(name, "Ticket 1"))
    url = start(private_app_server, fake_llm)
    assert cli(url, "apply", "-f", str(declared), "--no-lock").exit_code == 0
    with AppServerClient(url) as client:
        agent = by_name(client, "reuse")[name]
        recorded = conversations(client, agent)["Ticket 1"][0]
    # The recorded conversation is lost (its folder gone from the server's data, as after restoring an older
    # backup); the server, started again, counts conversation ids from the highest it finds: from 1 again.
    dev_app_server.down(home=private_app_server, progress=SilentProgress())
    folders = AppServerHome(private_app_server).backend_dir / "conversations"
    for saved in folders.glob("*/conversation.json"):
        if json.loads(saved.read_text()).get("id") == recorded["id"]:
            shutil.rmtree(saved.parent)
    url = start(private_app_server, fake_llm)
    with AppServerClient(url) as client:
        runtime = client.create_conversation(agent["id"], "Chat from the app")
    assert runtime["id"] == recorded["id"]  # the same id, another conversation

    taken_out = fleet_file(tmp_path, "as-reuse", with_conversations(name))
    planned = cli(url, "plan", "-f", str(taken_out), "--prune")
    pruned = cli(url, "apply", "-f", str(taken_out), "--prune", "--no-lock")

    # The plan sees the recorded conversation gone and has the record forget it; the reused id is another's.
    assert "Chat from the app" not in planned.output and "archive" not in planned.output.lower(), planned.output
    assert "Plan: 0 to create, 1 to update, 0 to delete." in planned.output, planned.output
    assert pruned.exit_code == 0, pruned.output
    with AppServerClient(url) as client:
        assert [c["archived"] for c in conversations(client, agent)["Chat from the app"]] == [False]
    assert cli(url, "plan", "-f", str(taken_out), "--prune", "--detailed-exitcode").exit_code == 0


def test_a_moved_conversation_is_renamed_in_place_keeping_its_id(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-mv-{suffix}"
    assert (
        cli(
            app_server,
            "apply",
            "-f",
            str(fleet_file(tmp_path, f"as-{suffix}", with_conversations(name, "Ticket 1"))),
            "--no-lock",
        ).exit_code
        == 0
    )
    agent = by_name(app_server_client, suffix)[name]
    before = conversations(app_server_client, agent)["Ticket 1"][0]
    old, new = f'agent.{name}.conversation["Ticket 1"]', f'agent.{name}.conversation["Ticket 1 (billing)"]'
    renamed = fleet_file(tmp_path, f"as-{suffix}", with_conversations(name, "Ticket 1 (billing)"))
    renamed.write_text(renamed.read_text() + f"moved:\n  - from: '{old}'\n    to: '{new}'\n")

    applied = cli(app_server, "apply", "-f", str(renamed), "--no-lock")

    assert applied.exit_code == 0, applied.output
    after = conversations(app_server_client, agent)
    assert sorted(after) == ["Ticket 1 (billing)"] and after["Ticket 1 (billing)"][0]["id"] == before["id"]
    assert record_of(app_server_client, agent)['conversation["Ticket 1 (billing)"]'] == (
        f"{before['id']}@{before['created_at']}"
    )
    assert "No changes." in cli(app_server, "plan", "-f", str(renamed)).output


def test_a_protected_conversation_taken_out_of_the_file_is_not_archived_even_with_prune(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-prot-{suffix}"
    protected = agent_yaml(name, extra="    conversations:\n      - summary: Keep\n        protect: true\n")
    assert cli(app_server, "apply", "-f", str(fleet_file(tmp_path, f"as-{suffix}", protected)), "--no-lock")
    agent = by_name(app_server_client, suffix)[name]
    taken_out = fleet_file(tmp_path, f"as-{suffix}", with_conversations(name))

    pruned = cli(app_server, "apply", "-f", str(taken_out), "--prune", "--no-lock")

    assert pruned.exit_code == 0, pruned.output
    assert "protected" in pruned.output, pruned.output
    assert [c["archived"] for c in conversations(app_server_client, agent)["Keep"]] == [False]
