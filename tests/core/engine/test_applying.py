"""Apply runs a plan's changes in dependency order with bounded concurrency, and a failure stops only what
depends on it. These tests use a throwaway plugin and a client that is never called."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from lettafleet.core import ApplyError, Recorded, ResourceHandler, ResourceKind, hookimpl
from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.core.engine.records import with_record_repair
from lettafleet.core.letta.connection import LettaAPIError
from lettafleet.plugins.backends.letta_v1.client import LettaClient


class KindsOf:
    """A throwaway plugin declaring `kinds`, each handled by `handler`."""

    def __init__(self, handler, *kinds):
        self.handler, self.kinds = handler, kinds or ("thing",)

    @hookimpl
    def lettafleet_kinds(self):
        return [ResourceKind(kind, f"{kind}s", handler=self.handler) for kind in self.kinds]


class Recorder(ResourceHandler):
    """Applies changes of kind `thing` by recording them; fails the addresses it is told to."""

    def __init__(self, failing=(), delay=0.0):
        self.order: list[str] = []
        self.failing = set(failing)
        self.delay = delay
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def apply(self, change, session):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
            self.order.append(change.address)
        if change.address in self.failing:
            raise ApplyError("server said no")
        session.record_id(change.address, f"id-{change.address}")
        return {"id": f"id-{change.address}"}


def thing(address, action=Action.CREATE, parent=None, depends_on=()):
    return Change(address, "thing", address, action, None, {"n": 1}, parent=parent, depends_on=depends_on)


@pytest.fixture
def client():
    with LettaClient("http://127.0.0.1:9") as client:  # never contacted: the recorder does the work
        yield client


def run(changes, recorder, client, parallelism=8):
    manager = get_plugin_manager(extra_plugins=[KindsOf(recorder)])
    return apply_plan(Plan.build("f", "s", changes), client, manager, parallelism=parallelism)


def test_dependencies_and_parents_are_applied_first(client):
    recorder = Recorder()
    report = run([thing("a.child", parent="a"), thing("b", depends_on=("a",)), thing("a")], recorder, client)
    assert report.ok
    assert recorder.order.index("a") < recorder.order.index("a.child")
    assert recorder.order.index("a") < recorder.order.index("b")


def test_a_failure_skips_its_dependents_and_independent_changes_go_on(client):
    recorder = Recorder(failing={"a"})
    report = run([thing("a"), thing("a.child", parent="a"), thing("z")], recorder, client)
    status = {result.address: result.status for result in report.results}
    assert status == {"a": "failed", "a.child": "skipped", "z": "applied"}
    assert "server said no" in next(r.message for r in report.results if r.address == "a")
    assert "a.child" not in recorder.order


def test_no_op_changes_are_not_applied(client):
    recorder = Recorder()
    report = run([thing("a", Action.NO_OP)], recorder, client)
    assert report.results == () and recorder.order == []


def test_parallelism_bounds_how_many_changes_run_at_once(client):
    recorder = Recorder(delay=0.05)
    report = run([thing(f"t{i}") for i in range(12)], recorder, client, parallelism=3)
    assert report.ok and len(recorder.order) == 12
    assert recorder.most_at_once == 3


class Rider(ResourceHandler):
    """Creates `thing` parents; lets `part` children ride along in the parent's request."""

    def __init__(self, land=True):
        self.bodies = []
        self.land = land

    def apply(self, change, session):
        body = {"name": change.name}
        session.client.post = lambda path, json=None, **params: (self.bodies.append(json), {"id": "t1"})[1]
        return session.create(change, "/things/", body)

    def ride_along(self, parent, child, request, session):
        request.setdefault("parts", []).append(child.name)
        return lambda answer: None if self.land else "the part did not land"


def test_children_can_ride_along_in_their_parents_create_request(client):
    rider = Rider()
    part = Change("t.part.p1", "part", "p1", Action.CREATE, None, {}, parent="t")
    manager = get_plugin_manager(extra_plugins=[KindsOf(rider, "thing", "part")])
    report = apply_plan(Plan.build("f", "s", [thing("t"), part]), client, manager)
    assert rider.bodies == [{"name": "t", "parts": ["p1"]}]
    assert {r.address: r.status for r in report.results} == {"t": "applied", "t.part.p1": "applied"}


def test_a_rider_that_did_not_land_is_reported_failed(client):
    rider = Rider(land=False)
    part = Change("t.part.p1", "part", "p1", Action.CREATE, None, {}, parent="t")
    manager = get_plugin_manager(extra_plugins=[KindsOf(rider, "thing", "part")])
    report = apply_plan(Plan.build("f", "s", [thing("t"), part]), client, manager)
    assert [(r.address, r.message) for r in report.failed] == [("t.part.p1", "the part did not land")]


class Leaky(ResourceHandler):
    """A handler whose server error repeats the secret it was sent."""

    def apply(self, change, session):
        raise LettaAPIError("PATCH", "/v1/agents/a", 500, f"cannot store {change.after['token']}")


def test_a_server_error_that_repeats_a_sensitive_value_is_masked(client):
    change = Change(
        "agent.a",
        "thing",
        "a",
        Action.UPDATE,
        {"token": "old-token-1"},
        {"token": "new-token-2"},
        sensitive=frozenset({"token"}),
    )
    manager = get_plugin_manager(extra_plugins=[KindsOf(Leaky())])

    report = apply_plan(Plan.build("f", "s", [change]), client, manager)

    [result] = report.results
    assert result.status == "failed" and result.message == "PATCH /v1/agents/a answered 500: cannot store ***"


class StopsAfter(Recorder):
    """A recorder that sets the apply's stop event once `count` changes have started (as a first Ctrl-C would)."""

    def __init__(self, count, stop, delay=0.05, stuck=()):
        super().__init__(delay=delay)
        self.count, self.stop, self.stuck, self.started = count, stop, set(stuck), 0

    def apply(self, change, session):
        with self.lock:
            self.started += 1
            if self.started >= self.count:
                self.stop.set()
        if change.address in self.stuck:
            time.sleep(2.0)  # a request the server is slow to answer
        return Recorder.apply(self, change, session)


def run_stopped(changes, recorder, client, parallelism, grace=60.0):
    manager = get_plugin_manager(extra_plugins=[KindsOf(recorder)])
    plan = Plan.build("f", "s", changes)
    return apply_plan(plan, client, manager, parallelism=parallelism, stop=recorder.stop, in_flight_grace=grace)


def test_a_stopped_apply_starts_no_more_changes_and_lets_those_in_flight_finish(client):
    recorder = StopsAfter(3, threading.Event())
    report = run_stopped([thing(f"t{n:02d}") for n in range(20)], recorder, client, parallelism=2)

    assert report.interrupted and not report.ok
    assert recorder.started <= 4  # the third start stopped it; at most the other one in flight also started
    assert report.count("applied") == recorder.started  # every started change finished and is reported
    assert len(report.not_attempted) == 20 - recorder.started
    assert all(r.message == "not attempted: apply was interrupted" for r in report.not_attempted)


def test_a_change_still_in_flight_after_the_grace_is_reported_failed_with_an_unknown_outcome(client):
    recorder = StopsAfter(1, threading.Event(), stuck={"slow"})
    started = time.monotonic()
    report = run_stopped([thing("slow"), thing("later")], recorder, client, parallelism=1, grace=0.2)

    assert time.monotonic() - started < 1.5  # did not wait the 2 s the stuck change takes
    status = {result.address: (result.status, result.message) for result in report.results}
    assert status["slow"][0] == "failed" and "may or may not have landed" in status["slow"][1]
    assert status["later"] == ("skipped", "not attempted: apply was interrupted")
    assert report.interrupted and report.abandoned == 1


def test_an_apply_that_is_never_stopped_is_not_interrupted(client):
    report = run([thing(f"t{n}") for n in range(5)], Recorder(), client, parallelism=2)
    assert report.ok and not report.interrupted and report.not_attempted == []


def test_children_that_rode_along_are_reported_with_their_parent_even_after_a_stop(client):
    stop = threading.Event()

    class StopsOnCreate(Rider):
        def apply(self, change, session):
            answer = Rider.apply(self, change, session)
            stop.set()  # Ctrl-C just after the parent's create landed, children and all
            return answer

    parts = [Change(f"t.part.p{n}", "part", f"p{n}", Action.CREATE, None, {}, parent="t") for n in (1, 2)]
    manager = get_plugin_manager(extra_plugins=[KindsOf(StopsOnCreate(), "thing", "part")])
    plan = Plan.build("f", "s", [thing("a"), thing("t"), *parts])
    report = apply_plan(plan, client, manager, stop=stop, parallelism=1)  # `t` goes first, then the stop

    status = {result.address: result.status for result in report.results}
    assert status == {"a": "skipped", "t": "applied", "t.part.p1": "applied", "t.part.p2": "applied"}
    assert [result.address for result in report.not_attempted] == ["a"]


class Batcher(Recorder):
    """Sends every `thing` in the first one's request (as one git push takes an agent's files), then is stopped."""

    def __init__(self, stop, problem=None):
        super().__init__()
        self.stop, self.problem, self.requests = stop, problem, 0

    def apply(self, change, session):
        self.requests += 1
        for sibling in session.plan.changes:
            if sibling.address != change.address:
                session.record_id(sibling.address, f"id-{sibling.address}")
                session.sent_with(sibling.address, change.address, self.problem)
        self.stop.set()  # Ctrl-C while the one request was in flight
        if self.problem:
            raise ApplyError(self.problem)


@pytest.mark.parametrize("problem", [None, "the push was refused"])
def test_changes_another_changes_request_carried_are_reported_as_it_went_even_after_a_stop(client, problem):
    stop = threading.Event()
    batcher = Batcher(stop, problem)
    manager = get_plugin_manager(extra_plugins=[KindsOf(batcher)])
    plan = Plan.build("f", "s", [thing(f"t{n}") for n in range(3)])
    report = apply_plan(plan, client, manager, stop=stop, parallelism=1)

    assert batcher.requests == 1 and report.interrupted and report.not_attempted == []
    assert {result.status for result in report.results} == {"failed" if problem else "applied"}
    carried = [result.message for result in report.results if result.message.startswith("sent with")]
    assert len(carried) == (0 if problem else 2)


def test_a_change_the_server_answered_with_no_body_is_applied(client):
    """Letta answers some writes with 204 and no body (attaching a tool): that is a success, never 'not mine'."""

    class Attacher(ResourceHandler):
        def apply(self, change, session):
            return None

    manager = get_plugin_manager(extra_plugins=[KindsOf(Attacher(), "link")])
    change = Change("thing.a.link.t", "link", "t", Action.CREATE, None, {"attached": True})

    [result] = apply_plan(Plan.build("f", "s", [change]), client, manager).results

    assert (result.status, result.message) == ("applied", "")


class Shelf(Recorder):
    """Keeps records of what is made under it (`thing` children), as the agent handler does in metadata."""

    records_children = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.records: dict[str, list] = {}

    def remember(self, change, record, session):
        self.records[change.address] = [(entry.address, entry.id) for entry in record]


def test_a_parent_records_the_children_that_were_made_and_not_those_that_failed(client):
    shelf = Shelf(failing={"s.thing.b"})
    changes = [thing("s"), thing("s.thing.a", parent="s"), thing("s.thing.b", parent="s")]
    report = run(changes, shelf, client)
    assert [r.address for r in report.failed] == ["s.thing.b"]
    assert shelf.records == {"s": [("thing.a", "id-s.thing.a")]}


def test_removals_run_children_first_and_a_held_one_is_not_applied_yet_stays_recorded(client):
    shelf = Shelf()
    recorded = (Recorded("thing.a", "thing", "id-a"), Recorded("thing.b", "thing", "id-b"))
    parent = Change("s", "thing", "s", Action.NO_OP, {"n": 1}, {"n": 1}, id="id-s", record=recorded)
    removed = Change("s.thing.a", "thing", "a", Action.DELETE, {"n": 1}, None, parent="s", id="id-a")
    kept = replace(removed, address="s.thing.b", name="b", id="id-b", held="prune")
    gone = Change("t", "thing", "t", Action.DELETE, {"n": 1}, None, id="id-t")
    inside = Change("t.thing.c", "thing", "c", Action.DELETE, {"n": 1}, None, parent="t", id="id-c")
    report = run([parent, removed, kept, gone, inside], shelf, client)
    assert report.ok and {r.address for r in report.results} == {"s.thing.a", "t", "t.thing.c"}
    assert shelf.order.index("t.thing.c") < shelf.order.index("t")
    assert shelf.records == {"s": [("thing.b", "id-b")]}  # the removed child left the record, the held one stayed


class ForgetfulShelf(Shelf):
    """A shelf whose records cannot be written (the server refused, or the connection was lost)."""

    def remember(self, change, record, session):
        raise ApplyError("the server did not answer the record's write")


def test_a_record_that_fails_for_a_parent_nothing_else_changed_is_its_failure_not_a_crash(client):
    parent = Change("s", "thing", "s", Action.NO_OP, {"n": 1}, {"n": 1}, id="id-s", record=())
    child = thing("s.thing.a", parent="s")
    seen = []
    manager = get_plugin_manager(extra_plugins=[KindsOf(ForgetfulShelf())])

    report = apply_plan(Plan.build("f", "s", [parent, child]), client, manager, on_result=lambda c, r: seen.append(r))

    assert [(r.address, r.status) for r in report.failed] == [("s", "failed")]
    assert "did not answer the record's write" in report.failed[0].message
    assert ("s", "failed") in [(r.address, r.status) for r in seen]


def test_a_record_forgets_what_the_plan_found_gone_and_keeps_the_rest(client):
    shelf = Shelf()
    recorded = (Recorded("thing.a", "thing", "id-a"), Recorded("thing.b", "thing", "id-b"))
    parent = Change("s", "thing", "s", Action.NO_OP, {"n": 1}, {"n": 1}, id="id-s", record=recorded)
    repaired = with_record_repair(replace(parent, forgotten=frozenset({"thing.b"})), [])

    report = run([repaired], shelf, client)

    assert repaired.action is Action.UPDATE and "out of date" in repaired.detail
    assert report.ok and shelf.records == {"s": [("thing.a", "id-a")]}


class Waves(Recorder):
    """A recorder whose changes come in waves: the number after `w` in their address (`w2.a`)."""

    def wave(self, change):
        return int(change.address.split(".")[0][1:])


def test_a_wave_starts_only_once_every_change_of_the_waves_before_it_has_run(client):
    waves = Waves(delay=0.01)
    changes = [thing(f"w{wave}.{index}") for wave in (2, 1, 0) for index in range(4)]

    report = run(changes, waves, client, parallelism=8)

    assert report.ok
    assert [address.split(".")[0] for address in waves.order] == ["w0"] * 4 + ["w1"] * 4 + ["w2"] * 4


def test_a_failure_in_a_wave_leaves_the_later_waves_not_attempted(client):
    waves = Waves(failing={"w1.0"})
    changes = [thing(f"w{wave}.{index}") for wave in (0, 1, 2) for index in range(3)]

    report = run(changes, waves, client)

    status = {result.address: result.status for result in report.results}
    assert [status[f"w1.{i}"] for i in range(3)] == ["failed", "applied", "applied"]  # its own wave finishes
    assert {status[f"w2.{i}"] for i in range(3)} == {"skipped"}
    assert not [address for address in waves.order if address.startswith("w2")]
    [message] = {r.message for r in report.results if r.address.startswith("w2")}
    assert message.startswith("not attempted: 1 change(s) before this batch did not succeed")
