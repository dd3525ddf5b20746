"""The App Server client's handling of one WebSocket, against a scripted server: every request ends (answer,
timeout or closed socket), answers find their request whatever their order, and events do not get in the way."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lettafleet.core import LettaError
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import (
    AppServerConnectionError,
    AppServerError,
    AppServerTimeout,
)
from tests.fakes.scripted_ws_server import Frame, answer_of, scripted_server


def echo_agent(frame: Frame, send: Any) -> None:
    """Answers agent_retrieve with an agent named after the id asked for; never answers anything else."""
    if frame["type"] == "agent_retrieve":
        send(answer_of(frame, agent={"id": frame["agent_id"], "name": f"named-{frame['agent_id']}"}))


def test_a_request_the_server_never_answers_times_out_and_the_socket_stays_usable() -> None:
    with scripted_server(echo_agent) as server, AppServerClient(server.url, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(AppServerTimeout, match=r"did not answer list_memory: no answer within 0.5 s"):
            client.list_memory("agent-1")
        waited = time.monotonic() - started

        assert 0.4 < waited < 3
        assert client.retrieve_agent("agent-2")["name"] == "named-agent-2"


def test_answers_out_of_order_with_events_between_reach_the_request_that_asked() -> None:
    """The server holds the first three requests, then answers them last-first, an event before each answer."""
    held: list[Frame] = []
    lock = threading.Lock()

    def reverse_after_three(frame: Frame, send: Any) -> None:
        with lock:
            held.append(frame)
            if len(held) < 3:
                return
            for waiting in reversed(held):
                send({"type": "memory_updated", "affected_paths": ["x.md"], "timestamp": 1})
                send(answer_of(waiting, agent={"id": waiting["agent_id"], "name": f"named-{waiting['agent_id']}"}))

    with scripted_server(reverse_after_three) as server, AppServerClient(server.url, timeout=10) as client:
        with ThreadPoolExecutor(3) as pool:
            names = list(pool.map(lambda i: client.retrieve_agent(f"a{i}")["name"], range(3)))

        assert names == ["named-a0", "named-a1", "named-a2"]
        assert [event["type"] for event in client.events] == ["memory_updated"] * 3
        # All three were on the wire before any answer came: pipelined on the one socket.
        assert len({frame["request_id"] for frame in server.frames}) == 3


def test_a_listing_answered_in_several_frames_is_read_to_the_frame_that_says_done() -> None:
    def three_frames(frame: Frame, send: Any) -> None:
        for first in (0, 5, 10):
            entries = [{"relative_path": f"f{i}.md", "content": ""} for i in range(first, min(first + 5, 12))]
            send(answer_of(frame, entries=entries, done=first == 10, total=12))

    with scripted_server(three_frames) as server, AppServerClient(server.url, timeout=5) as client:
        paths = [entry["relative_path"] for entry in client.list_memory("agent-1")]

    assert paths == [f"f{i}.md" for i in range(12)]


def test_a_socket_that_closes_ends_the_waiting_request_at_once_and_says_so() -> None:
    def close_on_request(frame: Frame, send: Any) -> None:
        raise RuntimeError("the handler fails, so the server closes the connection")

    with scripted_server(close_on_request) as server, AppServerClient(server.url, timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(AppServerConnectionError, match="closed"):
            client.retrieve_agent("agent-1")

        assert time.monotonic() - started < 10
        with pytest.raises(AppServerConnectionError):
            client.retrieve_agent("agent-2")


def test_a_refusal_carries_the_servers_words_with_the_secret_masked() -> None:
    def echo_the_value(frame: Frame, send: Any) -> None:
        value = next(iter(frame["set"].values()))
        send({**answer_of(frame), "success": False, "names": [], "error": f"could not store {value} for you"})

    with (
        scripted_server(echo_the_value) as server,
        AppServerClient(server.url, timeout=5) as client,
        pytest.raises(AppServerError) as refused,
    ):
        client.apply_secrets("agent-1", set_values={"token": "s3cr3t-value-9"})

    assert "could not store *** for you" in str(refused.value)
    assert "s3cr3t" not in str(refused.value)


def test_the_bearer_token_rides_on_the_upgrade_to_loopback_and_no_origin_is_sent() -> None:
    with scripted_server(echo_agent) as server, AppServerClient(server.url, api_key="tok-123456") as client:
        client.retrieve_agent("agent-1")

    (headers,) = server.upgrade_headers
    assert headers["authorization"] == "Bearer tok-123456"
    assert "origin" not in headers
    assert all("tok-123456" not in str(frame) for frame in server.frames)


def test_the_token_is_never_sent_over_plain_ws_to_another_host() -> None:
    with pytest.raises(LettaError, match=r"refusing to send LETTA_API_KEY over plain ws to 192.0.2.7.*wss://"):
        AppServerClient("ws://192.0.2.7:4617", api_key="tok-123456", connect_timeout=1)


def test_a_server_that_is_not_there_is_a_clear_error_without_the_token() -> None:
    with pytest.raises(AppServerConnectionError, match="Is the App Server running there") as failed:
        AppServerClient("ws://127.0.0.1:9", api_key="tok-123456", connect_timeout=2)

    assert "tok-123456" not in str(failed.value)


def test_an_http_url_is_not_taken_for_an_app_server() -> None:
    with pytest.raises(LettaError, match=r"not a ws:// or wss:// address"):
        AppServerClient("http://127.0.0.1:8283")


@pytest.mark.parametrize(
    ("url", "allow_insecure"),
    [("wss://letta.example:443", False), ("ws://localhost:9", False), ("ws://10.0.0.5:4617", True)],
)
def test_the_token_may_go_encrypted_to_any_host_or_plain_to_this_machine_or_where_allowed(
    url: str, allow_insecure: bool
) -> None:
    # The one rule of both clients, from core: no refusal here (the connection then fails: nothing listens).
    with pytest.raises(AppServerConnectionError):
        AppServerClient(url, api_key="tok-123456", allow_insecure=allow_insecure, connect_timeout=1)
