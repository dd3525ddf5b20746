"""Export against the real Letta server: a fleet applied, exported by name to a new folder, validates and plans
"No changes" at once (exit 0 with --detailed-exitcode), and the export holds no secret's value."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient

SECRET_VALUE = "export-test-value-9f1c"


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique names; the agents, tool and blocks carrying them are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {
        "agent": f"export-{suffix}",
        "other": f"export-other-{suffix}",
        "tool": f"lookup_{suffix}",
        "shared": f"policies_{suffix}",
        "notes": f"notes_{suffix}",
        "secret": f"EXPORT_KEY_{suffix.upper()}",
    }
    yield chosen
    for name in (chosen["agent"], chosen["other"]):
        for agent in client.list_all("/v1/agents/", name=name):
            client.delete(f"/v1/agents/{agent['id']}")
    for tool in client.get("/v1/tools/", name=chosen["tool"]):
        client.delete(f"/v1/tools/{tool['id']}")
    for label in (chosen["shared"], chosen["notes"]):
        for block in client.list_all("/v1/blocks/", label=label):
            client.delete(f"/v1/blocks/{block['id']}")


def cli(letta_server: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": letta_server}, catch_exceptions=False)


def write_fleet(folder: Path, names: dict[str, str]) -> Path:
    (folder / "tools").mkdir(parents=True)
    (folder / "tools" / f"{names['tool']}.py").write_text(
        f'def {names["tool"]}(order_id: str) -> str:\n    """Look up an order.\n\n    Args:\n'
        '        order_id: The order\'s id.\n    """\n    return order_id\n'
    )
    (folder / "prompt.md").write_text("You help customers.\n\nBe brief.\nBe kind.\nSay when you do not know.\n")
    path = folder / "fleet.yaml"
    path.write_text(
        f"""shared_blocks:
  - name: {names["shared"]}
    value: Refunds within 30 days.
agents:
  - name: {names["agent"]}
    description: Answers customers
    llm_config: {{model: letta/letta-free, context_window: 16000}}
    embedding: letta/letta-free
    system_prompt: {{from_file: prompt.md}}
    tags: [export-test]
    memory_blocks:
      - name: {names["notes"]}
        value: "line 1\\nline 2\\nline 3\\nline 4"
    shared_blocks: [{names["shared"]}]
    tools: [web_search, {names["tool"]}]
    secrets:
      {names["secret"]}: {{value: {SECRET_VALUE}}}
  - name: {names["other"]}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help too.}}
    shared_blocks: [{names["shared"]}]
"""
    )
    return path


def test_an_exported_fleet_plans_no_changes(letta_server: str, names: dict[str, str], tmp_path: Path) -> None:
    applied = cli(letta_server, "apply", "-f", str(write_fleet(tmp_path / "source", names)))
    assert applied.exit_code == 0, applied.output

    out = tmp_path / "exported" / "fleet.yaml"
    exported = cli(letta_server, "export", f"export-*{names['agent'][-8:]}", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert "Exported 2 agents" in exported.output

    validated = cli(letta_server, "validate", str(out))
    assert validated.exit_code == 0, validated.output
    planned = cli(letta_server, "plan", "-f", str(out), "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes" in planned.output
    assert (out.parent / "tools" / f"{names['tool']}.py").exists()
    written = "".join(path.read_text() for path in out.parent.rglob("*") if path.is_file())
    assert SECRET_VALUE not in written
    assert names["secret"] in written
