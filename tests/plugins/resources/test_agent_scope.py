"""A plan on a server holding many more agents than the fleet declares reads only the fleet's agents (by name, and a
named fleet's by its ownership tag): its requests depend on the fleet, not on the server, and it still sees what
reading everything showed (duplicates by name, another fleet's agent, a named fleet's dropped agents)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

import lettafleet.core.cli.fleet as commands
from lettafleet.core import (
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    hookimpl,
    mapping_list,
    string,
)
from lettafleet.core.cli.app import main
from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.plugins.backends.letta_v1.reads import AGENTS
from tests.fakes.letta_api import BASE_URL
from tests.plugins.resources.conftest import FleetRun

OWNED = {"managed_by": "lettafleet", "fleet": "prod"}
TAG = "lettafleet-fleet:prod"


def fleet_of(count: int, *, name: str | None = "prod", conversations: bool = True) -> str:
    lines = [f"fleet: {name}"] if name else []
    lines.append("agents:")
    for index in range(count):
        lines += [
            f"  - name: agent-{index}",
            "    llm_config: {model: letta/letta-free}",
            "    embedding: letta/letta-free",
            "    system_prompt: {value: You help.}",
            "    tags: [team]",
        ]
        if conversations:
            lines.append('    conversations: [{summary: "Ticket A"}]')
    return "\n".join(lines) + "\n"


def others(letta, count: int) -> None:
    """Agents of other applications on the same server."""
    for index in range(count):
        letta.add_agent(f"someone-else-{index}", managed=False)


def requests_of_plan(fleet, letta, text: str) -> int:
    letta.reads.clear()
    letta.queries.clear()
    fleet.plan(text)
    return len(letta.reads)


def applied(fleet, text: str) -> None:
    assert fleet.apply(fleet.plan(text)).ok


def changes(fleet, text: str) -> dict[str, str]:
    """The plan's changes by address, no-ops left out: what `plan` lists."""
    return {address: action for address, action in fleet.actions(fleet.plan(text)).items() if action != "no-op"}


@pytest.mark.parametrize("size", [10, 20])
def test_a_no_change_plan_costs_the_same_requests_among_500_or_2000_other_agents(fleet, letta, size):
    text = fleet_of(size)
    applied(fleet, text)
    others(letta, 500)
    among_500 = requests_of_plan(fleet, letta, text)
    others(letta, 1500)
    among_2000 = requests_of_plan(fleet, letta, text)

    assert among_2000 == among_500
    # The count, a read of each name and of the fleet's tag, each agent's conversations, the two model lists, the
    # server's tools (two pages: a named fleet looks for the tools it made), folders, and the agents carrying the
    # fleet's template mark (a named fleet looks for what a template it no longer declares left).
    assert among_2000 <= 2 * size + 8
    assert changes(fleet, text) == {}


def test_a_plan_of_ten_agents_without_conversations_among_2000_others_costs_at_most_18_requests(fleet, letta):
    text = fleet_of(10, conversations=False)
    applied(fleet, text)
    others(letta, 2000)

    # Reading every agent cost 2,000 / 250 pages and more: now the count, 10 names, the tag, the template mark, and
    # 5 reads that do not depend on agents (models, embedding models, tools twice, folders).
    assert requests_of_plan(fleet, letta, text) <= 18
    assert not [path for path, query in letta.queries if whole(path, query)]


def test_among_many_agents_no_read_lists_every_agent_or_every_conversation(fleet, letta):
    text = fleet_of(3)
    applied(fleet, text)
    others(letta, 1000)
    letta.queries.clear()

    fleet.plan(text)

    assert [path for path, query in letta.queries if whole(path, query)] == []


def whole(path: str, query: dict[str, list[str]]) -> bool:
    """A read of every agent or every conversation on the server."""
    if path == "/v1/agents/":
        return not {"name", "tags"} & set(query)
    return path == "/v1/conversations/" and "agent_id" not in query


def test_among_many_agents_a_second_agent_of_a_declared_name_is_still_reported(fleet, letta):
    text = fleet_of(2)
    applied(fleet, text)
    others(letta, 1000)
    letta.add_agent("agent-1", managed=False)

    plan = fleet.plan(text)

    assert [ambiguity.address for ambiguity in plan.ambiguities] == ["agent.agent-1"]


def test_among_many_agents_a_declared_name_another_fleet_holds_is_refused(fleet, letta):
    others(letta, 1000)
    letta.add_agent("agent-0", metadata={"managed_by": "lettafleet", "fleet": "staging"})

    with pytest.raises(FleetError, match="belongs to fleet 'staging'"):
        fleet.plan(fleet_of(1))


def test_among_many_agents_a_named_fleets_dropped_agent_is_found_by_its_tag_and_removed(fleet, letta):
    applied(fleet, fleet_of(3))
    others(letta, 1000)

    plan = fleet.plan(fleet_of(2))

    assert fleet.actions(plan)["agent.agent-2"] == "delete"


def test_a_named_fleets_agents_carry_its_ownership_tag_and_plans_never_show_it(fleet, letta):
    applied(fleet, fleet_of(1, conversations=False))

    assert letta.agent_named("agent-0")["tags"] == ["team", TAG]
    assert changes(fleet, fleet_of(1, conversations=False)) == {}
    retagged = fleet.plan(fleet_of(1, conversations=False).replace("tags: [team]", "tags: [other]"))
    [change] = retagged.changes
    assert (change.before["tags"], change.after["tags"]) == (["team"], ["other"])
    fleet.apply(retagged)
    assert letta.agent_named("agent-0")["tags"] == ["other", TAG]


def test_an_agent_marked_before_the_ownership_tag_gets_it_at_the_next_apply(fleet, letta):
    letta.add_agent("agent-0", metadata=OWNED, tags=["team"], system="You help.")

    plan = fleet.plan(fleet_of(1, conversations=False))

    assert fleet.actions(plan) == {"agent.agent-0": "update"}
    fleet.apply(plan)
    assert letta.agent_named("agent-0")["tags"] == ["team", TAG]
    assert changes(fleet, fleet_of(1, conversations=False)) == {}


def test_among_many_agents_a_dropped_agent_marked_before_the_ownership_tag_is_still_found(fleet, letta):
    letta.add_agent("agent-0", metadata=OWNED, tags=["team"], system="You help.")
    letta.add_agent("agent-1", metadata=OWNED, tags=["team"], system="You help.")
    others(letta, 1000)

    plan = fleet.plan(fleet_of(1, conversations=False))

    assert fleet.actions(plan) == {"agent.agent-0": "update", "agent.agent-1": "delete"}


def test_the_ownership_tag_cannot_be_declared(fleet):
    with pytest.raises(FleetError, match="the mark lettafleet puts on a named fleet's agents"):
        fleet.plan(fleet_of(1).replace("tags: [team]", f"tags: ['{TAG}']"))


def test_a_plan_reads_the_servers_agents_while_its_fleet_file_is_parsed(fleet, letta, write_fleet, monkeypatch):
    path = write_fleet(fleet_of(2))
    parse = commands.load_fleet
    seen_before_parsing = []

    def parsed_once_agents_are_asked_for(*args, **kwargs):
        deadline = time.monotonic() + 10
        while "/v1/agents/" not in letta.reads and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_before_parsing.append("/v1/agents/" in letta.reads)
        return parse(*args, **kwargs)

    monkeypatch.setattr(commands, "load_fleet", parsed_once_agents_are_asked_for)
    result = CliRunner().invoke(main, ["plan", "-f", str(path)], env={"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""})

    assert result.exit_code == 0, result.output
    assert seen_before_parsing == [True]


class Watchers:
    """A third-party plugin: `watchers:` each name an agent of the server, which need not be the fleet's. Its
    handler says which agents it needs read (`agent_names`), so a scoped plan still reads them."""

    def __init__(self, names_agents: bool) -> None:
        self.names_agents = names_agents

    @hookimpl
    def lettafleet_kinds(self):
        return [ResourceKind("watcher", "watchers", handler=WatcherHandler(self.names_agents))]

    @hookimpl
    def lettafleet_schema(self):
        return [SchemaFragment({"watchers": mapping_list({"name": string(required=True), "agent": string()})})]


class WatcherHandler(ResourceHandler):
    def __init__(self, names_agents: bool) -> None:
        self.names_agents = names_agents

    def desired(self, fleet):
        for watcher in fleet.data.get("watchers", []):
            yield Resource(
                address_of("watcher", watcher["name"]), "watcher", watcher["name"], {"agent": watcher["agent"]}
            )

    def agent_names(self, desired):
        return [resource.attributes["agent"] for resource in desired] if self.names_agents else []

    def live_reads(self, desired):
        return [AGENTS]

    def read_live(self, reader, desired, fleet):
        present = {agent["name"] for agent in reader.list_all(AGENTS[0], **AGENTS[1])}
        return [
            Resource(resource.address, "watcher", resource.name, dict(resource.attributes), id=resource.name)
            for resource in desired
            if resource.attributes["agent"] in present
        ]


@pytest.mark.parametrize("names_agents", [True, False])
def test_among_many_agents_a_plugin_reads_the_agents_its_agent_names_hook_names(letta, write_fleet, names_agents):
    fleet = FleetRun(letta, get_plugin_manager(extra_plugins=[Watchers(names_agents)]), write_fleet)
    others(letta, 1000)
    letta.add_agent("made-by-the-app", managed=False)
    text = fleet_of(1) + "watchers:\n  - name: w\n    agent: made-by-the-app\n"

    planned = changes(fleet, text)

    # Named, the app's agent is read and the watcher is found in place; unnamed, the scoped plan never reads it.
    assert ("watcher.w" in planned) is not names_agents
