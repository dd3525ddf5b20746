"""The plugin surface: built-ins load through the entry-point group, and a third-party plugin can add a kind."""

from __future__ import annotations

import pytest
import respx

from lettafleet.core import (
    Backend,
    PluginCommand,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    hookimpl,
    mapping_list,
    string,
)
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.plugin_manager import PluginError, get_plugin_manager, resource_kinds
from lettafleet.core.engine.validation import load_fleet
from lettafleet.core.render.text import render_plan
from lettafleet.plugins.backends.letta_v1.client import LettaClient

BASE = "http://letta.test"


def test_the_built_in_plugins_load_through_the_entry_point_group():
    manager = get_plugin_manager()
    assert {"agents", "blocks", "conversations", "isolated_blocks", "tools", "secrets"} <= {
        name for name, _ in manager.list_name_plugin()
    }
    assert {"agent", "block", "shared_block", "conversation", "isolated_block", "tool"} <= set(resource_kinds(manager))


class NoteHandler(ResourceHandler):
    def desired(self, fleet):
        for note in fleet.data.get("notes", []):
            yield Resource(address_of("note", note["name"]), "note", note["name"], {"text": note["text"]})

    def live_reads(self, desired):
        return [("/v1/notes/", {"order": "asc"})]

    def read_live(self, reader, desired, fleet):
        return [
            Resource(address_of("note", n["name"]), "note", n["name"], {"text": n["text"]}, id=n["id"])
            for n in reader.list_all("/v1/notes/", order="asc")
        ]


class Notes:
    """A throwaway plugin: a top-level `notes:` list, each note a resource of a new kind."""

    @hookimpl
    def lettafleet_kinds(self):
        return [ResourceKind("note", "notes", handler=NoteHandler())]

    @hookimpl
    def lettafleet_schema(self):
        return [SchemaFragment({"notes": mapping_list({"name": string(required=True), "text": string()})})]


@respx.mock
def test_a_throwaway_plugin_with_a_new_kind_shows_in_the_plan(write_fleet):
    respx.get(f"{BASE}/v1/models/").respond(json=[{"handle": "letta/letta-free"}])
    notes = respx.get(f"{BASE}/v1/notes/").respond(json=[{"id": "n1", "name": "old", "text": "before"}])
    respx.get(url__startswith=f"{BASE}/v1/").respond(json=[])
    path = write_fleet("""
        notes:
          - name: fresh
            text: hello
          - name: old
            text: after
        agents:
          - name: a
            llm_config: {model: letta/letta-free, context_window: 8000}
            system_prompt: {value: hi}
    """)
    manager = get_plugin_manager(extra_plugins=[Notes()])
    fleet = load_fleet(path, manager)
    with LettaClient(BASE) as client:
        plan = plan_fleet(fleet, client, manager)
    actions = {change.address: change.action.value for change in plan.changes}
    assert actions == {"agent.a": "create", "note.fresh": "create", "note.old": "update"}
    # Declared in live_reads, prefetched, then served from the cache: read once (its page, and the next
    # one that brings nothing new and so ends the list).
    assert notes.call_count == 2
    text = render_plan(plan, resource_kinds(manager))
    assert "[+] note fresh (CREATE)" in text
    assert "[~] note old (UPDATE)" in text and "  - before" in text and "  + after" in text


def test_without_the_plugin_its_keys_are_unknown(write_fleet, manager):
    from lettafleet.core.engine.diagnostics import FleetError

    path = write_fleet("""
        notes: []
        agents:
          - name: a
            llm_config: {model: letta/letta-free}
            system_prompt: {value: hi}
    """)
    with pytest.raises(FleetError, match="unknown key 'notes'"):
        load_fleet(path, manager)


def test_a_misspelled_hook_fails_at_start():
    class Typo:
        @hookimpl
        def lettafleet_kinsd(self):
            return []

    with pytest.raises(Exception, match="lettafleet_kinsd"):
        get_plugin_manager(extra_plugins=[Typo()])


def test_two_plugins_defining_one_key_fail_when_the_manager_is_made():
    class Clash:
        @hookimpl
        def lettafleet_schema(self):
            return [SchemaFragment({"memory_blocks": string()}, at=("agents",))]

    with pytest.raises(PluginError, match="'memory_blocks' at agents is defined by two plugins"):
        get_plugin_manager(extra_plugins=[Clash()])


def test_a_kind_claimed_twice_fails_when_the_manager_is_made():
    class Again:
        @hookimpl
        def lettafleet_kinds(self):
            return [ResourceKind("conversation", "conversations", handler=ResourceHandler())]

    with pytest.raises(PluginError, match="resource kind 'conversation' is declared by two plugins"):
        get_plugin_manager(extra_plugins=[Again()])


def test_a_url_scheme_claimed_by_two_backends_fails_when_the_manager_is_made():
    class Rival:
        @hookimpl
        def lettafleet_backends(self):
            return [Backend("Rival Letta", ("HTTPS",), connect=lambda settings: None)]

    with pytest.raises(PluginError, match=r"URL scheme https:// is claimed by two backends \(Letta V1 REST and Rival"):
        get_plugin_manager(extra_plugins=[Rival()])


def test_the_built_in_backends_claim_http_for_v1_rest_and_ws_for_the_app_server(manager):
    assert {scheme: str(backend) for scheme, backend in manager.backends.items()} == {
        "http": "Letta V1 REST",
        "https": "Letta V1 REST",
        "ws": "Letta App Server",
        "wss": "Letta App Server",
    }


def test_a_kind_without_a_handler_fails_when_the_manager_is_made():
    class Handless:
        @hookimpl
        def lettafleet_kinds(self):
            return [ResourceKind("note", "notes")]

    with pytest.raises(PluginError, match="resource kind 'note' has no handler"):
        get_plugin_manager(extra_plugins=[Handless()])


def test_plugin_errors_reach_every_command_as_a_clear_message(monkeypatch):
    """Any command, even `plan -o json`, which renders no kind: the manager is checked when it is made."""
    from click.testing import CliRunner

    from lettafleet.core.cli import fleet as fleet_commands
    from lettafleet.core.cli.app import main

    class Again:
        @hookimpl
        def lettafleet_kinds(self):
            return [ResourceKind("agent", "agents", handler=ResourceHandler())]

    monkeypatch.setattr(fleet_commands, "get_plugin_manager", lambda: get_plugin_manager(extra_plugins=[Again()]))
    result = CliRunner().invoke(main, ["plan", "-o", "json", "-f", "fleet.yaml"])
    assert result.exit_code == 1
    assert "error: resource kind 'agent' is declared by two plugins" in result.output


def test_plugins_can_add_commands_under_verb_groups():
    import rich_click as click

    @click.command("notes")
    def notes():
        """List notes."""

    class Commands:
        @hookimpl
        def lettafleet_commands(self):
            return [PluginCommand(notes, verb="get")]

    manager = get_plugin_manager(extra_plugins=[Commands()])
    contributed = [item for found in manager.hook.lettafleet_commands() for item in found]
    assert PluginCommand(notes, verb="get") in contributed


@respx.mock
def test_a_plugin_giving_two_resources_at_one_address_is_a_clear_plugin_error(write_fleet):
    class Twice(ResourceHandler):
        def desired(self, fleet):
            return [Resource("note.a", "note", "a", {}), Resource("note.a", "note", "a", {})]

    class Plugin:
        @hookimpl
        def lettafleet_kinds(self):
            return [ResourceKind("note", "notes", handler=Twice())]

    respx.get(f"{BASE}/v1/models/").respond(json=[{"handle": "m"}])
    respx.get(url__startswith=f"{BASE}/v1/").respond(json=[])
    manager = get_plugin_manager(extra_plugins=[Plugin()])
    path = write_fleet("agents:\n  - {name: a, llm_config: {model: m}, system_prompt: {value: hi}}\n")
    with LettaClient(BASE) as client, pytest.raises(PluginError, match=r"gave two desired resources at note\.a"):
        plan_fleet(load_fleet(path, manager), client, manager)


def test_the_installed_plugins_are_loaded_once_per_process_and_extra_plugins_get_a_manager_of_their_own() -> None:
    # The CLI's group (joining plugins' commands) and the command both ask: loading them twice cost every command.
    assert get_plugin_manager() is get_plugin_manager()

    class Extra:
        pass

    assert get_plugin_manager(extra_plugins=[Extra()]) is not get_plugin_manager()
