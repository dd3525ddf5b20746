"""lettactl's canary rollout for a fleet's own agents: `--canary` plans every declared agent as a copy named
`CANARY-<name>` (`--canary-prefix`), `--canary --promote` applies the file to the real agents, and `--canary
--cleanup` deletes the copies (docs/canary.md).

A copy is an ordinary agent of the fleet (its marks, its own blocks and conversations) whose metadata also names
the agent it is a copy of (`canary_of`): plans without `--canary` never see it, so it is neither pruned as "not
declared" nor taken for a duplicate; `--cleanup` deletes exactly the copies carrying it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lettafleet.core import Action, Change, Fleet, Plan, PlanOption, Problem, hookimpl

CANARY_OPTION = "canary"
PREFIX_OPTION = "canary_prefix"
CLEANUP_OPTION = "cleanup"
PROMOTE_OPTION = "promote"  # the templates plugin's option, which lettactl spells with --canary too
SAMPLE_OPTION = "sample"
DEFAULT_PREFIX = "CANARY-"
CANARY_KEY = "canary_of"  # in a copy's metadata: the name of the agent it copies
HELD = "left by --canary"  # why a canary deploy holds a change (`Change.held`)
TEMPLATE_KINDS = ("template", "templated_agent")  # what `--canary` never rolls out: `--sample`/`--promote` do
_NEED_CANARY = (("--cleanup", CLEANUP_OPTION), ("--canary-prefix", PREFIX_OPTION))
_PREFIX = re.compile(r"[a-zA-Z0-9_-]+")


@dataclass(frozen=True)
class Canary:
    """What this run does with canary copies: none (a plain run, which never sees them), deploy them, promote
    their change to the real agents, and/or clean them up; `prefix` names them."""

    canary: bool = False
    promote: bool = False
    cleanup: bool = False
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Canary:
        return cls(
            bool(options.get(CANARY_OPTION)),
            bool(options.get(PROMOTE_OPTION)),
            bool(options.get(CLEANUP_OPTION)),
            str(options.get(PREFIX_OPTION) or DEFAULT_PREFIX),
        )

    @property
    def deploys(self) -> bool:
        """`--canary` alone: the declared agents are planned as copies."""
        return self.canary and not (self.promote or self.cleanup)

    @property
    def cleans(self) -> bool:
        """`--canary --cleanup`: the fleet's copies named with the prefix are planned as deletions."""
        return self.canary and self.cleanup

    def copy_name(self, name: str) -> str:
        return f"{self.prefix}{name}"


def copy_of(agent: Mapping[str, Any]) -> str | None:
    """The name of the agent a live agent is a canary copy of (None: it is no copy)."""
    metadata = agent.get("metadata")
    original = metadata.get(CANARY_KEY) if isinstance(metadata, Mapping) else None
    return original if isinstance(original, str) else None


@hookimpl
def lettafleet_plan_options() -> Iterable[PlanOption]:
    """`--canary`, `--canary-prefix` and `--cleanup`, made on first use: the engine loads no command-line library."""
    import rich_click as click

    canary = click.Option(
        ["--canary", CANARY_OPTION],
        is_flag=True,
        help="Plan every agent the file declares as a copy named CANARY-NAME (--canary-prefix), leaving the real "
        "agents as they are; with --promote, apply the file to the real agents; with --cleanup, delete the copies "
        "(lettactl's canary rollout, docs/canary.md).",
    )
    prefix = click.Option(
        ["--canary-prefix", PREFIX_OPTION],
        metavar="PREFIX",
        help=f"With --canary: what the copies' names start with (default {DEFAULT_PREFIX}).",
    )
    cleanup = click.Option(
        ["--cleanup", CLEANUP_OPTION],
        is_flag=True,
        help="With --canary: delete the fleet's canary copies, with their own blocks and conversations (after "
        "promoting, with --promote too).",
    )
    return [
        PlanOption(canary, refuses=refused_combination, reshapes=canary_plan),
        PlanOption(prefix),
        PlanOption(cleanup),
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    """A canary deploy copies the agents as the file names them now: renames still to make (`moved:`) come first."""
    if Canary.from_options(fleet.options).deploys and fleet.data.get("moved"):
        return [
            Problem(
                ("moved",),
                "--canary copies the agents under the names the file gives them now, and `moved:` renames real ones",
                "apply the renames first (`lettafleet apply`, or `--canary --promote`), then deploy the copies",
            )
        ]
    return []


def refused_combination(params: Mapping[str, Any]) -> str | None:
    """Why the canary options given cannot go together or with the others, or None."""
    run = Canary.from_options(params)
    if not run.canary:
        given = [flag for flag, name in _NEED_CANARY if params.get(name)]
        if not given:
            return None
        return f"{given[0]} works on canary copies: give it with --canary (`apply --canary {given[0]}`)"
    if not _PREFIX.fullmatch(run.prefix):
        return f"--canary-prefix {run.prefix!r}: a prefix of agent names takes letters, digits, - and _ only"
    for flag, name, why in (
        ("--match", "match", "template mode applies the file's first agent to live agents, and copies none"),
        ("--scope", "scope", "a copy is planned for every agent the file declares; choose some with --target"),
        ("--sample", SAMPLE_OPTION, "--sample rolls out a template's change, which --canary leaves alone"),
    ):
        if params.get(name):
            return f"--canary cannot be combined with {flag}: {why}"
    return None


def canary_plan(plan: Plan, params: Mapping[str, Any]) -> Plan:
    """The plan this run makes: the copies' changes only (`--canary`), the real agents' with templates held
    (`--promote`), and the copies' deletions (`--cleanup`; alone, only those)."""
    run = Canary.from_options(params)
    if not run.canary:
        return plan
    if run.deploys:
        return _copies_only(plan)
    if run.cleanup:
        plan = _cleaned_up(plan, promoting=run.promote)
    if not run.promote:
        return plan
    return _templates_held(plan)


def _cleaned_up(plan: Plan, *, promoting: bool) -> Plan:
    """The copies' deletions, with what they hold: their removal deletes their own blocks and conversations
    whatever these hold, so none waits for `--prune` (nor is protected: a copy made before copies dropped
    `protect` may carry it). Alone, only those; after a promote, with its changes."""
    copies = [change.address for change in plan.changes if _is_cleanup(change)]
    doomed = {*copies, *(found.address for address in copies for found in plan.descendants(address))}
    plan = plan.with_changes(
        replace(change, held=None, drift=None) if change.address in doomed and change.held else change
        for change in plan.changes
    )
    return plan if promoting else plan.narrowed(copies)


def _copies_only(plan: Plan) -> Plan:
    """A deploy changes the copies and what is new (a shared block no real agent has yet); every other change
    (a shared block, tool or template the real agents use) is held: the copies use it as the server has it."""
    by_address = plan.by_address()
    copies = {c.address for c in plan.changes if c.parent is None and (c.after or c.before or {}).get(CANARY_KEY)}

    def kept(change: Change) -> bool:
        root = _root(change, by_address)
        return root.address in copies or root.action is Action.CREATE

    shared = _holding(
        plan,
        lambda change: not kept(change) and change.kind not in TEMPLATE_KINDS,
        "the real agents use it, and the copies use it as the server has it; `apply --canary --promote` applies it",
    )
    return _templates_held(shared)


def _templates_held(plan: Plan) -> Plan:
    """Templates' changes held: they reach agents the application made, which `--canary` copies none of."""
    return _holding(
        plan,
        lambda change: change.kind in TEMPLATE_KINDS,
        "a template's change rolls out with `--sample N`, then `--promote`, without --canary",
    )


def _root(change: Change, by_address: Mapping[str, Change]) -> Change:
    while change.parent and change.parent in by_address:
        change = by_address[change.parent]
    return change


def _is_cleanup(change: Change) -> bool:
    """A deletion of a canary copy: what `--cleanup` plans, with what its record lists inside it."""
    return change.parent is None and change.removes and bool(change.state.get(CANARY_KEY))


def _holding(plan: Plan, holds: Callable[[Change], bool], why: str) -> Plan:
    """The plan with each change `holds` picks planned, shown and not applied, saying `why`; a top-level line
    that changes nothing itself (a template's) says it of the changes inside it."""
    held = {change.address for change in plan.changes if change.changes_something and holds(change)}
    said = f"not applied with --canary: {why}"

    def shown(change: Change) -> Change:
        if change.address in held:
            return replace(change, held=HELD, drift=said)
        if change.parent is None and any(inside.address in held for inside in plan.descendants(change.address)):
            return replace(change, drift=said)
        return change

    return plan.with_changes(shown(change) for change in plan.changes)
