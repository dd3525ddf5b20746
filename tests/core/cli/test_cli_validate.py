"""`lettafleet validate` as users and editors run it: a summary when valid, FILE:LINE:COL lines and exit 1 when not."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lettafleet.core.cli.app import main


def test_a_valid_file_is_summarized_by_what_it_declares(seed_fleet):
    result = CliRunner().invoke(main, ["validate", str(seed_fleet)])
    assert result.exit_code == 0
    assert result.stdout == f"{seed_fleet}: valid (1 agent, 2 blocks, 2 conversations, 1 isolated block)\n"


def test_every_error_of_every_file_is_listed_and_the_exit_code_is_1(seed_fleet, write_fleet):
    broken = write_fleet("agents:\n  - name: a\n    colour: blue\n", name="agents-broken.yml")
    result = CliRunner().invoke(main, ["validate", str(seed_fleet), "-f", str(broken)])
    assert result.exit_code == 1
    assert f"{seed_fleet}: valid" in result.output
    assert f"{broken}:3:5: unknown key 'colour' in agents[0]" in result.stderr
    assert f"{broken}:2:5: missing required key 'llm_config' in agents[0]" in result.stderr
    located = [line for line in result.stderr.splitlines() if line.startswith(f"{broken}:")]
    assert result.stderr.splitlines()[-1] == f"{len(located)} errors."
    assert "Traceback" not in result.output + result.stderr


def test_json_output_names_each_file_and_its_errors(write_fleet):
    broken = write_fleet("agents: []\n")
    result = CliRunner().invoke(main, ["validate", "-o", "json", str(broken)])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    [entry] = document["files"]
    assert entry["valid"] is False
    assert entry["errors"][0]["line"] == 1 and "at least 1 item" in entry["errors"][0]["message"]
