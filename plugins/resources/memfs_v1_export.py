"""`export` of a V1 agent's git-backed memory (hosted Letta, an agent with the tag `git-memory-enabled`) as the
`memory:` section (`mode: memfs`): every file of its repository but those of the blocks the export declares as
memory blocks (`system/<label>.md`: blocks.py `block_files`), read once per agent through the V1 git memory
client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lettafleet.core import Connection, Exported, LiveReader
from lettafleet.plugins.resources.blocks import block_files
from lettafleet.plugins.resources.memfs_export import exported_memory
from lettafleet.plugins.resources.memfs_v1 import GitMemoryClient, git_memory_on, installed_git_memory

REPOSITORY_READ = "memfs v1"  # the memory files handler's read of an agent's repository: one clone a command


def exported_v1_memory_sections(
    reader: LiveReader,
    agents: Sequence[Mapping[str, Any]],
    git_memory: Callable[[Connection], GitMemoryClient] | None = None,
) -> Iterable[Exported]:
    """Each agent's `memory:` section, for the agents whose git-backed memory is on and holds more than their
    blocks. An agent without the tag has no memory files to export (its memory is its blocks)."""
    for agent in agents:
        if not git_memory_on(agent):
            continue
        agent_id, name = str(agent["id"]), str(agent["name"])
        files = _repository(reader, (git_memory or installed_git_memory)(reader.client), agent_id)
        blocks = block_files(agent)
        exported = exported_memory(name, {p: t for p, t in files.items() if p not in blocks}, ())
        if exported is not None:
            yield exported


def _repository(reader: LiveReader, git: GitMemoryClient, agent_id: str) -> dict[str, str]:
    """Every file of the agent's repository at HEAD, read once per command (shared with the memory files handler)."""
    found: dict[str, str] = reader.derived((REPOSITORY_READ, agent_id), lambda: git.read(agent_id))
    return found
