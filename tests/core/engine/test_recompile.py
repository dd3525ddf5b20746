"""After apply, the conversations of the agents whose prompt or blocks changed are recompiled: once per agent,
only for changes that were applied, a failure reported for its agent, never one with isolated block copies. The
server is respx."""

from __future__ import annotations

import httpx
import respx

from lettafleet.core import ApplyError, Backend, ConversationRecompile, ResourceHandler, ResourceKind, hookimpl
from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.plugins.backends.letta_v1.client import LettaClient

BASE = "http://letta.test"


class Prompted(ResourceHandler):
    """Agents (`bot`) and their notes: a changed prompt or note recompiles the agent; note `broken` fails."""

    def apply(self, change, session):
        if change.name == "broken":
            raise ApplyError("server said no")
        session.record_id(change.address, f"agent-{change.name}")

    def recompiles(self, change, plan):
        if change.kind == "bot":
            return [change.address] if "system" in change.changed_fields() else []
        return [change.parent]


class Plugin:
    @hookimpl
    def lettafleet_kinds(self):
        handler = Prompted()
        return [ResourceKind("bot", "bots", handler=handler), ResourceKind("note", "notes", handler=handler)]


def bot(name, before, after):
    return Change(f"bot.{name}", "bot", name, Action.UPDATE, {"system": before}, {"system": after}, id=f"agent-{name}")


def note(agent, name):
    return Change(f"bot.{agent}.note.{name}", "note", name, Action.UPDATE, {"v": 1}, {"v": 2}, parent=f"bot.{agent}")


def applied(changes, mock, **options):
    manager = get_plugin_manager(extra_plugins=[Plugin()])
    with LettaClient(BASE, retries=0) as client:
        return apply_plan(Plan.build("f", BASE, changes), client, manager, **options)


def conversations(mock, agent, ids):
    mock.get("/v1/conversations/", params={"agent_id": agent}).respond(json=[{"id": i} for i in ids])
    return [mock.post(f"/v1/conversations/{i}/recompile").respond(json="compiled") for i in ids]


def test_each_changed_agent_has_its_conversations_recompiled_once():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        calls = conversations(mock, "agent-a", ["conv-1", "conv-2"])
        report = applied([bot("a", "old", "new"), note("a", "faq"), note("a", "tone")], mock)

    assert [route.call_count for route in calls] == [1, 1]
    assert [(r.address, r.conversations, r.error) for r in report.recompiled] == [("bot.a", 2, "")]
    assert report.ok


def test_agents_whose_changes_failed_or_did_not_touch_the_prompt_are_not_recompiled():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        listing = mock.get("/v1/conversations/")
        report = applied([Change("bot.b", "bot", "b", Action.UPDATE, {"d": 1}, {"d": 2}), note("c", "broken")], mock)

    assert listing.call_count == 0 and report.recompiled == ()


def test_skip_recompile_sends_no_request():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        listing = mock.get("/v1/conversations/")
        report = applied([bot("a", "old", "new")], mock, recompile=False)

    assert listing.call_count == 0 and report.recompiled == () and report.ok


def test_a_failed_recompile_is_reported_for_its_agent_and_the_others_go_on():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        own_lists = mock.get("/v1/conversations/", params={"agent_id": "agent-a"})
        # Several agents: one list of every conversation, not one per agent.
        every = [{"id": "conv-1", "agent_id": "agent-a"}, {"id": "conv-9", "agent_id": "agent-z"}]
        whole = mock.get("/v1/conversations/").respond(json=every)
        done = mock.post("/v1/conversations/conv-1/recompile").respond(json="compiled")
        mock.post("/v1/conversations/conv-9/recompile").mock(return_value=httpx.Response(500, json={"detail": "boom"}))
        report = applied([bot("a", "old", "new"), bot("z", "old", "new")], mock)

    assert own_lists.call_count == 0 and whole.call_count >= 1 and done.call_count == 1
    by_agent = {r.address: r for r in report.recompiled}
    assert by_agent["bot.a"].conversations == 1 and not by_agent["bot.a"].error
    assert "500" in by_agent["bot.z"].error and "conv-9" in by_agent["bot.z"].error
    assert not report.ok


def test_a_conversation_with_isolated_copies_is_left_as_it_was_and_reported():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        [plain] = conversations(mock, "agent-a", ["conv-1"])
        listing = [{"id": "conv-1"}, {"id": "conv-2", "isolated_block_ids": ["block-copy"]}]
        mock.get("/v1/conversations/", params={"agent_id": "agent-a"}).respond(json=listing)
        isolated = mock.post("/v1/conversations/conv-2/recompile").respond(json="compiled")
        report = applied([bot("a", "old", "new")], mock)

    assert plain.call_count == 1 and isolated.call_count == 0
    assert [(r.address, r.conversations, r.skipped, r.error) for r in report.recompiled] == [
        ("bot.a", 1, ("conv-2",), "")
    ]
    assert report.ok


class StandInConnection(LettaClient):
    """A client of a third-party backend: V1 requests to the stand-in, under a URL of the backend's own scheme."""

    def __init__(self) -> None:
        super().__init__(BASE, retries=0)
        self.base_url = "standin://fleet-host"


class RecordingRecompiler:
    def __init__(self) -> None:
        self.asked: list[tuple[str, object]] = []

    def every_conversation(self, connection):
        return [{"id": "c1", "agent_id": "agent-a"}, {"id": "c2", "agent_id": "agent-b"}]

    def recompile(self, connection, agent_id, conversations):
        self.asked.append((agent_id, conversations))
        return [ConversationRecompile(conversation["id"]) for conversation in conversations]


def test_a_third_party_backends_recompiler_rebuilds_the_conversations_and_core_sends_no_request_of_its_own():
    recompiler = RecordingRecompiler()

    class StandInBackend:
        @hookimpl
        def lettafleet_backends(self):
            return [Backend("Stand-in", ("standin",), lambda settings: StandInConnection(), recompiler=recompiler)]

    manager = get_plugin_manager(extra_plugins=[Plugin(), StandInBackend()])
    with respx.mock(base_url=BASE, assert_all_called=False) as mock, StandInConnection() as client:
        report = apply_plan(Plan.build("f", client.base_url, [bot("a", "o", "n"), bot("b", "o", "n")]), client, manager)

    assert sorted(recompiler.asked) == [
        ("agent-a", [{"id": "c1", "agent_id": "agent-a"}]),
        ("agent-b", [{"id": "c2", "agent_id": "agent-b"}]),
    ]
    assert [(r.address, r.conversations) for r in report.recompiled] == [("bot.a", 1), ("bot.b", 1)]
    assert mock.calls.call_count == 0
