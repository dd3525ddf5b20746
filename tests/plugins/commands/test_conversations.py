"""Conversation and message commands against a mocked Letta API (respx): arguments, requests, error paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.commands import conversations as conversation_commands

BASE = "http://letta.test"
AGENT_ID = "agent-11111111-1111-4111-8111-111111111111"
OTHER_AGENT_ID = "agent-22222222-2222-4222-8222-222222222222"
CONV_ID = "conv-33333333-3333-4333-8333-333333333333"


def run(*args: str) -> Result:
    return CliRunner().invoke(
        main, list(args), env={"LETTA_BASE_URL": BASE, "LETTA_API_KEY": ""}, catch_exceptions=False
    )


@pytest.fixture
def letta() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get("/v1/agents/").respond(json=[agent()])
        yield mock


def agent(**extra: Any) -> dict[str, Any]:
    return {
        "id": AGENT_ID,
        "name": "support-agent",
        "llm_config": {"model": "fake-echo-model", "handle": None, "context_window": 32000},
        "blocks": [{"id": "block-ctx", "label": "customer_context"}, {"id": "block-faq", "label": "faq"}],
        **extra,
    }


def conversation(conversation_id: str = CONV_ID, **extra: Any) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "agent_id": AGENT_ID,
        "summary": "Ticket #101",
        "in_context_message_ids": ["message-system"],
        "isolated_block_ids": [],
        "created_at": "2026-11-25T17:38:12.767871Z",
        "last_message_at": None,
        **extra,
    }


def message(kind: str, content: str, message_id: str | None = None) -> dict[str, Any]:
    return {
        "id": message_id or f"message-{content}",
        "message_type": kind,
        "content": content,
        "date": "2026-11-25T17:38:12+00:00",
    }


def sse(*events: Any) -> str:
    return "".join(f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n" for event in events)


def requests(letta: respx.MockRouter, method: str) -> list[httpx.Request]:
    return [call.request for call in letta.calls if call.request.method == method]


# ---------------------------------------------------------------------------------------------- get conversations


def test_get_conversations_counts_messages_and_skips_conversations_never_written_to(letta):
    used = conversation("conv-used", last_message_at="2026-11-25T18:00:00Z", in_context_message_ids=["m1"] * 3)
    letta.get("/v1/conversations/").respond(json=[conversation("conv-fresh"), used])
    counted = letta.get("/v1/conversations/conv-used/messages").respond(
        json=[message("system_message", "sys"), message("user_message", "hi"), message("assistant_message", "yo")]
    )
    result = run("get", "conversations", "support-agent", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [(c["id"], c["message_count"]) for c in json.loads(result.stdout)] == [("conv-fresh", 0), ("conv-used", 2)]
    assert counted.call_count == 1
    # The agent (a page, and the one that ends the list: an agent of the same name may be on a later page), its
    # conversations (likewise), one count; nothing for the fresh one.
    assert len(letta.calls) == 5


def test_message_counts_follow_the_cursor_across_pages(letta, monkeypatch):
    monkeypatch.setattr(conversation_commands, "COUNT_PAGE", 2)
    letta.get("/v1/conversations/").respond(json=[conversation(last_message_at="2026-11-25T18:00:00Z")])
    pages = {
        None: [message("system_message", "s"), message("user_message", "a")],
        "message-a": [message("assistant_message", "b"), message("user_message", "c")],
        "message-c": [message("assistant_message", "d")],
    }
    letta.get(f"/v1/conversations/{CONV_ID}/messages").mock(
        side_effect=lambda request: httpx.Response(200, json=pages[request.url.params.get("after")])
    )
    result = run("get", "conversations", "support-agent", "-o", "json")
    assert json.loads(result.stdout)[0]["message_count"] == 4


def test_get_conversations_of_an_agent_without_any_says_how_to_make_one(letta):
    letta.get("/v1/conversations/").respond(json=[])
    result = run("get", "conversations", "support-agent")
    assert result.exit_code == 0
    assert "lettafleet create conversation support-agent" in result.stdout


# ---------------------------------------------------------------------------------------------- create conversation


def test_create_conversation_sends_the_summary_and_prints_the_new_id(letta):
    created = letta.post("/v1/conversations/").respond(json=conversation(summary="VIP"))
    result = run("create", "conversation", "support-agent", "--summary", "VIP")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Conversation created for agent support-agent\nConversation ID: {CONV_ID}\n"
    request = created.calls.last.request
    assert request.url.params["agent_id"] == AGENT_ID
    assert json.loads(request.content) == {"summary": "VIP"}


def test_create_conversation_with_an_unknown_label_asks_for_nothing(letta):
    result = run("create", "conversation", "support-agent", "--isolated-block", "nope")
    assert result.exit_code == 1
    assert "has no block labelled 'nope'; its blocks are: customer_context, faq" in result.stderr
    assert requests(letta, "POST") == []


def test_create_conversation_removes_what_letta_made_when_it_refuses_a_label_anyway(letta):
    before, half_made = conversation("conv-old"), conversation("conv-half", summary="VIP")
    letta.get("/v1/conversations/").mock(
        side_effect=[
            httpx.Response(200, json=[before]),
            httpx.Response(200, json=[]),  # an empty page ends a list
            httpx.Response(200, json=[before, half_made]),
            httpx.Response(200, json=[]),
        ]
    )
    letta.post("/v1/conversations/").respond(400, json={"detail": "INVALID_ARGUMENT: Block with label ..."})
    letta.delete("/v1/conversations/conv-half").respond(json=None)
    result = run("create", "conversation", "support-agent", "-d", "VIP", "--isolated-block", "faq")
    assert result.exit_code == 1 and "Nothing was created" in result.stderr
    assert [r.url.path for r in requests(letta, "DELETE")] == ["/v1/conversations/conv-half"]


def test_create_conversation_fails_when_the_server_ignores_isolated_blocks(letta):
    letta.get("/v1/conversations/").respond(json=[])
    letta.post("/v1/conversations/").respond(json=conversation(isolated_block_ids=[]))
    letta.delete(f"/v1/conversations/{CONV_ID}").respond(json=None)
    result = run("create", "conversation", "support-agent", "--isolated-block", "customer_context")
    assert result.exit_code == 1 and "ignored isolated_block_labels" in result.stderr
    assert json.loads(requests(letta, "POST")[0].content)["isolated_block_labels"] == ["customer_context"]
    assert [r.url.path for r in requests(letta, "DELETE")] == [f"/v1/conversations/{CONV_ID}"]


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
    stream = letta.post(f"/v1/agents/{AGENT_ID}/messages/stream").respond(text=REPLY)
    result = run("send", "support-agent", "hi")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Echo: hi\n"
    body = json.loads(stream.calls.last.request.content)
    assert body["messages"] == [{"role": "user", "content": "hi"}] and body["stream_tokens"] is True


def test_send_with_a_conversation_id_posts_to_that_conversation_and_prints_json_events(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation())
    stream = letta.post(f"/v1/conversations/{CONV_ID}/messages").respond(text=REPLY)
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
    letta.post(f"/v1/agents/{AGENT_ID}/messages/stream").respond(text=streamed)
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
    letta.post(f"/v1/agents/{AGENT_ID}/messages/stream").respond(text=failing)
    result = run("send", "support-agent", "hi")
    assert result.exit_code == 1
    assert "llm_error: An error occurred with the LLM request. (Failed to connect)" in result.stderr


def test_send_to_an_unknown_conversation_exits_1(letta):
    letta.get("/v1/conversations/conv-nope").respond(422, json={"detail": "too short"})
    result = run("send", "support-agent", "hi", "--conversation-id", "conv-nope")
    assert result.exit_code == 1 and "no conversation with id 'conv-nope'" in result.stderr


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


# ---------------------------------------------------------------------------------------------- describe, delete


def test_describe_conversation_shows_its_agent_and_isolated_blocks(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation(isolated_block_ids=["block-copy"]))
    letta.get(f"/v1/agents/{AGENT_ID}").respond(json=agent())
    letta.get("/v1/blocks/block-copy").respond(json={"id": "block-copy", "label": "customer_context", "value": "Ada"})
    result = run("describe", "conversation", CONV_ID)
    assert result.exit_code == 0, result.stderr
    assert f"support-agent ({AGENT_ID})" in result.stdout
    assert "customer_context  block-copy  Ada" in result.stdout


def test_describe_an_unknown_conversation_exits_1(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(404, json={"detail": "Conversation not found"})
    result = run("describe", "conversation", CONV_ID)
    assert result.exit_code == 1 and f"no conversation with id '{CONV_ID}'" in result.stderr


def test_delete_conversation_without_force_changes_nothing(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation(isolated_block_ids=["block-copy"]))
    letta.get(f"/v1/agents/{AGENT_ID}").respond(json=agent())
    result = run("delete", "conversation", CONV_ID)
    assert result.exit_code == 1
    assert "Would delete conversation" in result.stdout and "1 isolated block copy" in result.stdout
    assert requests(letta, "DELETE") == []


def test_delete_conversation_with_force_deletes_it(letta):
    letta.get(f"/v1/conversations/{CONV_ID}").respond(json=conversation())
    letta.get(f"/v1/agents/{AGENT_ID}").respond(json=agent())
    letta.delete(f"/v1/conversations/{CONV_ID}").respond(json=None)
    result = run("delete", "conversation", CONV_ID, "--force")
    assert result.exit_code == 0, result.stderr
    assert [r.url.path for r in requests(letta, "DELETE")] == [f"/v1/conversations/{CONV_ID}"]
