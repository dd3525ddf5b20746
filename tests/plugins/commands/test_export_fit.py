"""`export --for URL`: a V1 export fitted to the App Server leaves out, each said with the backend's reason, what
that backend cannot hold or ignores, keeps everything else, and the file that is left plans there without a
refusal; an export for a backend that holds everything is left as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core import ExportedFleet, FleetPlugins, backend_problems, get_plugin_manager, load_fleet, write_export
from lettafleet.core.cli.app import main
from lettafleet.plugins.commands.export_fit import fitted_for

APP_SERVER = "ws://127.0.0.1:4617"
LOOKUP = (
    'def lookup_order(order_id: str) -> str:\n    """Look up an order.\n\n    Args:\n        order_id: the id.\n'
    '    """\n    return order_id\n'
)
NOTES = "line 1\nline 2\nline 3\nline 4\n"


def v1_export() -> ExportedFleet:
    """What `lettafleet export` writes of a V1 agent with a tool from source and a conversation with an isolated
    block, beside what carries (prompt, blocks, tags)."""
    agent = {
        "name": "support",
        "system_prompt": {"value": "You help."},
        "llm_config": {"model": "letta/letta-free", "context_window": 16000},
        "embedding": "letta/letta-free",
        "tags": ["team-a"],
        "memory_blocks": [
            {"name": "persona", "value": "I am Sam."},
            {"name": "notes", "from_file": "blocks/support/notes.md"},
            {"name": "customer", "value": "unknown"},
        ],
        "tools": ["lookup_order"],
        "conversations": [{"summary": "onboarding", "isolated_blocks": ["customer"]}],
    }
    files = {"blocks/support/notes.md": NOTES, "tools/lookup_order.py": LOOKUP}
    return ExportedFleet({"fleet": "shop", "agents": [agent]}, files)


@pytest.fixture
def manager() -> FleetPlugins:
    return get_plugin_manager()


def test_what_the_app_server_cannot_hold_is_left_out_each_entry_said_with_its_reason(manager: FleetPlugins) -> None:
    fitted, said = fitted_for(v1_export(), manager, manager.backend_for(APP_SERVER))

    assert any(
        line.startswith("left out agent support: tools: lookup_order: the Letta App Server backend cannot define tools")
        for line in said
    ), said
    assert any("agent support: embedding: has no effect on the Letta App Server backend" in line for line in said)
    assert any(
        "isolated_blocks: customer: the Letta App Server backend has no isolated blocks" in line for line in said
    )
    (agent,) = fitted.document["agents"]
    assert "tools" not in agent and "embedding" not in agent  # a list emptied is left out whole
    assert "isolated_blocks" not in str(agent.get("conversations"))
    assert agent["memory_blocks"] == v1_export().document["agents"][0]["memory_blocks"]
    assert agent["system_prompt"] == {"value": "You help."} and agent["tags"] == ["team-a"]
    assert fitted.files == {"blocks/support/notes.md": NOTES}  # the tool's source stays behind with it


def test_the_fitted_export_plans_on_the_app_server_without_a_refusal_or_a_note(
    manager: FleetPlugins, tmp_path: Path
) -> None:
    fitted, _ = fitted_for(v1_export(), manager, manager.backend_for(APP_SERVER))
    write_export(fitted, tmp_path / "fleet.yaml")

    fleet = load_fleet(tmp_path / "fleet.yaml", manager)
    assert backend_problems(fleet, manager, manager.backend_for(APP_SERVER)) == []


def test_an_export_for_a_backend_that_holds_everything_is_left_as_it_is(manager: FleetPlugins) -> None:
    fitted, said = fitted_for(v1_export(), manager, manager.backend_for("http://localhost:8283"))

    assert said == []
    assert fitted == v1_export()


def test_a_for_url_no_backend_speaks_is_refused_before_the_server_is_read() -> None:
    result = CliRunner().invoke(main, ["export", "support", "--for", "htp://typo", "--base-url", "http://127.0.0.1:9"])

    assert result.exit_code == 1
    assert "--for htp://typo: no backend speaks that URL's scheme (known: http://, https://, ws://, wss://)" in (
        result.output
    )
