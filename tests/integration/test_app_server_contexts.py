"""`recompile` and `cancel-messages` against a real App Server (Letta Code 0.34.12), over its protocol: a recompiled
conversation's model sees the memory files as they are now, and a turn running on the server stops. A private App
Server with the suite's LLM stand-in as its only provider (the fixture of test_app_server_cli_surface.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.llm_server import FakeLLM
from tests.integration.test_app_server_cli_surface import private_url
from tests.integration.test_app_server_messages import SLOW_SECONDS, send_a_slow_tool

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["private_url"]  # the private App Server, a fixture

MODEL = "openai-compatible/fake-echo-model"


@pytest.fixture
def agent(private_url: str) -> Iterator[dict[str, Any]]:
    """An agent of its own for one test, whose model is the stand-in; deleted afterwards."""
    with AppServerClient(private_url) as client:
        made = client.create_agent({"name": f"ctx-{uuid.uuid4().hex[:8]}", "model": MODEL, "system": "You help."})
        yield made
        client.delete_agent(made["id"])


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": url}, catch_exceptions=False)


def write_persona(url: str, agent: dict[str, Any], text: str) -> None:
    with AppServerClient(url) as client:
        client.write_memory_file(agent["id"], "persona.md", f"---\nname: persona\ndescription: who\n---\n{text}")


def system_prompt_seen(url: str, fake_llm: FakeLLM, agent: dict[str, Any], conversation_id: str) -> str:
    """The system prompt the model gets on the next turn in the conversation."""
    sent = cli(url, "send", agent["name"], "what do you know?", "--conversation-id", conversation_id)
    assert sent.exit_code == 0, sent.output
    messages = fake_llm.chat_requests()[-1].body["messages"]
    return str(messages[0]["content"]) if messages[0]["role"] == "system" else ""


def test_recompile_gives_a_conversation_the_memory_files_as_they_are_now(
    private_url: str, fake_llm: FakeLLM, agent: dict[str, Any]
) -> None:
    write_persona(private_url, agent, "I am Ada.")
    with AppServerClient(private_url) as client:
        recompiled, left = (client.create_conversation(agent["id"])["id"] for _ in range(2))
    for conversation in (recompiled, left):
        assert "I am Ada." in system_prompt_seen(private_url, fake_llm, agent, conversation)
    write_persona(private_url, agent, "I am Grace.")

    done = cli(private_url, "recompile", agent["name"], "--conversation-id", recompiled)

    assert done.exit_code == 0, done.output
    assert done.stdout == f"Recompiled 1/1: conversation {recompiled} of {agent['name']}.\n"
    now = system_prompt_seen(private_url, fake_llm, agent, recompiled)
    assert "I am Grace." in now and "I am Ada." not in now
    assert "I am Ada." in system_prompt_seen(private_url, fake_llm, agent, left)  # not recompiled: as it started


def test_recompile_without_options_does_the_agents_own_conversation_and_every_other(
    private_url: str, agent: dict[str, Any]
) -> None:
    with AppServerClient(private_url) as client:
        conversation = client.create_conversation(agent["id"])["id"]

    done = cli(private_url, "recompile", agent["name"], "-o", "json")

    assert done.exit_code == 0, done.output
    results = json.loads(done.stdout)["results"]
    assert [(r["conversation_id"], r["ok"]) for r in results] == [("default", True), (conversation, True)]


def test_cancel_messages_stops_a_turn_running_on_the_server(
    private_url: str, agent: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "made-after-the-wait"
    started = time.monotonic()
    sending = send_a_slow_tool(private_url, agent, target)
    try:
        cancelled = cli(private_url, "cancel-messages", agent["name"], "-o", "json")

        _, said = sending.communicate(timeout=30)
    finally:
        sending.kill()
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["runs"] == {"default": "cancelled"}
    assert "note: the agent stopped: cancelled" in said  # `send` says why its reply ended, as on V1
    time.sleep(max(0.0, started + SLOW_SECONDS + 2 - time.monotonic()))
    assert not target.exists()  # the stopped tool never got to its second command
    nothing = cli(private_url, "cancel-messages", agent["name"])
    assert nothing.stdout == f"Nothing to cancel: agent {agent['name']} has no active run.\n"
    unknown = cli(private_url, "cancel-messages", agent["name"], "--run-ids", "run-unknown", "-o", "json")
    assert unknown.exit_code == 0 and json.loads(unknown.stdout)["runs"] == {}
