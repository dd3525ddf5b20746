"""The `memory:` section on a V1 server (hosted Letta): the agent's git-backed memory at `/v1/git/<agent>/state.git`,
reached through the V1 git memory client (`GitMemory`, plugins/backends/letta_v1/git_memory.py) and nothing else.

A server without git memory (the self-hosted 0.16.8 server answers 501: "git HTTP requires memfs service") stops
the plan at the agent's `memory.mode` line, before anything is written."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from lettafleet.core import (
    Action,
    Ambiguity,
    ApplyError,
    ApplySession,
    Change,
    Connection,
    LiveReader,
    Problem,
    Resource,
    ResourceKind,
    hookimpl,
    read_record,
)
from lettafleet.plugins.resources.agents import agent_address, live_agents
from lettafleet.plugins.resources.memfs import (
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

# Asked when no agent of the fleet exists yet: whether the server serves git memory at all (an unknown agent's
# repository is refused by a server that has git memory, and answered 501 by one that has none).
PROBE_AGENT = "agent-00000000-0000-4000-8000-000000000000"
GIT_MEMORY_MODULE = "lettafleet.plugins.backends.letta_v1.git_memory"
SYNC_TIMEOUT = 60.0  # seconds the server may take to write pushed system/*.md files back into the agent's blocks
SYNCED_FOLDER = "system/"


class GitMemoryClient(Protocol):
    """The V1 git memory client as this handler uses it (the seam agreed with plugins/backends/letta_v1)."""

    def available(self, agent_id: str) -> str | None: ...

    def read(self, agent_id: str) -> dict[str, str]: ...

    def write(self, agent_id: str, writes: Mapping[str, str], deletes: Sequence[str], message: str) -> None: ...

    def wait_synced(self, agent_id: str, files: Mapping[str, str], timeout: float) -> None: ...


GitMemoryFactory = Callable[[Connection], GitMemoryClient]


def installed_git_memory(connection: Connection) -> GitMemoryClient:
    """The V1 backend's `GitMemory` for the connection. Raises ImportError when this lettafleet has none."""
    module: Any = importlib.import_module(GIT_MEMORY_MODULE)
    client: GitMemoryClient = module.GitMemory(connection)
    return client


class V1MemfsHandler(MemoryFileHandler):
    """`memory_file`s on a V1 server, in the agent's git repository through the git memory client: read once per
    agent and plan, written one commit per change (the client serializes pushes per agent), a pushed `system/`
    file waited for until the server's blocks show it. Planning refuses a server with no git memory."""

    def __init__(self, git_memory: GitMemoryFactory | None = None):
        self.git_memory = git_memory  # None: the V1 backend's own, found when asked

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Each agent that declares memory files must have git memory on the server, asked once per agent."""
        if not desired:
            return []
        mode_lines = {resource.parent: (*resource.source[:3], "mode") for resource in desired}
        try:
            git = (self.git_memory or installed_git_memory)(reader.client)
        except ImportError:
            return [
                Problem(at, "this lettafleet has no git memory client for V1 servers", "remove `memory:`")
                for at in mode_lines.values()
            ]
        ids = {agent_address(name): str(agent["id"]) for name, agent in live_agents(reader).items()}
        problems = []
        for parent, at in sorted(mode_lines.items(), key=lambda item: str(item[0])):
            reason = git.available(ids.get(str(parent), PROBE_AGENT))
            if reason is not None:
                server = reader.client.base_url
                named = reason if server in reason else f"{server} does not serve it: {reason}"
                problems.append(
                    Problem(
                        at,
                        f"memory mode 'memfs' needs git-backed memory: {named}",
                        "apply this agent on hosted Letta or an App Server (ws://), or write `mode: blocks` and "
                        "declare memory_blocks",
                    )
                )
        return problems

    def _git(self, connection: Connection) -> GitMemoryClient:
        return (self.git_memory or installed_git_memory)(connection)

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        agents = {agent_address(name): agent for name, agent in live_agents(reader).items()}
        by_agent: dict[str, list[Resource]] = {}
        for resource in desired:
            if str(resource.parent) in agents:  # else the agent is made by this plan: so are its files
                by_agent.setdefault(str(resource.parent), []).append(resource)
        for parent, files in by_agent.items():
            agent = agents[parent]
            repository = self._repository(reader, str(agent["id"]))
            recorded = recorded_files(read_record(agent))
            for resource in files:
                text = repository.get(resource.name)
                if text is not None:
                    expected = _from_block(resource, agent.get("blocks") or [])
                    yield live_file(resource, text, recorded.get(resource.name), expected, str(agent["id"]))
            for path in files[0].state.get("prune_paths") or ():
                if path in repository:
                    yield pruned_file(files[0], path, repository[path], str(agent["id"]))

    def _repository(self, reader: LiveReader, agent_id: str) -> dict[str, str]:
        """Every file of the agent's repository at HEAD, read once per plan."""
        found: dict[str, str] = reader.derived(("memfs v1", agent_id), lambda: self._git(reader.client).read(agent_id))
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """The files the agents' records list and the fleet declares no more, where they are still there."""
        agents = {agent_address(name): agent for name, agent in live_agents(reader).items()}
        for placeholder in recorded:
            agent = agents.get(str(placeholder.parent))
            if agent is None or not placeholder.id:
                continue
            text = self._repository(reader, str(agent["id"])).get(fingerprinted_path(placeholder.id))
            if text is not None:
                yield recorded_file(placeholder, text, str(agent["name"]), str(agent["id"]))

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        agent_id = change.state.get("agent_id") or session.id_of(str(change.parent))
        if agent_id is None:
            raise ApplyError(f"{change.address}: its agent {change.parent} was not made, so neither is the file")
        git = self._git(session.client)
        if change.action is Action.DELETE:
            git.write(str(agent_id), {}, [change.name], f"lettafleet: remove {change.name}")
            return None
        text = (change.after or {}).get("text")
        if text is None:  # from a block of an agent this apply made: read it now
            blocks = session.client.get(f"/v1/agents/{agent_id}/core-memory/blocks")
            text = _from_block(change, blocks or [])
            if text is None:
                raise ApplyError(f"{change.address}: agent {change.parent} has no block to write it from")
        git.write(str(agent_id), {change.name: text}, [], f"lettafleet: {change.name}")
        if change.name.startswith(SYNCED_FOLDER):
            git.wait_synced(str(agent_id), {change.name: text}, SYNC_TIMEOUT)
        session.record_id(change.address, fingerprinted(change.name, text))
        return None


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


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [
        ResourceKind(
            MEMORY_FILE, "memory files", "a file of an agent's git-backed memory (`memory:`)", handler=V1MemfsHandler()
        )
    ]
