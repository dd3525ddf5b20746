"""`send`, `get messages` and `compact-messages` against the real dev App Server (Letta Code 0.34.12), over its
protocol, with the suite's LLM stand-in as the agents' model; and the tools an agent asks to run on the server's
host, refused unless `--approve-tools`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.llm_server import RUN_PREFIX, FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]

MODEL = "openai-compatible/fake-echo-model"
LETTAFLEET = str(Path(sys.executable).with_name("lettafleet"))
SLOW_SECONDS = 8
# The server's shell tool refuses a foreground `sleep`; a Python one is a command like any other.
SLOW_COMMAND = f"python3 -c 'import time; time.sleep({SLOW_SECONDS})'"


@pytest.fixture(scope="module")
def app_server(app_server_url: str, fake_llm: FakeLLM) -> str:
    """The dev App Server with the suite's LLM stand-in connected as an openai-compatible provider."""
    with AppServerClient(app_server_url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
    return app_server_url


@pytest.fixture
def agent(app_server: str) -> Iterator[dict[str, Any]]:
    """An agent of its own for one test, whose model is the stand-in; deleted afterwards."""
    with AppServerClient(app_server) as client:
        made = client.create_agent({"name": f"as-send-{uuid.uuid4().hex[:8]}", "model": MODEL})
        yield made
        client.delete_agent(made["id"])


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": url}, catch_exceptions=False)


def messages_of(url: str, agent: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    result = cli(url, "get", "messages", agent["name"], "--all", "-o", "json", *args)
    assert result.exit_code == 0, result.output
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def texts(messages: list[dict[str, Any]], kind: str) -> list[str]:
    return [
        "".join(part.get("text", "") for part in m.get("content") or [])
        for m in messages
        if m.get("message_type") == kind
    ]


def test_send_streams_the_reply_and_get_messages_lists_the_agents_own_conversation(
    app_server: str, agent: dict[str, Any]
) -> None:
    sent = cli(app_server, "send", agent["name"], "hello there")

    assert sent.exit_code == 0, sent.output
    assert sent.stdout == "Echo: hello there\n"
    listed = messages_of(app_server, agent)
    assert texts(listed, "assistant_message") == ["Echo: hello there"]
    assert [text.endswith("hello there") for text in texts(listed, "user_message")] == [True]
    table = cli(app_server, "get", "messages", agent["name"])
    assert table.exit_code == 0, table.output
    assert "hello there" in table.stdout and "Echo: hello there" in table.stdout
    assert "system-reminder" not in table.stdout  # Letta Code's reminders to the model are not the user's words


def test_send_with_conversation_id_reaches_that_conversation_only(
    app_server: str, app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    conversation = app_server_client.create_conversation(agent["id"], summary="support chat")

    sent = cli(app_server, "send", agent["name"], "in the chat", "--conversation-id", conversation["id"])

    assert sent.exit_code == 0, sent.output
    assert sent.stdout == "Echo: in the chat\n"
    in_chat = messages_of(app_server, agent, "--conversation-id", conversation["id"])
    assert texts(in_chat, "assistant_message") == ["Echo: in the chat"]
    assert messages_of(app_server, agent) == []  # the agent's own conversation got nothing


def test_send_json_prints_the_reply_in_pieces_as_it_streams(app_server: str, agent: dict[str, Any]) -> None:
    words = "a message long enough to come back in several pieces"

    sent = cli(app_server, "send", agent["name"], words, "-o", "json")

    assert sent.exit_code == 0, sent.output
    events = [json.loads(line) for line in sent.stdout.splitlines()]
    pieces = [part["text"] for e in events if e["message_type"] == "assistant_message" for part in e["content"]]
    assert len(pieces) > 1  # the stand-in streams 16 characters at a time, and each piece is printed as it comes
    assert "".join(pieces) == f"Echo: {words}"
    assert events[-1]["message_type"] == "stop_reason"


def test_a_model_that_fails_is_one_error_and_exit_1(app_server: str, app_server_client: AppServerClient) -> None:
    broken = app_server_client.create_agent(
        {"name": f"as-send-broken-{uuid.uuid4().hex[:8]}", "model": "anthropic/no-such-model"}
    )
    try:
        sent = cli(app_server, "send", broken["name"], "hi")
    finally:
        app_server_client.delete_agent(broken["id"])

    assert sent.exit_code == 1
    errors = [line for line in sent.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no-such-model" in errors[0], sent.stderr
    assert "Traceback" not in sent.output


def test_a_conversation_of_another_agent_is_refused_before_anything_is_sent(
    app_server: str, app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    other = app_server_client.create_agent({"name": f"as-send-other-{uuid.uuid4().hex[:8]}", "model": MODEL})
    try:
        theirs = app_server_client.create_conversation(other["id"])
        sent = cli(app_server, "send", agent["name"], "hi", "--conversation-id", theirs["id"])
        assert sent.exit_code == 1
        assert f"belongs to agent {other['id']}" in sent.stderr
        assert "Traceback" not in sent.output
        assert messages_of(app_server, other, "--conversation-id", theirs["id"]) == []
    finally:
        app_server_client.delete_agent(other["id"])


def test_an_unknown_agent_is_said_so(app_server: str) -> None:
    sent = cli(app_server, "send", f"nobody-{uuid.uuid4().hex[:8]}", "hi")

    assert sent.exit_code == 1
    assert "no agent named" in sent.stderr and "Traceback" not in sent.output


def test_send_refuses_a_tool_the_agent_asks_to_run_and_the_tool_does_not_run(
    app_server: str, agent: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "made-by-the-agent"

    sent = cli(app_server, "send", agent["name"], f"{RUN_PREFIX}touch {target}")

    assert sent.exit_code == 0, sent.output
    assert not target.exists()
    assert "refused" in sent.stderr and "Bash" in sent.stderr and str(target) in sent.stderr
    assert "--approve-tools" in sent.stderr
    returned = [m for m in messages_of(app_server, agent) if m.get("message_type") == "tool_return_message"]
    assert [m["status"] for m in returned] == ["error"]  # what the agent was told: the tool did not run


def test_send_json_says_which_tool_it_refused(app_server: str, agent: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "made-by-the-agent"

    sent = cli(app_server, "send", agent["name"], f"{RUN_PREFIX}touch {target}", "-o", "json")

    assert sent.exit_code == 0, sent.output
    assert not target.exists()
    decisions = [e for e in map(json.loads, sent.stdout.splitlines()) if e["message_type"] == "approval_decision"]
    assert [(d["tool_name"], d["approved"]) for d in decisions] == [("Bash", False)]
    assert json.loads(decisions[0]["arguments"])["command"] == f"touch {target}"


def test_send_with_approve_tools_lets_the_tool_run(app_server: str, agent: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "made-by-the-agent"

    sent = cli(app_server, "send", agent["name"], f"{RUN_PREFIX}touch {target}", "--approve-tools")

    assert sent.exit_code == 0, sent.output
    assert target.exists()
    assert "approved" in sent.stderr and "Bash" in sent.stderr


def test_compact_messages_summarizes_a_conversation(
    app_server: str, app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    conversation = app_server_client.create_conversation(agent["id"])
    for words in ("first words", "second words"):
        assert cli(app_server, "send", agent["name"], words, "--conversation-id", conversation["id"]).exit_code == 0

    compacted = cli(
        app_server, "compact-messages", agent["name"], "--conversation-id", conversation["id"], "--mode", "all"
    )

    assert compacted.exit_code == 0, compacted.output
    assert f"Compacted conversation {conversation['id']}: 4 -> 1 messages" in compacted.stdout
    assert "first words" in compacted.stdout  # the summary's start (the stand-in repeats what the user said)
    kinds = [m["message_type"] for m in messages_of(app_server, agent, "--conversation-id", conversation["id"])]
    assert kinds == ["summary_message"]


def send_a_slow_tool(url: str, agent: dict[str, Any], target: Path) -> subprocess.Popen[str]:
    """`send` in a process of its own, once the agent's approved shell tool runs on the server's host: it sleeps
    SLOW_SECONDS, then makes `target`."""
    sending = subprocess.Popen(
        [LETTAFLEET, "send", agent["name"], f"{RUN_PREFIX}{SLOW_COMMAND}; touch {target}", "--approve-tools"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LETTA_BASE_URL": url, "PYTHONUNBUFFERED": "1"},
    )
    assert sending.stderr is not None
    approved = sending.stderr.readline()  # the tool starts on the server's host as this line is written
    assert "approved" in approved, approved
    return sending


def test_ctrl_c_while_an_approved_tool_runs_stops_the_turn_on_the_server(
    app_server: str, agent: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "made-after-the-wait"
    started = time.monotonic()
    sending = send_a_slow_tool(app_server, agent, target)
    try:
        sending.send_signal(signal.SIGINT)
        _, said = sending.communicate(timeout=30)
    finally:
        sending.kill()

    assert sending.returncode == 130
    assert "Interrupted: the agent's turn" in said and "Traceback" not in said
    # The conversation takes the next message at once (the server queues it after the stopped turn) ...
    again = cli(app_server, "send", agent["name"], "still there?")
    assert again.exit_code == 0, again.output
    assert again.stdout == "Echo: still there?\n"
    # ... and the stopped tool never got to its second command.
    time.sleep(max(0.0, started + SLOW_SECONDS + 2 - time.monotonic()))
    assert not target.exists()


def test_send_streams_and_refuses_tools_on_0_32_18_too(
    app_server_v1_layout_url: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    target = tmp_path / "made-by-the-agent"
    with AppServerClient(app_server_v1_layout_url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
        made = client.create_agent({"name": f"as-send-032-{uuid.uuid4().hex[:8]}", "model": MODEL})
        try:
            hello = cli(app_server_v1_layout_url, "send", made["name"], "hello")
            asked = cli(app_server_v1_layout_url, "send", made["name"], f"{RUN_PREFIX}touch {target}")
        finally:
            client.delete_agent(made["id"])

    assert hello.exit_code == 0 and hello.stdout == "Echo: hello\n", hello.output
    assert asked.exit_code == 0 and "refused" in asked.stderr, asked.output
    assert not target.exists()
