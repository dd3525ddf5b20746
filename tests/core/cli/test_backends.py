"""The backend is picked by the scheme of the server's URL, from what plugins register; `plan` and `apply` check the
fleet against its capability table at the file's lines, before any connection; `validate` asks no backend."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from lettafleet.core import Backend, Capabilities, Lacks, hookimpl
from lettafleet.core.cli import app
from lettafleet.core.cli import fleet as fleet_commands
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.fakes.letta_api import BASE_URL

AGENT = "  - name: {name}\n    llm_config: {{model: openai/gpt-4o-mini}}\n    system_prompt: {{value: hi}}\n"
ISOLATED = (
    "agents:\n"
    + AGENT.format(name="support")
    + "    conversations:\n"
    + "      - summary: Ticket 1\n"
    + "        isolated_blocks: [context]\n"
    + "    memory_blocks:\n"
    + "      - {name: context, description: ctx, limit: 100, value: ''}\n"
)
IGNORED_KEYS = "agents:\n" + AGENT.format(name="support") + "    embedding: openai/text-embedding-3-small\n"
IGNORED_KEYS += "    reasoning: true\n"


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a connection, recorded and refused: a test then knows none was made."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the test allows no connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_kind_the_app_server_lacks_is_refused_at_its_line_naming_the_backend_before_any_connection(
    command, write_fleet, no_network
):
    path = write_fleet(ISOLATED)

    result = CliRunner().invoke(app.main, [command, "-f", str(path), "--base-url", "ws://127.0.0.1:4617"])

    assert result.exit_code == 1, result.output
    assert f"{path}:7:27: isolated_blocks: the Letta App Server backend has no isolated blocks" in result.stderr
    assert "one agent per conversation is the way to isolate" in result.stderr
    assert "nothing was changed" in result.stderr and "Traceback" not in result.output
    assert no_network == []


def test_keys_the_app_server_ignores_get_a_note_at_their_line_before_planning_reaches_for_the_server(
    write_fleet, no_network
):
    path = write_fleet(IGNORED_KEYS)

    result = CliRunner().invoke(app.main, ["plan", "-f", str(path), "--base-url", "wss://apps.example:4617"])

    assert f"{path}:5:5: note: embedding has no effect on the Letta App Server backend" in result.stderr
    assert f"{path}:6:5: note: reasoning has no effect on the Letta App Server backend" in result.stderr
    assert "Is the App Server running there?" in result.stderr  # the one connection, refused by the test
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(no_network) == 1


def test_validate_is_the_same_for_every_backend(write_fleet, monkeypatch):
    monkeypatch.setenv("LETTA_BASE_URL", "ws://127.0.0.1:4617")

    result = CliRunner().invoke(app.main, ["validate", str(write_fleet(ISOLATED))])

    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "App Server" not in result.stderr


def test_a_url_no_backend_claims_is_a_clear_error_naming_the_known_schemes(write_fleet):
    result = CliRunner().invoke(app.main, ["plan", "-f", str(write_fleet(ISOLATED)), "--base-url", "ftp://x:1"])

    assert result.exit_code == 1
    assert "error: no backend speaks the server URL's scheme ftp://" in result.stderr
    assert "http://, https://, ws://, wss://" in result.stderr


class StandIn:
    """A third-party backend, registered in code: it claims `standin://` and talks to the suite's stand-in Letta
    through a client of its own making; it lacks conversations."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    def connect(self, settings):
        self.connected.append(settings.base_url)
        return LettaClient(BASE_URL)

    @hookimpl
    def lettafleet_backends(self):
        lacks = {"conversation": Lacks("keeps no conversations", "remove `conversations`")}
        return [Backend("Stand-in", ("standin",), self.connect, Capabilities(lacks_kinds=lacks))]


@pytest.fixture
def stand_in(monkeypatch):
    plugin = StandIn()
    with_plugin = lambda: get_plugin_manager(extra_plugins=[plugin])  # noqa: E731
    monkeypatch.setattr(fleet_commands, "get_plugin_manager", with_plugin)
    return plugin


def test_a_third_party_backend_claims_its_scheme_and_plans_with_no_change_to_core(stand_in, letta, write_fleet):
    path = write_fleet("agents:\n" + AGENT.format(name="support"))

    result = CliRunner().invoke(app.main, ["plan", "-f", str(path), "--base-url", "standin://fleet-host"])

    assert result.exit_code == 0, result.output
    assert stand_in.connected == ["standin://fleet-host"]
    assert "[+] support (CREATE)" in result.output


def test_a_third_party_backends_table_refuses_what_it_lacks_at_the_line(stand_in, letta, write_fleet):
    path = write_fleet(ISOLATED)

    result = CliRunner().invoke(app.main, ["apply", "-f", str(path), "--base-url", "standin://fleet-host"])

    assert result.exit_code == 1
    assert f"{path}:6:9: conversations: the Stand-in backend keeps no conversations (remove" in result.stderr
    assert stand_in.connected == [] and letta.writes == []


def test_apply_on_a_backend_that_keeps_no_lock_says_to_use_no_lock_and_writes_nothing(stand_in, letta, write_fleet):
    path = write_fleet("agents:\n" + AGENT.format(name="support"))

    locked = CliRunner().invoke(app.main, ["apply", "-f", str(path), "--base-url", "standin://fleet-host"])
    unlocked = CliRunner().invoke(app.main, ["apply", "-f", str(path), "--base-url", "standin://h", "--no-lock"])

    assert locked.exit_code == 1 and "Traceback" not in locked.output
    assert "error: the Stand-in backend cannot hold the apply lock: run apply with --no-lock" in locked.stderr
    assert unlocked.exit_code == 0, unlocked.output
    assert [write for write in letta.writes if "/v1/agents" in str(write)] != []


def test_lettafleet_plugins_lists_each_backend_with_the_schemes_it_claims():
    listed = CliRunner().invoke(app.main, ["plugins"])
    as_json = json.loads(CliRunner().invoke(app.main, ["plugins", "-o", "json"]).output)

    assert "backend Letta App Server (ws://, wss://)" in listed.output
    assert "backend Letta V1 REST (http://, https://)" in listed.output
    backends = {row["name"]: row["backends"] for row in as_json["plugins"] if row["backends"]}
    assert backends["app_server"] == [{"name": "Letta App Server", "schemes": ["ws", "wss"]}]
