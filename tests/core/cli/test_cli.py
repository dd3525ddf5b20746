"""Behaviour every command shares: which fleet file is read by default, and what the exit codes mean."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main

GOOD = "agents:\n  - name: a\n    llm_config: {model: letta/letta-free}\n    system_prompt: {value: hi}\n"


def test_without_a_file_lettactls_agents_yml_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "agents.yml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["validate"])

    assert result.exit_code == 0, result.output
    assert result.stdout == "agents.yml: valid (1 agent)\n"


def test_fleet_yaml_is_preferred_when_both_are_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "agents.yml").write_text("not: a fleet\n")
    (tmp_path / "fleet.yaml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["validate"])

    assert result.stdout == "fleet.yaml: valid (1 agent)\n"


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["apply", "--dry-run"]])
def test_no_fleet_file_here_says_what_was_looked_for(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, command)

    assert result.exit_code == 1
    assert "looked for fleet.yaml, fleet.yml, agents.yml, agents.yaml" in result.output
    assert "-f FILE" in result.output


def test_a_fleet_yaml_here_that_is_not_a_file_is_named_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(tmp_path / "fleet.yaml")  # reading a FIFO would wait for a writer forever
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["validate"])

    assert result.exit_code == 1
    assert result.output.startswith("fleet.yaml:1:1: ") and "not a regular file" in result.output


def test_a_misspelled_option_is_an_error_not_a_plan_with_changes(tmp_path: Path) -> None:
    # With --detailed-exitcode, 2 means "there are changes": a usage error must not look like one.
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(GOOD)

    result = CliRunner().invoke(main, ["plan", "-f", str(fleet), "--detailed-exitcode", "--detailled"])

    assert result.exit_code == 1
    assert "--detailled" in result.output


def test_an_unknown_command_exits_1() -> None:
    result = CliRunner().invoke(main, ["plna"])

    assert result.exit_code == 1
    assert "plna" in result.output
