"""What a plugin does for the resource kinds it owns: one handler per kind (or family of kinds), to which core
routes every desired resource, live read, diff, ride-along and change of those kinds.

A plugin declares its kinds with `lettafleet_kinds()`, each naming its handler. Core never asks a handler about
another plugin's kind, so a handler never answers "not mine", and an answer is never mistaken for a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lettafleet.core.engine.live import Read
from lettafleet.core.engine.model import Ambiguity, Change, Plan, Resource, compare
from lettafleet.core.letta.ownership import Recorded

if TYPE_CHECKING:
    from lettafleet.core.engine.adopting import Adoption
    from lettafleet.core.engine.applying import ApplySession
    from lettafleet.core.engine.context_budget import ContextUse
    from lettafleet.core.engine.diagnostics import Problem
    from lettafleet.core.engine.exporting import Exported
    from lettafleet.core.engine.fleet import Fleet
    from lettafleet.core.engine.live import LiveReader

# Given the server's answer to a parent's create request, why a child that rode along in it did not land (or None).
RideAlongCheck = Callable[[Mapping[str, Any]], str | None]


class ApplyError(Exception):
    """A change could not be made; the message names what the server said and what to do."""


class ResourceHandler:
    """The plugin side of one or more resource kinds. Subclass it and override what your kinds need: by default a
    handler declares nothing, reads nothing, compares attributes, carries no child and applies nothing.

    Every method is called with the resources (or the change) of this handler's kinds only.

    Set `records_children` on a handler whose kinds others nest under (agents): core then keeps a record on each
    of its resources of what the last apply made under it (see `remember`), and plans the removal of what the
    record lists and the fleet no longer declares.
    """

    records_children = False

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        """The resources of this handler's kinds that a valid fleet declares, each with its address."""
        return ()

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        """The collections `read_live` will list for these desired resources. Core reads every handler's at once,
        concurrently, before it calls any `read_live`: the whole fleet costs one round of list requests."""
        return ()

    def agent_names(self, desired: Sequence[Resource]) -> Iterable[str]:
        """The names of the server's agents these desired resources are: the agent kind answers its declared
        agents' names. On a server holding many more agents than the fleet names, a plan reads only the agents
        of these names and those carrying the fleet's ownership tag (`AgentScope`)."""
        return ()

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Problems the server reveals before anything is written (a model it does not offer); any stops the plan."""
        return ()

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        """The live resources matching `desired`, at the same addresses and with their server ids, read with the
        reader's memoized list calls. `fleet` is every desired resource of the fleet, for a kind whose live state
        hangs on another's (a conversation's isolated copies). Where several server resources match one address,
        return the one used and an `Ambiguity` naming them all: plans report every choice they make."""
        return ()

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """Resources of this handler's kinds that their parent's record lists and the fleet no longer declares,
        each with the address, name, parent, id and protection the record gave it and no attributes. Return the
        ones still on the server, as they are there (attributes, `state`); the default trusts the record and
        returns them unchanged (`apply` then treats an answer 404 to its delete as already done)."""
        return recorded

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """The change for one address, found desired, live or both. The default compares every desired attribute,
        and deletes what is live only. A removal that deletes data (an agent, a conversation with messages) is
        returned with `held="prune"` and `detail` saying what it holds: core applies it only when the user asks
        for removals (`--prune`)."""
        return compare(desired, live)

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        """`parent` is about to be created and `child`, a change of this handler's kinds among its children, changes
        too. Amend `request` (the parent's JSON body) to create the child in it, after any write the request needs
        first, and return a check of the server's answer; or return None to have the child applied on its own. A
        child the server gives an id in its answer is recorded by the check (`session.record_id`)."""
        return None

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        """Make one change with `session.client`; return the server's answer (or None: nothing to report). Raise
        `ApplyError` (or let a `LettaError` through) to fail this change: independent changes go on."""
        raise ApplyError(f"{change.address}: lettafleet cannot {change.action} a {change.kind}")

    def wave(self, change: Change) -> int:
        """Called before apply, for each change of this handler's kinds it will make. Returns the wave the change
        belongs to: a change of a later wave starts only once every change of the earlier waves has run, and none
        does if any change before it failed (a rollout in batches stops at the first bad batch). Default: 0."""
        return 0

    def recompiles(self, change: Change, plan: Plan) -> Iterable[str]:
        """Called after apply, for each change of this handler's kinds that was applied. Returns the addresses of
        the agents whose conversations must be recompiled because of it: Letta compiles an agent's system prompt
        and memory blocks into each conversation when it starts and keeps that copy, so a change to either reaches
        running conversations only through a recompile (`apply --skip-recompile` leaves them). Default: none."""
        return ()

    def context_use(self, change: Change, changes: Mapping[str, Change]) -> Iterable[ContextUse]:
        """Called by `plan` for each change of this handler's kinds that it would apply (`changes`: the plan's, by
        address). Returns what the change does to a context window once applied, by the address of the resource
        holding the window: the characters it adds there as the server compiles them (a prompt, a memory block;
        negative when it takes some away). The holder's own handler adds what the window holds now, its size and
        what to do when it is full. Core adds them up per holder and warns when one the plan touches would pass
        `--context-threshold` (core/engine/context_budget.py). Default: nothing."""
        return ()

    def remember(self, change: Change, record: Sequence[Recorded], session: ApplySession) -> None:
        """Write `record` (what the apply made under the resource `change` is about) onto that resource, keeping
        everything else it carries. Called after its children were applied, only when the record changed, and only
        for handlers with `records_children`."""
        raise ApplyError(f"{change.address}: the plugin handling kind {change.kind!r} keeps no record")

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """`lettafleet export`: the fragments of a fleet document that declare what these live agents (rows of
        the `AGENTS` read) have of this handler's kinds, such that a plan of the document changes nothing. The
        default exports nothing."""
        return ()

    def adopt(self, reader: LiveReader, agent: Mapping[str, Any]) -> Iterable[Adoption]:
        """`lettafleet import`: the writes that mark what this live agent (a row of the `AGENTS` read) has of this
        handler's kinds as lettafleet's, as if lettafleet had made it, and notes on what is left alone. Keep the
        item's other metadata (read-modify-write). The default marks nothing."""
        return ()


def created_with(collection: str, item_id: str, problem: str) -> RideAlongCheck:
    """A ride-along check: the parent the server created lists `item_id` in its `collection` (an agent's blocks
    or tools); otherwise the child did not land, and `problem` says so."""

    def check(answer: Mapping[str, Any]) -> str | None:
        return None if item_id in {item.get("id") for item in answer.get(collection) or []} else problem

    return check
