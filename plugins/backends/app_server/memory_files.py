"""`memory_blocks` on the App Server: each block is a memory file in the agent's git-backed memory (MemFS), laid
out as the agent's memory already is: v2 `<label>.md` with `name`/`description` (agents made by 0.34.x), v1
`system/<label>.md` with `description` (agents made by 0.32.x, kept after an upgrade)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
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
    RideAlongCheck,
    address_of,
    attributes,
    compare,
    exported_text_source,
)
from lettafleet.plugins.backends.app_server.agents import agents_by_name, read_app_record
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.backends.app_server.memory_reads import MEMORY_READS, read_each
from lettafleet.plugins.resources.agents import AGENT, agent_address, declared_agents

BLOCK = "block"  # the kind the blocks plugin names; the same address on every backend
V1, V2 = "v1", "v2"
INDEX = "MEMORY.md"  # v2 keeps one in every folder; v1 has none
SYSTEM_FOLDER = "system/"
FILE_LIMIT = 20_000  # characters a v2 memory file may hold
DEFAULT_DESCRIPTION = "Memory block {label}"  # what the server writes for a block made without a description
FIRST_V2 = (0, 34)  # the Letta Code release lettafleet saw make the v2 layout first (0.32.18 makes v1)


def layout_of(entries: Iterable[Mapping[str, Any]], made_by: tuple[int, ...]) -> str:
    """The agent's MemFS layout, from its files: v1 keeps blocks under `system/` and has no root index. An agent
    with no file at all says nothing: the layout is the one the server (Letta Code `made_by`) makes."""
    paths = {str(entry.get("relative_path")) for entry in entries}
    if INDEX in paths:
        return V2
    if any(path.startswith(SYSTEM_FOLDER) for path in paths):
        return V1
    return V1 if made_by < FIRST_V2 else V2


def file_path(label: str, layout: str) -> str:
    return f"{SYSTEM_FOLDER}{label}.md" if layout == V1 else f"{label}.md"


def either_layouts_path(label: str) -> tuple[str, str]:
    """Where block `label`'s file is in either layout: what an agent's record may name it by."""
    return file_path(label, V1), file_path(label, V2)


def file_text(label: str, description: str | None, value: str, layout: str) -> str:
    """The file as MemFS checks it: frontmatter of the keys its layout allows (v2 refuses any other), then the
    value. The server reads frontmatter values verbatim (quotes stay), so they are written plain, on one line."""
    keys = [f"name: {label}"] if layout == V2 else []
    if description is not None:
        keys.append(f"description: {description}")
    return "---\n" + "".join(f"{key}\n" for key in keys) + "---\n" + value


def recorded_layout(reader: LiveReader, agent_id: str, labels: Sequence[str]) -> str | None:
    """The layout in which the agent's record names the file of every block in `labels`: what a plan compares can
    then be read file by file (memory_reads.py). None: not known without listing the agent's memory."""
    recorded = {entry.address: entry.id for entry in read_app_record(reader, agent_id) or () if entry.kind == BLOCK}
    paths = [recorded.get(address_of(BLOCK, label)) for label in labels]
    return next((layout for layout in (V1, V2) if paths == [file_path(label, layout) for label in labels]), None)


def synced_fields(desired: Resource) -> list[str]:
    """What a file that follows the fleet file is compared by: its value, and its description where the file
    gives one (else the server writes its own, `Memory block <label>`)."""
    return ["value", "description"] if "description" in desired.attributes else ["value"]


def memory_of(reader: LiveReader, agent_id: str) -> list[dict[str, Any]]:
    """The agent's memory files, read once per plan."""
    files: list[dict[str, Any]] = reader.derived(
        ("app_server", "memory", agent_id), lambda: app_of(reader.client).list_memory(agent_id)
    )
    return files


def declared_files(reader: LiveReader, agent_id: str, labels: Sequence[str]) -> list[dict[str, Any]]:
    """The agent's files of the blocks `labels` name, read once per plan: one by one where its record names each
    file (memory_reads.py), else by listing its memory."""

    def read() -> list[dict[str, Any]]:
        layout = recorded_layout(reader, agent_id, labels)
        paths = [file_path(label, layout) for label in labels] if layout else None
        found = read_each(app_of(reader.client), agent_id, paths) if paths else None
        return found if found is not None else memory_of(reader, agent_id)

    files: list[dict[str, Any]] = reader.derived(("app_server", "declared memory", agent_id, tuple(labels)), read)
    return files


def _by_agent(blocks: Iterable[Resource]) -> dict[str, list[Resource]]:
    """Declared blocks by their agent's address, in the file's order."""
    declared: dict[str, list[Resource]] = {}
    for block in blocks:
        declared.setdefault(block.parent or "", []).append(block)
    return declared


def memory_layout(reader: LiveReader, agent_id: str) -> str:
    """The layout of the agent's memory (v1 or v2), from its files as listed once per plan."""
    return layout_of(memory_of(reader, agent_id), app_of(reader.client).made_by)


def block_files(reader: LiveReader, agent_id: str) -> list[dict[str, Any]]:
    """The agent's memory files that are its memory blocks, as `export` declares them: at a block's path in its
    layout (v2 `<label>.md`, v1 `system/<label>.md`, indexes aside) and no other kind's in its record (a shared
    block's copy, a `memory:` section's file)."""
    layout, others = memory_layout(reader, agent_id), _of_other_kinds(reader, agent_id)
    return [
        entry
        for entry in memory_of(reader, agent_id)
        if _label(entry, layout) and entry.get("relative_path") not in others
    ]


def block_label(entry: Mapping[str, Any], layout: str) -> str:
    """The label of a file `block_files` gives."""
    return str(_label(entry, layout))


def _of_other_kinds(reader: LiveReader, agent_id: str) -> set[str]:
    """The files the agent's record lists as another kind's (a shared block's copy): that kind exports them. Such an
    id is the file's path, maybe followed by `#` and what the copy held."""
    recorded = read_app_record(reader, agent_id) or ()
    return {str(entry.id).split("#", 1)[0] for entry in recorded if entry.kind != BLOCK and entry.id}


def _same_text_staying(entry: Mapping[str, Any], blocks: Iterable[Mapping[str, Any]], leaving: set[str]) -> str | None:
    """Another block file of the agent, staying, with the same value and description as `entry` (one being
    removed): what an apply killed between a rename's write of the new file and its delete of the old one leaves."""
    same = (
        str(other.get("relative_path"))
        for other in blocks
        if other.get("relative_path") not in leaving | {entry.get("relative_path")}
        and (other.get("content"), other.get("description")) == (entry.get("content"), entry.get("description"))
    )
    return next(same, None)


def _label(entry: Mapping[str, Any], layout: str) -> str | None:
    """The block label a memory file stands for in `layout` (None: an index, or a file no block maps to)."""
    path = str(entry.get("relative_path") or "")
    folder = SYSTEM_FOLDER if layout == V1 else ""
    label = path.removeprefix(folder).removesuffix(".md")
    fits = path.startswith(folder) and path.endswith(".md") and path != INDEX
    return label if fits and file_path(label, layout) == path and _is_label(label) else None


def _exported_block(agent: str, entry: Mapping[str, Any], layout: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A memory file as a declared block (its value inline, or in blocks/AGENT/LABEL.md when long)."""
    label = str(_label(entry, layout))
    source, files = exported_text_source(str(entry.get("content") or ""), f"blocks/{agent}/{label}.md")
    return {"name": label, **attributes(description=entry.get("description")), **source}, files


def _is_label(text: str) -> bool:
    """Whether a fleet file may name a block so (the blocks plugin's LABEL_PATTERN: letters, digits, _ and -)."""
    return bool(text) and all(char.isascii() and (char.isalnum() or char in "_-") for char in text)


class MemoryFileHandler(ResourceHandler):
    """An agent's memory blocks as its memory files. `agent_owned` (the default): written once, when missing,
    and never again (the agent's edits are its own); `agent_owned: false`: the file's value and description
    follow the fleet file. `limit` is checked here: the server does not enforce it."""

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for agent in declared_agents(fleet):
            for index, block in enumerate(agent.data.get("memory_blocks", [])):
                yield Resource(
                    address_of(BLOCK, block["name"], agent.address),
                    BLOCK,
                    block["name"],
                    attributes(
                        value=fleet.text(block),
                        description=block.get("description"),
                        agent_owned=block["agent_owned"],
                    ),
                    parent=agent.address,
                    source=(*agent.at, "memory_blocks", index),
                    sensitive=frozenset({"value"}) if block.get("sensitive") else frozenset(),
                    protected=block["protect"],
                    state={"limit": block.get("limit")},
                )

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """A value longer than its `limit` (or than a memory file holds) is refused before anything is written."""
        for block in desired:
            yield from self._one_line(block)
            limit = block.state.get("limit") or FILE_LIMIT
            size = len(block.attributes["value"])
            if size > min(limit, FILE_LIMIT):
                yield Problem(
                    block.source,
                    f"memory block {block.name} holds {size} characters, over its limit of {min(limit, FILE_LIMIT)}",
                    "shorten the value, or raise `limit` (an App Server memory file holds at most 20,000)",
                )

    def _one_line(self, block: Resource) -> Iterable[Problem]:
        if "\n" in (block.attributes.get("description") or ""):
            yield Problem(
                (*block.source, "description"),
                "a memory file's description is one line of its frontmatter on the App Server",
                "write the description on one line",
            )

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        named = agents_by_name(reader)
        agents = {resource.address: resource for resource in fleet if resource.parent is None}
        ids: dict[str, str] = {}  # the agent's address -> its id on the server
        for parent in sorted({block.parent for block in desired if block.parent}):
            found = named.get(agents[parent].name) if parent in agents else None
            if found:  # else the agent is created by this plan: so are its files
                ids[parent] = str(found[0]["id"])
        declared = _by_agent(desired)
        labels = {ids[parent]: [block.name for block in declared[parent]] for parent in ids}
        with ThreadPoolExecutor(max_workers=MEMORY_READS) as pool:
            memories = dict(zip(labels, pool.map(lambda i: declared_files(reader, i, labels[i]), labels), strict=True))
        for parent, agent_id in ids.items():
            files = memories[agent_id]
            made_by = app_of(reader.client).made_by
            layout = recorded_layout(reader, agent_id, labels[agent_id]) or layout_of(files, made_by)
            by_path = {str(entry.get("relative_path")): entry for entry in files}
            for block in declared[parent]:
                entry = by_path.get(file_path(block.name, layout))
                if entry is not None:
                    yield Resource(
                        block.address,
                        BLOCK,
                        block.name,
                        {"value": entry.get("content") or "", "description": entry.get("description")},
                        parent=parent,
                        id=file_path(block.name, layout),
                        state={"agent_id": agent_id, "layout": layout},
                    )

    def read_ahead(self, reader: LiveReader, address: str, agent: Mapping[str, Any], fleet: Sequence[Resource]) -> None:
        """The agent's declared files, read as soon as its record is (the agent handler calls this), so that the
        plan's reads of one agent need not wait for every other agent's record."""
        declared: dict[str, list[Resource]] = reader.derived(
            ("app_server", "blocks by agent"), lambda: _by_agent(r for r in fleet if r.kind == BLOCK)
        )
        if address in declared:
            declared_files(reader, str(agent["id"]), [block.name for block in declared[address]])

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """The files the agents' records list and the fleet declares no more, as the agents have them now."""
        agents = {agent_address(name): found[0] for name, found in agents_by_name(reader).items()}
        for placeholder in recorded:
            agent = agents.get(str(placeholder.parent))
            if agent is None or placeholder.id not in either_layouts_path(placeholder.name):
                continue  # none, or a record edited on the server to name another file: none of the fleet's blocks
            files = memory_of(reader, str(agent["id"]))
            entry = next((e for e in files if e.get("relative_path") == placeholder.id), None)
            if entry is not None:
                leaving = {str(p.id) for p in recorded if p.parent == placeholder.parent}
                yield replace(
                    placeholder,
                    attributes={"value": entry.get("content") or "", "description": entry.get("description")},
                    state={
                        "agent_id": str(agent["id"]),
                        "layout": layout_of(files, app_of(reader.client).made_by),
                        "text_kept_in": _same_text_staying(entry, block_files(reader, str(agent["id"])), leaving),
                    },
                )

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Each memory file that is a block (v2 `<label>.md`, v1 `system/<label>.md`, indexes aside) as one of the
        agent's `memory_blocks`, its value and description, `agent_owned` (the default) as V1's export makes them."""
        for agent in agents:
            name, layout = str(agent["name"]), memory_layout(reader, str(agent["id"]))
            blocks = [_exported_block(name, entry, layout) for entry in block_files(reader, str(agent["id"]))]
            for declared, written in sorted(blocks, key=lambda block: str(block[0]["name"])):
                yield Exported("memory_blocks", [declared], name, written)

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is None and live is not None and live.state.get("text_kept_in"):
            kept = f"nothing is lost: {live.state['text_kept_in']} holds the same text (a rename cut short leaves this)"
            return replace(compare(None, live), sensitive=frozenset({"value"}), detail=kept)
        if desired is None and live is not None:
            size = len(str(live.attributes.get("value") or ""))
            holds = f"a memory file of {size} characters the agent may have written"
            return replace(compare(None, live), sensitive=frozenset({"value"}), held="prune", detail=holds)
        if desired is None or live is None:
            return compare(desired, live)
        return compare(desired, live, [] if desired.attributes["agent_owned"] else synced_fields(desired))

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        """A new agent's new blocks go in its `agent_create` (`memory_blocks`): the server writes each file in the
        layout it makes, in the one commit that makes the agent."""
        return file_in_create(parent, child, request, session, lambda path, entry: path)

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        app, agent_id = app_of(session.client), agent_of(change, session, "the file")
        if change.action is Action.DELETE:
            app.delete_memory_file(str(agent_id), str(change.id), message=f"lettafleet: remove {change.name}")
            return None
        layout = str(change.state.get("layout") or layout_of(app.list_memory(str(agent_id)), app.made_by))
        values = {**(change.before or {}), **(change.after or {})}
        path = write_file(app, str(agent_id), change.name, values, layout, message=f"lettafleet: {change.name}")
        if change.id is not None and str(change.id) != path:  # renamed (`moved:`): the old label's file goes
            app.delete_memory_file(str(agent_id), str(change.id), message=f"lettafleet: {change.id} moved to {path}")
        session.record_id(change.address, path)  # what the agent's record names it by
        return None


def agent_of(change: Change, session: ApplySession, what: str) -> str:
    """The id of the agent a memory file's change is under (one made earlier in this apply included)."""
    agent_id = change.state.get("agent_id") or session.id_of(str(change.parent))
    if agent_id is None:
        raise ApplyError(f"{change.address}: its agent {change.parent} was not made, so neither is {what}")
    return str(agent_id)


def write_file(
    app: AppServerClient, agent_id: str, label: str, values: Mapping[str, Any], layout: str, *, message: str
) -> str:
    """Write and commit the block `label` (its `value` and `description`) as the agent's layout has it; its path.
    A block the fleet file gives no description gets the one the server gives such a block (v2 requires one)."""
    path = file_path(label, layout)
    description = values.get("description") or DEFAULT_DESCRIPTION.format(label=label)
    text = file_text(label, description, str(values.get("value") or ""), layout)
    app.write_memory_file(agent_id, path, text, message=message)
    return path


def file_in_create(
    parent: Change,
    child: Change,
    request: dict[str, Any],
    session: ApplySession,
    record_as: Callable[[str, Mapping[str, Any]], str],
) -> RideAlongCheck | None:
    """A new agent's new file, put in its `agent_create` (`memory_blocks`) for the server to write in its own
    layout; once made, the file must be there, and the agent's record names it `record_as(path, listed entry)`."""
    if parent.kind != AGENT or child.action is not Action.CREATE:
        return None
    after = child.after or {}
    block = {"label": child.name, "value": after.get("value") or ""}
    if after.get("description") is not None:
        block["description"] = after["description"]
    request.setdefault("memory_blocks", []).append(block)
    app = app_of(session.client)

    def landed(answer: Mapping[str, Any]) -> str | None:
        entry = _made_file(app, str(answer["id"]), child.name)
        if entry is None:
            return f"agent {parent.name} was created without its memory file for {child.name}"
        session.record_id(child.address, record_as(str(entry["relative_path"]), entry))
        return None

    return landed


def _made_file(app: AppServerClient, agent_id: str, label: str) -> dict[str, Any] | None:
    """The file a new agent's server made for block `label`, as `list_memory` lists it: read where the server's
    own layout puts it (one file read; listing runs git on the server), else found in the listing; None if absent."""
    path = file_path(label, layout_of((), app.made_by))
    made = read_each(app, agent_id, [path])
    if made:
        return made[0]
    files = app.list_memory(agent_id)
    path = file_path(label, layout_of(files, app.made_by))
    return next((entry for entry in files if entry.get("relative_path") == path), None)
