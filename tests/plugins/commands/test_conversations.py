"""Conversation commands against a mocked Letta API (respx): arguments, requests, error paths."""

from __future__ import annotations

import json

import httpx

from lettafleet.plugins.commands import histories
from tests.plugins.commands.mocked_letta import (
    AGENT_ID,
    CONV_ID,
    agent,
    conversation,
    message,
    requests,
    run,
)

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
    monkeypatch.setattr(histories, "COUNT_PAGE", 2)
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


def test_get_conversations_asks_for_archived_ones_too_and_says_which_are(letta):
    archived = conversation("conv-archived", archived=True, archived_at="2026-11-29T17:00:00Z")
    listing = letta.get("/v1/conversations/").respond(json=[conversation("conv-open"), archived])

    table = run("get", "conversations", "support-agent")
    as_json = json.loads(run("get", "conversations", "support-agent", "-o", "json").stdout)

    assert listing.calls[0].request.url.params["archive_status"] == "all"  # hosted Letta hides them otherwise
    assert [(c["id"], c["archived"]) for c in as_json] == [("conv-open", False), ("conv-archived", True)]
    assert "ARCHIVED" in table.stdout
    rows = {line.split()[0]: line.split()[-1] for line in table.stdout.splitlines() if line.startswith("conv-")}
    assert rows == {"conv-open": "no", "conv-archived": "yes"}


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
