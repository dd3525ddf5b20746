"""The `memory:` section on the App Server (`mode: memfs`): each declared file written into the agent's memory with
the memory commands, as the agent's layout (v1 or v2) wants it, and kept as declared.

The agent's record holds, for each file an apply wrote, its path and a fingerprint of what was written
(`system/policies.md#3f2a...`, as for shared-block copies): a file the agent edited since is drift, left as the
agent wrote it (unless `overwrite_agent_edits: true`), and a line taken out of the fleet file deletes only a file
the record lists."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from lettafleet.core import (
    Action,
    Ambiguity,
    ApplyError,
    ApplySession,
    Change,
    LiveReader,
    Problem,
    Recorded,
    Resource,
    address_of,
    compare,
)
from lettafleet.plugins.backends.app_server.agents import agents_by_name, read_app_record
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.backends.app_server.memory_files import (
    DEFAULT_DESCRIPTION,
    V1,
    V2,
    agent_of,
    file_path,
    file_text,
    layout_of,
    memory_of,
)
from lettafleet.plugins.backends.app_server.memory_reads import FRONTMATTER, MEMORY_READS, parsed_memory_file
from lettafleet.plugins.backends.app_server.shared_files import copy_id, path_in
from lettafleet.plugins.resources.agents import agent_address
from lettafleet.plugins.resources.memfs import INDEX, MEMORY_FILE, MemoryFileHandler, extracted_section

SKILLS = "skills/"


def fingerprinted(path: str, text: str) -> str:
    """`system/policies.md#3f2a...`: the file and what it held when an apply wrote (or last saw) it."""
    return copy_id(path, {"value": text})


def frontmatter_keys(text: str) -> set[str] | None:
    """The keys of a Markdown file's frontmatter (None: it has none)."""
    match = FRONTMATTER.match(text.removeprefix("\ufeff").replace("\r\n", "\n"))
    if match is None:
        return None
    return {line.split(":", 1)[0].strip() for line in match.group(1).split("\n") if re.match(r"^[^\s:][^:]*:", line)}


def layout_problem(path: str, text: str, layout: str, paths: set[str]) -> str | None:
    """Why the App Server would refuse to commit `text` at `path` in an agent of `layout` (None: it would not),
    as Letta Code checks memory: v2 wants frontmatter with `name` and `description` in every Markdown file outside
    `skills/` (an index, MEMORY.md, has none) and an index in every folder holding one; v1 wants frontmatter with a
    `description` in `system/`. `paths`: every file the agent will have."""
    if not path.endswith(".md") or path.startswith(SKILLS):
        return None
    keys = frontmatter_keys(text)
    name = PurePosixPath(path).name
    if layout == V2:
        if name == INDEX:
            return "an index (MEMORY.md) has no frontmatter in the v2 layout" if keys is not None else None
        folder = PurePosixPath(path).parts[0] if "/" in path else ""
        if folder and f"{folder}/{INDEX}" not in paths:
            return f"the v2 layout wants an index, {folder}/{INDEX}, beside it (no frontmatter)"
        missing = [key for key in ("name", "description") if key not in (keys or set())]
        return f"the v2 layout wants frontmatter with {' and '.join(missing)}" if missing else None
    if path.startswith("system/") and "description" not in (keys or set()):
        return "the v1 layout wants frontmatter with a description in system/"
    return None


def _read_raw(app: AppServerClient, agent_id: str, path: str) -> str | None:
    try:
        return app.read_memory_file(agent_id, path)
    except AppServerError:
        return None  # not there (the server names no other cause apart)


def _block_file(reader: LiveReader, agent_id: str, label: str) -> tuple[str, str | None, str] | None:
    """The agent's block `label` as a memory file: (layout, description, value); None when it has none."""
    app = app_of(reader.client)
    files = memory_of(reader, agent_id)
    layout = layout_of(files, app.made_by)
    raw = _read_raw(app, agent_id, file_path(label, layout))
    parsed = parsed_memory_file(raw) if raw is not None else None
    if parsed is None:
        entry = next((e for e in files if e.get("relative_path") == file_path(label, layout)), None)
        return (layout, entry.get("description"), str(entry.get("content") or "")) if entry else None
    return layout, parsed[0], parsed[1]


def from_block_text(path: str, label: str, section: str | None, block: tuple[str, str | None, str]) -> str | None:
    """The file `path` made from the block (or one section of it), as the agent's layout wants it: frontmatter
    naming it (v2) and the block's description, then the value. None: the section is not in the block."""
    layout, description, value = block
    if section is not None:
        extracted = extracted_section(value, section)
        if extracted is None:
            return None
        value = extracted
    wants_frontmatter = layout == V2 or path.startswith("system/")
    if not wants_frontmatter:
        return value
    return file_text(PurePosixPath(path).stem, description or DEFAULT_DESCRIPTION.format(label=label), value, layout)


class AppServerMemfsHandler(MemoryFileHandler):
    """`memory_file`s on the App Server: created and updated with `write_memory_file`, removed with
    `delete_memory_file` (one commit each, one at a time per agent, agents in parallel)."""

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Before anything is written: each file must fit the agent's layout, and each block `from_blocks` names
        must be there (with its section)."""
        app = app_of(reader.client)
        named = agents_by_name(reader)
        by_agent: dict[str, list[Resource]] = {}
        for resource in desired:
            by_agent.setdefault(str(resource.state["agent"]), []).append(resource)
        for agent, files in by_agent.items():
            found = named.get(agent)
            agent_id = str(found[0]["id"]) if found else None
            layout = layout_of(memory_of(reader, agent_id), app.made_by) if agent_id else layout_of((), app.made_by)
            present = {str(e.get("relative_path")) for e in memory_of(reader, agent_id)} if agent_id else set()
            paths = present | {resource.name for resource in files}
            for resource in files:
                yield from self._fits(reader, resource, agent_id, layout, paths)

    def _fits(
        self, reader: LiveReader, resource: Resource, agent_id: str | None, layout: str, paths: set[str]
    ) -> Iterable[Problem]:
        label = resource.attributes.get("from_block")
        if label is None:
            problem = layout_problem(resource.name, str(resource.attributes["text"]), layout, paths)
            if problem:
                yield Problem(resource.source, f"{resource.name}: {problem}", "write the file as that layout wants it")
            return
        if agent_id is None:
            return  # the agent and its blocks are made by this apply: the block is read then
        block = _block_file(reader, agent_id, str(label))
        section = resource.attributes.get("extract_section")
        if block is None:
            yield Problem(
                (*resource.source, "block"),
                f"agent {resource.state['agent']} has no memory block {label} to write {resource.name} from",
                "name one of its memory blocks",
            )
        elif from_block_text(resource.name, str(label), section, block) is None:
            yield Problem(
                (*resource.source, "extract_section"),
                f"block {label} has no heading {section!r}",
                "name a Markdown heading of the block (#, ## ...) as it is written",
            )

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        named = agents_by_name(reader)
        wanted: dict[str, list[Resource]] = {}
        for resource in desired:
            found = named.get(str(resource.state["agent"]))
            if found:  # else the agent is made by this plan: so are its files
                wanted.setdefault(str(found[0]["id"]), []).append(resource)

        def one(agent_id: str) -> list[Resource]:
            return list(self._agent_files(reader, agent_id, wanted[agent_id]))

        with ThreadPoolExecutor(max_workers=MEMORY_READS) as pool:
            for found_files in pool.map(one, list(wanted)):
                yield from found_files

    def _agent_files(self, reader: LiveReader, agent_id: str, files: Sequence[Resource]) -> Iterable[Resource]:
        """The declared files the agent has, and those its `prune_paths` names (a removal the file asks for)."""
        app = app_of(reader.client)
        recorded = _recorded_ids(read_app_record(reader, agent_id))
        for resource in files:
            text = _read_raw(app, agent_id, resource.name)
            if text is not None:
                yield self._live(reader, resource, agent_id, text, recorded.get(resource.name))
        parent = files[0].parent
        for path in files[0].state.get("prune_paths") or ():
            text = _read_raw(app, agent_id, path)
            if text is not None:
                address = address_of(MEMORY_FILE, path, parent)
                state = {"agent_id": agent_id, "agent": files[0].state["agent"], "pruned": True, "edited": False}
                yield Resource(address, MEMORY_FILE, path, {"text": text}, parent=parent, id=path, state=state)

    def _live(self, reader: LiveReader, resource: Resource, agent_id: str, text: str, written: str | None) -> Resource:
        now = fingerprinted(resource.name, text)
        edited = written is not None and written != now
        expected = None
        label = resource.attributes.get("from_block")
        if label is not None:
            block = _block_file(reader, agent_id, str(label))
            section = resource.attributes.get("extract_section")
            expected = from_block_text(resource.name, str(label), section, block) if block else None
        state = {"agent_id": agent_id, "agent": resource.state["agent"], "edited": edited, "expected": expected}
        return Resource(
            resource.address,
            MEMORY_FILE,
            resource.name,
            {**resource.attributes, "text": text},
            parent=resource.parent,
            id=written if edited else now,  # an edit stays unrecorded: the plan shows it until it is resolved
            state=state,
        )

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """The files the agents' records list and the fleet declares no more, where they are still there."""
        agents = {agent_address(name): found[0] for name, found in agents_by_name(reader).items()}
        for placeholder in recorded:
            agent = agents.get(str(placeholder.parent))
            if agent is None or not placeholder.id:
                continue
            agent_id, path = str(agent["id"]), path_in(placeholder.id)
            text = _read_raw(app_of(reader.client), agent_id, path)
            if text is not None:
                edited = placeholder.id != fingerprinted(path, text)
                state = {"agent_id": agent_id, "agent": str(agent["name"]), "edited": edited}
                yield replace(placeholder, attributes={"text": text}, state=state)

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

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        app, agent_id = app_of(session.client), agent_of(change, session, "the file")
        if change.action is Action.DELETE:
            app.delete_memory_file(str(agent_id), change.name, message=f"lettafleet: remove {change.name}")
            return None
        after = change.after or {}
        text = after.get("text")
        if text is None:  # from a block of an agent this apply made: read it now
            text = _text_from_block(app, str(agent_id), change)
        app.write_memory_file(str(agent_id), change.name, str(text), message=f"lettafleet: {change.name}")
        session.record_id(change.address, fingerprinted(change.name, str(text)))
        return None


def _text_from_block(app: AppServerClient, agent_id: str, change: Change) -> str:
    after = change.after or {}
    label = str(after["from_block"])
    files = app.list_memory(agent_id)
    layout = layout_of(files, app.made_by)
    entry = next((e for e in files if e.get("relative_path") == file_path(label, layout)), None)
    block = (layout, entry.get("description"), str(entry.get("content") or "")) if entry else None
    text = from_block_text(change.name, label, after.get("extract_section"), block) if block else None
    if text is None:
        raise ApplyError(f"{change.address}: agent {change.parent} has no block {label} (or not its section)")
    return text


def _recorded_ids(record: Sequence[Recorded] | None) -> dict[str, str]:
    """The files the record says an apply wrote, by path: their fingerprinted ids."""
    return {path_in(entry.id): entry.id for entry in record or () if entry.kind == MEMORY_FILE and entry.id}


def _origin(desired: Resource) -> str:
    label = desired.attributes.get("from_block")
    return f"from memory block {label}" if label else ""


def _removal(live: Resource) -> Change:
    """A file `prune_paths` names is deleted; one the record lists and the file no longer declares is deleted
    unless its agent edited it since (then it waits for `--prune`)."""
    change = compare(None, live)
    if live.state.get("pruned"):
        return replace(change, detail="prune_paths names it")
    if live.state.get("edited"):
        edited = f"agent {live.state['agent']} edited it since lettafleet wrote it"
        return replace(change, held="prune", detail=edited)
    return replace(change, detail="taken out of the memory section: lettafleet wrote it (the agent's record)")


__all__ = ["V1", "V2", "AppServerMemfsHandler", "layout_problem"]
