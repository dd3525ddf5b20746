"""`moved:` entries are checked before any server is read: each renames one declared resource where it is."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main

AGENT = """agents:
  - name: {name}
    llm_config: {{model: openai/gpt-4o-mini}}
    system_prompt: {{value: hi}}
    memory_blocks:
      - name: notes
        value: seeded
    conversations:
      - summary: "Ticket 1"
"""


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{from: agent.old, to: agent.gone}", "to: agent.gone is not declared in the file"),
        ("{from: agent.new, to: agent.new}", "from: agent.new is still declared in the file"),
        ("{from: 'agent.old.', to: agent.new}", "from: 'agent.old.' is not an address"),
        (
            "{from: agent.new.block.old, to: 'agent.new.conversation[\"Ticket 1\"]'}",
            "is not a conversation beside",
        ),
        (
            "{from: agent.other.block.old, to: agent.new.block.notes}",
            "a move renames one resource where it is",
        ),
    ],
)
def test_a_moved_entry_that_renames_nothing_declared_is_a_located_error(write_fleet, entry, message):
    fleet = write_fleet(AGENT.format(name="new") + f"moved:\n  - {entry}\n")
    result = CliRunner().invoke(main, ["validate", str(fleet)])
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if line.startswith(f"{fleet}:")]
    assert line.startswith(f"{fleet}:{len(AGENT.splitlines()) + 2}:") and message in line
    assert "Traceback" not in result.output + result.stderr


def test_a_moved_entry_to_a_declared_address_is_valid(write_fleet):
    entry = "{from: 'agent.new.conversation[\"Old\"]', to: 'agent.new.conversation[\"Ticket 1\"]'}"
    fleet = write_fleet(AGENT.format(name="new") + f"moved:\n  - {entry}\n  - {{from: agent.old, to: agent.new}}\n")
    result = CliRunner().invoke(main, ["validate", str(fleet)])
    assert result.exit_code == 0, result.stderr


def test_an_address_quoted_or_plain_names_one_resource(write_fleet):
    quoted = "{from: 'agent.new.block[\"old\"]', to: 'agent.new.block[\"notes\"]'}"
    fleet = write_fleet(AGENT.format(name="new") + f"moved:\n  - {quoted}\n")
    assert CliRunner().invoke(main, ["validate", str(fleet)]).exit_code == 0

    twice = f"{quoted}\n  - {{from: agent.new.block.old, to: 'agent.new.conversation[\"Ticket 1\"]'}}"
    result = CliRunner().invoke(
        main, ["validate", str(write_fleet(AGENT.format(name="new") + f"moved:\n  - {twice}\n"))]
    )
    assert result.exit_code == 1 and "agent.new.block.old is in `from:` of two moved entries" in result.stderr
