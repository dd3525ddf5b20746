"""A backend that brings its own handlers: core routes each of its kinds to them for plan and apply, the handlers
the kinds' plugins register never see its client, and a kind it brings no handler for is refused at its line."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest
import respx

from lettafleet.core import (
    Action,
    ApplySession,
    Backend,
    Change,
    FleetError,
    LiveReader,
    Resource,
    ResourceHandler,
    hookimpl,
)
from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.resources.agents import AGENT, declared_agents

BASE = "http://letta.test"
AGENTS_ONLY = """
agents:
  - name: support
    llm_config: {model: openai/gpt-4o-mini}
    system_prompt: {value: You help.}
"""


class StandInAgents(ResourceHandler):
    """The stand-in backend's agents: none live, every declared one created, each call noted."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, Action]] = []

    def desired(self, fleet):
        for agent in declared_agents(fleet):
            yield Resource(agent.address, AGENT, agent.name, {"prompt": "x"}, source=agent.at)

    def read_live(self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]) -> Iterable:
        return ()

    def apply(self, change: Change, session: ApplySession):
        self.applied.append((change.address, change.action))
        return {"id": "agent-standin-1"}


class StandInBackend:
    def __init__(self, handler: ResourceHandler) -> None:
        self.handler = handler

    @hookimpl
    def lettafleet_backends(self):
        return [Backend("Stand-in", ("standin",), lambda settings: None, handlers={AGENT: self.handler})]


def standin_client() -> LettaClient:
    client = LettaClient(BASE, retries=0)
    client.base_url = "standin://fleet-host"  # a client of the stand-in backend, as its URL says
    return client


def test_a_backends_own_handler_plans_and_applies_its_kind_and_no_registered_handler_sends_a_request(write_fleet):
    handler = StandInAgents()
    manager = get_plugin_manager(extra_plugins=[StandInBackend(handler)])
    fleet = load_fleet(write_fleet(AGENTS_ONLY), manager)
    with respx.mock(base_url=BASE, assert_all_called=False) as mock, standin_client() as client:
        plan = plan_fleet(fleet, client, manager)
        report = apply_plan(plan, client, manager)

    assert [(c.address, c.action, c.after) for c in plan.changes] == [("agent.support", Action.CREATE, {"prompt": "x"})]
    assert handler.applied == [("agent.support", Action.CREATE)]
    assert report.ok
    assert mock.calls.call_count == 0  # the V1 handlers, registered for the same kinds, read nothing


def test_a_kind_the_backend_brings_no_handler_for_is_refused_at_its_line_before_any_read(write_fleet):
    manager = get_plugin_manager(extra_plugins=[StandInBackend(StandInAgents())])
    fleet = load_fleet(write_fleet(AGENTS_ONLY + "    conversations:\n      - summary: Ticket 1\n"), manager)
    with (
        respx.mock(base_url=BASE, assert_all_called=False) as mock,
        standin_client() as client,
        pytest.raises(FleetError) as refused,
    ):
        plan_fleet(fleet, client, manager)

    assert [str(d).split(":", 1)[1] for d in refused.value.diagnostics] == [
        "6:9: conversations: the Stand-in backend has no handler for conversation resources in lettafleet yet "
        "(remove the entry, or plan it on a server another backend speaks)"
    ]
    assert mock.calls.call_count == 0
