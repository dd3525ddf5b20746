"""`export` of an agent's git-backed memory files as the `memory:` section: which key declares each file, and paths
from the server that no fleet file could name left out with a note, never written outside the export folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lettafleet.core import ExportedFleet, get_plugin_manager, load_fleet, write_export
from lettafleet.plugins.resources.agents import declared_agents
from lettafleet.plugins.resources.memfs_expansion import declared_files
from lettafleet.plugins.resources.memfs_export import exported_memory

FILES = {
    "system/MEMORY.md": "# System\n",
    "system/policies.md": "---\ndescription: the policies\n---\nNo refunds.\n",
    "skills/triage/SKILL.md": "---\nname: triage\ndescription: sort\n---\nSort.\n",
    "skills/triage/triage.sh": "#!/bin/sh\necho triaged\n",
    "skills/triage/.hidden.md": "a dotfile a skill's copy leaves out\n",
    "README.md": "the memory's own readme, which a template folder leaves out\n",
    "notes/.keep": "",
}


def written_fleet(tmp_path: Path, files: dict[str, str], blocks: tuple[str, ...] = ()) -> tuple[Path, list[str]]:
    """The export of one agent with these memory files, written to tmp_path/out/fleet.yaml; and its notes."""
    exported = exported_memory("support", files, blocks)
    assert exported is not None
    agent: dict[str, object] = {
        "name": "support",
        "system_prompt": {"value": "You help."},
        "llm_config": {"model": "openai/gpt-4o-mini", "context_window": 16000},
    }
    if exported.value is not None:
        agent["memory"] = exported.value
    out = tmp_path / "out" / "fleet.yaml"
    write_export(ExportedFleet({"agents": [agent]}, dict(exported.files)), out)
    return out, list(exported.notes)


def test_every_file_comes_back_from_the_section_the_export_writes(tmp_path: Path) -> None:
    out, notes = written_fleet(tmp_path, FILES)

    fleet = load_fleet(out, get_plugin_manager())
    (agent,) = declared_agents(fleet)
    assert {declared.path: declared.text for declared in declared_files(fleet, agent)} == FILES
    assert notes == []


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../escape.md", "must be a path inside the agent's memory"),
        ("/etc/passwd.md", "must be a path inside the agent's memory"),
        (".git/config", "must not be inside .git"),
        ("notes/.GIT/hooks/post-commit", "must not be inside .git"),
        ("a\nb.md", "must not hold a control character"),
        ("./system/x.md", "must be written plainly"),
        ("tools/run.sh", "declares a file that is not Markdown only as part of a skill"),
        ("skills/Bad_Name/run.sh", "declares a file that is not Markdown only as part of a skill"),
    ],
)
def test_a_path_no_fleet_file_could_name_is_left_out_with_a_note_and_nothing_written_outside(
    tmp_path: Path, path: str, reason: str
) -> None:
    out, notes = written_fleet(tmp_path, {**FILES, path: "hostile\n"})

    assert len(notes) == 1 and f"agent support: left out memory file {path!r}" in notes[0], notes
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(out.parent) for p in written)
    assert not any(p.read_text() == "hostile\n" for p in written)
    fleet = load_fleet(out, get_plugin_manager())
    (agent,) = declared_agents(fleet)
    assert {declared.path for declared in declared_files(fleet, agent)} == set(FILES)


def test_a_file_at_a_declared_blocks_path_is_the_blocks_not_the_sections(tmp_path: Path) -> None:
    out, notes = written_fleet(tmp_path, {**FILES, "persona.md": "---\nname: persona\n---\nMe.\n"}, ("persona",))

    assert not list(out.parent.rglob("persona.md"))

    assert notes == [
        "agent support: left out memory file 'persona.md': it is where memory block persona lives, "
        "which the export declares as a block"
    ]


def test_an_agent_with_no_file_beyond_its_blocks_has_no_section() -> None:
    assert exported_memory("support", {}, ("persona",)) is None
