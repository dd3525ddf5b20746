"""plan_fleet checks the fleet against its backend's capability table before any read, whoever calls it (the CLI,
the GitHub review loop, a program using the Python API): what the backend lacks stops the plan at its line."""

from __future__ import annotations

import pytest
import respx

from lettafleet.core import Backend, Capabilities, FleetError, Lacks, NoEffect, hookimpl
from lettafleet.core.engine.capabilities import check_capabilities
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient

BASE = "http://letta.test"
FLEET = """
agents:
  - name: support
    llm_config: {model: openai/gpt-4o-mini}
    system_prompt: {value: You help.}
    conversations:
      - summary: Ticket 1
"""


class NoConversations:
    @hookimpl
    def lettafleet_backends(self):
        lacks = {"conversation": Lacks("keeps no conversations", "remove `conversations`")}
        return [Backend("Stand-in", ("standin",), lambda settings: None, Capabilities(lacks_kinds=lacks))]


def test_plan_fleet_refuses_what_the_clients_backend_lacks_at_its_line_before_any_read(write_fleet):
    manager = get_plugin_manager(extra_plugins=[NoConversations()])
    fleet = load_fleet(write_fleet(FLEET), manager)
    with respx.mock(base_url=BASE, assert_all_called=False) as mock, LettaClient(BASE) as client:
        client.base_url = "standin://fleet-host"  # a client of the stand-in backend, as its URL says
        with pytest.raises(FleetError) as refused:
            plan_fleet(fleet, client, manager)

    assert [str(d).split(":", 1)[1] for d in refused.value.diagnostics] == [
        "6:9: conversations: the Stand-in backend keeps no conversations (remove `conversations`)"
    ]
    assert mock.calls.call_count == 0


class NothingToDoForConversations:
    @hookimpl
    def lettafleet_backends(self):
        ignored = {"conversation": NoEffect("it has nothing to do for them", "the entry is accepted")}
        return [Backend("Stand-in", ("standin",), lambda settings: None, Capabilities(no_effect_kinds=ignored))]


def test_a_kind_the_backend_has_nothing_to_do_for_is_noted_at_each_resources_line_and_refused_nowhere(write_fleet):
    manager = get_plugin_manager(extra_plugins=[NothingToDoForConversations()])
    fleet = load_fleet(write_fleet(FLEET), manager)

    notes = check_capabilities(fleet, manager, manager.backend_for("standin://fleet-host"))

    assert [str(note).split(":", 1)[1] for note in notes] == [
        "6:9: note: conversation has no effect on the Stand-in backend: it has nothing to do for them "
        "(the entry is accepted)"
    ]
