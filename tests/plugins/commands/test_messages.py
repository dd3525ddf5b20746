"""Message commands against a mocked Letta API (respx): sending and streaming the reply, listing, compacting."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.plugins.commands.mocked_letta import (
    AGENT_ID,
    CONV_ID,
    EVENT_STREAM,
    OTHER_AGENT_ID,
    conversation,
    message,
    requests,
    run,
    sse,
)

# ---------------------------------------------------------------------------------------------- send


REPLY = sse(
    {"message_type": "ping", "id": "ping-1"},
    {"message_type": "assistant_message", "id": "message-1", "content": "Echo: "},
    {"message_type": "assistant_message", "id": "message-1", "content": "hi"},
    {"message_type": "stop_reason", "stop_reason": "end_turn"},
    {"message_type": "usage_statistics", "total_tokens": 12, "step_count": 1},
    "[DONE]",
)


def test_send_streams_the_reply_into_the_legacy_history_without_a_conversation(letta):
    stream = letta.post(f"/v1/agents/{AGENT_ID}/messages/stream").respond(text=REPLY, headers=EVENT_STREAM)
    result = run("send", "support-agent", "hi")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Echo: hi\n"
    body = json.loads(stream.calls.last.request.content)
    assert body["messages"] == [{"role": "user", "content": "hi"}] and body["stream_tokens"] is True


def test_send_with_a_conversation_id_posts_to_that_conversation_and_prints_json_events(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation())
    stream = letta.post(f"/v1/conversations/{CONV_ID}/messages").respond(text=REPLY, headers=EVENT_STREAM)
    result = run("send", "support-agent", "hi", "--conversation-id", CONV_ID, "-o", "json")
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["message_type"] for e in events] == [
        "assistant_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]  # no keep-alive pings
    assert json.loads(stream.calls.last.request.content)["streaming"] is True


def test_send_verbose_shows_reasoning_and_whole_tool_calls_on_stderr(letta):
    streamed = sse(
        {"message_type": "reasoning_message", "id": "message-1", "reasoning": "The user "},
        {"message_type": "reasoning_message", "id": "message-1", "reasoning": "greets me."},
        {
            "message_type": "tool_call_message",
            "id": "message-2",
            "tool_calls": {"name": "memory_insert", "arguments": '{"label": '},
        },
        {"message_type": "tool_call_message", "id": "message-2", "tool_calls": {"arguments": '"human"}'}},
        {"message_type": "tool_return_message", "id": "message-3", "tool_return": "ok", "status": "success"},
        {"message_type": "assistant_message", "id": "message-4", "content": "Hello!"},
        "[DONE]",
    )
    letta.post(f"/v1/agents/{AGENT_ID}/messages/stream").respond(text=streamed, headers=EVENT_STREAM)
    result = run("send", "support-agent", "hi", "-v")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello!\n"
    assert result.stderr.splitlines() == [
        "[reasoning] The user greets me.",
        '[tool_call] memory_insert({"label": "human"})',
        "[tool_return] ok",
    ]
    assert run("send", "support-agent", "hi").stderr == ""  # without -v only the reply shows


def test_send_refuses_a_conversation_of_another_agent(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation(agent_id=OTHER_AGENT_ID))
    result = run("send", "support-agent", "hi", "--conversation-id", CONV_ID)
    assert result.exit_code == 1 and f"belongs to agent {OTHER_AGENT_ID}" in result.stderr
    assert requests(letta, "POST") == []


def test_send_reports_the_models_error_and_exits_1(letta):
    failing = sse(
        {"message_type": "stop_reason", "stop_reason": "llm_api_error"},
        {
            "message_type": "error_message",
            "run_id": "run-1",
            "error_type": "llm_error",
            "message": "An error occurred with the LLM request.",
            "detail": "Failed to connect",
        },
        "[DONE]",
    )
    letta.post(f"/v1/agents/{AGENT_ID}/messages/stream").respond(text=failing, headers=EVENT_STREAM)
    result = run("send", "support-agent", "hi")
    assert result.exit_code == 1
    assert "llm_error: An error occurred with the LLM request. (Failed to connect)" in result.stderr


def test_send_to_an_unknown_conversation_exits_1(letta):
    letta.get("/v1/conversations/conv-nope").respond(422, json={"detail": "too short"})
    result = run("send", "support-agent", "hi", "--conversation-id", "conv-nope")
    assert result.exit_code == 1 and "no conversation with id 'conv-nope'" in result.stderr


class BreakingStream(httpx.SyncByteStream):
    """The first part of a reply, then the connection drops."""

    def __iter__(self) -> Iterator[bytes]:
        yield sse({"message_type": "assistant_message", "id": "message-1", "content": "Hel"}).encode()
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def test_send_keeps_the_reply_so_far_on_its_own_line_when_the_stream_breaks_off(letta):
    broken = httpx.Response(200, headers=EVENT_STREAM, stream=BreakingStream())
    letta.post(f"/v1/agents/{AGENT_ID}/messages/stream").mock(return_value=broken)
    result = run("send", "support-agent", "hi")
    assert result.exit_code == 1
    assert result.stdout == "Hel\n"
    assert "the stream broke: peer closed connection" in result.stderr and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------- get messages


def test_get_messages_reads_the_legacy_history_newest_first_and_shows_it_oldest_first(letta):
    # Letta 0.16.8 returns a newest-first page of the agent message list in oldest-first order.
    page = [message("user_message", "one"), message("assistant_message", "two"), message("user_message", "three")]
    listed = letta.get(f"/v1/agents/{AGENT_ID}/messages").respond(json=page)
    result = run("get", "messages", "support-agent", "-l", "2", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [m["content"] for m in json.loads(result.stdout)] == ["two", "three"]
    params = listed.calls.last.request.url.params
    assert params["conversation_id"] == "default" and params["order"] == "desc"


def test_get_messages_of_a_conversation_hides_system_messages_unless_asked(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation())
    newest_first = [message("assistant_message", "yo"), message("user_message", "hi"), message("system_message", "s")]
    letta.get(f"/v1/conversations/{CONV_ID}/messages").respond(json=newest_first)
    shown = run("get", "messages", "support-agent", "--conversation-id", CONV_ID)
    assert [line.split()[2] for line in shown.stdout.splitlines()[1:]] == ["user", "assistant"]
    with_system = run("get", "messages", "support-agent", "--conversation-id", CONV_ID, "--system", "-o", "json")
    assert [m["content"] for m in json.loads(with_system.stdout)] == ["s", "hi", "yo"]


# ---------------------------------------------------------------------------------------------- compact


@pytest.mark.parametrize(
    ("args", "model"), [((), "fake-echo-model"), (("--model", "openai/gpt-4o-mini"), "openai/gpt-4o-mini")]
)
def test_compact_uses_the_agents_model_unless_one_is_given(letta, args, model):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation())
    compact = letta.post(f"/v1/conversations/{CONV_ID}/compact").respond(
        json={"summary": "S", "num_messages_before": 9, "num_messages_after": 3}
    )
    result = run("compact-messages", "support-agent", "--conversation-id", CONV_ID, *args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(compact.calls.last.request.content) == {"compaction_settings": {"model": model}}
    assert "9 -> 3 messages" in result.stdout


def test_compact_without_a_conversation_summarizes_the_legacy_history(letta):
    summarize = letta.post(f"/v1/agents/{AGENT_ID}/summarize").respond(
        json={"summary": "S", "num_messages_before": 5, "num_messages_after": 2}
    )
    result = run("compact-messages", "support-agent", "--mode", "all")
    assert result.exit_code == 0, result.stderr
    assert json.loads(summarize.calls.last.request.content)["compaction_settings"]["mode"] == "all"


def test_compact_explains_what_to_do_when_nothing_can_be_compacted(letta):
    letta.post(f"/v1/agents/{AGENT_ID}/summarize").respond(
        400, json={"detail": "Summarization failed to reduce the number of messages."}
    )
    result = run("compact-messages", "support-agent")
    assert result.exit_code == 1 and "Try --mode all" in result.stderr
