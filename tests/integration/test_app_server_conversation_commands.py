"""`create conversation`, `get conversations` and `describe conversation` with LETTA_BASE_URL=ws://...: over the
real dev App Server's protocol, with V1's output shapes, and a clear word where the App Server has no counterpart."""

from __future__ import annotations

import json
from typing import Any

from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.integration.test_app_server_plan_apply import MODEL, app_server, cli, suffix

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "suffix"]  # the fixtures this module shares with test_app_server_plan_apply


def made_agent(client: AppServerClient, name: str) -> dict[str, Any]:
    return client.create_agent({"name": name, "model": MODEL})


def test_a_conversation_created_by_the_command_is_listed_and_described_with_v1s_fields(
    app_server: str, app_server_client: AppServerClient, suffix: str
) -> None:
    name = f"as-cmd-{suffix}"
    agent = made_agent(app_server_client, name)

    created = cli(app_server, "create", "conversation", name, "--summary", "Ticket 9")
    as_json = cli(app_server, "create", "conversation", agent["id"], "-d", "Ticket 10", "-o", "json")
    listed = cli(app_server, "get", "conversations", name, "-o", "json")
    table = cli(app_server, "get", "conversations", name)

    assert created.exit_code == 0, created.output
    assert f"Conversation created for agent {name}" in created.output
    made = json.loads(as_json.output)
    assert made["summary"] == "Ticket 10" and made["agent_id"] == agent["id"]
    records = json.loads(listed.output)
    assert [(r["summary"], r["message_count"], r["archived"], r["agent_id"]) for r in records] == [
        ("Ticket 9", 0, False, agent["id"]),
        ("Ticket 10", 0, False, agent["id"]),
    ]
    assert set(records[0]) >= {"id", "isolated_block_ids", "created_at", "updated_at", "last_message_at"}
    assert "Ticket 9" in table.output and "Ticket 10" in table.output
    first = records[0]["id"]
    assert f"Conversation ID: {first}" in created.output

    described = json.loads(cli(app_server, "describe", "conversation", first, "-o", "json").output)
    text = cli(app_server, "describe", "conversation", first)

    assert described["agent_name"] == name and described["summary"] == "Ticket 9"
    assert described["message_count"] == 0 and described["isolated_blocks"] == []
    assert f"{name} ({agent['id']})" in text.output
    assert "the App Server has no isolated blocks" in text.output


def test_an_archived_conversation_is_listed_as_archived(
    app_server: str, app_server_client: AppServerClient, suffix: str
) -> None:
    agent = made_agent(app_server_client, f"as-cmd-arc-{suffix}")
    conversation = app_server_client.create_conversation(agent["id"], "Old ticket")
    app_server_client.archive_conversation(conversation["id"])

    listed = json.loads(cli(app_server, "get", "conversations", agent["name"], "-o", "json").output)

    assert [(r["summary"], r["archived"]) for r in listed] == [("Old ticket", True)]


def test_what_the_app_server_lacks_is_said_at_the_command_and_nothing_is_made_or_lost(
    app_server: str, app_server_client: AppServerClient, suffix: str
) -> None:
    agent = made_agent(app_server_client, f"as-cmd-lack-{suffix}")
    kept = app_server_client.create_conversation(agent["id"], "Keep me")

    isolated = cli(app_server, "create", "conversation", agent["name"], "--isolated-block", "notes")
    deleted = cli(app_server, "delete", "conversation", kept["id"], "--force")
    missing = cli(app_server, "describe", "conversation", "local-conv-987654")
    nobody = cli(app_server, "get", "conversations", f"as-nobody-{suffix}")

    assert isolated.exit_code == 1 and "the App Server has no isolated blocks" in isolated.output
    assert "Nothing was created." in isolated.output
    assert deleted.exit_code == 1 and "the App Server has no delete for conversations" in deleted.output
    assert [(c["id"], c["archived"]) for c in app_server_client.list_conversations(agent["id"])] == [
        (kept["id"], False)
    ]
    assert missing.exit_code == 1 and "no conversation with id 'local-conv-987654'" in missing.output
    assert nobody.exit_code == 1 and f"no agent named or with id 'as-nobody-{suffix}'" in nobody.output
    assert "Traceback" not in isolated.output + deleted.output + missing.output + nobody.output
