"""Folders and archives against a real Letta server (embeddings from the stand-in LLM): a fleet with a folder of
two files and an archive applies, plans "No changes" again, replaces a changed file in place (no `name_(1)`
copy), deletes a file removed from the list, and detaches a folder and an archive whose lines are removed. A folder
two agents share is uploaded once, and an agent that drops it is detached from it alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.llm_server import FakeLLM
from tests.integration.cli import cli, ok, planned_changes

pytest_plugins = ["tests.fakes.llm_server"]


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique names for the fleet, its agent, folder and archive; all of them are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {"fleet": f"folders-{suffix}", "agent": f"folders-{suffix}", "folder": f"docs-{suffix}"}
    chosen["archive"] = f"notes-{suffix}"
    yield chosen
    for agent in client.list_all("/v1/agents/", name=chosen["agent"]):
        client.delete(f"/v1/agents/{agent['id']}")
    for folder in client.list_all("/v1/folders/", name=chosen["folder"]):
        client.delete(f"/v1/folders/{folder['id']}")
    for archive in client.list_all("/v1/archives/", name=chosen["archive"]):
        client.delete(f"/v1/archives/{archive['id']}")


def write_fleet(folder: Path, names: dict[str, str], fake: FakeLLM, *, files: list[str] | None, archive: bool) -> Path:
    lines = [f"fleet: {names['fleet']}", "agents:", f"  - name: {names['agent']}", "    system_prompt: {value: Hi.}"]
    lines.append(fake.fleet_yaml().rstrip("\n"))
    if files is not None:
        lines += ["    folders:", f"      - name: {names['folder']}", "        files:"]
        lines += [f"          - {path}" for path in files]
    if archive:
        lines += ["    archives:", f"      - {{name: {names['archive']}, description: Meeting notes}}"]
    path = folder / "fleet.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def changes(letta_server: str, fleet: Path) -> dict[str, str]:
    return planned_changes(cli(letta_server, "plan", "-f", str(fleet), "-o", "json"))


def apply(letta_server: str, fleet: Path) -> None:
    ok(cli(letta_server, "apply", "-f", str(fleet)))


def folder_files(client: LettaClient, name: str) -> dict[str, str]:
    [folder] = client.list_all("/v1/folders/", name=name)
    rows = client.list_all(f"/v1/folders/{folder['id']}/files", include_content=True)
    return {row["file_name"]: row["content"] for row in rows}


def attached(client: LettaClient, agent_name: str) -> tuple[set[str], set[str]]:
    [agent] = client.list_all("/v1/agents/", name=agent_name, include=["agent.sources"])
    archives = client.list_all("/v1/archives/", agent_id=agent["id"])
    return {folder["name"] for folder in agent["sources"]}, {archive["name"] for archive in archives}


def test_a_folder_and_an_archive_apply_replace_changed_files_and_detach_when_removed(
    letta_server, client, names, fake_llm, tmp_path
):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "faq.md").write_text("Opening hours: 9 to 5.\n")
    (tmp_path / "files" / "prices.md").write_text("Tea: 2 EUR.\n")
    fleet = write_fleet(tmp_path, names, fake_llm, files=["files/*"], archive=True)
    apply(letta_server, fleet)
    assert folder_files(client, names["folder"]) == {"faq.md": "Opening hours: 9 to 5.\n", "prices.md": "Tea: 2 EUR.\n"}
    assert attached(client, names["agent"]) == ({names["folder"]}, {names["archive"]})
    assert changes(letta_server, fleet) == {}

    (tmp_path / "files" / "faq.md").write_text("Opening hours: 8 to 6.\n")
    folder_address = f"folder.{names['folder']}"
    assert changes(letta_server, fleet) == {f'{folder_address}.file["faq.md"]': "update"}
    apply(letta_server, fleet)
    assert folder_files(client, names["folder"]) == {"faq.md": "Opening hours: 8 to 6.\n", "prices.md": "Tea: 2 EUR.\n"}
    assert changes(letta_server, fleet) == {}

    fleet = write_fleet(tmp_path, names, fake_llm, files=["files/prices.md"], archive=True)
    assert changes(letta_server, fleet) == {f'{folder_address}.file["faq.md"]': "delete"}
    apply(letta_server, fleet)
    assert folder_files(client, names["folder"]) == {"prices.md": "Tea: 2 EUR.\n"}

    fleet = write_fleet(tmp_path, names, fake_llm, files=None, archive=False)
    agent_address = f"agent.{names['agent']}"
    planned = changes(letta_server, fleet)
    assert planned[f"{agent_address}.folder.{names['folder']}"] == "delete"
    assert planned[f"{agent_address}.archive.{names['archive']}"] == "delete"
    apply(letta_server, fleet)
    assert attached(client, names["agent"]) == (set(), set())
    assert client.list_all("/v1/folders/", name=names["folder"]), "the folder is deleted only with --prune"


@pytest.fixture
def shared_names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique names for a fleet of two agents sharing a folder; all of them are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {"fleet": f"shared-{suffix}", "a": f"shared-a-{suffix}", "b": f"shared-b-{suffix}"}
    chosen["folder"] = f"handbook-{suffix}"
    yield chosen
    for name in (chosen["a"], chosen["b"]):
        for agent in client.list_all("/v1/agents/", name=name):
            client.delete(f"/v1/agents/{agent['id']}")
    for folder in client.list_all("/v1/folders/", name=chosen["folder"]):
        client.delete(f"/v1/folders/{folder['id']}")


def write_shared_fleet(folder: Path, names: dict[str, str], fake: FakeLLM, *, sharing: list[str]) -> Path:
    """Agents a and b, with the shared folder listed by those in `sharing`."""
    lines = [f"fleet: {names['fleet']}", "shared_folders:", f"  - {{name: {names['folder']}, files: [handbook.md]}}"]
    lines.append("agents:")
    for agent in ("a", "b"):
        lines += [f"  - name: {names[agent]}", "    system_prompt: {value: Hi.}", fake.fleet_yaml().rstrip("\n")]
        if agent in sharing:
            lines.append(f"    shared_folders: [{names['folder']}]")
    path = folder / "fleet.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_shared_folder_is_uploaded_once_and_detached_only_from_the_agent_that_drops_it(
    letta_server, client, shared_names, fake_llm, tmp_path
):
    names = shared_names
    (tmp_path / "handbook.md").write_text("Refunds within 30 days.\n")
    fleet = write_shared_fleet(tmp_path, names, fake_llm, sharing=["a", "b"])
    planned = changes(letta_server, fleet)
    assert [address for address in planned if ".file[" in address] == [f'folder.{names["folder"]}.file["handbook.md"]']
    assert planned[f"agent.{names['a']}.folder.{names['folder']}"] == "create"
    assert planned[f"agent.{names['b']}.folder.{names['folder']}"] == "create"
    apply(letta_server, fleet)

    assert folder_files(client, names["folder"]) == {"handbook.md": "Refunds within 30 days.\n"}  # one upload
    assert len(client.list_all("/v1/folders/", name=names["folder"])) == 1
    assert attached(client, names["a"])[0] == attached(client, names["b"])[0] == {names["folder"]}
    assert changes(letta_server, fleet) == {}

    fleet = write_shared_fleet(tmp_path, names, fake_llm, sharing=["b"])
    assert changes(letta_server, fleet) == {f"agent.{names['a']}.folder.{names['folder']}": "delete"}
    apply(letta_server, fleet)
    assert attached(client, names["a"])[0] == set()
    assert attached(client, names["b"])[0] == {names["folder"]}  # b keeps it, and the folder keeps its file
    assert folder_files(client, names["folder"]) == {"handbook.md": "Refunds within 30 days.\n"}
    assert changes(letta_server, fleet) == {}
