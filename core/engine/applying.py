"""Apply: execute a plan's changes, and nothing else, in dependency order with bounded concurrency.

A change runs once everything it depends on has succeeded; when one fails, the changes that need it are
skipped and everything independent goes on. Removals run the other way round: what is inside a resource, or
depends on it, is removed before it. Once every change has run, each record-keeping resource whose children
changed gets its record of what is made under it (`ResourceHandler.remember`). Children created inside their
parent's request ("riding along", for example a new agent's memory blocks) finish with their parent.

Last, the conversations of the agents whose system prompt or memory blocks this apply changed are recompiled
(`ResourceHandler.recompiles` says which), so that running conversations see the change; a conversation with
isolated block copies is left as it was (Letta would compile the agent's blocks over its copies).

An apply can be stopped from outside (the CLI does on Ctrl-C) through a `threading.Event`: no change starts after
it is set, the changes in flight finish (for a bounded time), and the rest is reported as not attempted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from lettafleet.core.engine.handlers import ApplyError, RideAlongCheck
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.engine.plugin_manager import FleetPlugins
from lettafleet.core.letta.client import LettaAPIError, LettaClient, LettaError
from lettafleet.core.letta.conversations import recompile_conversations
from lettafleet.core.letta.ownership import Owner, Recorded
from lettafleet.core.letta.pacing import PaceSummary

__all__ = ["ApplyError", "ApplyReport", "ApplySession", "ChangeResult", "Recompiled", "apply_plan"]


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
    interrupted: bool = False  # stopped from outside before every change was attempted
    abandoned: int = 0  # changes still in flight when the apply gave up waiting for them (their threads run on)
    recompiled: tuple[Recompiled, ...] = ()  # the agents whose conversations were recompiled after the changes
    pace: PaceSummary | None = None  # the rate the apply's requests went at, refusals and pauses included
    ids: Mapping[str, str] = field(default_factory=dict)  # address -> server id, of every resource known or made

    @property
    def failed(self) -> list[ChangeResult]:
        return [result for result in self.results if result.status != "applied"]

    @property
    def ok(self) -> bool:
        return not self.failed and not any(agent.error for agent in self.recompiled)

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def not_attempted(self) -> list[ChangeResult]:
        """Changes never started because the apply was stopped (not those a failed dependency held back)."""
        return [result for result in self.results if result.status == "skipped" and result.message == INTERRUPTED]


class ApplySession:
    """What a handler's `apply` works with: the client, and the ids of resources known or just created."""

    def __init__(self, plan: Plan, client: LettaClient, manager: FleetPlugins) -> None:
        self.plan = plan
        self.client = client
        self.owner = Owner(plan.owner)  # whose marks what this apply creates carries
        client.hide(*plan.sensitive_values())  # a server error that repeats one is masked
        self._manager = manager
        self._lock = threading.Lock()
        self._changes = plan.by_address()
        self._ids = {change.address: change.id for change in plan.changes if change.id}
        self._carried: dict[str, str | None] = {}  # child address -> error message (None: landed)
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
        checks: list[tuple[Change, RideAlongCheck]] = []
        for child in self.plan.children(change.address):
            if not child.changes_something:
                continue
            check = self._manager.handler(child.kind).ride_along(change, child, body, self)
            if check is not None:
                checks.append((child, check))
        answer: dict[str, Any] = self.client.post(path, json=body, **params)
        if isinstance(answer, dict) and answer.get("id"):
            self.record_id(change.address, answer["id"])
            with self._lock:
                self._created[change.address] = dict(answer.get("metadata") or {})
        for child, check in checks:
            outcome = check(answer)  # outside the lock: a check may record the id the server gave the child
            with self._lock:
                self._carried[child.address] = outcome
        return answer

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

    def carried_result(self, address: str) -> tuple[bool, str | None]:
        with self._lock:
            return address in self._carried, self._carried.get(address)


def apply_plan(
    plan: Plan,
    client: LettaClient,
    manager: FleetPlugins,
    *,
    parallelism: int = 8,
    on_result: Callable[[Change, ChangeResult], None] | None = None,
    stop: threading.Event | None = None,
    in_flight_grace: float = IN_FLIGHT_GRACE,
    recompile: bool = True,
) -> ApplyReport:
    """Apply the plan's changes; once `stop` is set, start no more and report the rest as not attempted. Then,
    unless `recompile` is False, recompile the conversations of the agents whose prompt or blocks changed."""
    session = ApplySession(plan, client, manager)
    todo = {change.address: change for change in plan.changes if change.changes_something}
    waiting_on = {address: _prerequisites(change, plan, todo) for address, change in todo.items()}
    dependents: dict[str, list[str]] = {}
    for address, prerequisites in waiting_on.items():
        for prerequisite in prerequisites:
            dependents.setdefault(prerequisite, []).append(address)
    results: dict[str, ChangeResult] = {}
    ready = [address for address, prerequisites in waiting_on.items() if not prerequisites]

    def finish(address: str, result: ChangeResult) -> None:
        results[address] = result
        if on_result:
            on_result(todo[address], result)
        for dependent in dependents.get(address, []):
            if dependent in results:
                continue
            if result.status != "applied":
                change = todo[dependent]
                finish(
                    dependent,
                    ChangeResult(dependent, change.action, "skipped", f"not attempted: {address} did not succeed"),
                )
                continue
            waiting_on[dependent].discard(address)
            if not waiting_on[dependent]:
                ready.append(dependent)

    pool = ThreadPoolExecutor(max_workers=max(1, parallelism))
    running: dict[Future[ChangeResult], str] = {}
    stop = stop or threading.Event()
    paced = _paced(client, parallelism, stop)
    abandoned = 0
    try:
        while (ready and not stop.is_set()) or running:
            # Only as many changes are handed to the pool as it runs at once, so a stop leaves none queued.
            while ready and len(running) < parallelism and not stop.is_set():
                address = ready.pop()
                if address not in results:
                    running[pool.submit(_apply_one, todo[address], session, manager)] = address
            for future in _wait_for_one(running, stop):
                finish(running.pop(future), future.result())
            if stop.is_set() and running:
                abandoned = _let_in_flight_finish(running, finish, todo, in_flight_grace)
    finally:
        pool.shutdown(wait=not abandoned, cancel_futures=True)
    _finish_carried(ready, results, todo, session, manager, finish)
    left = [address for address in todo if address not in results]
    reason = INTERRUPTED if stop.is_set() else "not attempted: dependency cycle"
    for address in left:  # never started: the apply was stopped, or they form a dependency cycle
        finish(address, ChangeResult(address, todo[address].action, "skipped", reason))
    recompiled: tuple[Recompiled, ...] = ()
    if not stop.is_set():
        _write_records(plan, session, manager, results, finish)
        if recompile:
            recompiled = _recompile(plan, session, manager, results, parallelism)
    ordered = tuple(results[change.address] for change in plan.changes if change.address in results)
    interrupted = stop.is_set() and bool(left or abandoned)
    return ApplyReport(ordered, interrupted, abandoned, recompiled=recompiled, pace=paced(), ids=session.known_ids())


def _paced(client: LettaClient, parallelism: int, stop: threading.Event) -> Callable[[], PaceSummary]:
    """Pace the apply's requests (its changes and recompiles) through the client's pacer, at most `parallelism`
    at once, giving up a wait for the server when `stop` is set; returns what ends the measure of its rate."""
    client.pacer.at_most(parallelism)
    client.pacer.stops_with(stop)
    return client.pacer.measure()


def _recompile(
    plan: Plan, session: ApplySession, manager: FleetPlugins, results: Mapping[str, ChangeResult], parallelism: int
) -> tuple[Recompiled, ...]:
    """Recompile the conversations of every agent an applied change asks for (each once), `parallelism` agents
    at a time. A failure is reported for its agent; the others go on."""
    agents = sorted(
        {
            address
            for change in plan.changes
            if change.address in results and results[change.address].status == "applied"
            for address in manager.handler(change.kind).recompiles(change, plan)
            if session.has_id(address)
        }
    )
    if not agents:
        return ()
    by_agent: dict[str, list[dict[str, Any]]] | None = None
    if len(agents) > 1:  # one list of every conversation costs less than one list per agent
        by_agent = {}
        try:
            for conversation in session.client.list_all("/v1/conversations/", order="asc"):
                by_agent.setdefault(conversation.get("agent_id") or "", []).append(conversation)
        except LettaError:
            by_agent = None  # each agent lists its own, and reports its own failure
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        return tuple(pool.map(lambda address: _recompile_one(address, session, by_agent), agents))


def _recompile_one(
    address: str, session: ApplySession, by_agent: Mapping[str, list[dict[str, Any]]] | None
) -> Recompiled:
    try:
        agent_id = session.id_of(address)
        known = None if by_agent is None else by_agent.get(agent_id, [])
        results = recompile_conversations(session.client, agent_id, conversations=known)
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
    """Report the children that rode along in a parent's request, which landed (or not) with it: after a stop
    they were never started, yet they need no request of their own to know their outcome."""
    while carried := [a for a in ready if a not in results and session.carried_result(a)[0]]:
        for address in carried:
            ready.remove(address)
            finish(address, _apply_one(todo[address], session, manager))


def _wait_for_one(running: Mapping[Future[ChangeResult], str], stop: threading.Event) -> set[Future[ChangeResult]]:
    """The changes that finished, as soon as one has, or as soon as the apply is stopped (then maybe none)."""
    while running:
        done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
        if done or stop.is_set():
            return done
    return set()


def _let_in_flight_finish(
    running: dict[Future[ChangeResult], str],
    finish: Callable[[str, ChangeResult], None],
    todo: Mapping[str, Change],
    grace: float,
) -> int:
    """Wait up to `grace` seconds for the changes in flight. Those still running then are reported failed (their
    outcome is unknown; the next plan sees what landed) and abandoned: how many is returned."""
    deadline = time.monotonic() + grace
    while running:
        done, _ = wait(running, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
        if not done:
            break
        for future in done:
            finish(running.pop(future), future.result())
    abandoned = len(running)
    for address in list(running.values()):
        message = f"still in flight {grace:.0f} s after the stop: it may or may not have landed"
        finish(address, ChangeResult(address, todo[address].action, "failed", message))
    running.clear()
    return abandoned


def _write_records(
    plan: Plan,
    session: ApplySession,
    manager: FleetPlugins,
    results: dict[str, ChangeResult],
    finish: Callable[[str, ChangeResult], None],
) -> None:
    """Give each record-keeping resource of the plan that stays the record of what is made under it now, where
    that is not what it carries: what this apply made or removed, and the declared children that were there
    already (made before records, by `import`, or by hand and now declared). A failed write fails that
    resource's change (its children stand; the next apply records them)."""
    for parent in plan.changes:
        handler = manager.handler(parent.kind)
        if not handler.records_children or parent.removes or not session.has_id(parent.address):
            continue
        if parent.address in results and results[parent.address].status != "applied":
            continue
        record = _record_now(parent, plan, session, results)
        if set(record) == set(parent.record or ()):
            continue
        try:
            handler.remember(parent, record, session)
        except (ApplyError, LettaError) as error:
            message = f"its record of what is made under it was not written: {session.client.mask(str(error))}"
            results.pop(parent.address, None)
            finish(parent.address, ChangeResult(parent.address, parent.action, "failed", message))


def _record_now(
    parent: Change, plan: Plan, session: ApplySession, results: Mapping[str, ChangeResult]
) -> list[Recorded]:
    """What is made under `parent` after this apply: what its record said, less what was removed, plus what the
    fleet declares under it that exists (found, or made now)."""
    own = {entry.address: entry for entry in parent.record or ()}
    for child in plan.children(parent.address):
        address = child.address.removeprefix(parent.address + ".")
        outcome = results.get(child.address)
        if child.removes:
            if outcome is not None and outcome.status == "applied":
                own.pop(address, None)
            continue
        if outcome is None or outcome.status == "applied" or child.action is not Action.CREATE:  # it exists
            made_id = session.id_of(child.address) if session.has_id(child.address) else child.id
            own[address] = Recorded(address, child.kind, made_id, child.protected)
        else:
            own.pop(address, None)
    return sorted(own.values(), key=lambda entry: entry.address)


def _apply_one(change: Change, session: ApplySession, manager: FleetPlugins) -> ChangeResult:
    carried, problem = session.carried_result(change.address)
    if carried:
        status = "failed" if problem else "applied"
        return ChangeResult(change.address, change.action, status, problem or f"created with {change.parent}")
    try:
        manager.handler(change.kind).apply(change, session)
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
