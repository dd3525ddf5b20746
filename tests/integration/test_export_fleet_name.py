"""`lettafleet export` of a fleet's agents plans "No changes" at once on the real server: named fleet or not,
with or without --conversations (a runtime conversation among the declared ones), printed or written with --out,
planned from another folder. Agents of several fleets are refused, saying which belongs to which."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.integration.cli import cli, ok


class Exported:
    """A fleet of two agents (shared block, own block, a conversation with an isolated copy), applied."""

    def __init__(self, tmp_path: Path, base_url: str, client: LettaClient) -> None:
        self.prefix = f"ex{uuid.uuid4().hex[:8]}"
        self.base_url, self.client, self.tmp_path = base_url, client, tmp_path
        self.labels = (f"notes_{self.prefix}", f"policies_{self.prefix}")

    def apply(self, fleet_name: str | None, names: tuple[str, ...] = ("a", "b"), folder: str = "source") -> None:
        notes, shared = self.labels
        lines = [f"fleet: {fleet_name}"] if fleet_name else []
        lines += ["shared_blocks:", f"  - {{name: {shared}, value: Refunds within 30 days.}}", "agents:"]
        for name in names:
            lines += [
                f"  - name: {self.prefix}-{name}",
                "    llm_config: {model: letta/letta-free, context_window: 32000}",
                "    embedding: letta/letta-free",
                "    system_prompt: {value: You help.}",
                "    tags: [export-name-test]",
                f"    memory_blocks: [{{name: {notes}, value: none yet}}]",
                f"    shared_blocks: [{shared}]",
                f'    conversations: [{{summary: "Ticket 1", isolated_blocks: [{notes}]}}]',
            ]
        path = self.tmp_path / folder / "fleet.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        ok(cli(self.base_url, "apply", "-f", str(path)))

    def remove(self) -> None:
        for agent in self.client.list_all("/v1/agents/"):
            if agent["name"].startswith(self.prefix):
                self.client.delete(f"/v1/agents/{agent['id']}")
        for label in self.labels:
            for block in self.client.list_all("/v1/blocks/", label=label):
                self.client.delete(f"/v1/blocks/{block['id']}")


@pytest.fixture
def fleet(letta_server: str, client: LettaClient, tmp_path: Path) -> Iterator[Exported]:
    made = Exported(tmp_path, letta_server, client)
    yield made
    made.remove()


@pytest.mark.parametrize("written", ["printed", "out"])
@pytest.mark.parametrize("conversations", [False, True], ids=["agents", "with-conversations"])
@pytest.mark.parametrize("named", [True, False], ids=["named-fleet", "fleet-without-a-name"])
def test_an_export_plans_no_changes_at_once_from_any_folder(
    fleet: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: bool, conversations: bool, written: str
) -> None:
    fleet_name = f"fleet-{fleet.prefix}" if named else None
    fleet.apply(fleet_name)
    ok(cli(fleet.base_url, "create", "conversation", f"{fleet.prefix}-a", "--summary", "Made at runtime"))
    exported = tmp_path / "exported" / "fleet.yaml"
    asked = ["export", f"{fleet.prefix}-*", *(["--conversations"] if conversations else [])]
    if written == "out":
        ok(cli(fleet.base_url, *asked, "--out", str(exported)))
    else:
        exported.parent.mkdir()
        exported.write_text(ok(cli(fleet.base_url, *asked)), encoding="utf-8")
    text = exported.read_text(encoding="utf-8")
    assert (f"fleet: {fleet_name}" in text) is named and "Ticket 1" in text  # declared: always exported
    assert ("Made at runtime" in text) is conversations
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    planned = cli(fleet.base_url, "plan", "-f", "../exported/fleet.yaml", "--detailed-exitcode")

    assert planned.exit_code == 0, planned.output + planned.stderr
    assert "No changes." in planned.output


def test_an_export_of_agents_of_several_fleets_is_refused_naming_each_fleet(fleet: Exported) -> None:
    fleet.apply(f"one-{fleet.prefix}", names=("a",), folder="one")
    fleet.apply(f"two-{fleet.prefix}", names=("b",), folder="two")

    refused = cli(fleet.base_url, "export", f"{fleet.prefix}-*")

    assert refused.exit_code == 1
    message = refused.stderr
    assert "belong to 2 fleets" in message and "a fleet file is one fleet" in message
    assert f"fleet 'one-{fleet.prefix}': {fleet.prefix}-a" in message
    assert f"fleet 'two-{fleet.prefix}': {fleet.prefix}-b" in message
    assert "Traceback" not in message
