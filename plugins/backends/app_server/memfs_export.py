"""`export` of an App Server agent's memory files beyond its blocks as the `memory:` section (`mode: memfs`): every
Markdown file `list_memory` lists and every file the agent's record says an apply wrote (a skill's script, which
the listing leaves out), read whole with `read_memory_file`, as a plan compares them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lettafleet.core import Exported, LiveReader
from lettafleet.plugins.backends.app_server.agents import read_app_record
from lettafleet.plugins.backends.app_server.connection import (
    AppServerConnectionError,
    AppServerError,
    AppServerTimeout,
)
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.backends.app_server.memory_files import (
    INDEX,
    block_files,
    block_label,
    memory_layout,
    memory_of,
)
from lettafleet.plugins.resources.memfs import MEMORY_FILE, fingerprinted_path
from lettafleet.plugins.resources.memfs_expansion import memory_path_problem
from lettafleet.plugins.resources.memfs_export import exported_memory

ROOT_INDEX = INDEX  # the server keeps the root index itself (it makes one with every agent): no file's to declare


def exported_memory_sections(reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
    """Each agent's `memory:` section, for the agents whose memory holds more than their blocks."""
    for agent in agents:
        agent_id, name = str(agent["id"]), str(agent["name"])
        layout = memory_layout(reader, agent_id)
        blocks = block_files(reader, agent_id)
        labels = [block_label(entry, layout) for entry in blocks]
        paths = _section_paths(reader, agent_id, {str(entry["relative_path"]) for entry in blocks})
        exported = exported_memory(name, _texts(reader, agent_id, paths), labels)
        if exported is not None:
            yield exported


def _section_paths(reader: LiveReader, agent_id: str, blocks: set[str]) -> list[str]:
    """The files that are the section's: the record's `memory_file`s, and every other listed file but the blocks,
    the copies of shared blocks (the record lists them as their kind's) and the root index."""
    record = read_app_record(reader, agent_id) or ()
    section = {fingerprinted_path(str(entry.id)) for entry in record if entry.kind == MEMORY_FILE and entry.id}
    others = {str(entry.id).split("#", 1)[0] for entry in record if entry.kind != MEMORY_FILE and entry.id}
    listed = {str(entry.get("relative_path")) for entry in memory_of(reader, agent_id)}
    return sorted(section | (listed - blocks - others - {ROOT_INDEX}))


def _texts(reader: LiveReader, agent_id: str, paths: Iterable[str]) -> dict[str, str]:
    """Each file's text, by path. A path no fleet file could name (`..`, absolute, `.git`, ...; a record edited by
    hand may hold one) is never read: it is given with no text, for the export to leave out, saying why."""
    texts = {}
    for path in paths:
        text = "" if memory_path_problem(path, markdown=False) else _text(reader, agent_id, path)
        if text is not None:
            texts[path] = text
    return texts


def _text(reader: LiveReader, agent_id: str, path: str) -> str | None:
    """The file's whole text, frontmatter included; None when the server refuses the read (a recorded file the agent
    deleted). A read that got no answer fails the export: leaving the file out would be a silent loss."""
    try:
        return app_of(reader.client).read_memory_file(agent_id, path)
    except (AppServerTimeout, AppServerConnectionError):
        raise
    except AppServerError:
        return None
