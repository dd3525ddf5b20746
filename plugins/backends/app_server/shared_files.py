"""`shared_blocks` on the App Server, which has no shared memory: every agent that attaches a shared block gets
its own copy, a memory file in its own layout (as memory_files.py writes them). A change to the shared block
reaches every copy that follows the file; a copy its agent edited is drift, named by its agent.

What lettafleet last wrote into each copy is in the agent's record: the entry's id is the file's path and a
digest of what was written (`system/policy.md#3f2a...`), so an edit by the agent shows, and a detach deletes
only a copy the record names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from lettafleet.core import (
    Action,
    Ambiguity,
    ApplySession,
    Change,
    Exported,
    Fleet,
    LiveReader,
    Problem,
    Recorded,
    Resource,
    ResourceHandler,
    RideAlongCheck,
    address_of,
    attributes,
    compare,
    exported_text_source,
)
from lettafleet.plugins.backends.app_server.agents import agents_by_name, read_app_record
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.backends.app_server.memory_files import (
    BLOCK,
    FILE_LIMIT,
    SYSTEM_FOLDER,
    V1,
    V2,
    agent_of,
    either_layouts_path,
    file_in_create,
    file_path,
    layout_of,
    memory_of,
    synced_fields,
    write_file,
)
from lettafleet.plugins.backends.app_server.memory_reads import file_alone
from lettafleet.plugins.resources.agents import agent_address, declared_agents

SHARED = "shared_block"  # the kinds the blocks plugin names: the same addresses on every backend
ATTACHMENT = "shared_block_attachment"
DIGEST_MARK = "#"
NO_SHARED_MEMORY = "the App Server has no shared memory: each agent that attaches a shared block gets a file of its own"


def digest(values: Mapping[str, Any]) -> str:
    """A short fingerprint of a copy's value: what an agent edits (a description left out of the file is one the
    server fills in, so it is not part of it)."""
    return hashlib.sha256(str(values.get("value") or "").encode()).hexdigest()[:16]


def copy_id(path: str, values: Mapping[str, Any]) -> str:
    """`system/policy.md#3f2a...`: where the copy is, and what it held when last written or seen."""
    return f"{path}{DIGEST_MARK}{digest(values)}"


def path_in(copy: str) -> str:
    return copy.split(DIGEST_MARK, 1)[0]


def _copies_by_agent(reader: LiveReader, fleet: Sequence[Resource]) -> dict[str, list[Resource]]:
    """The fleet's copies of shared blocks by their agent's address, grouped once per plan."""

    def grouped() -> dict[str, list[Resource]]:
        copies: dict[str, list[Resource]] = {}
        for copy in (resource for resource in fleet if resource.kind == ATTACHMENT):
            copies.setdefault(str(copy.parent), []).append(copy)
        return copies

    found: dict[str, list[Resource]] = reader.derived(("app_server", "copies by agent"), grouped)
    return found


def _as_listed(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"value": entry.get("content") or "", "description": entry.get("description")}


class SharedFileHandler(ResourceHandler):
    """Shared blocks as one memory file per attaching agent. `agent_owned: false` (the fleet is the truth, as
    on V1): every copy follows the file, and a copy its agent edited is overwritten, the plan saying so.
    `agent_owned: true` (the default; seeded once, as on V1): each copy is written once; a copy its agent
    edited is drift the plan shows, left as it is (on V1 the other agents would see the edit: here none does)."""

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        """One copy per agent that attaches a shared block (the fleet-level block itself is nothing on the
        server: it has no resource here)."""
        shared = {block["name"]: (index, block) for index, block in enumerate(fleet.data.get("shared_blocks", []))}
        for agent in declared_agents(fleet):
            for index, name in enumerate(agent.data.get("shared_blocks", [])):
                if name not in shared:
                    continue  # validate refuses it at its line
                at, block = shared[name]
                yield Resource(
                    address_of(SHARED, name, agent.address),
                    ATTACHMENT,
                    name,
                    attributes(
                        value=fleet.text(block), description=block.get("description"), agent_owned=block["agent_owned"]
                    ),
                    parent=agent.address,
                    source=(*agent.at, "shared_blocks", index),
                    sensitive=frozenset({"value"}) if block.get("sensitive") else frozenset(),
                    protected=block["protect"],
                    state={"agent": agent.name, "limit": block.get("limit"), "declared_at": ("shared_blocks", at)},
                )

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Each shared block once, at its declaration: over its `limit` (the server enforces none) or over what a
        memory file holds, or a description of more than one line (frontmatter is one line)."""
        checked = {copy.name: copy for copy in desired}
        for copy in checked.values():
            at = copy.state["declared_at"]
            limit = min(copy.state.get("limit") or FILE_LIMIT, FILE_LIMIT)
            size = len(copy.attributes["value"])
            if size > limit:
                yield Problem(
                    at,
                    f"shared block {copy.name} holds {size} characters, over its limit of {limit}",
                    "shorten the value, or raise `limit` (an App Server memory file holds at most 20,000)",
                )
            if "\n" in (copy.attributes.get("description") or ""):
                yield Problem(
                    (*at, "description"),
                    "a memory file's description is one line of its frontmatter on the App Server",
                    "write the description on one line",
                )

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        named = agents_by_name(reader)
        for copy in desired:
            found = named.get(str(copy.state["agent"]))
            if not found:
                continue  # the agent is created by this plan: so is its copy
            live = self._copy(reader, found[0], copy)
            if live is not None:
                yield live

    def read_ahead(self, reader: LiveReader, address: str, agent: Mapping[str, Any], fleet: Sequence[Resource]) -> None:
        """The agent's copies, read as soon as its record is (the agent handler calls this)."""
        for copy in _copies_by_agent(reader, fleet).get(address, ()):
            self._copy(reader, agent, copy)

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """The copies the agents' records list and the fleet attaches no more, where the file is still there."""
        agents = {agent_address(name): found[0] for name, found in agents_by_name(reader).items()}
        for placeholder in recorded:
            agent = agents.get(str(placeholder.parent))
            if agent is None or placeholder.id is None or placeholder.kind != ATTACHMENT:
                continue
            path = path_in(placeholder.id)
            if path not in either_layouts_path(placeholder.name):
                continue  # a record edited on the server to name another file: none of the fleet's copies
            live = self._copy(reader, agent, placeholder, path)
            if live is not None:
                yield replace(live, protected=placeholder.protected)

    def _copy(
        self, reader: LiveReader, agent: Mapping[str, Any], copy: Resource, path: str | None = None
    ) -> Resource | None:
        """The agent's copy as the server has it, with whether its agent edited it since lettafleet last wrote
        (or saw) it, by the digest the agent's record holds."""
        agent_id = str(agent["id"])
        layout = _recorded_layout(read_app_record(reader, agent_id))
        path = path or (file_path(copy.name, layout) if layout else None)
        entry = file_alone(reader, agent_id, path) if layout and path else None
        if entry is None:  # the layout or the file is not known without listing the agent's memory
            files = memory_of(reader, agent_id)
            layout = layout_of(files, app_of(reader.client).made_by)
            path = path or file_path(copy.name, layout)
            entry = next((e for e in files if e.get("relative_path") == path), None)
        if entry is None or path is None:
            return None
        values = _as_listed(entry)
        own = copy.address.removeprefix(f"{copy.parent}.")
        written = _recorded_id(read_app_record(reader, agent_id), own)
        state = {
            "agent_id": agent_id,
            "agent": str(agent["name"]),
            "layout": layout,
            "path": path,
            "description": values["description"],  # kept when the fleet file gives none
            "edited": written is not None and written != copy_id(path, values),
        }
        return Resource(
            copy.address, ATTACHMENT, copy.name, values, parent=copy.parent, id=copy_id(path, values), state=state
        )

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """The copies the agents' records list, as what they are in a fleet file: one shared block per name (its
        value and description from a copy no agent edited, where there is one) and each agent's attachment."""
        chosen: dict[str, tuple[dict[str, Any], bool]] = {}
        for agent in agents:
            for name, values, edited in _recorded_copies(reader, str(agent["id"])):
                if name not in chosen or (chosen[name][1] and not edited):
                    chosen[name] = (values, edited)
                yield Exported("shared_blocks", [name], str(agent["name"]))
        for name, (values, _edited) in sorted(chosen.items()):
            source, files = exported_text_source(str(values["value"]), f"blocks/shared/{name}.md")
            yield Exported(
                "shared_blocks",
                [{"name": name, **attributes(description=values["description"]), **source}],
                files=files,
            )

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is None and live is not None:
            return _removal(live)
        if live is None:
            assert desired is not None
            detail = f"agent {desired.state['agent']}'s own copy ({NO_SHARED_MEMORY})"
            return compare(desired, live, detail=detail)
        assert desired is not None
        owned = desired.attributes["agent_owned"]
        change = compare(desired, live, [] if owned else synced_fields(desired))
        agent, path = live.state["agent"], live.state["path"]
        edited = f"agent {agent} edited its copy ({path}) since lettafleet wrote it"
        if change.action is Action.UPDATE:
            overwrite = f"drift: {edited}; apply overwrites it with the file's (agent_owned: false)"
            follows = f"agent {agent}'s copy ({path}) follows the shared block: every attaching agent has its own"
            return replace(change, detail=overwrite if live.state["edited"] else follows)
        if owned and live.state["edited"]:
            kept = (
                f"{edited}: no other agent sees the edit ({NO_SHARED_MEMORY}); kept (agent_owned: true), and apply "
                "records the copy as it is now. To give every agent the file's text again: agent_owned: false"
            )
            return replace(change, drift=kept)
        return change

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        """A new agent's copies go in its `agent_create` (`memory_blocks`), written by the server in its layout."""
        return file_in_create(parent, child, request, session, lambda path, entry: copy_id(path, _as_listed(entry)))

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        app, agent_id = app_of(session.client), agent_of(change, session, "its copy")
        if change.action is Action.DELETE:
            message = f"lettafleet: detach shared block {change.name}"
            app.delete_memory_file(str(agent_id), str(change.state["path"]), message=message)
            return None
        layout = str(change.state.get("layout") or layout_of(app.list_memory(str(agent_id)), app.made_by))
        values = {"description": change.state.get("description"), **(change.before or {}), **(change.after or {})}
        message = f"lettafleet: shared block {change.name}"
        path = write_file(app, str(agent_id), change.name, values, layout, message=message)
        session.record_id(change.address, copy_id(path, values))  # the record holds what was written
        return None


def _recorded_layout(record: Sequence[Recorded] | None) -> str | None:
    """The agent's memory layout, as the files its record names show it (None: it names none)."""
    paths = [path_in(entry.id) for entry in record or () if entry.id and entry.kind in (BLOCK, ATTACHMENT)]
    if paths and all(path.startswith(SYSTEM_FOLDER) for path in paths):
        return V1
    if paths and not any(path.startswith(SYSTEM_FOLDER) for path in paths):
        return V2
    return None


def _recorded_copies(reader: LiveReader, agent_id: str) -> Iterable[tuple[str, dict[str, Any], bool]]:
    """The shared-block copies the agent's record lists that it still has: each block's name (the file's label),
    the copy's value and description, and whether the agent edited it since lettafleet wrote it."""
    files = {str(entry.get("relative_path")): entry for entry in memory_of(reader, agent_id)}
    for recorded in read_app_record(reader, agent_id) or ():
        path = path_in(str(recorded.id or ""))
        if recorded.kind == ATTACHMENT and path in files:
            values = _as_listed(files[path])
            yield PurePosixPath(path).stem, values, recorded.id != copy_id(path, values)


def _recorded_id(record: Sequence[Recorded] | None, own_address: str) -> str | None:
    return next((entry.id for entry in record or () if entry.address == own_address and entry.kind == ATTACHMENT), None)


def _removal(live: Resource) -> Change:
    """Detaching deletes the agent's copy, which the record says lettafleet wrote; a copy its agent edited since
    waits for `--prune` (the edit would be lost)."""
    change = replace(compare(None, live), sensitive=frozenset({"value"}))
    agent, path = live.state["agent"], live.state["path"]
    if live.state["edited"]:
        return replace(change, held="prune", detail=f"agent {agent} edited its copy ({path}) since lettafleet wrote it")
    return replace(change, detail=f"detached: agent {agent}'s copy ({path}) is deleted")
