"""The `memory:` section on a V1 server (hosted Letta): the agent's git-backed memory at `/v1/git/<agent>/state.git`,
reached through the V1 git memory client (`GitMemory`, plugins/backends/letta_v1/git_memory.py) and nothing else.

Two kinds: `memory_file` (each declared file) and `memory_mode` (the switch, the tag `git-memory-enabled`, flipped
both ways with the block labels moved under `system/` and back; and `memory.verify`, checked after a switch on). A
server without git memory (the self-hosted 0.16.8 server answers 501: "git HTTP requires memfs service") stops the
plan at the agent's `memory.mode` line, before anything is written."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from weakref import WeakKeyDictionary

import yaml

from lettafleet.core import (
    Action,
    Ambiguity,
    ApplyError,
    ApplySession,
    Change,
    Connection,
    Exported,
    Fleet,
    LettaError,
    LiveReader,
    Problem,
    Resource,
    ResourceKind,
    compare,
    hookimpl,
    read_record,
)
from lettafleet.plugins.resources.agents import GIT_MEMORY_TAG, agent_address, declared_agents, live_agents
from lettafleet.plugins.resources.memfs import (
    MEMORY_FILE,
    MEMORY_MODE,
    MODE_NAME,
    VERIFY,
    MemoryFileHandler,
    extracted_section,
    fingerprinted,
    live_file,
    mode_address,
    pruned_file,
    recorded_file,
    recorded_files,
    recorded_path,
    verify_resource,
)
from lettafleet.plugins.resources.memfs_expansion import BLOCKS, MEMFS, declared_files

GIT_MEMORY_MODULE = "lettafleet.plugins.backends.letta_v1.git_memory"
SYNC_TIMEOUT = 60.0  # seconds the server may take to write pushed system/*.md files back into the agent's blocks
SYNCED_FOLDER = "system/"
SKILLS_FOLDER = "skills/"
ENABLE_TIMEOUT = 60.0  # seconds the server may take to make the repository from the blocks once the tag is on
BLOCKS_MODE_AGENTS = ("memfs v1", "agents declared mode blocks")
# The live mode of an agent a switch left part way: the tag off, some labels moved under `system/` (a switch on
# killed during the label moves, or a rollback killed before every label was given back). Either way is planned.
HALFWAY = "halfway"


class GitMemoryClient(Protocol):
    """The V1 git memory client as this handler uses it (the seam agreed with plugins/backends/letta_v1)."""

    def available(self, agent_id: str) -> str | None: ...

    def served(self) -> str | None: ...

    def read(self, agent_id: str) -> dict[str, str]: ...

    def write(self, agent_id: str, writes: Mapping[str, str], deletes: Sequence[str], message: str) -> None: ...

    def wait_synced(self, agent_id: str, files: Mapping[str, str], timeout: float) -> None: ...


GitMemoryFactory = Callable[[Connection], GitMemoryClient]


def installed_git_memory(connection: Connection) -> GitMemoryClient:
    """The V1 backend's `GitMemory` for the connection. Raises ImportError when this lettafleet has none."""
    module: Any = importlib.import_module(GIT_MEMORY_MODULE)
    client: GitMemoryClient = module.GitMemory(connection)
    return client


@dataclass
class _AgentPushes:
    """One apply's pushes of one agent's memory files: what each file change it pushed (or left) records, or why it
    failed. The first of the agent's file changes to run pushes every one that may run with it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    recorded: dict[str, str | None] = field(default_factory=dict)  # address -> the id to record (None: none)
    failed: dict[str, str] = field(default_factory=dict)  # address -> why


class V1MemfsHandler(MemoryFileHandler):
    """`memory_file`s on a V1 server, in the agent's git repository through the git memory client: read once per
    agent and plan; an agent's writes and deletes pushed as one commit (the client serializes pushes per agent), its
    pushed `system/` files waited for until the server's blocks show them. Planning refuses a server with no git
    memory."""

    def __init__(self, git_memory: GitMemoryFactory | None = None):
        self.git_memory = git_memory  # None: the V1 backend's own, found when asked
        self._pushes: WeakKeyDictionary[ApplySession, dict[str, _AgentPushes]] = WeakKeyDictionary()
        self._pushes_guard = threading.Lock()

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Memory files need a server with git memory: asked once per plan, of the server (not of one agent: a new
        or untagged agent is refused by a server that has it, and the flip tags it)."""
        desired = [r for r in desired if r.kind == MEMORY_FILE or r.attributes.get("mode") == MEMFS]
        if not desired:
            return []
        mode_lines = sorted({(*resource.source[:3], "mode") for resource in desired}, key=str)
        reason = reader.derived(("memfs v1 served",), lambda: self._served(reader.client))
        if reason is None:
            return []
        return [
            Problem(
                at,
                f"memory mode 'memfs' needs git-backed memory: {reason}",
                "apply this agent on hosted Letta or an App Server (ws://), or write `mode: blocks` and "
                "declare memory_blocks",
            )
            for at in mode_lines
        ]

    def _served(self, connection: Connection) -> str | None:
        """Why the server has no git memory (None: it has), naming the server."""
        try:
            git = self._git(connection)
        except ImportError:
            return "this lettafleet has no git memory client for V1 servers"
        reason = git.served()
        if reason is None or connection.base_url in reason:
            return reason
        return f"{connection.base_url} does not serve it: {reason}"

    def _git(self, connection: Connection) -> GitMemoryClient:
        return (self.git_memory or installed_git_memory)(connection)

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        """The memory files (each after its agent's switch) and, for each agent with a `memory:` section, the
        switch itself: git-backed memory on (`mode: memfs`) or off (`mode: blocks`)."""
        for resource in super().desired(fleet):
            yield replace(resource, depends_on=(*resource.depends_on, mode_address(str(resource.parent))))
        for agent in declared_agents(fleet):
            memory = agent.data.get("memory") or {}
            if not memory:
                continue
            declared = [
                {"path": f.path, "block": f.block} for f in declared_files(fleet, agent) if f.source != "from_blocks"
            ]
            moved = [{"block": f.block, "path": f.path} for f in declared_files(fleet, agent) if f.block]
            yield Resource(
                mode_address(agent.address),
                MEMORY_MODE,
                MODE_NAME,
                {"mode": memory["mode"]},
                parent=agent.address,
                source=(*agent.at, "memory", "mode"),
                state={
                    "agent": agent.name,
                    "files": [entry["path"] for entry in declared],
                    "from_blocks": moved,
                    "blocks": [str(block["name"]) for block in agent.data.get("memory_blocks") or ()],
                },
            )
            if memory["mode"] == MEMFS and memory.get("verify"):
                yield verify_resource(agent.address, agent.name, memory, declared_files(fleet, agent))

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        agents = {agent_address(name): agent for name, agent in live_agents(reader).items()}
        modes = [resource for resource in desired if resource.kind == MEMORY_MODE]
        rolled_back = {str(r.parent) for r in modes if r.attributes.get("mode") == BLOCKS}
        reader.derived(BLOCKS_MODE_AGENTS, lambda: rolled_back)
        for mode in modes:
            agent = agents.get(str(mode.parent))
            if agent is not None and mode.name == VERIFY:
                if git_memory_on(agent):  # switched on already: nothing flips, nothing to verify
                    yield replace(mode, state={**mode.state, "agent_id": str(agent["id"])})
            elif agent is not None:
                yield self._live_mode(reader, mode, agent)
        by_agent: dict[str, list[Resource]] = {}
        for resource in desired:
            if resource.kind == MEMORY_FILE and str(resource.parent) in agents:  # else its agent is made now
                by_agent.setdefault(str(resource.parent), []).append(resource)
        for parent, files in by_agent.items():
            agent = agents[parent]
            recorded = recorded_files(read_record(agent))
            if not git_memory_on(agent):  # its repository cannot be read until the switch is on again
                yield from (_unread_file(r, recorded[r.name], str(agent["id"])) for r in files if r.name in recorded)
                continue
            repository = self._repository(reader, str(agent["id"]))
            for resource in files:
                text = repository.get(resource.name)
                if text is not None:
                    expected = _from_block(resource, _declared_blocks(agent))
                    yield live_file(resource, text, recorded.get(resource.name), expected, str(agent["id"]))
            for path in files[0].state.get("prune_paths") or ():
                if path in repository:
                    yield pruned_file(files[0], path, repository[path], str(agent["id"]))

    def _live_mode(self, reader: LiveReader, mode: Resource, agent: Mapping[str, Any]) -> Resource:
        """The agent's switch as the server has it: on when tagged; the blocks it has (labels under `system/`
        once on) and, when on, the repository's files."""
        on = git_memory_on(agent)
        blocks = [str(block.get("label") or "") for block in agent.get("blocks") or []]
        files = sorted(self._repository(reader, str(agent["id"]))) if on else []
        moved = [label for label in blocks if label.startswith(SYNCED_FOLDER)]
        live_mode = MEMFS if on else HALFWAY if moved else BLOCKS
        state = {**mode.state, "agent_id": str(agent["id"]), "live_blocks": blocks, "repository": files}
        return Resource(mode.address, MEMORY_MODE, MODE_NAME, {"mode": live_mode}, parent=mode.parent, state=state)

    def _repository(self, reader: LiveReader, agent_id: str) -> dict[str, str]:
        """Every file of the agent's repository at HEAD, read once per plan."""
        found: dict[str, str] = reader.derived(("memfs v1", agent_id), lambda: self._git(reader.client).read(agent_id))
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """The files the agents' records list and the fleet declares no more, where they are still there."""
        agents = {agent_address(name): agent for name, agent in live_agents(reader).items()}
        rolled_back: set[str] = reader.derived(BLOCKS_MODE_AGENTS, set)
        for placeholder in recorded:
            agent = agents.get(str(placeholder.parent))
            if agent is None or not placeholder.id or placeholder.kind != MEMORY_FILE:
                continue
            if not git_memory_on(agent) or str(placeholder.parent) in rolled_back:
                # Its files stay, as blocks (rolled back) or in a repository switched off; so does the record, so
                # the agent's own edits are still told from lettafleet's when the memory is switched on again.
                yield replace(placeholder, state={"kept": True})
                continue
            path = recorded_path(placeholder)
            text = self._repository(reader, str(agent["id"])).get(path) if path else None
            if text is not None:
                yield recorded_file(placeholder, text, str(agent["name"]), str(agent["id"]))

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """The `memory:` section of each agent whose git-backed memory is on (memfs_v1_export.py, which builds on
        this module: imported here)."""
        from lettafleet.plugins.resources.memfs_v1_export import exported_v1_memory_sections

        return exported_v1_memory_sections(reader, agents, self.git_memory)

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        model = desired or live
        if model is not None and model.kind == MEMORY_MODE:
            return _mode_change(desired, live)
        if desired is None and live is not None and live.state.get("kept"):
            return compare(live, live)
        if desired is not None and live is not None and live.state.get("unread"):
            change = compare(
                desired, replace(live, attributes=desired.attributes) if desired.state["preserve"] else live
            )
            said = "written once the agent's git-backed memory is on again, unless the agent edited it since"
            return replace(change, detail=said) if change.action is Action.UPDATE else change
        return super().diff(desired, live)

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        agent_id = change.state.get("agent_id") or session.id_of(str(change.parent))
        if agent_id is None:
            raise ApplyError(f"{change.address}: its agent {change.parent} was not made, so neither is the file")
        git = self._git(session.client)
        if change.kind == MEMORY_MODE and change.name == VERIFY:
            after = change.after or {}
            named = str(change.parent).removeprefix("agent.")
            _verify(str(agent_id), {**after["verify"], "files": after["files"], "agent": named}, session.client, git)
            return None
        if change.kind == MEMORY_MODE:
            if (change.after or {}).get("mode") == MEMFS:
                _switch_on(str(agent_id), session.client, git)
            else:
                _switch_off(str(agent_id), session.client, git)
            return None
        pushes = self._agent_pushes(session, str(change.parent))
        with pushes.lock:  # the agent's other file changes wait here for the one push that takes them along
            if change.address not in pushes.recorded and change.address not in pushes.failed:
                handled = pushes.recorded.keys() | pushes.failed.keys()
                batch = [c for c in _pushed_with(change, session) if c.address not in handled]
                try:
                    pushes.recorded.update(_push_files(str(agent_id), batch, session.client, git, pushes.failed))
                except LettaError as error:  # the push, or its sync, failed: nothing of it is recorded
                    pushes.failed.update({c.address: str(error) for c in batch if c.address not in pushes.failed})
                _report_batch(change.address, batch[1:], pushes, session)
        if change.address in pushes.failed:
            raise ApplyError(pushes.failed[change.address])
        recorded = pushes.recorded[change.address]
        if recorded is not None:
            session.record_id(change.address, recorded)
        return None

    def _agent_pushes(self, session: ApplySession, agent: str) -> _AgentPushes:
        with self._pushes_guard:
            return self._pushes.setdefault(session, {}).setdefault(agent, _AgentPushes())


def _report_batch(carrier: str, carried: Sequence[Change], pushes: _AgentPushes, session: ApplySession) -> None:
    """The outcome of the changes `carrier`'s push took along, told to the apply at once (with the ids to record),
    so that a stop before they start reports them as landed or failed, not as never attempted."""
    for change in carried:
        recorded = pushes.recorded.get(change.address)
        if recorded is not None:
            session.record_id(change.address, recorded)
        session.sent_with(change.address, carrier, pushes.failed.get(change.address))


def _pushed_with(change: Change, session: ApplySession) -> list[Change]:
    """The agent's memory file changes that may be pushed with `change`: each whose prerequisites in the plan are
    done (`change` runs, so its own are) or change nothing. A removal waits for nothing, so a write may take every
    removal along; a removal takes only the writes already free to run."""
    done = set() if change.removes else _prerequisites(change)

    def free(sibling: Change) -> bool:
        return all(p in done or not _changing(session, p) for p in _prerequisites(sibling))

    siblings = [c for c in session.plan.children(str(change.parent)) if c.kind == MEMORY_FILE and c.changes_something]
    return [change, *(c for c in siblings if c.address != change.address and free(c))]


def _prerequisites(change: Change) -> set[str]:
    return set() if change.removes else {str(a) for a in (change.parent, *change.depends_on) if a}


def _changing(session: ApplySession, address: str) -> bool:
    try:
        return session.change_at(address).changes_something
    except KeyError:
        return False


def _push_files(
    agent_id: str, changes: Sequence[Change], client: Connection, git: GitMemoryClient, failed: dict[str, str]
) -> dict[str, str | None]:
    """Push the changes' writes and deletes as one commit, wait for its `system/` files to be synced, and return
    what each change records: the fingerprint of what it wrote, the agent's own edit left alone, or nothing for a
    delete. A change that cannot be written (its block is gone) goes to `failed`; the others are pushed."""
    repository = git.read(agent_id) if any(c.state.get("unread") for c in changes) else {}
    blocks: list[dict[str, Any]] | None = None
    writes: dict[str, str] = {}
    deletes: list[str] = []
    recorded: dict[str, str | None] = {}
    for change in changes:
        if change.action is Action.DELETE:
            deletes.append(change.name)
            recorded[change.address] = None
        elif change.state.get("unread") and _edited_since(change, repository.get(change.name)):
            recorded[change.address] = str(change.id)  # the agent's edit stays, and stays told apart
        elif (text := (change.after or {}).get("text")) is not None:
            writes[change.name] = text
        else:  # from a block of an agent this apply made: read it now
            blocks = blocks if blocks is not None else list(client.get(f"/v1/agents/{agent_id}/core-memory/blocks"))
            text = _from_block(change, _declared_blocks({"tags": [GIT_MEMORY_TAG], "blocks": blocks}))
            if text is None:
                failed[change.address] = f"{change.address}: agent {change.parent} has no block to write it from"
            else:
                writes[change.name] = text
    if writes or deletes:
        git.write(agent_id, writes, deletes, _commit_message(writes, deletes))
    synced = {path: text for path, text in writes.items() if path.startswith(SYNCED_FOLDER)}
    if synced:
        git.wait_synced(agent_id, synced, SYNC_TIMEOUT)
    by_path = {change.name: change.address for change in changes}
    return recorded | {by_path[path]: fingerprinted(path, text) for path, text in writes.items()}


def _commit_message(writes: Mapping[str, str], deletes: Sequence[str]) -> str:
    """`lettafleet: system/a.md, system/b.md; remove notes.md`: the commit's files, named."""
    said = ", ".join(writes) + (f"; remove {', '.join(deletes)}" if deletes else "")
    return f"lettafleet: {said.removeprefix('; ')}"


def _from_block(resource: Resource | Change, blocks: Sequence[Mapping[str, Any]]) -> str | None:
    """What a file from one of the agent's blocks holds (as lettactl writes it: the value, or one section of it);
    None when it is no block's, or the block (or section) is not there."""
    values = resource.attributes if isinstance(resource, Resource) else (resource.after or {})
    label = values.get("from_block")
    block = next((b for b in blocks if b.get("label") == label), None) if label else None
    if block is None:
        return None
    value = str(block.get("value") or "")
    section = values.get("extract_section")
    return extracted_section(value, str(section)) if section else value


def _verify(agent_id: str, checks: Mapping[str, Any], client: Connection, git: GitMemoryClient) -> None:
    """`memory.verify` after a flip, as lettactl means it: the tag on, every declared file in the repository and the
    blocks holding the `system/` files, core memory empty if asked, and a reply to the smoke prompt if given."""
    agent = client.get(f"/v1/agents/{agent_id}", include=["agent.tags"])
    failed = [] if git_memory_on(agent) else [f"it lacks the tag {GIT_MEMORY_TAG}"]
    repository = git.read(agent_id) if not failed else {}
    missing = [path for path in checks.get("files") or () if path not in repository]
    failed += [f"its repository lacks {', '.join(missing)}"] if missing else []
    if not failed:
        try:
            git.wait_synced(agent_id, {p: t for p, t in repository.items() if _is_block_file(p)}, SYNC_TIMEOUT)
        except LettaError as error:
            failed.append(str(error))
    if checks.get("require_core_memory_empty"):
        tokens = (client.get(f"/v1/agents/{agent_id}/context") or {}).get("num_tokens_core_memory")
        if tokens != 0:
            failed.append(f"require_core_memory_empty: its core memory holds {tokens} tokens")
    if checks.get("smoke_prompt") and not failed:
        failed += _smoke(agent_id, str(checks["smoke_prompt"]), client)
    if failed:
        raise ApplyError(
            f"agent {checks.get('agent') or agent_id}: memory.verify failed after the switch to git-backed memory: "
            f"{'; '.join(failed)}. Look at the agent, fix what is named, and run the apply again"
        )


def _smoke(agent_id: str, prompt: str, client: Connection) -> list[str]:
    """Send the smoke prompt through the agent; what went wrong when no reply came back."""
    try:
        answer = client.post(
            f"/v1/agents/{agent_id}/messages", json={"messages": [{"role": "user", "content": prompt}]}
        )
    except LettaError as error:
        return [f"smoke_prompt got no reply: {error}"]
    replies = [m for m in (answer or {}).get("messages") or [] if m.get("message_type") == "assistant_message"]
    return [] if replies else ["smoke_prompt got no reply from the agent"]


def _unread_file(desired: Resource, written: str, agent_id: str) -> Resource:
    """A declared file lettafleet wrote before the agent's memory was switched off: not readable until it is on."""
    state = {
        "agent_id": agent_id,
        "agent": desired.state["agent"],
        "edited": False,
        "unread": True,
        "overwrite": desired.state["overwrite_agent_edits"],
    }
    attributes = {**desired.attributes, "text": None}
    return Resource(
        desired.address, MEMORY_FILE, desired.name, attributes, parent=desired.parent, id=written, state=state
    )


def _edited_since(change: Change, text: str | None) -> bool:
    """Whether the agent edited the file since lettafleet wrote it (its record's fingerprint), and the fleet file
    does not ask to write over such an edit."""
    return text is not None and fingerprinted(change.name, text) != change.id and not change.state.get("overwrite")


def git_memory_on(agent: Mapping[str, Any]) -> bool:
    return GIT_MEMORY_TAG in (agent.get("tags") or [])


def _declared_blocks(agent: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The agent's blocks under the labels the fleet declares (`system/persona` read as `persona` once on)."""
    on = git_memory_on(agent)
    return [
        {**block, "label": str(block.get("label") or "").removeprefix(SYNCED_FOLDER) if on else block.get("label")}
        for block in agent.get("blocks") or []
    ]


# ---- the switch: blocks <-> git-backed memory files ------------------------------------------------------------


def _mode_change(desired: Resource | None, live: Resource | None) -> Change:
    """No change when the switch is as declared; else the flip, saying what moves where."""
    if desired is None:
        assert live is not None
        return compare(live, live)  # a `memory:` section taken out leaves the agent's memory as it is
    if desired.name == VERIFY:
        change = compare(desired, live)
        checks = ", ".join(sorted(desired.attributes["verify"]))
        said = f"memory.verify ({checks}) checked once the switch to git-backed memory and its files are written"
        return replace(change, detail=said) if change.changes_something else change
    if live is None and desired.attributes["mode"] == BLOCKS:
        return compare(desired, desired)
    change = compare(desired, live)
    if change.action is Action.NO_OP:
        return change
    state = live.state if live else desired.state
    halfway = (
        "a switch stopped part way (tag off, some labels under system/), finished now: "
        if live and (live.attributes["mode"] == HALFWAY)
        else ""
    )
    if desired.attributes["mode"] == MEMFS:
        return replace(change, detail=halfway + _flip_on_detail(state))
    return replace(change, detail=halfway + _flip_off_detail(state))


def _flip_on_detail(state: Mapping[str, Any]) -> str:
    blocks = state.get("live_blocks", state["blocks"])
    moves = [f"block {label} -> {_file_of(label)}" for label in blocks]
    moves += [f"from_blocks {entry['block']} -> {entry['path']}" for entry in state["from_blocks"]]
    said = "memory blocks -> git-backed memory files (tag git-memory-enabled): " + (", ".join(moves) or "no block")
    return said + (f"; files added: {', '.join(state['files'])}" if state["files"] else "")


def _flip_off_detail(state: Mapping[str, Any]) -> str:
    declared = set(state["blocks"])
    moved = [label for label in state.get("live_blocks", []) if label.startswith(SYNCED_FOLDER)]
    back = [
        f"block {label} -> {label.removeprefix(SYNCED_FOLDER)}"
        + ("" if label.removeprefix(SYNCED_FOLDER) in declared else " (no memory_blocks entry: kept as a block)")
        for label in moved
    ]
    left = [path for path in state.get("repository", []) if not _is_block_file(path)]
    said = "git-backed memory files -> memory blocks (tag git-memory-enabled off), each block with the value its "
    said += "file last held: " + (", ".join(back) or "no block")
    return said + (f"; files that are no blocks stay in the switched-off repository: {', '.join(left)}" if left else "")


def _file_of(label: str) -> str:
    return f"{label}.md" if label.startswith(SYNCED_FOLDER) else f"{SYNCED_FOLDER}{label}.md"


def _is_block_file(path: str) -> bool:
    return path.startswith(SYNCED_FOLDER) and path.endswith(".md")


def _switch_on(agent_id: str, client: Connection, git: GitMemoryClient) -> None:
    """Move the agent's blocks under `system/` (as hosted does), put the tag on (its other tags kept), wait for the
    repository to hold every block, and make each block file hold the block's value now (one commit), synced."""
    agent = client.get(f"/v1/agents/{agent_id}", include=["agent.tags", "agent.blocks"])
    for block in agent.get("blocks") or []:
        if not str(block.get("label")).startswith((SYNCED_FOLDER, SKILLS_FOLDER)):  # a skill's block is its SKILL.md
            client.patch(f"/v1/blocks/{block['id']}", json={"label": f"{SYNCED_FOLDER}{block['label']}"})
    if not git_memory_on(agent):
        client.patch(f"/v1/agents/{agent_id}", json={"tags": [*(agent.get("tags") or []), GIT_MEMORY_TAG]})
    blocks, repository = _wait_for_repository(agent_id, client, git)
    value_of: Callable[[str], str] = importlib.import_module(GIT_MEMORY_MODULE).memory_file_value
    writes = {
        f"{block['label']}.md": _block_file(block)
        for block in blocks
        if str(block["label"]).startswith(SYNCED_FOLDER)
        and value_of(repository.get(f"{block['label']}.md", "")) != str(block.get("value") or "")
    }
    if writes:
        git.write(agent_id, writes, [], "lettafleet: the blocks' values as the agent held them")
        git.wait_synced(agent_id, writes, SYNC_TIMEOUT)


def _wait_for_repository(
    agent_id: str, client: Connection, git: GitMemoryClient
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The agent's blocks and repository once the server made the repository with a file for every block."""
    deadline = time.monotonic() + ENABLE_TIMEOUT
    pause = 0.2
    while True:
        blocks = list(client.get(f"/v1/agents/{agent_id}/core-memory/blocks") or [])
        reason = git.available(agent_id)
        repository = git.read(agent_id) if reason is None else {}
        missing = [_block_path(str(b["label"])) for b in blocks if _block_path(str(b["label"])) not in repository]
        if reason is None and not missing:
            return blocks, repository
        if time.monotonic() >= deadline:
            lacking = reason or f"its repository lacks {', '.join(missing)}"
            raise ApplyError(
                f"agent {agent_id} got the tag {GIT_MEMORY_TAG}, but within {ENABLE_TIMEOUT:g} s the server did not "
                f"make its git-backed memory: {lacking}. Nothing was pushed; run the apply again"
            )
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)


def _block_path(label: str) -> str:
    """The file of the repository a block of the agent is kept as: `skills/<name>/SKILL.md` or `<label>.md`."""
    return f"{label}/SKILL.md" if label.startswith(SKILLS_FOLDER) else f"{label}.md"


def _block_file(block: Mapping[str, Any]) -> str:
    """A block as a memory file: its description as front matter, then its value."""
    front = yaml.safe_dump({"description": str(block.get("description") or "")}, sort_keys=False).strip()
    return f"---\n{front}\n---\n{block.get('value') or ''}"


def _switch_off(agent_id: str, client: Connection, git: GitMemoryClient) -> None:
    """Wait until the blocks hold what the `system/` files last held, take the tag off (other tags kept), and
    give every `system/<label>` block its label back; a file with no block of its own stays as a block too."""
    agent = client.get(f"/v1/agents/{agent_id}", include=["agent.tags", "agent.blocks"])
    if git_memory_on(agent):
        synced = {path: text for path, text in git.read(agent_id).items() if _is_block_file(path)}
        git.wait_synced(agent_id, synced, SYNC_TIMEOUT)
        kept = [tag for tag in agent.get("tags") or [] if tag != GIT_MEMORY_TAG]
        client.patch(f"/v1/agents/{agent_id}", json={"tags": kept})
    blocks = client.get(f"/v1/agents/{agent_id}/core-memory/blocks") or []
    labels = {str(block.get("label")) for block in blocks}
    for block in blocks:
        label = str(block.get("label"))
        if not label.startswith(SYNCED_FOLDER):
            continue
        back = label.removeprefix(SYNCED_FOLDER)
        if back in labels:
            raise ApplyError(
                f"agent {agent_id} has a block {back} and a block {label}: one of them must go (or be relabelled) "
                "before the other can take its label back. Nothing was lost; both blocks are there"
            )
        client.patch(f"/v1/blocks/{block['id']}", json={"label": back})


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    handler = V1MemfsHandler()
    return [
        ResourceKind(
            MEMORY_FILE, "memory files", "a file of an agent's git-backed memory (`memory:`)", handler=handler
        ),
        ResourceKind(
            MEMORY_MODE,
            "memory modes",
            "whether an agent's memory is blocks or git-backed memory files (`memory.mode`)",
            handler=handler,
        ),
    ]
