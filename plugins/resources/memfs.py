"""lettactl's `memory:` section (Letta Code's git-backed memory, "MemFS"): its schema key by key, its checks, and
the `memory_file` kind: one resource per file the section gives an agent (memfs_expansion.py), and how every
backend compares them, the agent's record fingerprinting what each apply wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from lettafleet.core import (
    Action,
    Change,
    Fleet,
    Problem,
    Recorded,
    Resource,
    ResourceHandler,
    SchemaFragment,
    address_of,
    attributes,
    boolean,
    compare,
    hookimpl,
    mapping_list,
    string,
    string_list,
    text_source,
)
from lettafleet.plugins.resources.agents import DeclaredAgent, declared_agents
from lettafleet.plugins.resources.memfs_expansion import (
    BLOCKS,
    INDEX,
    MEMFS,
    TEMPLATE_VAR,
    declared_files,
    expand,
    extracted_section,
    memory_notes,
    memory_path_problem,
    preserved,
)

MEMORY_FILE = "memory_file"
MEMORY_MODE = "memory_mode"  # an agent's switch between blocks and git-backed memory files, where a server has one
MODE_NAME = "git-backed memory"  # the switch's one resource under an agent
VERIFY = "verify"  # the check after the switch (`memory.verify`), a second resource of the kind
__all__ = ["INDEX", "INDEX_IN_USE", "MEMORY_FILE", "MEMORY_MODE", "MemoryFileHandler", "extracted_section"]


# ---- the schema -------------------------------------------------------------------------------------------------


def memory_schema() -> dict[str, Any]:
    """The `memory:` section as lettactl v1.1.2 reads it (its config-validators.ts), key by key."""
    file_entry = {
        "to": string(required=True, empty=False),
        **text_source(),
        "template_vars": {"type": "dict", "keysrules": string(regex=TEMPLATE_VAR), "valuesrules": string()},
    }
    return {
        "mode": string(required=True, allowed=[BLOCKS, MEMFS]),
        "bare_repo": string(allowed=["auto"]),
        "template_dir": string(empty=False),
        "preserve_existing_paths": string_list(),
        "prune_missing_skills": boolean(),
        "prune_paths": string_list(),
        "files": mapping_list(file_entry),
        "skills": mapping_list({"name": string(empty=False), "from_dir": string(required=True, empty=False)}),
        "from_blocks": mapping_list(
            {
                "block": string(required=True, empty=False),
                "to": string(required=True, empty=False),
                "extract_section": string(empty=False),
            }
        ),
        "capability_index_file": string(empty=False),
        "overwrite_agent_edits": boolean(),  # lettafleet's own: lettactl always overwrites
        "verify": {
            "type": "dict",
            "schema": {"require_core_memory_empty": boolean(), "smoke_prompt": string(empty=False)},
        },
    }


# ---- what every backend compares: the agent's record fingerprints what each apply wrote ----------------------------

FINGERPRINT_MARK = "#"


def fingerprinted(path: str, text: str) -> str:
    """`system/policies.md#3f2a...`: the file and what it held when an apply wrote (or last saw) it, as the agent's
    record names it."""
    return f"{path}{FINGERPRINT_MARK}{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def fingerprinted_path(recorded_id: str) -> str:
    return recorded_id.split(FINGERPRINT_MARK, 1)[0]


def recorded_files(record: Sequence[Recorded] | None) -> dict[str, str]:
    """The files the agent's record says an apply wrote, by path: their fingerprinted ids."""
    return {fingerprinted_path(e.id): e.id for e in record or () if e.kind == MEMORY_FILE and e.id}


def live_file(desired: Resource, text: str, written: str | None, expected: str | None, agent_id: str) -> Resource:
    """A declared file as the agent has it: edited when the record fingerprints another text than it holds now (an
    edit stays out of the record, so the plan shows it until it is resolved), unless it holds what the fleet
    declares (a write whose answer was lost landed: the record catches up). `expected`: what a file from a block
    should hold now."""
    now = fingerprinted(desired.name, text)
    declared = expected if desired.attributes.get("from_block") is not None else desired.attributes.get("text")
    edited = written is not None and written != now and text != declared
    state = {"agent_id": agent_id, "agent": desired.state["agent"], "edited": edited, "expected": expected}
    return Resource(
        desired.address,
        MEMORY_FILE,
        desired.name,
        {**desired.attributes, "text": text},
        parent=desired.parent,
        id=written if edited else now,
        state=state,
    )


def pruned_file(desired: Resource, path: str, text: str, agent_id: str) -> Resource:
    """A file the agent has at a path its `prune_paths` names: a removal the fleet file asks for."""
    state = {"agent_id": agent_id, "agent": desired.state["agent"], "pruned": True, "edited": False}
    address = address_of(MEMORY_FILE, path, desired.parent)
    return Resource(address, MEMORY_FILE, path, {"text": text}, parent=desired.parent, id=path, state=state)


def recorded_path(placeholder: Resource) -> str | None:
    """The path of a file an agent's record lists, where it may name one: the record lives on the server, and an
    entry edited there to name `../x`, `.git/config` or another path than its address is never read or deleted
    (None; the record written next drops it)."""
    path = fingerprinted_path(placeholder.id or "")
    return path if path == placeholder.name and memory_path_problem(path, markdown=False) is None else None


def recorded_file(placeholder: Resource, text: str, agent: str, agent_id: str) -> Resource:
    """A file the record lists and the fleet declares no more, as the agent has it now."""
    edited = placeholder.id != fingerprinted(placeholder.name, text)
    return replace(
        placeholder, attributes={"text": text}, state={"agent_id": agent_id, "agent": agent, "edited": edited}
    )


class MemoryFileHandler(ResourceHandler):
    """What every backend's memory-file handler declares and compares: one `memory_file` per path of the expansion,
    under its agent, by address `agent.NAME.memory_file["system/policies.md"]`. Backends subclass it to read (with
    `live_file`, `pruned_file`, `recorded_file`) and write (recording `fingerprinted(path, text)`)."""

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for agent in declared_agents(fleet):
            memory = agent.data.get("memory") or {}
            files = declared_files(fleet, agent)
            paths = {declared.path for declared in files}
            for declared in files:
                index = folder_index(declared.path)
                yield Resource(
                    address_of(MEMORY_FILE, declared.path, agent.address),
                    MEMORY_FILE,
                    declared.path,
                    attributes(text=declared.text, from_block=declared.block, extract_section=declared.section),
                    parent=agent.address,
                    depends_on=(address_of(MEMORY_FILE, index, agent.address),) if index in paths else (),
                    source=declared.at,
                    state={
                        "preserve": preserved(memory, declared.path),
                        "agent": agent.name,
                        "prune_paths": [path for path in memory.get("prune_paths") or () if path not in paths],
                        "overwrite_agent_edits": bool(memory.get("overwrite_agent_edits")),
                    },
                )

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is None:
            assert live is not None
            return _removal(live)
        if live is None:
            return compare(desired, live, detail=_origin(desired))
        expected = live.state.get("expected")
        if desired.attributes.get("from_block") is not None and expected is not None:
            desired = replace(desired, attributes={**desired.attributes, "text": expected})
        if desired.state["preserve"]:
            return compare(desired, replace(live, attributes=desired.attributes))  # seeded once: the agent's now
        change = compare(desired, live, ["text"])
        if change.action is Action.NO_OP or not live.state["edited"]:
            return replace(change, detail=_origin(desired)) if change.action is Action.UPDATE else change
        edited = f"agent {live.state['agent']} edited {live.name} since lettafleet wrote it"
        if desired.state["overwrite_agent_edits"]:
            return replace(change, detail=f"drift: {edited}; apply overwrites it (overwrite_agent_edits: true)")
        kept = (
            f"{edited}: kept as the agent wrote it. To keep it so, put its text in the fleet file or list it in "
            "preserve_existing_paths; to write the file's text over it, set overwrite_agent_edits: true"
        )
        return replace(compare(desired, live, []), drift=kept)


def _origin(desired: Resource) -> str:
    label = desired.attributes.get("from_block")
    return f"from memory block {label}" if label else ""


INDEX_IN_USE = "index in use"  # why a removal of an index is held: files stay in its folder (`Change.held`)


def _removal(live: Resource) -> Change:
    """A file `prune_paths` names is deleted; one the record lists and the file no longer declares is deleted
    unless its agent edited it since (then it waits for `--prune`). An index the layout wants while files stay in
    its folder is kept (`indexes_in_use`). Every removal comes before that of its folder's index."""
    index = folder_index(live.name)
    change = compare(None, live)
    if index:
        change = replace(change, depends_on=(address_of(MEMORY_FILE, index, live.parent),))
    if live.state.get("pruned"):
        return replace(change, detail="prune_paths names it")
    if in_use_by := live.state.get("in_use_by"):
        one = len(in_use_by) == 1
        kept = (
            f"kept while {', '.join(in_use_by)} {'stays' if one else 'stay'} in its folder (the agent's layout wants "
            f"an index beside every file); the plan deletes it once {'that is' if one else 'they are'} gone"
        )
        return replace(change, held=INDEX_IN_USE, drift=kept)
    if held_with := live.state.get("held_with"):
        after = "it" if len(held_with) == 1 else "them"
        return replace(change, held="prune", detail=f"the index of {', '.join(held_with)}, deleted after {after}")
    if live.state.get("edited"):
        edited = f"agent {live.state['agent']} edited it since lettafleet wrote it"
        return replace(change, held="prune", detail=edited)
    return replace(change, detail="taken out of the memory section: lettafleet wrote it (the agent's record)")


def indexes_in_use(removals: Sequence[Resource], staying: Iterable[str]) -> list[Resource]:
    """One agent's removals (`recorded_file`, `pruned_file`), each index among them with its fate where files stay
    in its folder, for a layout that wants an index in every folder (Letta Code's v2): while only removals held for
    `--prune` stay, the index is held with them (`held_with`); while any other file stays (the agent's own, a
    declared one, one kept), it is kept (`in_use_by`). `staying`: every file the agent has or will have, removals
    included. Deepest folders first, so a kept or held index keeps its parent folder's."""
    going = {r.name for r in removals if r.state.get("pruned") or not r.state.get("edited")}
    holding = {r.name for r in removals if r.name not in going}
    files = set(staying) | going | holding
    fates: dict[str, dict[str, Any]] = {}
    for index in sorted((r.name for r in removals if PurePosixPath(r.name).name == INDEX), key=_depth, reverse=True):
        folder = index.removesuffix(INDEX)
        inside = sorted(path for path in files - going if path.startswith(folder) and path != index)
        if not inside:
            continue
        going.discard(index)
        if set(inside) <= holding:
            holding.add(index)
            fates[index] = {"held_with": inside}
        else:
            fates[index] = {"in_use_by": [path for path in inside if path not in holding]}
    return [replace(r, state={**r.state, **fates[r.name]}) if r.name in fates else r for r in removals]


def _depth(path: str) -> int:
    return len(PurePosixPath(path).parts)


def folder_index(path: str) -> str:
    """The index a file waits for under Letta Code's MemFS: its own folder's (`system/a/MEMORY.md` for
    `system/a/b.md`), or for an index the folder above's; "" at the root (the server keeps that one)."""
    parts = PurePosixPath(path).parts
    folder = parts[:-2] if parts[-1] == INDEX else parts[:-1]
    return "/".join((*folder, INDEX)) if folder else ""


def each_memory_section(fleet: Fleet) -> Iterator[DeclaredAgent]:
    """The agents that have a `memory:` section."""
    return (agent for agent in declared_agents(fleet) if agent.data.get("memory"))


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    return [SchemaFragment({"memory": {"type": "dict", "schema": memory_schema()}}, at=("agents",))]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    for agent in each_memory_section(fleet):
        yield from expand(fleet, agent).problems
        yield from memory_notes(agent)


def mode_address(agent: str) -> str:
    return address_of(MEMORY_MODE, MODE_NAME, agent)


def verify_resource(agent: str, name: str, memory: Mapping[str, Any], files: Sequence[Any]) -> Resource:
    """`memory.verify`: checked after the apply that switches the agent's memory to files (each backend says when
    that is), once its files are written (it depends on each)."""
    checks = dict(memory["verify"])
    paths = [declared.path for declared in files]
    return Resource(
        address_of(MEMORY_MODE, VERIFY, agent),
        MEMORY_MODE,
        VERIFY,
        {"verify": checks, "files": paths},
        parent=agent,
        depends_on=(mode_address(agent), *(address_of(MEMORY_FILE, path, agent) for path in paths)),
        state={"agent": name, "files": paths, **checks},
    )
