"""The fleets the docs show validate as written, with the files they name, so the docs cannot rot."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from tests.docs_examples import example_fleets, write_named_files


def test_the_docs_show_at_least_the_readme_and_fleet_file_examples():
    names = [name for name, _ in example_fleets()]
    assert "README.md#1" in names and "fleet-file.md#1" in names


@pytest.mark.parametrize(("name", "fleet"), example_fleets(), ids=[name for name, _ in example_fleets()])
def test_an_example_fleet_in_the_docs_validates(tmp_path, name, fleet):
    write_named_files(fleet, tmp_path)
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet, encoding="utf-8")

    result = CliRunner().invoke(main, ["validate", str(path)])

    assert result.exit_code == 0, result.output
