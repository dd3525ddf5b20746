"""A folder, or nothing, where a command expects a file: `FILE: message` and exit 1, as for any other file that
cannot be read, never click's usage box."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from tests.fakes.letta_api import BASE_URL

FLEET = (
    "agents:\n  - name: a\n    llm_config: {model: letta/letta-free}\n    system_prompt: {value: hi}\n    tools: []\n"
)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": BASE_URL, "LETTA_API_KEY": ""})


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "{folder}"),
        ("validate", "-f", "{folder}"),
        ("validate", "-o", "json", "{folder}"),
        ("plan", "-f", "{folder}"),
        ("apply", "-f", "{folder}"),
        ("import", "x", "-f", "{folder}"),
    ],
    ids=" ".join,
)
def test_a_folder_given_as_the_fleet_file_is_named_with_its_reason(tmp_path, args):
    folder = tmp_path / "fleets"
    folder.mkdir()

    result = run(*(arg.format(folder=folder) for arg in args))

    assert result.exit_code == 1
    assert "Usage" not in result.output
    assert f"{folder}:1:1: file is a directory, not a regular file (name a file)" in result.stderr


def test_a_missing_fleet_file_to_import_into_is_named_with_its_reason(tmp_path):
    result = run("import", "x", "-f", str(tmp_path / "nowhere.yaml"))

    assert result.exit_code == 1
    assert f"{tmp_path / 'nowhere.yaml'}:1:1: file not found" in result.stderr


def test_a_folder_to_save_a_plan_in_is_an_error_that_says_what_to_name(letta, tmp_path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)

    result = run("plan", "-f", str(fleet), "--out", str(tmp_path))

    assert result.exit_code == 1 and "Usage" not in result.output
    assert f"error: cannot save the plan to {tmp_path}: Is a directory" in result.stderr


def test_a_folder_given_as_the_reviewed_plan_is_an_error_that_says_what_to_name(letta, tmp_path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)

    result = run("apply", "-f", str(fleet), "--no-lock", "--plan", str(tmp_path))

    assert result.exit_code == 1 and "Usage" not in result.output
    assert f"error: {tmp_path}: Is a directory. Name the file `lettafleet plan --out` saved." in result.stderr


def test_a_folder_to_export_into_is_an_error_that_says_what_to_name(letta, tmp_path):
    letta.add_agent("exported")

    result = run("export", "exported", "--out", str(tmp_path), "--force")

    assert result.exit_code == 1 and "Usage" not in result.output
    assert (
        f"{tmp_path}: is a folder, not a file. Name the fleet file, such as {tmp_path / 'fleet.yaml'}" in result.stderr
    )
