"""The record of what an apply made survives an App Server restart: a private App Server in its own home, stopped
by its PID and started again on the same data; the server then hands out conversation ids from 1 again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.locks import NAME_PREFIX
from lettafleet.plugins.devserver import app_server as dev_app_server
from lettafleet.plugins.devserver.progress import SilentProgress
from tests.fakes.llm_server import FakeLLM
from tests.integration.conftest import home_with_the_shared_app_server
from tests.integration.test_app_server_plan_apply import MODEL, agent_yaml, blocks_yaml

pytest_plugins = ["tests.fakes.llm_server"]


class PrivateAppServer:
    """An App Server of this test alone, in its own home (the shared install linked in): started, stopped by its
    PID, started again."""

    def __init__(self, home: Path, fake_llm: FakeLLM) -> None:
        self.home, self.fake_llm = home_with_the_shared_app_server(home / "dev-home"), fake_llm
        self.url = ""

    def start(self) -> str:
        status = dev_app_server.up(port=0, home=self.home, progress=SilentProgress())
        assert status.running and status.base_url
        self.url = status.base_url
        with AppServerClient(self.url) as client:  # the provider is kept on disk; connecting again is harmless
            client.connect_provider("openai-compatible", {"baseUrl": self.fake_llm.base_url, "apiKey": "sk-x"})
        return self.url

    def stop(self) -> None:
        dev_app_server.down(home=self.home, progress=SilentProgress())  # the PID its `up` recorded


@pytest.fixture
def private_app_server(
    tmp_path_factory: pytest.TempPathFactory,
    fake_llm: FakeLLM,
    app_server_url: str,  # the shared install, which the private server's home links
) -> Iterator[PrivateAppServer]:
    server = PrivateAppServer(tmp_path_factory.mktemp("app-server-home"), fake_llm)
    try:
        yield server
    finally:
        server.stop()


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": url}, catch_exceptions=False)


def test_the_record_survives_a_restart_and_prune_removes_only_what_it_lists(
    private_app_server: PrivateAppServer, tmp_path: Path
) -> None:
    fleet = tmp_path / "fleet.yaml"
    persona = blocks_yaml(("persona", "You help.", False))
    both = blocks_yaml(("persona", "You help.", False), ("notes", "Old notes.", False))
    fleet.write_text(f"fleet: restart\nagents:\n{agent_yaml('kept', extra=both)}{agent_yaml('dropped')}")
    url = private_app_server.start()
    assert cli(url, "apply", "-f", str(fleet)).exit_code == 0
    with AppServerClient(url) as client:
        kept, dropped = (client.agents_named(name)[0]["id"] for name in ("kept", "dropped"))
        reused = client.create_conversation(dropped, summary="goes with its agent")["id"]
        client.create_conversation(kept, summary="made at run time")
        hand_made = client.create_agent({"name": "by-hand", "model": MODEL})["id"]
        client.write_memory_file(kept, "diary.md", "---\nname: diary\ndescription: the agent's own\n---\nMine.")
    fleet.write_text(f"fleet: restart\nagents:\n{agent_yaml('kept', extra=both)}")
    assert cli(url, "apply", "-f", str(fleet), "--prune").exit_code == 0  # `dropped` and its conversation go

    private_app_server.stop()
    url = private_app_server.start()

    assert cli(url, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0  # No changes
    with AppServerClient(url) as client:
        # A new server process counts conversation ids from 1 again: the deleted agent's id comes back.
        after = client.create_conversation(kept, summary="made after the restart")["id"]
        assert after == reused
    fleet.write_text(f"fleet: restart\nagents:\n{agent_yaml('kept', extra=persona)}")
    pruned = cli(url, "apply", "-f", str(fleet), "--prune")

    assert pruned.exit_code == 0, pruned.output
    with AppServerClient(url) as client:
        names = sorted(str(agent["name"]) for agent in client.list_agents())
        assert [name for name in names if not name.startswith(NAME_PREFIX)] == ["by-hand", "kept"]
        assert client.retrieve_agent(hand_made)["name"] == "by-hand"
        files = {str(entry["relative_path"]) for entry in client.list_memory(kept)}
        assert "notes.md" not in files and {"persona.md", "diary.md"} <= files
        summaries = {str(c.get("summary")) for c in client.list_conversations(kept) if not c.get("archived")}
        assert {"made at run time", "made after the restart"} <= summaries
    assert cli(url, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0
