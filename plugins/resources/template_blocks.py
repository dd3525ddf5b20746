"""A template's `memory_blocks`: blocks of each matched agent's own, by label (docs/templates.md).

`agent_owned: false`: the template's value is the truth for that label on every matched agent. An agent lacking the
label gets a block of its own made and attached (recorded: the template made it); one whose block differs is set
back. `agent_owned: true`: a block is made only on agents lacking the label (seeded), and never touched after: it
is the agent's. A line taken out of the template deletes only the blocks the template made (`agent_owned: false`).
Agents' blocks come with the list of agents the plan reads: no request per agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lettafleet.core import ApplySession, Change, Fleet, LiveReader, Problem
from lettafleet.plugins.backends.letta_v1.reads import blocks_labelled
from lettafleet.plugins.resources.template_record import Applied, digest

BLOCKS = "blocks"  # plan attribute: label -> value, of the `agent_owned: false` blocks
SEEDED = "seeded"  # plan attribute: the labels of the `agent_owned: true` blocks the agent has
RECORDED = "memory_blocks"  # the record's map of the blocks the template made: label -> id
MADE_FOR = "lettafleet_template"  # a block's metadata: the template (its record key) and agent it was made for


def wanted_blocks(fleet: Fleet, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a template's `memory_blocks` want of each agent, as plan attributes (only what it declares)."""
    declared = data.get("memory_blocks")
    if declared is None:
        return {}
    owned = sorted(block["name"] for block in declared if block.get("agent_owned", True))
    return {BLOCKS: {block["name"]: fleet.text(block) for block in declared if not block.get("agent_owned", True)}} | (
        {SEEDED: owned} if owned else {}
    )


def block_specs(fleet: Fleet, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """How to make each declared block on an agent lacking it: its create request, by label."""
    return {
        block["name"]: {
            "label": block["name"],
            "value": fleet.text(block),
            **{key: block[key] for key in ("description", "limit") if block.get(key) is not None},
        }
        for block in data.get("memory_blocks") or ()
    }


def label_problems(data: Mapping[str, Any], at: tuple[str | int, ...]) -> list[Problem]:
    """A label a template declares twice, or both as a block of the agent's own and as a shared block."""
    problems = []
    seen: set[str] = set()
    shared = set(data.get("shared_blocks") or ())
    for index, block in enumerate(data.get("memory_blocks") or ()):
        label = block["name"]
        if label in seen or label in shared:
            again = "twice" if label in seen else "both under memory_blocks and shared_blocks"
            problems.append(
                Problem((*at, "memory_blocks", index, "name"), f"block label '{label}' is declared {again}", "")
            )
        seen.add(label)
    return problems


def live_blocks(agent: Mapping[str, Any], wanted: Mapping[str, Any], done: Applied) -> dict[str, Any]:
    """The agent's values of the blocks the template manages: of its `agent_owned: false` labels and those the
    record says it made (still attached), the value; of its seeds, which labels it has."""
    by_label = {str(block.get("label")): block for block in agent.get("blocks") or ()}
    attached = {str(block.get("id")) for block in agent.get("blocks") or ()}
    seeds = set(wanted.get(SEEDED) or ())
    found: dict[str, Any] = {}
    made = {label: ident for label, ident in done.ids(RECORDED).items() if ident in attached and label not in seeds}
    if BLOCKS in wanted or made:
        labels = (set(wanted.get(BLOCKS) or {}) & set(by_label)) | set(made)
        found[BLOCKS] = {label: by_label[label].get("value") for label in sorted(labels) if label in by_label}
    if seeds:
        found[SEEDED] = sorted(seeds & set(by_label))
    return found


def block_ids(agent: Mapping[str, Any]) -> dict[str, str]:
    """The agent's blocks by label, for a value to be set back where it differs."""
    return {str(block.get("label")): str(block.get("id")) for block in agent.get("blocks") or ()}


def wanted_here(wanted: Mapping[str, Any], done: Applied) -> dict[str, Any]:
    """No longer the blocks the record says the template made and it no longer declares: an empty map, so that the
    plan shows them deleted."""
    return {BLOCKS: {}} if done.ids(RECORDED) and BLOCKS not in wanted else {}


def block_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """`create block policies`, `set block policies`, `delete block policies`, `seed block persona`."""
    old, new = before.get(BLOCKS) or {}, after.get(BLOCKS) or {}
    found = [f"create block {label}" for label in sorted(set(new) - set(old))]
    found += [f"set block {label}" for label in sorted(set(new) & set(old)) if new[label] != old[label]]
    found += [f"delete block {label}" for label in sorted(set(old) - set(new)) if BLOCKS in after]
    seeded = set(before.get(SEEDED) or ())
    return found + [f"seed block {label}" for label in after.get(SEEDED) or () if label not in seeded]


def edited_blocks(live: Mapping[str, Any], done: Applied) -> list[str]:
    """The blocks the template set whose value someone (or the agent) changed since, by the record's digests."""
    values = live.get(BLOCKS) or {}
    return [
        f"set block {label}"
        for label, recorded in sorted(done.values.items())
        if label in values and digest(str(values[label] or "")) != recorded
    ]


def apply_blocks(change: Change, session: ApplySession, made: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Delete the blocks the template made and no longer declares, set back those that differ, and make those the
    agent lacks (not attached yet: the agent's update records them first), or take the one an apply stopped before
    attaching made. `made` (label -> id, the record's) is brought up to date; returns the new blocks' ids to attach,
    and the digests of the values this change set."""
    before, after = change.before or {}, change.after or {}
    old, new = before.get(BLOCKS) or {}, after.get(BLOCKS) or {}
    specs, ids = change.state["block_specs"], change.state["block_ids"]
    for label in sorted(set(old) - set(new)):
        session.delete(f"/v1/blocks/{made.pop(label, ids.get(label, ''))}")
    for label in sorted(set(new) & set(old)):
        if new[label] != old[label]:
            session.client.patch(f"/v1/blocks/{ids[label]}", json={"value": new[label]})
    created = sorted(set(new) - set(old))
    seeded = set(before.get(SEEDED) or ())
    set_now = {label: digest(str(new[label])) for label in created}
    set_now |= {label: digest(str(new[label])) for label in set(new) & set(old) if new[label] != old[label]}
    to_attach = []
    left = change.state.get("left_unattached") or {}
    for label in [*created, *(label for label in after.get(SEEDED) or () if label not in seeded)]:
        block_id = _made(session, specs[label], left.get(label), {"key": change.state["key"], "agent": change.id})
        to_attach.append(block_id)
        if label in new:
            made[label] = block_id
    return to_attach, set_now


def _made(session: ApplySession, spec: Mapping[str, Any], left: Mapping[str, Any] | None, mark: Any) -> str:
    """The id of a new block for an agent: the one a stopped apply made and never attached (its value set as the
    template has it now), or one made now, marked as made for this template and agent."""
    if left is not None:
        if left.get("value") != spec["value"]:
            session.client.patch(f"/v1/blocks/{left['id']}", json={"value": spec["value"]})
        return str(left["id"])
    block = session.client.post("/v1/blocks/", json={**spec, "metadata": {MADE_FOR: mark}})
    return str(block["id"])


def left_unattached(
    reader: LiveReader, key: str, labels: set[str], agents: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Mapping[str, Any]]]:
    """The blocks an apply of this template (`key`) made for agents and was stopped before attaching, by agent id
    and label: read by label, only for the labels some of these agents lack (made, then, by this plan)."""
    lacking = {label for label in labels for agent in agents if label not in block_ids(agent)}
    attached = {str(block.get("id")) for agent in agents for block in agent.get("blocks") or ()}
    found: dict[str, dict[str, Mapping[str, Any]]] = {}
    for label in sorted(lacking):
        for block in blocks_labelled(reader, label):
            mark = (block.get("metadata") or {}).get(MADE_FOR)
            if isinstance(mark, Mapping) and mark.get("key") == key and str(block.get("id")) not in attached:
                found.setdefault(str(mark.get("agent")), {}).setdefault(label, block)
    return found


def recorded_values(change: Change, done: Applied, set_now: Mapping[str, str]) -> dict[str, str]:
    """The digests the record keeps: of the values this change set, and those recorded before, for the labels the
    template still declares `agent_owned: false`."""
    declared = (change.after or {}).get(BLOCKS) or {}
    return {label: digest for label, digest in {**done.values, **set_now}.items() if label in declared}


def sensitive_blocks(data: Mapping[str, Any]) -> bool:
    """Whether a template's block values are masked in plans (any block `sensitive: true`)."""
    return any(block.get("sensitive") for block in data.get("memory_blocks") or ())
