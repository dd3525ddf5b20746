"""The `memory:` section on a V1 server (hosted Letta): the agent's git-backed memory at `/v1/git/<agent>/state.git`,
reached through the V1 git memory client (`GitMemory`, plugins/backends/letta_v1/git_memory.py) and nothing else.

A server without git memory (the self-hosted 0.16.8 server answers 501: "git HTTP requires memfs service") stops
the plan at the agent's `memory.mode` line, before anything is written."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from lettafleet.core import (
    ApplyError,
    ApplySession,
    Change,
    Connection,
    LiveReader,
    Problem,
    Resource,
    ResourceKind,
    hookimpl,
)
from lettafleet.plugins.resources.agents import agent_address, live_agents
from lettafleet.plugins.resources.memfs import MEMORY_FILE, MemoryFileHandler

# Asked when no agent of the fleet exists yet: whether the server serves git memory at all (an unknown agent's
# repository is refused by a server that has git memory, and answered 501 by one that has none).
PROBE_AGENT = "agent-00000000-0000-4000-8000-000000000000"
GIT_MEMORY_MODULE = "lettafleet.plugins.backends.letta_v1.git_memory"


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
    """`memory_file`s on a V1 server. Planning refuses a server with no git memory; reading and writing the
    repository is left to the git memory client and is not wired here yet (apply refuses, saying so)."""

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
                problems.append(
                    Problem(
                        at,
                        f"memory mode 'memfs' needs git-backed memory, which {reader.client.base_url} does not "
                        f"serve: {reason}",
                        "apply this agent on hosted Letta or an App Server (ws://), or write `mode: blocks` and "
                        "declare memory_blocks",
                    )
                )
        return problems

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        raise ApplyError(f"{change.address}: writing git memory on a V1 server is not wired in this lettafleet yet")


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [
        ResourceKind(
            MEMORY_FILE, "memory files", "a file of an agent's git-backed memory (`memory:`)", handler=V1MemfsHandler()
        )
    ]
