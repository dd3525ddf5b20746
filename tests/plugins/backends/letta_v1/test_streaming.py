"""The client's event streams (`stream_events`): Letta's JSON events as they arrive, up to `[DONE]`, and a clear
error when the answer is no stream or breaks off."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from lettafleet.core import LettaError
from lettafleet.plugins.backends.letta_v1 import LettaClient

BASE = "https://letta.test"
PATH = "/v1/agents/agent-1/messages/stream"
EVENT_STREAM = {"content-type": "text/event-stream"}


@pytest.fixture
def client() -> Iterator[LettaClient]:
    with LettaClient(BASE, api_key="sk-secret-key-123") as client:
        yield client


@respx.mock
def test_events_arrive_as_json_up_to_done(client: LettaClient) -> None:
    stream = (
        ": a keep-alive comment\n\n"
        'event: message\ndata: {"message_type": "assistant_message",\ndata:  "content": "Hi"}\n\n'
        "event: ping\n\n"  # no data: nothing to show
        'data: {"message_type": "stop_reason", "stop_reason": "end_turn"}\n\n'
        "data: [DONE]\n\n"
        'data: {"message_type": "after_done"}\n\n'
    )
    respx.post(BASE + PATH).respond(text=stream, headers=EVENT_STREAM)

    events = list(client.stream_events("POST", PATH, json={"messages": []}))

    assert events == [
        {"message_type": "assistant_message", "content": "Hi"},
        {"message_type": "stop_reason", "stop_reason": "end_turn"},
    ]


@respx.mock
def test_an_answer_that_is_not_an_event_stream_says_so(client: LettaClient) -> None:
    respx.post(BASE + PATH).respond(json={"id": "message-1"})

    with pytest.raises(LettaError, match="did not answer with a stream of events"):
        list(client.stream_events("POST", PATH))


@respx.mock
def test_an_event_that_is_not_json_is_an_error_not_a_traceback(client: LettaClient) -> None:
    respx.post(BASE + PATH).respond(text="data: {not json\n\n", headers=EVENT_STREAM)

    with pytest.raises(LettaError, match="an event that is not JSON"):
        list(client.stream_events("POST", PATH))


class BreakingStream(httpx.SyncByteStream):
    """Sends `first`, then the connection drops."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


@respx.mock
def test_a_stream_that_breaks_off_keeps_the_events_before_and_then_fails(client: LettaClient) -> None:
    first = b'data: {"message_type": "assistant_message", "content": "Hel"}\n\n'
    respx.post(BASE + PATH).mock(return_value=httpx.Response(200, headers=EVENT_STREAM, stream=BreakingStream(first)))
    received = []

    with pytest.raises(LettaError, match="the stream broke") as raised:
        received.extend(client.stream_events("POST", PATH))

    assert received == [{"message_type": "assistant_message", "content": "Hel"}]
    assert "sk-secret-key-123" not in str(raised.value)


@respx.mock
def test_a_stream_is_never_sent_twice(client: LettaClient) -> None:
    route = respx.post(BASE + PATH).respond(503, json={"detail": "busy"})

    with pytest.raises(LettaError, match="503"):
        list(client.stream_events("POST", PATH))

    assert route.call_count == 1
