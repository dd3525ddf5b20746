"""The Letta client: retries only what is safe to repeat, follows pages, and never shows the API key."""

from __future__ import annotations

import httpx
import pytest
import respx

from lettafleet.core.client import LettaAPIError, LettaClient, LettaConnectionError

BASE = "https://letta.test"


@pytest.fixture
def client():
    with LettaClient(BASE, api_key="sk-secret-key-123", backoff=0.0) as client:
        yield client


@respx.mock
def test_the_api_key_is_sent_as_a_bearer_token(client):
    route = respx.get(f"{BASE}/v1/agents/").respond(json=[])
    client.get("/v1/agents/")
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-secret-key-123"


@respx.mock
def test_the_api_key_never_appears_in_an_error(client):
    respx.get(f"{BASE}/v1/agents/").respond(401, json={"detail": "bad token sk-secret-key-123"})
    with pytest.raises(LettaAPIError) as caught:
        client.get("/v1/agents/")
    assert "sk-secret-key-123" not in str(caught.value)
    assert caught.value.status == 401 and "bad token ***" in str(caught.value)


@pytest.mark.parametrize(
    "detail",
    [
        [
            {
                "type": "int_parsing",
                "loc": ["body", "limit"],
                "msg": "Input should be a valid integer",
                "input": "s3cr3t",
            }
        ],
        # Letta 0.16.8 sends the list as a Python repr inside a string.
        "[{'type': 'int_parsing', 'loc': ('body', 'limit'), "
        "'msg': 'Input should be a valid integer', 'input': 's3cr3t'}]",
    ],
)
@respx.mock
def test_a_refused_request_names_the_field_and_never_repeats_the_input(client, detail):
    respx.post(f"{BASE}/v1/blocks/").respond(422, json={"detail": detail})
    with pytest.raises(LettaAPIError) as caught:
        client.post("/v1/blocks/", json={"limit": "s3cr3t"})
    assert str(caught.value) == "POST /v1/blocks/ answered 422: body.limit: Input should be a valid integer"


@respx.mock
def test_hidden_values_never_appear_in_an_error(client):
    respx.patch(f"{BASE}/v1/agents/agent-1").respond(500, json={"detail": "could not store TOKEN=abc-secret-42"})
    client.hide("abc-secret-42", "ab")
    with pytest.raises(LettaAPIError) as caught:
        client.patch("/v1/agents/agent-1", json={})
    assert str(caught.value).endswith("could not store TOKEN=***")  # "ab" is too short to hide


@respx.mock
def test_reads_are_retried_on_server_errors_and_429(client):
    route = respx.get(f"{BASE}/v1/blocks/").mock(
        side_effect=[httpx.Response(503), httpx.Response(429), httpx.Response(200, json=[{"id": "block-1"}])]
    )
    assert client.get("/v1/blocks/") == [{"id": "block-1"}]
    assert route.call_count == 3
    assert client.stats.by_method["GET"] == 3


@respx.mock
def test_creates_are_not_retried_after_the_server_answered(client):
    route = respx.post(f"{BASE}/v1/agents/").respond(500, json={"detail": "boom"})
    with pytest.raises(LettaAPIError, match="POST /v1/agents/ answered 500: boom"):
        client.post("/v1/agents/", json={"name": "a"})
    assert route.call_count == 1


@respx.mock
def test_a_create_that_never_reached_the_server_is_retried(client):
    route = respx.post(f"{BASE}/v1/blocks/").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json={"id": "block-1"})]
    )
    assert client.post("/v1/blocks/", json={})["id"] == "block-1"
    assert route.call_count == 2


@respx.mock
def test_an_unreachable_server_says_how_to_start_one(client):
    respx.get(f"{BASE}/v1/agents/").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(LettaConnectionError, match="lettafleet dev-server up"):
        client.get("/v1/agents/")


@respx.mock
def test_list_all_follows_the_after_cursor(client, monkeypatch):
    monkeypatch.setattr("lettafleet.core.client.PAGE_SIZE", 2)
    route = respx.get(f"{BASE}/v1/agents/").mock(
        side_effect=[
            httpx.Response(200, json=[{"id": "a1"}, {"id": "a2"}]),
            httpx.Response(200, json=[{"id": "a3"}]),
        ]
    )
    assert [item["id"] for item in client.list_all("/v1/agents/", order="asc")] == ["a1", "a2", "a3"]
    assert route.calls[1].request.url.params["after"] == "a2"
    assert route.calls[1].request.url.params["limit"] == "2"
