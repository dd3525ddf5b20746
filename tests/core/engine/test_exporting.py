"""Joining every handler's export fragments into one fleet document: a throwaway plugin's handler exports beside
the built-ins, and a file path out of the export folder is refused."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from lettafleet.core import (
    Exported,
    ExportError,
    LiveReader,
    ResourceHandler,
    ResourceKind,
    export_fleet,
    get_plugin_manager,
    hookimpl,
)


class NoteHandler(ResourceHandler):
    """Exports a note for each agent, and one fleet-wide list, from what it is given (no server)."""

    def __init__(self, file: str = "notes/team.md") -> None:
        self.file = file

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        for agent in agents:
            yield Exported("notes", [f"hello {agent['name']}"], agent["name"])
            yield Exported("teams", ["support"], files={self.file: "the support team\n"})


class NotePlugin:
    def __init__(self, handler: NoteHandler) -> None:
        self.handler = handler

    @hookimpl
    def lettafleet_kinds(self) -> Iterable[ResourceKind]:
        return [ResourceKind("note", "notes", handler=self.handler)]


AGENTS = [{"id": "agent-1", "name": "support", "tags": []}, {"id": "agent-2", "name": "sales", "tags": []}]


class NoServer:
    """A reader for handlers that read nothing: the built-ins' exports list agents, and find none here."""

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        return []


def test_a_plugins_fragments_join_the_document_each_list_item_once() -> None:
    manager = get_plugin_manager([NotePlugin(NoteHandler())])

    exported = export_fleet(manager, NoServer(), AGENTS)  # type: ignore[arg-type]

    assert exported.document["teams"] == ["support"]
    assert [agent["notes"] for agent in exported.document["agents"]] == [["hello support"], ["hello sales"]]
    assert exported.files == {"notes/team.md": "the support team\n"}


@pytest.mark.parametrize("path", ["../outside.md", "/etc/outside.md"])
def test_a_file_out_of_the_export_folder_is_refused(path: str) -> None:
    manager = get_plugin_manager([NotePlugin(NoteHandler(path))])

    with pytest.raises(ExportError, match="not inside the export folder"):
        export_fleet(manager, NoServer(), AGENTS)  # type: ignore[arg-type]


class SkippingHandler(ResourceHandler):
    """Exports, for each agent, one fragment of notes only (what it left out) and none of a value."""

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        for agent in agents:
            yield Exported("memory", None, agent["name"], notes=[f"agent {agent['name']}: left out a file"])


def test_a_fragment_of_notes_only_adds_no_key_and_its_notes_reach_the_export() -> None:
    manager = get_plugin_manager([NotePlugin(SkippingHandler())])  # type: ignore[arg-type]

    exported = export_fleet(manager, NoServer(), AGENTS)  # type: ignore[arg-type]

    assert all("memory" not in agent for agent in exported.document["agents"])
    assert exported.notes == ["agent support: left out a file", "agent sales: left out a file"]
