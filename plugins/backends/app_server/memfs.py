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
    Resource,
    ResourceHandler,
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
from lettafleet.plugins.resources.agents import agent_address
from lettafleet.plugins.resources.memfs import (
    INDEX,
    MEMORY_FILE,
    MemoryFileHandler,
    extracted_section,
    fingerprinted,
    fingerprinted_path,
    live_file,
    pruned_file,
    recorded_file,
    recorded_files,
)

SKILLS = "skills/"


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

        with ThreadPoolExecutor(max_workers=MEMORY_READS) as pool:
            for found_files in pool.map(lambda agent_id: self._files_of(reader, agent_id, wanted[agent_id]), wanted):
                yield from found_files

    def read_ahead(self, reader: LiveReader, address: str, agent: Mapping[str, Any], fleet: Sequence[Resource]) -> None:
        """The agent's declared files, read as soon as its record is (the agent handler calls this)."""

        def grouped() -> dict[str, list[Resource]]:
            by_agent: dict[str, list[Resource]] = {}
            for resource in (resource for resource in fleet if resource.kind == MEMORY_FILE):
                by_agent.setdefault(str(resource.state["agent"]), []).append(resource)
            return by_agent

        files = reader.derived(("app_server", "memfs files by agent"), grouped).get(str(agent["name"]))
        if files:
            self._files_of(reader, str(agent["id"]), files)

    def _files_of(self, reader: LiveReader, agent_id: str, files: Sequence[Resource]) -> list[Resource]:
        """`_agent_files`, read once per plan for the same files of the same agent."""
        key = ("app_server", "memfs files", agent_id, tuple(resource.address for resource in files))
        found: list[Resource] = reader.derived(key, lambda: list(self._agent_files(reader, agent_id, files)))
        return found

    def _agent_files(self, reader: LiveReader, agent_id: str, files: Sequence[Resource]) -> Iterable[Resource]:
        """The declared files the agent has, and those its `prune_paths` names (a removal the file asks for)."""
        app = app_of(reader.client)
        recorded = recorded_files(read_app_record(reader, agent_id))
        for resource in files:
            text = _read_raw(app, agent_id, resource.name)
            if text is not None:
                expected = self._expected(reader, resource, agent_id)
                yield live_file(resource, text, recorded.get(resource.name), expected, agent_id)
        for path in files[0].state.get("prune_paths") or ():
            text = _read_raw(app, agent_id, path)
            if text is not None:
                yield pruned_file(files[0], path, text, agent_id)

    def _expected(self, reader: LiveReader, resource: Resource, agent_id: str) -> str | None:
        """What a file from a block should hold now (None: it is no block's, or the block is gone)."""
        label = resource.attributes.get("from_block")
        if label is None:
            return None
        block = _block_file(reader, agent_id, str(label))
        return (
            from_block_text(resource.name, str(label), resource.attributes.get("extract_section"), block)
            if block
            else None
        )

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """The files the agents' records list and the fleet declares no more, where they are still there."""
        agents = {agent_address(name): found[0] for name, found in agents_by_name(reader).items()}
        for placeholder in recorded:
            agent = agents.get(str(placeholder.parent))
            if agent is None or not placeholder.id:
                continue
            agent_id = str(agent["id"])
            text = _read_raw(app_of(reader.client), agent_id, fingerprinted_path(placeholder.id))
            if text is not None:
                yield recorded_file(placeholder, text, str(agent["name"]), agent_id)

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


__all__ = ["V1", "V2", "AppServerMemfsHandler", "layout_problem"]


class NoMemorySwitch(ResourceHandler):
    """`memory.mode` on the App Server: its agents keep their memory as files always, so there is no switch to
    flip (`mode: blocks` / `memfs` decide only which files the section writes); nothing is planned for it."""
