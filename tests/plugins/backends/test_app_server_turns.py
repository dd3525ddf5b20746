"""One turn of an App Server agent (`send`), against a scripted server, for what the real one shows only by chance:
events of other conversations and of a turn ahead of ours in the queue, a socket that closes mid-turn, a turn
that goes silent."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerTimeout
from lettafleet.plugins.backends.app_server.turns import run_turn
from tests.fakes.scripted_ws_server import Frame, answer_of, scripted_server

OURS = {"agent_id": "agent-1", "conversation_id": "default"}
THEIRS = {"agent_id": "agent-2", "conversation_id": "default"}
Send = Callable[[Frame], None]


def delta(runtime: dict[str, str], **message: Any) -> Frame:
    return {"type": "stream_delta", "runtime": runtime, "delta": {"type": "message", **message}}


def text(runtime: dict[str, str], words: str) -> Frame:
    return delta(runtime, message_type="assistant_message", content=[{"type": "text", "text": words}])


def tool_request(runtime: dict[str, str], request_id: str) -> Frame:
    asked = {"subtype": "can_use_tool", "tool_name": "Bash", "input": {"command": "rm -rf x"}, "tool_call_id": "c1"}
    return {"type": "control_request", "request_id": request_id, "request": asked, "runtime": runtime}


def finished(runtime: dict[str, str]) -> Frame:
    return {"type": "turn_finished", "stop_reason": "end_turn", "runtime": runtime}


def server_that(on_message: Callable[[Frame, Send], None], *, disposition: str = "started") -> Callable[..., None]:
    """Starts runtimes, accepts inputs; on our message runs `on_message`, on an approval answer finishes the turn."""

    def answer(frame: Frame, send: Send) -> None:
        if frame["type"] == "runtime_start":
            send(answer_of(frame, runtime=OURS))
        elif frame["type"] == "input":
            accepted = {"type": "input_accepted", "request_id": frame["request_id"], "accepted": True}
            if frame["payload"]["kind"] == "create_message":
                send({**accepted, "disposition": disposition})
                on_message(frame, send)
            else:
                send(accepted)
                send(text(OURS, "answered"))
                send(finished(OURS))

    return answer


def reply(client: AppServerClient, **options: Any) -> list[Frame]:
    return list(run_turn(client, "agent-1", "default", "hi", approve_tools=False, **options))


def test_events_of_another_conversation_are_neither_shown_nor_answered() -> None:
    def two_conversations(frame: Frame, send: Send) -> None:
        send(text(THEIRS, "not for us"))
        send(tool_request(THEIRS, "perm-theirs"))
        send(text(OURS, "for us"))
        send(finished(THEIRS))
        send(finished(OURS))

    with scripted_server(server_that(two_conversations)) as server, AppServerClient(server.url, timeout=5) as client:
        events = reply(client)

    assert [e["content"][0]["text"] for e in events] == ["for us"]
    assert not [f for f in server.frames if f["type"] == "input" and f["payload"]["kind"] == "approval_response"]


def test_a_queued_message_waits_for_the_turn_ahead_and_answers_only_its_own_tool_requests() -> None:
    def busy(frame: Frame, send: Send) -> None:
        ours = frame["payload"]["messages"][0]["client_message_id"]
        send(text(OURS, "the turn ahead"))
        send(tool_request(OURS, "perm-ahead"))
        send(finished(OURS))
        for taken in ("someone-elses", ours):
            removed = [{"client_message_id": taken, "disposition": "dequeued"}]
            send({"type": "update_queue", "runtime": OURS, "queue": [], "removed": removed})
        send(tool_request(OURS, "perm-ours"))

    queueing = server_that(busy, disposition="queued")
    with scripted_server(queueing) as server, AppServerClient(server.url, timeout=5) as client:
        events = reply(client)

    inputs = [f["payload"] for f in server.frames if f["type"] == "input"]
    answered = [payload["request_id"] for payload in inputs if payload["kind"] == "approval_response"]
    assert answered == ["perm-ours"]
    assert [e["message_type"] for e in events] == ["approval_decision", "assistant_message"]
    assert events[0]["approved"] is False and events[1]["content"][0]["text"] == "answered"


def test_a_socket_that_closes_mid_turn_ends_it_with_an_error() -> None:
    def close_after_a_word(frame: Frame, send: Send) -> None:
        send(text(OURS, "half a"))
        raise RuntimeError("the handler fails, so the server closes the connection")

    with scripted_server(server_that(close_after_a_word)) as server, AppServerClient(server.url, timeout=5) as client:
        started = time.monotonic()
        events = reply(client)

    assert time.monotonic() - started < 10
    assert [e["message_type"] for e in events] == ["assistant_message", "error_message"]
    assert events[-1]["error_type"] == "connection_closed"


def test_a_turn_that_goes_silent_times_out_and_is_stopped_on_the_server() -> None:
    with scripted_server(server_that(lambda frame, send: None)) as server:
        with AppServerClient(server.url, timeout=5) as client, pytest.raises(AppServerTimeout, match="sent nothing"):
            reply(client, idle_timeout=0.5)
        deadline = time.monotonic() + 5
        while "abort_message" not in [f["type"] for f in server.frames] and time.monotonic() < deadline:
            time.sleep(0.05)

    aborts = [f for f in server.frames if f["type"] == "abort_message"]
    assert [f["runtime"] for f in aborts] == [OURS]
