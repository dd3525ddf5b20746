"""Apply: execute a plan's changes, and nothing else, in dependency order with bounded concurrency.

A change runs once everything it depends on has succeeded; when one fails, the changes that need it are
skipped and everything independent goes on. Removals run the other way round: what is inside a resource, or
depends on it, is removed before it. As soon as every change under a record-keeping resource has run, it gets its
record of what is made under it (`ResourceHandler.remember`), so an apply killed later loses no record. Children
created inside their parent's request ("riding along", for example a new agent's memory blocks) finish with it.

Last, the conversations of the agents whose system prompt or memory blocks this apply changed are recompiled
(`ResourceHandler.recompiles` says which), so that running conversations see the change; a conversation with
isolated block copies is left as it was (Letta would compile the agent's blocks over its copies). The agent's
record says a recompile is owed from before it starts until it is done, so a recompile that never happened (the
apply was killed, or its answer lost) is in the next plan and done by the next apply.

An apply can be stopped from outside (the CLI does on Ctrl-C) through a `StopSignal` (a `threading.Event`): no
change starts after it is set, the changes in flight finish (for a bounded time), the records of what landed are
written, and the rest is reported as not attempted (the recompiles it owes, as owed), except the changes another's
request carried (`ApplySession.sent_with`: a batch such as one git push for several files), reported as it went.

Changes may come in waves (`ResourceHandler.wave`, a rollout in batches): a wave starts once the one before has
run, and only if nothing failed so far; otherwise the later waves are reported as not attempted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from lettafleet.core.engine.backends import Backend, Recompiler
from lettafleet.core.engine.handlers import ApplyError, RideAlongCheck
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.engine.plugin_manager import FleetPlugins
from lettafleet.core.engine.records import RECOMPILE_FIELD, owes_recompile, record_after, without_bookkeeping
from lettafleet.core.letta.connection import Connection, LettaAPIError, LettaError
from lettafleet.core.letta.ownership import Owner, Recorded
from lettafleet.core.letta.pacing import PaceSummary, StopSignal

__all__ = ["ApplyError", "ApplyReport", "ApplySession", "ChangeResult", "Recompiled", "StopSignal", "apply_plan"]


@dataclass(frozen=True)
class ChangeResult:
    address: str
    action: Action
    status: str  # "applied", "failed" or "skipped"
    message: str = ""


@dataclass(frozen=True)
class Recompiled:
    """The recompile of one agent's conversations after the apply: how many, those left as they were because they
    have isolated block copies (`skipped`, their ids), and the failures (`error`)."""

    address: str
    conversations: int = 0
    error: str = ""
    skipped: tuple[str, ...] = ()


INTERRUPTED = "not attempted: apply was interrupted"
IN_FLIGHT_GRACE = 60.0  # seconds the changes in flight get to finish once an apply is stopped


@dataclass(frozen=True)
class ApplyReport:
    results: tuple[ChangeResult, ...]
    interrupted: bool = False  # stopped from outside (Ctrl-C, a lost lock) while it ran, whatever was left
    abandoned: int = 0  # changes still in flight when the apply gave up waiting for them (their threads run on)
    recompiled: tuple[Recompiled, ...] = ()  # the agents whose conversations were recompiled after the changes
    recompile_owed: tuple[str, ...] = ()  # agents whose recompile the stop left undone (their record says so)
    pace: PaceSummary | None = None  # the rate the apply's requests went at, refusals and pauses included
    ids: Mapping[str, str] = field(default_factory=dict)  # address -> server id, of every resource known or made

    @property
    def failed(self) -> list[ChangeResult]:
        return [result for result in self.results if result.status != "applied"]

    @property
    def ok(self) -> bool:
        return not self.failed and not any(agent.error for agent in self.recompiled) and not self.recompile_owed

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def not_attempted(self) -> list[ChangeResult]:
        """Changes never started because the apply was stopped (not those a failed dependency held back)."""
        return [result for result in self.results if result.status == "skipped" and result.message == INTERRUPTED]


class ApplySession:
    """What a handler's `apply` works with: the client, and the ids of resources known or just created."""

    def __init__(self, plan: Plan, client: Connection, manager: FleetPlugins, backend: Backend | None = None) -> None:
        self.plan = plan
        self.client = client
        self.owner = Owner(plan.owner)  # whose marks what this apply creates carries
        client.hide(*plan.sensitive_values())  # a server error that repeats one is masked
        self._manager = manager
        self.backend = backend or manager.backend_for(client.base_url)  # the one that speaks to this client
        self._lock = threading.Lock()
        self._changes = plan.by_address()
        self._ids = {change.address: change.id for change in plan.changes if change.id}
        self._carried: dict[str, str | None] = {}  # child address -> error message (None: landed)
        self._carriers: dict[str, str] = {}  # address -> the change whose request carried it (not its parent's)
        # address -> the metadata the server answered to its create request (only that: thousands of whole answers,
        # each with the relations the server puts in it, would hold hundreds of MB for the length of the apply)
        self._created: dict[str, dict[str, Any]] = {}

    def change_at(self, address: str) -> Change:
        """The plan's change at `address` (every desired resource has one, a no-op if nothing changes)."""
        return self._changes[address]

    def id_of(self, address: str) -> str:
        with self._lock:
            found = self._ids.get(address)
        if not found:
            raise ApplyError(f"{address} does not exist on the server yet")
        return found

    def known_ids(self) -> dict[str, str]:
        """Every resource's server id known now: those the plan found, and those this apply created."""
        with self._lock:
            return dict(self._ids)

    def has_id(self, address: str) -> bool:
        with self._lock:
            return address in self._ids

    def record_id(self, address: str, resource_id: str) -> None:
        with self._lock:
            self._ids[address] = resource_id

    def create(self, change: Change, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        """POST a new resource, letting its changing children ride along in the same request where their handler
        can (a child's handler may write what the request refers to first, such as a block to attach by id)."""
        return self.create_by(change, body, lambda request: self.client.post(path, json=request, **params))

    def create_by(
        self, change: Change, body: dict[str, Any], send: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """`create`, with the request made by `send` (given the body, once the children rode along): for a backend
        whose client is not addressed by paths."""
        checks: list[tuple[Change, RideAlongCheck]] = []
        for child in self.plan.children(change.address):
            if not child.changes_something:
                continue
            check = self._manager.handler(child.kind).ride_along(change, child, body, self)
            if check is not None:
                checks.append((child, check))
        answer = send(body)
        if isinstance(answer, dict) and answer.get("id"):
            self.record_id(change.address, answer["id"])
            with self._lock:
                self._created[change.address] = dict(answer.get("metadata") or {})
        for child, check in checks:
            outcome = check(answer)  # outside the lock: a check may record the id the server gave the child
            with self._lock:
                self._carried[child.address] = outcome
        return answer

    def intended_record(self, address: str) -> list[Recorded]:
        """The record `address` will carry once every planned change under it lands, what is still to be made
        named without an id: written before the changes (a new agent's create request carries it), it tells the
        next plan, should this apply be killed, which of the children it finds were made for the file."""
        parent = self.change_at(address)
        return record_after(
            parent,
            self.plan.children(address),
            lambda child: "skipped" if child.held else "applied",
            lambda child: None if child.action in (Action.CREATE, Action.REPLACE) else child.id,
            owed=False,
        )

    def created_metadata(self, address: str) -> Mapping[str, Any] | None:
        """The metadata the server answered to this apply's `create` of `address` (None: not created by this
        apply)."""
        with self._lock:
            return self._created.get(address)

    def delete(self, path: str, **params: Any) -> None:
        """DELETE a resource; one already gone (404) counts as deleted: a removal is done either way."""
        try:
            self.client.delete(path, **params)
        except LettaAPIError as error:
            if error.status != 404:
                raise

    def sent_with(self, address: str, carrier: str, problem: str | None = None) -> None:
        """`address` went to the server in the request `carrier` made for several changes (one commit, one set):
        it shares that request's outcome (`problem`: why it failed), is never sent again, and is reported so even
        when a stop comes before it starts."""
        with self._lock:
            self._carried[address] = self.client.mask(problem) if problem else None
            self._carriers[address] = carrier

    def carried_result(self, address: str) -> tuple[bool, str | None]:
        with self._lock:
            return address in self._carried, self._carried.get(address)

    def carrier_of(self, address: str) -> str | None:
        """The change whose request carried `address` (`sent_with`); None: its parent's create, or none."""
        with self._lock:
            return self._carriers.get(address)


def apply_plan(
    plan: Plan,
    client: Connection,
    manager: FleetPlugins,
    *,
    parallelism: int = 8,
    on_result: Callable[[Change, ChangeResult], None] | None = None,
    stop: StopSignal | None = None,
    in_flight_grace: float = IN_FLIGHT_GRACE,
    recompile: bool = True,
    backend: Backend | None = None,
) -> ApplyReport:
    """Apply the plan's changes, writing each record-keeping resource's record as soon as its subtree is done;
    once `stop` is set, start no more changes and report the rest as not attempted (the records of what landed
    are still written). Then, unless `recompile` is False or the apply was stopped, recompile the conversations
    of the agents whose prompt or blocks changed, as `backend` does (default: the one claiming the client's URL)."""
    stop = stop or threading.Event()
    paced = _paced(client, parallelism, stop)
    backend = backend or manager.backend_for(client.base_url)
    manager = manager.serving(backend)  # each kind routed to the handler of the backend it is applied on
    session = ApplySession(plan, client, manager, backend)
    run = _Run(plan, session, manager, on_result, recompile=recompile)
    run.write_intents(parallelism)
    abandoned = run.changes(stop, parallelism, in_flight_grace)
    run.records_left(parallelism, stopped=stop.is_set())
    recompiled: tuple[Recompiled, ...] = ()
    owed: tuple[str, ...] = ()
    if recompile:
        recompiled, owed = _recompile(run.recompile_targets(), run.session, parallelism, stop)
        run.recompiled(recompiled, parallelism)
    ordered = tuple(run.results[change.address] for change in plan.changes if change.address in run.results)
    return ApplyReport(
        ordered,
        interrupted=stop.is_set(),
        abandoned=abandoned,
        recompiled=recompiled,
        recompile_owed=owed,
        pace=paced(),
        ids=run.session.known_ids(),
    )


def _paced(client: Connection, parallelism: int, stop: StopSignal) -> Callable[[], PaceSummary]:
    """Pace the apply's requests (its changes and recompiles) through the client's pacer, at most `parallelism`
    at once, giving up a wait for the server when `stop` is set; returns what ends the measure of its rate."""
    client.pacer.at_most(parallelism)
    client.pacer.stops_with(stop)
    return client.pacer.measure()


def _names_what_is_to_be_made(record: Sequence[Recorded] | None, intended: Sequence[Recorded]) -> bool:
    """Whether `record` already names, without an id, every address `intended` is still to make (a create whose
    answer was lost left it so): writing the intent again would tell the next plan nothing new."""
    waiting = {entry.address for entry in record or () if entry.id is None}
    return all(entry.address in waiting for entry in intended if entry.id is None)


class _Run:
    """One apply's progress: which changes wait on which, their results, and the records still to write. A
    record-keeping resource's record is written once every change under it (and every change that owes its
    conversations a recompile) has a result."""

    def __init__(
        self,
        plan: Plan,
        session: ApplySession,
        manager: FleetPlugins,
        on_result: Callable[[Change, ChangeResult], None] | None,
        *,
        recompile: bool,
    ) -> None:
        self.plan, self.session, self.manager, self.on_result = plan, session, manager, on_result
        self.by_address = plan.by_address()
        self.todo = {change.address: change for change in plan.changes if change.changes_something}
        self.waiting_on = {address: _prerequisites(change, plan, self.todo) for address, change in self.todo.items()}
        self.dependents: dict[str, list[str]] = {}
        for address, prerequisites in self.waiting_on.items():
            for prerequisite in prerequisites:
                self.dependents.setdefault(prerequisite, []).append(address)
        self.results: dict[str, ChangeResult] = {}
        self.waves = {address: manager.handler(change.kind).wave(change) for address, change in self.todo.items()}
        self.wave = min(self.waves.values(), default=0)
        self.later: dict[int, list[str]] = {}  # wave -> its changes that are ready, held until their wave starts
        self.ready: list[str] = []
        for address, prerequisites in self.waiting_on.items():
            if not prerequisites:
                self.make_ready(address)
        self.recompiling = recompile
        self.causes = _recompile_causes(plan, self.todo, manager) if recompile else {}
        keepers = [c for c in plan.changes if manager.handler(c.kind).records_children and not c.removes]
        self.written: dict[str, Sequence[Recorded] | None] = {keeper.address: keeper.record for keeper in keepers}
        self.members: dict[str, set[str]] = {}  # keeper -> the changes its record waits for
        self.unfinished: dict[str, set[str]] = {}  # keeper -> those without a result yet
        self.member_of: dict[str, list[str]] = {}
        for keeper in keepers:
            subtree = [keeper.address, *(c.address for c in plan.descendants(keeper.address))]
            members = {a for a in subtree if a in self.todo} | (self.causes.get(keeper.address, set()) & set(self.todo))
            if members:
                self.members[keeper.address], self.unfinished[keeper.address] = members, set(members)
                for member in members:
                    self.member_of.setdefault(member, []).append(keeper.address)
        self.records_ready: list[str] = []
        self.recorded: set[str] = set()  # keepers whose record was written (or found right) by this apply

    # -- changes --------------------------------------------------------------------------------------------------

    def finish(self, address: str, result: ChangeResult) -> None:
        self.results[address] = result
        if self.on_result:  # a record that failed may be that of a parent nothing else changed (not in `todo`)
            self.on_result(self.todo.get(address) or self.by_address[address], result)
        for keeper in self.member_of.get(address, []):
            waiting = self.unfinished[keeper]
            if address in waiting:
                waiting.discard(address)
                if not waiting:
                    self.records_ready.append(keeper)
        for dependent in self.dependents.get(address, []):
            if dependent in self.results:
                continue
            if result.status != "applied":
                change = self.todo[dependent]
                message = f"not attempted: {address} did not succeed"
                self.finish(dependent, ChangeResult(dependent, change.action, "skipped", message))
                continue
            self.waiting_on[dependent].discard(address)
            if not self.waiting_on[dependent]:
                self.make_ready(dependent)

    def make_ready(self, address: str) -> None:
        """`address` may start: now, or when its wave does."""
        if self.waves[address] <= self.wave:
            self.ready.append(address)
        else:
            self.later.setdefault(self.waves[address], []).append(address)

    def next_wave(self) -> None:
        """Start the next wave once everything before it has run; if anything failed, start no more."""
        failed = sum(1 for result in self.results.values() if result.status != "applied")
        if failed:
            message = f"not attempted: {failed} change(s) before this batch did not succeed, so the rollout stopped"
            for address in [address for wave in sorted(self.later) for address in self.later.pop(wave)]:
                if address not in self.results:
                    self.finish(address, ChangeResult(address, self.todo[address].action, "skipped", message))
            return
        self.wave = min(self.later)
        self.ready.extend(self.later.pop(self.wave))

    def changes(self, stop: StopSignal, parallelism: int, grace: float) -> int:
        """Run the changes (and the records whose subtree is done) until all are done or `stop` is set; then let
        those in flight finish for up to `grace` seconds. Returns how many were abandoned still in flight."""
        pool = ThreadPoolExecutor(max_workers=max(1, parallelism))
        running: dict[Future[ChangeResult], str] = {}
        records: set[Future[ChangeResult]] = set()
        abandoned = 0
        try:
            while ((self.ready or self.later) and not stop.is_set()) or self.records_ready or running:
                # Only as many jobs are handed to the pool as it runs at once, so a stop leaves none queued.
                while self.records_ready and len(running) < parallelism:
                    future = pool.submit(self.write_record, self.records_ready.pop())
                    records.add(future)
                    running[future] = ""
                while self.ready and len(running) < parallelism and not stop.is_set():
                    address = self.ready.pop()
                    if address not in self.results:
                        running[pool.submit(_apply_one, self.todo[address], self.session, self.manager)] = address
                if self.later and not (running or self.ready or self.records_ready or stop.is_set()):
                    self.next_wave()
                    continue
                for future in _wait_for_one(running, stop):
                    self._done(future, running.pop(future), records)
                if stop.is_set() and running:
                    abandoned = self._let_in_flight_finish(running, records, grace)
                    if abandoned:
                        break
        finally:
            pool.shutdown(wait=not abandoned, cancel_futures=True)
        _finish_carried(self.ready, self.results, self.todo, self.session, self.manager, self.finish)
        left = [address for address in self.todo if address not in self.results]
        reason = INTERRUPTED if stop.is_set() else "not attempted: dependency cycle"
        for address in left:  # never started: the apply was stopped, or they form a dependency cycle
            self.finish(address, ChangeResult(address, self.todo[address].action, "skipped", reason))
        self.records_ready.clear()  # those left by a stop are written by `records_left`
        return abandoned

    def _done(self, future: Future[ChangeResult], address: str, records: set[Future[ChangeResult]]) -> None:
        result = future.result()
        if future in records:
            records.discard(future)
            self._record_failed(result)
            return
        self.finish(address, result)

    def _record_failed(self, result: ChangeResult | None) -> None:
        """A record that was not written fails its resource's change (what is under it stands)."""
        if result is not None and result.status != "applied":
            self.results.pop(result.address, None)
            self.finish(result.address, result)

    def _let_in_flight_finish(
        self, running: dict[Future[ChangeResult], str], records: set[Future[ChangeResult]], grace: float
    ) -> int:
        """Wait up to `grace` seconds for the jobs in flight. Changes still running then are reported failed
        (their outcome is unknown; the next plan sees what landed) and abandoned: how many is returned."""
        deadline = time.monotonic() + grace
        while running:
            done, _ = wait(running, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                self._done(future, running.pop(future), records)
        abandoned = len(running)
        for address in [address for address in running.values() if address]:
            message = f"still in flight {grace:.0f} s after the stop: it may or may not have landed"
            self.finish(address, ChangeResult(address, self.todo[address].action, "failed", message))
        running.clear()
        return abandoned

    # -- records --------------------------------------------------------------------------------------------------

    def write_record(self, keeper: str) -> ChangeResult:
        """Write `keeper`'s record where it is not what the server has; a failure is its change's result."""
        self.recorded.add(keeper)
        parent = self.by_address[keeper]
        done = ChangeResult(keeper, parent.action, "applied")
        outcome = self.results.get(keeper)
        if not self.session.has_id(keeper) or (outcome is not None and outcome.status != "applied"):
            return done
        return self._remember(parent, self._owes(keeper)) or done

    def records_left(self, parallelism: int, *, stopped: bool) -> None:
        """The records not written during the changes: of the resources nothing changed under (they record the
        declared children that were there already: made by hand, or imported), or, after a stop, of those under
        which something landed though their subtree did not finish."""
        keepers = [
            keeper
            for keeper in self.written
            if keeper not in self.recorded
            and (not stopped or any(self._applied(member) for member in self.members.get(keeper, ())))
        ]
        if not keepers:
            return
        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            for result in list(pool.map(self.write_record, keepers)):
                self._record_failed(result)

    def write_intents(self, parallelism: int) -> None:
        """Before any change: the intended record of each existing resource under which something is to be made
        (`ApplySession.intended_record`), so that a kill before its record is written loses nothing."""
        keepers = [
            self.by_address[keeper]
            for keeper in self.written
            if self.by_address[keeper].id
            and any(
                c.action in (Action.CREATE, Action.REPLACE) and c.address in self.todo
                for c in self.plan.children(keeper)
            )
        ]
        if not keepers:
            return

        def intend(parent: Change) -> None:
            intended = self.session.intended_record(parent.address)
            if _names_what_is_to_be_made(parent.record, intended):
                return  # the record it carries already says what is to be made: the one after will do
            if set(intended) != set(parent.record or ()):
                try:
                    self.manager.handler(parent.kind).remember(parent, intended, self.session)
                except (ApplyError, LettaError):
                    return  # the record after the changes is written all the same
                self.written[parent.address] = intended

        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            list(pool.map(intend, keepers))

    def _remember(self, parent: Change, owed: bool) -> ChangeResult | None:
        """Write the record `parent` should carry now, if it differs from the one it carries; a failure as its
        change's result (the next plan shows the record stale, and the next apply writes it)."""
        record = record_after(
            parent,
            self.plan.children(parent.address),
            lambda child: self.results[child.address].status if child.address in self.results else "skipped",
            lambda child: self.session.id_of(child.address) if self.session.has_id(child.address) else child.id,
            owed=owed,
        )
        if set(record) == set(self.written.get(parent.address) or ()):
            return None
        try:
            self.manager.handler(parent.kind).remember(parent, record, self.session)
        except (ApplyError, LettaError) as error:
            message = f"its record of what is made under it was not written: {self.session.client.mask(str(error))}"
            return ChangeResult(parent.address, parent.action, "failed", message)
        self.written[parent.address] = record
        return None

    def _owes(self, keeper: str) -> bool:
        """Whether `keeper`'s conversations are owed a recompile: a change that needs one landed (or, without
        recompiling, one was owed already)."""
        if not self.recompiling:
            return owes_recompile(self.by_address[keeper].record)
        return any(self._applied(cause) for cause in self.causes.get(keeper, ()))

    def _applied(self, address: str) -> bool:
        result = self.results.get(address)
        return result is not None and result.status == "applied"

    # -- recompiles -----------------------------------------------------------------------------------------------

    def recompile_targets(self) -> list[str]:
        """The agents an applied change owes a recompile, each once, that exist."""
        return sorted(
            agent
            for agent, causes in self.causes.items()
            if self.session.has_id(agent) and any(self._applied(cause) for cause in causes)
        )

    def recompiled(self, recompiled: Sequence[Recompiled], parallelism: int) -> None:
        """Take the owed recompile out of the records of the agents whose recompile is done."""
        done = [r.address for r in recompiled if not r.error and owes_recompile(self.written.get(r.address))]
        if not done:
            return
        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            for result in list(pool.map(lambda address: self._remember(self.by_address[address], False), done)):
                self._record_failed(result)


def _recompile_causes(plan: Plan, todo: Mapping[str, Change], manager: FleetPlugins) -> dict[str, set[str]]:
    """For each agent whose conversations a change of the plan would owe a recompile, those changes (a record that
    says one is owed already is one of them)."""
    causes: dict[str, set[str]] = {}
    for address, change in todo.items():
        for agent in manager.handler(change.kind).recompiles(change, plan):
            causes.setdefault(agent, set()).add(address)
        if RECOMPILE_FIELD in (change.after or {}):
            causes.setdefault(address, set()).add(address)
    return causes


def _recompile(
    agents: Sequence[str], session: ApplySession, parallelism: int, stop: StopSignal
) -> tuple[tuple[Recompiled, ...], tuple[str, ...]]:
    """Recompile the conversations of `agents`, `parallelism` agents at a time, until `stop` is set. A failure is
    reported for its agent; the others go on. Returns what was recompiled and the agents still owed one."""
    recompiler = session.backend.recompiler
    if recompiler is None:  # the backend's conversations see their agent's changes as they are made
        return (), ()
    if not agents or stop.is_set():
        return (), tuple(agents)
    by_agent: dict[str, list[dict[str, Any]]] | None = None
    if len(agents) > 1:  # one list of every conversation costs less than one list per agent
        by_agent = {}
        try:
            for conversation in recompiler.every_conversation(session.client):
                by_agent.setdefault(conversation.get("agent_id") or "", []).append(conversation)
        except LettaError:
            by_agent = None  # each agent lists its own, and reports its own failure

    def one(address: str) -> Recompiled | None:
        return None if stop.is_set() else _recompile_one(address, session, recompiler, by_agent)

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        outcomes = list(zip(agents, pool.map(one, agents), strict=True))
    done = tuple(outcome for _, outcome in outcomes if outcome is not None)
    return done, tuple(address for address, outcome in outcomes if outcome is None)


def _recompile_one(
    address: str, session: ApplySession, recompiler: Recompiler, by_agent: Mapping[str, list[dict[str, Any]]] | None
) -> Recompiled:
    try:
        agent_id = session.id_of(address)
        known = None if by_agent is None else by_agent.get(agent_id, [])
        results = recompiler.recompile(session.client, agent_id, known)
    except (ApplyError, LettaError) as error:
        return Recompiled(address, error=session.client.mask(str(error)))
    failed = "; ".join(f"{result.conversation_id}: {result.error}" for result in results if result.error)
    return Recompiled(
        address,
        conversations=sum(1 for result in results if result.done),
        error=session.client.mask(failed),
        skipped=tuple(result.conversation_id for result in results if result.skipped),
    )


def _finish_carried(
    ready: list[str],
    results: Mapping[str, ChangeResult],
    todo: Mapping[str, Change],
    session: ApplySession,
    manager: FleetPlugins,
    finish: Callable[[str, ChangeResult], None],
) -> None:
    """Report the changes that rode along in another's request (a parent's create, a sibling's batch), which landed
    (or not) with it: after a stop they were never started, yet they need no request of their own to know their
    outcome."""
    while carried := [a for a in ready if a not in results and session.carried_result(a)[0]]:
        for address in carried:
            ready.remove(address)
            finish(address, _apply_one(todo[address], session, manager))


def _wait_for_one(running: Mapping[Future[ChangeResult], str], stop: StopSignal) -> set[Future[ChangeResult]]:
    """The changes that finished, as soon as one has, or as soon as the apply is stopped (then maybe none)."""
    while running:
        done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
        if done or stop.is_set():
            return done
    return set()


def _apply_one(change: Change, session: ApplySession, manager: FleetPlugins) -> ChangeResult:
    carried, problem = session.carried_result(change.address)
    if carried:
        status = "failed" if problem else "applied"
        carrier = session.carrier_of(change.address)
        landed = f"sent with {carrier}" if carrier else f"created with {change.parent}"
        return ChangeResult(change.address, change.action, status, problem or landed)
    own = without_bookkeeping(change)
    if own is None:  # only its record changes: written once its subtree is done
        return ChangeResult(change.address, change.action, "applied")
    try:
        manager.handler(change.kind).apply(own, session)
    except (ApplyError, LettaError) as error:
        return ChangeResult(change.address, change.action, "failed", session.client.mask(str(error)))
    return ChangeResult(change.address, change.action, "applied")


def _prerequisites(change: Change, plan: Plan, todo: Mapping[str, Change]) -> set[str]:
    """Addresses in this apply that must succeed first: the parent, the declared dependencies, and those of
    the children about to be created (they may ride along in this change's own request). A removal waits for
    the removals of what is inside it or depends on it, and for nothing else."""
    if change.removes:
        return {
            other.address
            for other in todo.values()
            if other.removes and (other.parent == change.address or change.address in other.depends_on)
        }
    wanted = set(change.depends_on)
    if change.parent:
        wanted.add(change.parent)
    if change.action in (Action.CREATE, Action.REPLACE):  # a replacement is created anew, children with it
        for child in plan.children(change.address):
            if child.changes_something:
                wanted.update(child.depends_on)
    own_subtree = change.address + "."
    return {
        address
        for address in wanted
        if address in todo
        and not todo[address].removes
        and not address.startswith(own_subtree)
        and address != change.address
    }
