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
    Exported,
    Fleet,
    LiveReader,
    Problem,
    Resource,
    ResourceHandler,
    compare,
)
from lettafleet.plugins.backends.app_server.agents import agents_by_name, read_app_record
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import (
    AppServerConnectionError,
    AppServerError,
    AppServerTimeout,
)
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.backends.app_server.memfs_export import exported_memory_sections
from lettafleet.plugins.backends.app_server.memory_files import (
    DEFAULT_DESCRIPTION,
    FILE_LIMIT,
    FIRST_V2,
    V1,
    V2,
    agent_of,
    file_path,
    file_text,
    layout_of,
    memory_of,
)
from lettafleet.plugins.backends.app_server.memory_reads import MEMORY_READS, parsed_memory_file
from lettafleet.plugins.backends.app_server.turns import ERROR, run_turn
from lettafleet.plugins.resources.agents import agent_address, declared_agents
from lettafleet.plugins.resources.memfs import (
    INDEX,
    MEMORY_FILE,
    MEMORY_MODE,
    MemoryFileHandler,
    extracted_section,
    fingerprinted,
    indexes_in_use,
    live_file,
    pruned_file,
    recorded_file,
    recorded_files,
    recorded_path,
    verify_resource,
)
from lettafleet.plugins.resources.memfs_expansion import MEMFS, declared_files

SKILLS = "skills/"
OWN_CONVERSATION = "default"  # the agent's own conversation, as the protocol names it
PASSED = "passed"  # what the agent's record keeps for its `memory.verify` once it passed
DECLARED_PATHS = ("app_server", "memfs declared paths")  # the memory files the fleet declares, by agent address


V1_MEMORY = re.compile(r"^(?:memory/)?(?:system|reference)/.*\.md$")  # the files Letta Code checks in v1
FLAT_SKILL = re.compile(r"^skills/[^/]+\.md$")
FRONTMATTER_KEYS = {V1: ("description", "read_only", "limit"), V2: ("name", "description")}
REQUIRED_KEYS = {V1: ("description",), V2: ("name", "description")}
EMPTY_VALUES = {V1: ("",), V2: ("", '""', "''")}


def layout_problem(path: str, text: str, layout: str, paths: set[str]) -> str | None:
    """Why the App Server would refuse to commit `text` at `path` in an agent of `layout` (None: it would not),
    as Letta Code's pre-commit check reads memory: v2 wants an index (`MEMORY.md`, no frontmatter) in every folder
    on the way, frontmatter of exactly `name` and `description` in every other Markdown file outside `skills/`, and
    20,000 characters at most; v1 wants frontmatter with a `description` (and maybe a `limit`) in `system/` and
    `reference/`. A Markdown file right under `skills/` is refused by both. `paths`: every file the agent will
    have."""
    if FLAT_SKILL.match(path):
        return "a skill is a folder: write skills/<name>/SKILL.md"
    if not path.endswith(".md") or path.startswith(SKILLS):
        return None
    if layout == V2:
        return _v2_problem(path, text, paths)
    if path == INDEX:
        return "a root MEMORY.md would turn the agent's memory into the v2 layout (Letta Code reads it so)"
    if V1_MEMORY.match(path):
        problem = frontmatter_problem(text, V1)
        return (
            f"the v1 layout wants frontmatter with a description in system/ and reference/: {problem}"
            if problem
            else None
        )
    return None


def _v2_problem(path: str, text: str, paths: set[str]) -> str | None:
    folders = PurePosixPath(path).parts[:-1]
    for depth in range(1, len(folders) + 1):
        index = "/".join((*folders[:depth], INDEX))
        if index != path and index not in paths:
            return f"the v2 layout wants an index, {index}, beside it (no frontmatter)"
    if len(text) > FILE_LIMIT:
        return f"the v2 layout holds {len(text)} characters, over the {FILE_LIMIT} characters a file may hold"
    if PurePosixPath(path).name == INDEX:
        return "an index (MEMORY.md) has no frontmatter in the v2 layout" if text.split("\n")[0] == "---" else None
    problem = frontmatter_problem(text, V2)
    return f"the v2 layout wants frontmatter with name and description: {problem}" if problem else None


def frontmatter_problem(text: str, layout: str) -> str | None:
    """What Letta Code's check finds wrong with a memory file's frontmatter (None: nothing), read as it reads it:
    line by line, the first line exactly `---` (no BOM, no CR), the keys its layout allows, each once (v2) and
    none empty; v1's `read_only` is the server's to set."""
    lines = text.split("\n")
    if lines[0] != "---":
        return "the file must start with a line '---' (no byte-order mark, no CRLF line ends)"
    if "---" not in lines[1:]:
        return "its frontmatter is never closed by a line '---'"
    seen: set[str] = set()
    for line in lines[1 : lines.index("---", 1)]:
        if not line or (layout == V1 and line[0] in " \t"):
            continue
        raw_key, _, value = line.partition(":")
        key = raw_key.strip(" ") if layout == V2 else raw_key.replace(" ", "")
        value = value.strip(" ")
        if key not in FRONTMATTER_KEYS[layout]:
            return f"unknown frontmatter key {key!r} (allowed: {' '.join(FRONTMATTER_KEYS[layout])})"
        if key in seen and layout == V2:
            return f"it gives {key!r} twice"
        if key == "read_only":
            return "'read_only' is a protected field: the server sets it, a write may not"
        if (layout == V2 or key == "description") and value in EMPTY_VALUES[layout]:
            return f"{key!r} must not be empty"
        seen.add(key)
    missing = [key for key in REQUIRED_KEYS[layout] if key not in seen]
    return f"missing {' and '.join(missing)}" if missing else None


def _read_raw(app: AppServerClient, agent_id: str, path: str) -> str | None:
    """The file's text; None when the server refuses the read (not there: it names no other cause apart). A read
    that timed out or lost its connection raises: taken for "not there", it would plan a write over the file."""
    try:
        return app.read_memory_file(agent_id, path)
    except (AppServerTimeout, AppServerConnectionError):
        raise
    except AppServerError:
        return None


def _has_file(reader: LiveReader, agent_id: str, path: str) -> bool:
    """Whether the agent has the file `path`, read once per plan (a file read: listing the memory runs git on the
    server, some 50 times the cost)."""
    found: bool = reader.derived(
        ("app_server", "memfs has", agent_id, path),
        lambda: _read_raw(app_of(reader.client), agent_id, path) is not None,
    )
    return found


def agent_layout(reader: LiveReader, agent_id: str) -> str:
    """The agent's layout (`layout_of`), from its root index alone where that decides it: v2 has one; an agent of
    a server older than v2 has none and is v1. Only an agent without one on a v2 server (made before an upgrade)
    has its memory listed."""
    app = app_of(reader.client)
    if _has_file(reader, agent_id, INDEX):
        return V2
    return V1 if app.made_by < FIRST_V2 else layout_of(memory_of(reader, agent_id), app.made_by)


def _block_file(reader: LiveReader, agent_id: str, label: str) -> tuple[str, str | None, str] | None:
    """The agent's block `label` as a memory file: (layout, description, value); None when it has none. Read
    once per plan."""
    found: tuple[str, str | None, str] | None = reader.derived(
        ("app_server", "memfs block", agent_id, label), lambda: _read_block_file(reader, agent_id, label)
    )
    return found


def _read_block_file(reader: LiveReader, agent_id: str, label: str) -> tuple[str, str | None, str] | None:
    layout = agent_layout(reader, agent_id)
    raw = _read_raw(app_of(reader.client), agent_id, file_path(label, layout))
    if raw is None:
        return None
    parsed = parsed_memory_file(raw)
    if parsed is None:  # frontmatter the reader does not take: the server's listing has it parsed
        entries = memory_of(reader, agent_id)
        entry = next((e for e in entries if e.get("relative_path") == file_path(label, layout)), None)
        return (layout, entry.get("description"), str(entry.get("content") or "")) if entry else None
    return layout, parsed[0], parsed[1]


def _indexes_on_the_way(paths: Iterable[str]) -> set[str]:
    """The indexes the v2 layout wants for these files (Markdown outside `skills/`): one in every folder on the
    way."""
    wanted: set[str] = set()
    for path in (path for path in paths if path.endswith(".md") and not path.startswith(SKILLS)):
        folders = PurePosixPath(path).parts[:-1]
        wanted.update("/".join((*folders[:depth], INDEX)) for depth in range(1, len(folders) + 1))
    return wanted


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
            layout = agent_layout(reader, agent_id) if agent_id else layout_of((), app.made_by)
            paths = {resource.name for resource in files}
            if agent_id and layout == V2:  # the indexes the files want that the fleet does not declare
                paths |= {i for i in _indexes_on_the_way(paths) - paths if _has_file(reader, agent_id, i)}
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
        elif (text := from_block_text(resource.name, str(label), section, block)) is None:
            yield Problem(
                (*resource.source, "extract_section"),
                f"block {label} has no heading {section!r}",
                "name a Markdown heading of the block (#, ## ...) as it is written",
            )
        elif problem := layout_problem(resource.name, text, layout, paths):
            yield Problem(
                (*resource.source, "to"), f"{resource.name}: {problem}", "write the block's file at another path"
            )

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        reader.derived(DECLARED_PATHS, lambda: _paths_by_agent(desired))  # for `removed`, which core calls next
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
        """The files the agents' records list and the fleet declares no more, where they are still there; in the
        v2 layout, an index among them is kept (or held) while files stay in its folder (`indexes_in_use`)."""
        agents = {agent_address(name): found[0] for name, found in agents_by_name(reader).items()}
        by_agent: dict[str, list[Resource]] = {}
        for placeholder in recorded:
            agent, path = agents.get(str(placeholder.parent)), recorded_path(placeholder)
            if agent is None or path is None:
                continue
            agent_id = str(agent["id"])
            text = _read_raw(app_of(reader.client), agent_id, path)
            if text is not None:
                by_agent.setdefault(agent_id, []).append(recorded_file(placeholder, text, str(agent["name"]), agent_id))
        for agent_id, removals in by_agent.items():
            yield from self._with_indexes(reader, agent_id, removals)

    def _with_indexes(self, reader: LiveReader, agent_id: str, removals: list[Resource]) -> Iterable[Resource]:
        if not any(PurePosixPath(r.name).name == INDEX for r in removals):
            return removals
        if agent_layout(reader, agent_id) != V2:
            return removals
        files = memory_of(reader, agent_id)
        declared, pruned = reader.derived(DECLARED_PATHS, dict).get(str(removals[0].parent), (set(), set()))
        return indexes_in_use(removals, ({str(e.get("relative_path")) for e in files} | declared) - pruned)

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Each agent's memory files beyond its blocks as its `memory:` section (memfs_export.py)."""
        return exported_memory_sections(reader, agents)

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


def _paths_by_agent(desired: Sequence[Resource]) -> dict[str, tuple[set[str], set[str]]]:
    """By agent address: the paths of the files the fleet declares, and those its `prune_paths` name."""
    by_agent: dict[str, tuple[set[str], set[str]]] = {}
    for resource in desired:
        declared, pruned = by_agent.setdefault(str(resource.parent), (set(), set()))
        declared.add(resource.name)
        pruned.update(resource.state.get("prune_paths") or ())
    return by_agent


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


class AppServerMemorySwitch(ResourceHandler):
    """`memory.mode` on the App Server: its agents keep their memory as files always, so there is no switch to
    flip (`mode: blocks` / `memfs` decide only which files the section writes). What stands for the switch is the
    apply that first writes an agent's section files: `memory.verify` is checked after it, as on V1 after the
    switch (docs/app-server.md)."""

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for agent in declared_agents(fleet):
            memory = agent.data.get("memory") or {}
            if memory.get("mode") == MEMFS and memory.get("verify"):
                yield verify_resource(agent.address, agent.name, memory, declared_files(fleet, agent))

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        """A check stands as done where the agent's record says it passed; else it runs (again) after this apply
        writes the files, so a check that failed is made by the next apply too."""
        named = agents_by_name(reader)
        for check in desired:
            found = named.get(str(check.state["agent"]))
            record = read_app_record(reader, str(found[0]["id"])) if found else None
            if any(entry.kind == MEMORY_MODE and entry.id == PASSED for entry in record or ()):
                yield replace(check, id=PASSED)

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        change = compare(desired, live)  # a check taken out of the file leaves the record: nothing to undo
        if desired is None or not change.changes_something:
            return change
        checks = desired.attributes["verify"]
        said = [f"memory.verify ({', '.join(sorted(checks))}) checked once the section's files are written"]
        if checks.get("require_core_memory_empty"):
            said.append("require_core_memory_empty holds by design here: an App Server agent has no memory blocks")
        return replace(change, detail="; ".join(said))

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.action is Action.DELETE:
            return None
        app, agent_id = app_of(session.client), agent_of(change, session, "memory.verify")
        checks = change.after or {}
        missing = [path for path in checks.get("files") or () if _read_raw(app, agent_id, str(path)) is None]
        failed = [f"its memory lacks {', '.join(missing)}"] if missing else []
        prompt = (checks.get("verify") or {}).get("smoke_prompt")
        if prompt and not failed:
            failed += smoke_failures(app, agent_id, str(prompt))
        if failed:
            raise ApplyError(
                f"{change.parent}: memory.verify failed after its memory files were written: "
                f"{'; '.join(reason.rstrip('.') for reason in failed)}. "
                "Look at the agent, fix what is named, and run the apply again"
            )
        session.record_id(change.address, PASSED)
        return None


def smoke_failures(app: AppServerClient, agent_id: str, prompt: str) -> list[str]:
    """Send the smoke prompt in the agent's own conversation (tools refused); what went wrong when no reply came."""
    try:
        events = list(run_turn(app, agent_id, OWN_CONVERSATION, prompt, approve_tools=False))
    except AppServerError as error:
        return [f"smoke_prompt got no reply: {error}"]
    errors = [str(event.get("message")) for event in events if event.get("message_type") == ERROR]
    if errors:
        return [f"smoke_prompt got no reply: {errors[0]}"]
    replies = [event for event in events if event.get("message_type") == "assistant_message"]
    return [] if replies else ["smoke_prompt got no reply from the agent"]


__all__ = ["V1", "V2", "AppServerMemfsHandler", "AppServerMemorySwitch", "layout_problem"]
