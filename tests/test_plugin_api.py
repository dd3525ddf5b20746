"""The plugin surface stays honest: the worked example of docs/plugins.md (a kind nested under agents) runs on
nothing but the public API, and every hook and handler method is documented and exercised by a test."""

from __future__ import annotations

import ast
import inspect
import json
import re
import types
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import respx

from lettafleet.core import (
    Action,
    Adoption,
    LiveReader,
    Note,
    Problem,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    ServerSettings,
    address_of,
    adoptions,
    boolean,
    compare,
    hookimpl,
    hookspecs,
    integer,
    mapping_list,
    mark_adopted,
    not_supported_yet,
    refused,
    string,
)
from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.capabilities import check_capabilities
from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient

ROOT = Path(__file__).parents[1]
DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
PUBLIC_MODULES = {"lettafleet.core", "lettafleet.plugins.resources.agents"}
BASE = "http://letta.test"


def worked_example() -> str:
    section = DOCS.split("## A worked example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


@pytest.fixture
def notes_plugin() -> types.ModuleType:
    """The docs' example, as a throwaway plugin module (registered per test, never installed)."""
    module = types.ModuleType("notes_plugin")
    exec(compile(worked_example(), "docs/plugins.md", "exec"), module.__dict__)
    return module


def test_the_worked_example_imports_nothing_but_the_public_api():
    imported = {node.module for node in ast.walk(ast.parse(worked_example())) if isinstance(node, ast.ImportFrom)} | {
        alias.name
        for node in ast.walk(ast.parse(worked_example()))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported <= PUBLIC_MODULES


FLEET = """
agents:
  - name: support
    llm_config: {model: letta/letta-free}
    system_prompt: {value: You help.}
    notes:
      - {name: hours, text: "9 to 5"}
"""


class Server:
    """A stand-in for the Letta server with the example's imaginary notes collection under each agent."""

    def __init__(self, mock: respx.MockRouter) -> None:
        self.agents: list[dict] = []
        self.notes: dict[str, list[dict]] = {}
        mock.get(f"{BASE}/v1/models/").respond(json=[{"handle": "letta/letta-free"}])
        mock.get(f"{BASE}/v1/agents/").mock(side_effect=lambda request: self.page(request, self.agents))
        mock.post(f"{BASE}/v1/agents/").mock(side_effect=self.create_agent)
        mock.get(url__regex=rf"{BASE}/v1/agents/[^/]+/notes").mock(side_effect=self.list_notes)
        mock.patch(url__regex=rf"{BASE}/v1/agents/[^/]+$").mock(side_effect=self.update_agent)
        self.note_updates = mock.patch(url__regex=rf"{BASE}/v1/agents/[^/]+/notes/[^/]+").respond(json={})
        mock.delete(url__regex=rf"{BASE}/v1/agents/[^/]+/notes/[^/]+").mock(side_effect=self.delete_note)

    @staticmethod
    def page(request: httpx.Request, items: list[dict]) -> httpx.Response:
        return httpx.Response(200, json=[] if request.url.params.get("after") else items)

    def create_agent(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        agent = {"id": f"agent-{len(self.agents) + 1}", "name": body["name"], "system": body["system"], "tags": []}
        self.agents.append({**agent, "metadata": body.get("metadata"), "llm_config": {"handle": body["model"]}})
        notes = [{"id": f"note-{n}", **note} for n, note in enumerate(body.get("notes", []))]
        self.notes[agent["id"]] = notes
        return httpx.Response(200, json={**agent, "notes": notes})

    def list_notes(self, request: httpx.Request) -> httpx.Response:
        return self.page(request, self.notes[request.url.path.split("/")[3]])

    def update_agent(self, request: httpx.Request) -> httpx.Response:
        [agent] = [agent for agent in self.agents if agent["id"] == request.url.path.split("/")[3]]
        agent.update(json.loads(request.content))
        return httpx.Response(200, json=agent)

    def delete_note(self, request: httpx.Request) -> httpx.Response:
        _, _, _, agent_id, _, note_id = request.url.path.split("/")
        self.notes[agent_id] = [note for note in self.notes[agent_id] if note["id"] != note_id]
        return httpx.Response(200, json={})


def test_a_third_party_kind_nested_under_agents_plans_applies_and_converges(write_fleet, notes_plugin):
    path = write_fleet(FLEET)
    manager = get_plugin_manager(extra_plugins=[notes_plugin])
    fleet = load_fleet(path, manager)
    with respx.mock(assert_all_called=False) as mock, LettaClient(BASE) as client:
        server = Server(mock)
        plan = plan_fleet(fleet, client, manager)
        assert {c.address: c.action.value for c in plan.changes} == {
            "agent.support": "create",
            "agent.support.note.hours": "create",
        }
        report = apply_plan(plan, client, manager)
        assert report.ok, report.failed
        assert server.notes["agent-1"] == [{"id": "note-0", "name": "hours", "text": "9 to 5"}]  # rode along

        fleet = load_fleet(write_fleet(FLEET.replace("9 to 5", "8 to 4")), manager)
        again = plan_fleet(fleet, client, manager)
        assert {c.address: c.action.value for c in again.changes if c.changes_something} == {
            "agent.support.note.hours": "update"
        }
        assert apply_plan(again, client, manager).ok
        assert json.loads(server.note_updates.calls.last.request.content) == {"text": "8 to 4"}

        # A note pinned by hand is not the fleet's; one taken out of the file is, and is deleted.
        server.notes["agent-1"].append({"id": "note-9", "name": "by-hand", "text": "mine"})
        fleet = load_fleet(write_fleet(FLEET.replace('      - {name: hours, text: "9 to 5"}', "      []")), manager)
        removal = plan_fleet(fleet, client, manager)
        assert {c.address: c.action.value for c in removal.changes if c.changes_something} == {
            "agent.support.note.hours": "delete"
        }
        assert apply_plan(removal, client, manager).ok
        assert server.notes["agent-1"] == [{"id": "note-9", "name": "by-hand", "text": "mine"}]
        assert not plan_fleet(fleet, client, manager).has_changes


HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("lettafleet_")]
HANDLER_METHODS = [name for name, _ in inspect.getmembers(ResourceHandler, inspect.isfunction) if name[0] != "_"]
TESTS = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("test_*.py"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_exercised_by_a_test(hook):
    assert f"`{hook}(" in DOCS
    assert re.search(rf"def {hook}\(", TESTS), f"no test implements {hook}"


@pytest.mark.parametrize("method", HANDLER_METHODS)
def test_every_handler_method_is_documented_and_exercised_by_a_test(method):
    assert f"`{method}(" in DOCS
    example_and_tests = worked_example() + TESTS
    assert re.search(rf"    def {method}\(self", example_and_tests), f"no test's handler implements {method}"


class GuardedHandler(ResourceHandler):
    """A kind whose server may refuse a value (`preflight`) and whose difference apply cannot fix (`diff`)."""

    def desired(self, fleet):
        for index, quota in enumerate(fleet.data.get("quotas", [])):
            values = {"limit": quota["limit"]}
            yield Resource(address_of("quota", quota["name"]), "quota", quota["name"], values, source=("quotas", index))

    def preflight(self, reader, desired):
        most = reader.get("/v1/quota-limit/")["most"]
        return [
            Problem((*quota.source, "limit"), f"the server allows at most {most}", "lower it")
            for quota in desired
            if quota.attributes["limit"] > most
        ]

    def read_live(self, reader, desired, fleet):
        return [Resource(address_of("quota", q.name), "quota", q.name, {"limit": 1}, id="q1") for q in desired]

    def diff(self, desired, live):
        return replace(compare(desired, live), action=Action.NO_OP, drift="quotas change only by hand")

    def adopt(self, reader, agent):
        return [Adoption(f"quota of {agent['name']}", f"/v1/quotas/{agent['id']}", {"owner": "lettafleet"})]


class Guarded:
    @hookimpl
    def lettafleet_kinds(self):
        return [ResourceKind("quota", "quotas", handler=GuardedHandler())]

    @hookimpl
    def lettafleet_schema(self):
        return [SchemaFragment({"quotas": mapping_list({"name": string(required=True), "limit": integer()})})]

    @hookimpl
    def lettafleet_check(self, fleet):
        names = [quota["name"] for quota in fleet.data.get("quotas", [])]
        return [Problem(("quotas", i, "name"), "named twice", "") for i, n in enumerate(names) if names.index(n) != i]


GUARDED = "agents:\n  - {name: a, llm_config: {model: m}, system_prompt: {value: hi}}\nquotas:\n"


def test_a_plugins_check_reports_at_the_line(write_fleet):
    path = write_fleet(GUARDED + "  - {name: q, limit: 1}\n  - {name: q, limit: 2}\n")
    with pytest.raises(FleetError) as caught:
        load_fleet(path, get_plugin_manager(extra_plugins=[Guarded()]))
    assert [str(d) for d in caught.value.diagnostics] == [f"{path}:5:6: named twice"]


class Cautious:
    """A third-party plugin with a key it refuses, one it means to support, and a note."""

    @hookimpl
    def lettafleet_schema(self):
        rules = {
            "name": string(required=True),
            "region": refused("is not supported: this service has no regions", "remove `region:`"),
            "burst": not_supported_yet("remove `burst:` for now"),
            "legacy": boolean(),
        }
        return [SchemaFragment({"budgets": mapping_list(rules)})]

    @hookimpl
    def lettafleet_check(self, fleet):
        budgets = fleet.data.get("budgets", [])
        return [Note(("budgets", i, "legacy"), "legacy is ignored") for i, b in enumerate(budgets) if "legacy" in b]


def test_a_plugins_refused_keys_are_reported_at_their_line_with_what_to_do(write_fleet):
    path = write_fleet(GUARDED.replace("quotas:", "budgets:") + "  - {name: b, region: eu}\n  - {name: c, burst: 3}\n")
    with pytest.raises(FleetError) as caught:
        load_fleet(path, get_plugin_manager(extra_plugins=[Cautious()]))
    found = [f"{d.line}:{d.column}: {d.message} ({d.hint})" for d in caught.value.diagnostics]
    assert found == [
        "4:15: budgets[0].region is not supported: this service has no regions (remove `region:`)",
        "5:15: budgets[1].burst is not supported yet by lettafleet (remove `burst:` for now)",
    ]


def test_a_plugins_note_is_reported_at_its_line_and_stops_nothing(write_fleet):
    path = write_fleet(GUARDED.replace("quotas:", "budgets:") + "  - {name: b, legacy: true}\n")
    fleet = load_fleet(path, get_plugin_manager(extra_plugins=[Cautious()]))
    assert [f"{d.line}:{d.column}: {d.message}" for d in fleet.notes if "legacy" in d.message] == [
        "4:15: note: legacy is ignored"
    ]


@respx.mock
def test_a_handlers_preflight_stops_the_plan_and_its_diff_decides_the_change(write_fleet):
    respx.get(f"{BASE}/v1/models/").respond(json=[{"handle": "m"}])
    respx.get(f"{BASE}/v1/quota-limit/").respond(json={"most": 5})
    respx.get(url__startswith=f"{BASE}/v1/").respond(json=[])
    manager = get_plugin_manager(extra_plugins=[Guarded()])
    with LettaClient(BASE) as client:
        refused = load_fleet(write_fleet(GUARDED + "  - {name: q, limit: 9}\n"), manager)
        with pytest.raises(FleetError, match="the server allows at most 5"):
            plan_fleet(refused, client, manager)
        plan = plan_fleet(load_fleet(write_fleet(GUARDED + "  - {name: q, limit: 3}\n"), manager), client, manager)
    [quota] = [change for change in plan.changes if change.kind == "quota"]
    assert (quota.action, quota.drift) == (Action.NO_OP, "quotas change only by hand")


@respx.mock
def test_a_handlers_adopt_steps_are_sent_by_import_beside_the_built_in_ones():
    agent = {"id": "agent-1", "name": "a", "metadata": {"team": "x"}, "blocks": [], "tags": []}
    respx.get(f"{BASE}/v1/agents/").respond(json=[agent])
    patches = respx.patch(url__startswith=f"{BASE}/v1/").respond(json={})
    manager = get_plugin_manager(extra_plugins=[Guarded()])
    with LettaClient(BASE) as client:
        reader = LiveReader(client)
        try:
            steps = adoptions(manager, reader, [agent])
        finally:
            reader.close()
        mark_adopted(client, steps)
    sent = {call.request.url.path: json.loads(call.request.content) for call in patches.calls}
    assert sent == {
        "/v1/agents/agent-1": {"metadata": {"team": "x", "managed_by": "lettafleet"}},
        "/v1/quotas/agent-1": {"owner": "lettafleet"},
    }


def backend_example() -> str:
    section = DOCS.split("## Writing a backend", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_the_backend_example_claims_its_schemes_and_its_table_refuses_at_the_line(write_fleet):
    module = types.ModuleType("my_backend")
    module.MyClient = lambda url: ("a client of", url)  # the protocol's own client, whatever the plugin makes
    exec(compile(backend_example(), "docs/plugins.md", "exec"), module.__dict__)
    manager = get_plugin_manager(extra_plugins=[module])
    fleet = load_fleet(
        write_fleet(FLEET.replace('    notes:\n      - {name: hours, text: "9 to 5"}', "    archives: [{name: kb}]")),
        manager,
    )

    backend = manager.backend_for("myletta+tls://fleet.example")
    with pytest.raises(FleetError) as refused:
        check_capabilities(fleet, manager, backend)

    assert backend.name == "My Letta"
    assert backend.connect(ServerSettings("myletta://x")) == ("a client of", "myletta://x")
    assert [str(d).split(": ", 1)[1] for d in refused.value.diagnostics] == [
        "archives: the My Letta backend has no archives (remove `archives`)"
    ]
