"""lettactl's agent keys: those lettafleet takes, those it refuses at their line, and the notes `validate` prints
where it reads a lettactl file differently."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.planning import desired_resources
from lettafleet.core.engine.validation import load_fleet

HEAD = """\
agents:
  - name: support
    system_prompt: {value: You help.}
    llm_config: {model: letta/letta-free, context_window: 16000}
    tools: []
"""


def errors_of(write_fleet, manager, extra: str) -> list[str]:
    with pytest.raises(FleetError) as caught:
        load_fleet(write_fleet(HEAD + extra), manager)
    return [f"{d.line}:{d.column}: {d.message} ({d.hint})" for d in caught.value.diagnostics]


def notes_of(write_fleet, manager, text: str, files: dict[str, str] | None = None) -> list[str]:
    return [f"{d.line}:{d.column}: {d.message}" for d in load_fleet(write_fleet(text, files=files), manager).notes]


def test_lettabot_is_refused_at_its_line_saying_it_is_deprecated(write_fleet, manager):
    (error,) = errors_of(write_fleet, manager, "    lettabot: {server: x}\n")
    assert error.startswith("6:5: agents[0].lettabot is not supported: LettaBot was deprecated by Letta in April 2026")
    assert "remove `lettabot:`" in error


def test_memfs_memory_is_accepted_by_validate_and_blocks_mode_has_no_note(write_fleet, manager):
    files = "    memory:\n      mode: memfs\n      files: [{to: system/a.md, value: hi}]\n"
    assert load_fleet(write_fleet(HEAD + files), manager).notes == ()
    assert load_fleet(write_fleet(HEAD + "    memory: {mode: blocks}\n"), manager).notes == ()


def test_a_block_from_bucket_is_refused_alone_at_its_line(write_fleet, manager):
    extra = "    memory_blocks:\n      - {name: b, limit: 9, from_bucket: {bucket: x, path: y}}\n"
    (error,) = errors_of(write_fleet, manager, extra)
    assert error.startswith("7:29: agents[0].memory_blocks[0].from_bucket is not supported: lettactl reads it")
    assert "`from_file:`" in error


def test_a_system_prompt_from_bucket_is_refused_without_asking_for_a_value(write_fleet, manager):
    text = HEAD.replace("{value: You help.}", "{from_bucket: {provider: supabase, bucket: b, path: p}}")
    with pytest.raises(FleetError) as caught:
        load_fleet(write_fleet(text), manager)
    (only,) = caught.value.diagnostics
    assert (only.line, only.column) == (3, 21)
    assert "from_bucket is not supported" in only.message


def test_compaction_model_settings_are_not_supported_yet(write_fleet, manager):
    (error,) = errors_of(write_fleet, manager, "    compaction_settings: {mode: all, model_settings: {a: b}}\n")
    assert error.startswith("6:38: agents[0].compaction_settings.model_settings is not supported yet by lettafleet")


def test_an_unknown_compaction_mode_lists_the_modes(write_fleet, manager):
    (error,) = errors_of(write_fleet, manager, "    compaction_settings: {mode: sometimes}\n")
    assert error.startswith("6:27: agents[0].compaction_settings.mode 'sometimes' is not one of all, sliding_window")


def test_create_only_keys_and_ignored_keys_get_a_note_and_the_file_is_valid(write_fleet, manager):
    extra = (
        "    include_base_tools: false\n    first_message: hello\n    reasoning: true\n    disable_base_prompt: true\n"
    )
    notes = notes_of(write_fleet, manager, HEAD + extra)
    assert notes[0].startswith("6:5: note: include_base_tools is used only when lettafleet creates the agent")
    assert notes[1].startswith("7:5: note: first_message is used only when lettafleet creates the agent")
    assert notes[2].startswith("8:5: note: reasoning is used only when lettafleet creates the agent")
    assert notes[3] == "9:5: note: disable_base_prompt is ignored: the system prompt is sent as written"


def test_agents_without_tools_get_one_note_that_lettafleet_adds_no_web_tools(write_fleet, manager):
    text = HEAD.replace("    tools: []\n", "") + HEAD.replace("agents:\n", "").replace("support", "other")
    text = text.replace("    tools: []\n", "")
    (note,) = notes_of(write_fleet, manager, text)
    assert note.startswith("2:5: note: 2 agent(s) without `tools:` ('support', 'other') get no web tools")


def test_root_path_is_where_from_file_starts(write_fleet, manager):
    text = "root_path: config\n" + HEAD.replace("{value: You help.}", "{from_file: prompt.md}")
    fleet = load_fleet(write_fleet(text, files={"config/prompt.md": "From config."}), manager)
    assert fleet.text(fleet.data["agents"][0]["system_prompt"]) == "From config."


def test_root_path_may_not_leave_the_fleet_files_folder(write_fleet, manager):
    with pytest.raises(FleetError) as caught:
        load_fleet(write_fleet("root_path: ..\n" + HEAD), manager)
    (only,) = caught.value.diagnostics
    assert (only.line, only.message) == (1, "root_path leaves the fleet file's directory: ..")


def test_a_blocks_version_is_accepted_with_a_note_and_compared_to_nothing(write_fleet, manager):
    text = HEAD + "    memory_blocks:\n      - {name: notes, value: hi, version: '2'}\n"
    fleet = load_fleet(write_fleet(text), manager)
    notes = [f"{d.line}:{d.column}: {d.message}" for d in fleet.notes if "version" in d.message]
    assert notes == ["7:34: note: block 'notes': version is ignored; the block's value is compared as it is"]
    [block] = [r for r in desired_resources(fleet, manager) if r.kind == "block"]
    assert "version" not in block.attributes
