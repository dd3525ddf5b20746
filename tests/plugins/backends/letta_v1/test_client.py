"""The Letta client: retries only what is safe to repeat, follows pages, and never shows the API key."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from lettafleet.core.letta.connection import LettaAPIError, LettaConnectionError, LettaError
from lettafleet.core.letta.pacing import DEFAULT_PATIENCE
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.pacer_time import FakeTime

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
def test_a_python_repr_that_cannot_be_rebuilt_is_shown_as_it_came_rather_than_a_traceback(client):
    detail = "[{'msg': 'bad', 'input': {[1]: 2}}]"  # a list as a key: literal_eval raises TypeError
    respx.post(f"{BASE}/v1/blocks/").respond(422, json={"detail": detail})
    with pytest.raises(LettaAPIError) as caught:
        client.post("/v1/blocks/", json={})
    assert str(caught.value) == f"POST /v1/blocks/ answered 422: {detail}"


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


@pytest.mark.parametrize("status", [500, 502, 504])
@respx.mock
def test_creates_are_not_retried_after_the_server_answered_with_an_error_that_may_follow_the_work(client, status):
    route = respx.post(f"{BASE}/v1/agents/").respond(status, json={"detail": "boom"})
    with pytest.raises(LettaAPIError, match=f"POST /v1/agents/ answered {status}: boom"):
        client.post("/v1/agents/", json={"name": "a"})
    assert route.call_count == 1


@respx.mock
def test_a_create_whose_connection_dropped_is_not_sent_again_and_says_the_outcome_is_unknown(client):
    route = respx.post(f"{BASE}/v1/conversations/").mock(
        side_effect=httpx.RemoteProtocolError("Server disconnected without sending a response.")
    )
    with pytest.raises(LettaConnectionError) as caught:
        client.post("/v1/conversations/", json={"summary": "one"})
    assert route.call_count == 1
    assert str(caught.value).startswith(
        "POST /v1/conversations/: the connection dropped before the server answered (Server disconnected without "
        "sending a response.), so whether it was done is unknown; it was not sent again."
    )


@respx.mock
def test_a_read_whose_connection_dropped_is_sent_again(client):
    route = respx.get(f"{BASE}/v1/agents/").mock(
        side_effect=[httpx.ReadError("connection reset"), httpx.Response(200, json=[])]
    )
    assert client.get("/v1/agents/") == []
    assert route.call_count == 2


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
@respx.mock
def test_writes_the_server_refused_with_429_or_503_are_sent_again(client, method):
    route = respx.request(method, f"{BASE}/v1/blocks/").mock(
        side_effect=[httpx.Response(429), httpx.Response(503), httpx.Response(429), httpx.Response(200, json={})]
    )
    client.request(method, "/v1/blocks/", json={"label": "x"} if method != "DELETE" else None)
    assert route.call_count == 4
    assert client.stats.by_method[method] == 4


def paced_by_fake_time(client: LettaClient, patience: float = DEFAULT_PATIENCE) -> FakeTime:
    fake = FakeTime()
    client.pacer = fake.pacer(patience=patience)
    return fake


@respx.mock
def test_a_refused_write_waits_the_seconds_retry_after_asks_for(client):
    fake = paced_by_fake_time(client)
    respx.post(f"{BASE}/v1/agents/").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={"id": "a"})]
    )
    assert client.post("/v1/agents/", json={})["id"] == "a"
    assert sum(fake.waited) == pytest.approx(7.0)


@respx.mock
def test_a_refused_write_waits_until_the_http_date_retry_after_names(client):
    fake = paced_by_fake_time(client)
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    respx.post(f"{BASE}/v1/agents/").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": later}), httpx.Response(200, json={"id": "a"})]
    )
    client.post("/v1/agents/", json={})
    assert 3.9 <= sum(fake.waited) <= 5.0  # the date has whole seconds


@respx.mock
def test_refused_writes_back_off_exponentially_with_jitter(client):
    fake = paced_by_fake_time(client)
    sent_at: list[float] = []

    def answer(_request: httpx.Request) -> httpx.Response:
        sent_at.append(fake.now)
        return httpx.Response(429) if len(sent_at) <= 4 else httpx.Response(200, json={})

    respx.post(f"{BASE}/v1/agents/").mock(side_effect=answer)
    client.post("/v1/agents/", json={})
    pauses = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
    assert [0.5 <= pause / (0.25 * 2**attempt) <= 1.5 for attempt, pause in enumerate(pauses)] == [True] * 4


@respx.mock
def test_a_refused_write_is_sent_again_far_past_a_minute_while_the_server_asks_to_wait(client):
    fake = paced_by_fake_time(client)
    refusals = [httpx.Response(429, headers={"Retry-After": "30"}, json={"detail": "slow down"})] * 8
    route = respx.post(f"{BASE}/v1/agents/").mock(side_effect=[*refusals, httpx.Response(200, json={"id": "a"})])
    assert client.post("/v1/agents/", json={})["id"] == "a"
    assert route.call_count == 9
    assert sum(fake.waited) == pytest.approx(240.0)


@respx.mock
def test_a_refusal_asking_to_wait_beyond_the_patience_fails_at_once_saying_so(client):
    fake = paced_by_fake_time(client, patience=60)
    route = respx.post(f"{BASE}/v1/agents/").respond(429, headers={"Retry-After": "120"}, json={"detail": "slow down"})
    with pytest.raises(LettaError) as caught:
        client.post("/v1/agents/", json={})
    assert route.call_count == 1 and fake.waited == []
    assert str(caught.value) == (
        "POST /v1/agents/: the server refused every request for 0 s; it asked to wait 120 s more. lettafleet waits "
        "while the server answers some requests, and gives up after 60 s of nothing but refusals "
        "(--rate-limit-patience). Run it again later, or with a longer --rate-limit-patience"
    )


@respx.mock
def test_a_server_refusing_everything_is_given_up_on_after_the_patience(client):
    paced_by_fake_time(client, patience=30)
    route = respx.post(f"{BASE}/v1/agents/").respond(503)
    with pytest.raises(LettaError, match=r"refused every request for \d+ s"):
        client.post("/v1/agents/", json={})
    assert route.call_count >= 3


@respx.mock
def test_a_refusal_of_one_request_holds_back_the_others_for_its_retry_after():
    sent_at: list[float] = []
    lock = threading.Lock()

    def answer(_request: httpx.Request) -> httpx.Response:
        with lock:
            sent_at.append(time.monotonic())
            first = len(sent_at) == 1
        if first:
            return httpx.Response(429, headers={"Retry-After": "0.5"})
        time.sleep(0.01)
        return httpx.Response(200, json={})

    respx.post(f"{BASE}/v1/blocks/").mock(side_effect=answer)
    with LettaClient(BASE) as client:

        def create() -> None:
            client.post("/v1/blocks/", json={})

        threads = [threading.Thread(target=create) for _ in range(8)]
        threads[0].start()
        time.sleep(0.05)  # the first is refused before the others start
        for thread in threads[1:]:
            thread.start()
        for thread in threads:
            thread.join()
    refused_at, *others = sent_at
    assert len(others) == 8  # seven others and the refused one, sent again
    assert min(others) - refused_at >= 0.5


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


def capped_server(items: list[dict], cap: int, *, honours_order: bool = True):
    """A list endpoint that returns at most `cap` items a page, whatever `limit` asks, as hosted Letta does; in the
    `order` asked for (`items` oldest first), as Letta does, unless told to ignore it."""

    def page(request: httpx.Request) -> httpx.Response:
        ordered = items[::-1] if honours_order and request.url.params.get("order") == "desc" else items
        after = request.url.params.get("after")
        start = next((index + 1 for index, item in enumerate(ordered) if item["id"] == after), 0)
        limit = min(int(request.url.params["limit"]), cap)
        return httpx.Response(200, json=ordered[start : start + limit])

    return page


def pages_asked(route: respx.Route) -> list[tuple[str | None, str | None]]:
    """(order, after) of every page the client asked for."""
    return [(call.request.url.params.get("order"), call.request.url.params.get("after")) for call in route.calls]


@respx.mock
def test_list_all_reads_past_a_short_page_until_an_empty_one(client):
    items = [{"id": f"a{index}"} for index in range(5)]
    route = respx.get(f"{BASE}/v1/tools/").mock(side_effect=capped_server(items, cap=2))
    assert client.list_all("/v1/tools/") == items
    assert [after for _, after in pages_asked(route)] == [None, "a1", "a3", "a4"]
    assert route.calls[0].request.url.params["limit"] == "1000"


@respx.mock
def test_a_long_list_in_an_order_is_read_from_both_ends_and_comes_back_whole_in_that_order(client):
    items = [{"id": f"a{index:02d}"} for index in range(11)]
    route = respx.get(f"{BASE}/v1/agents/").mock(side_effect=capped_server(items, cap=100))

    assert client.list_all("/v1/agents/", order="asc", limit=2) == items
    assert ("desc", None) in pages_asked(route)  # the end was read newest first
    assert route.call_count <= len(items) // 2 + 2  # no more pages than reading from the start alone


@respx.mock
def test_a_capped_list_is_read_from_both_ends_once_a_second_page_shows_more(client):
    items = [{"id": f"a{index:02d}"} for index in range(9)]
    route = respx.get(f"{BASE}/v1/agents/").mock(side_effect=capped_server(items, cap=2))

    assert client.list_all("/v1/agents/", order="desc") == items[::-1]
    assert pages_asked(route)[:2] == [("desc", None), ("desc", "a07")]
    assert ("asc", None) in pages_asked(route)


@respx.mock
def test_a_server_that_ignores_the_order_still_gives_every_item_once(client):
    items = [{"id": f"a{index:02d}"} for index in range(7)]
    respx.get(f"{BASE}/v1/agents/").mock(side_effect=capped_server(items, cap=2, honours_order=False))
    assert client.list_all("/v1/agents/", order="asc") == items


@respx.mock
def test_list_all_goes_on_when_the_item_its_cursor_names_was_deleted_meanwhile(client):
    items = [{"id": f"c{index}"} for index in range(6)]
    capped = capped_server(items, cap=2)

    def page(request: httpx.Request) -> httpx.Response:
        answer = capped(request)
        if request.url.params.get("after") == "c1":  # c1 was read, then another client deleted it
            items.remove({"id": "c1"})
            return httpx.Response(404, json={"detail": "Conversation not found with id='c1'"})
        return answer

    route = respx.get(f"{BASE}/v1/conversations/").mock(side_effect=page)

    assert [item["id"] for item in client.list_all("/v1/conversations/")] == ["c0", "c1", "c2", "c3", "c4", "c5"]
    assert [after for _, after in pages_asked(route)] == [None, "c1", "c0", "c3", "c5"]


@respx.mock
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_list_read_from_both_ends_goes_on_when_an_item_a_cursor_names_was_deleted_meanwhile(client, order):
    items = [{"id": f"c{index}"} for index in range(9)]
    capped = capped_server(items, cap=2)
    gone = {"asc": "c1", "desc": "c7"}[order]  # read first from the start, or first from the end

    def page(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("after") == gone and {"id": gone} in items:
            items.remove({"id": gone})  # another client deleted it after it was read
            return httpx.Response(404, json={"detail": f"Conversation not found with id='{gone}'"})
        return capped(request)

    respx.get(f"{BASE}/v1/conversations/").mock(side_effect=page)
    listed = [item["id"] for item in client.list_all("/v1/conversations/", order=order)]

    expected = [f"c{index}" for index in range(9)]
    assert listed == (expected if order == "asc" else expected[::-1])


@respx.mock
def test_a_server_that_ignores_the_order_loses_nothing_when_its_first_item_goes_meanwhile(client):
    items = [{"id": f"a{index:02d}"} for index in range(11)]
    capped = capped_server(items, cap=2, honours_order=False)
    first_pages = []

    def page(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("after") is None:
            first_pages.append(request)
            if len(first_pages) == 2 and {"id": "a00"} in items:
                items.remove({"id": "a00"})  # deleted between the two readings' first pages
        return capped(request)

    respx.get(f"{BASE}/v1/agents/").mock(side_effect=page)
    listed = [item["id"] for item in client.list_all("/v1/agents/", order="asc")]

    assert set(listed) >= {f"a{index:02d}" for index in range(1, 11)}


@respx.mock
def test_list_all_of_a_collection_that_fits_one_page_costs_one_more_request(client):
    route = respx.get(f"{BASE}/v1/agents/").mock(side_effect=capped_server([{"id": "a1"}], cap=100))
    assert client.list_all("/v1/agents/") == [{"id": "a1"}]
    assert route.call_count == 2


@respx.mock
def test_list_all_ends_when_the_server_ignores_the_cursor(client):
    route = respx.get(f"{BASE}/v1/tools/").respond(json=[{"id": "t1"}, {"id": "t2"}])
    assert client.list_all("/v1/tools/") == [{"id": "t1"}, {"id": "t2"}]
    assert route.call_count == 2


# What Letta 0.16.8 answers when a second block with an agent's label is attached to it (ids shortened).
LETTA_409 = (
    "A unique constraint was violated for Agent. Check your input for duplicates: "
    "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class 'asyncpg.exceptions.UniqueViolationError'>: "
    'duplicate key value violates unique constraint "unique_label_per_agent"\n'
    "DETAIL:  Key (agent_id, block_label)=(agent-bd50, probe) already exists.\n"
    "[SQL: INSERT INTO blocks_agents (agent_id, block_id, block_label) VALUES ($1::VARCHAR, $2::VARCHAR, "
    "$3::VARCHAR)]\n[parameters: ('agent-bd50', 'block-7430', 'probe')]\n"
    "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
)


@respx.mock
def test_a_conflict_says_what_conflicted_and_never_quotes_the_sql(client):
    respx.patch(f"{BASE}/v1/agents/agent-bd50/core-memory/blocks/attach/block-7430").respond(
        409, json={"detail": LETTA_409}
    )
    with pytest.raises(LettaAPIError) as caught:
        client.patch("/v1/agents/agent-bd50/core-memory/blocks/attach/block-7430")
    assert caught.value.detail == (
        "A unique constraint was violated for Agent. Check your input for duplicates: "
        "Key (agent_id, block_label)=(agent-bd50, probe) already exists (constraint unique_label_per_agent)"
    )


@respx.mock
def test_a_server_error_never_shows_a_stack_trace(client):
    trace = 'Traceback (most recent call last):\n  File "/app/letta/server.py", line 9\nKeyError: "x"'
    respx.get(f"{BASE}/v1/agents/").respond(500, text=trace)
    with LettaClient(BASE, retries=0) as once, pytest.raises(LettaAPIError) as caught:
        once.get("/v1/agents/")
    assert caught.value.detail == "the server failed (its SQL and stack trace are not shown)"


@respx.mock
def test_a_long_secret_cut_by_the_error_limit_shows_no_part_of_it(client):
    secret = "S" + "0123456789" * 150  # 1,501 characters, starting just before the 1,000-character limit
    respx.patch(f"{BASE}/v1/agents/agent-1").respond(500, json={"detail": "x" * 990 + f"key: {secret} refused"})
    client.hide(secret)
    with pytest.raises(LettaAPIError) as caught:
        client.patch("/v1/agents/agent-1", json={})
    assert caught.value.detail == "x" * 990 + "key: *** …"  # masked first, then cut at 1,000
    assert "S01" not in str(caught.value)


@respx.mock
def test_a_secret_echoed_as_a_python_repr_is_hidden(client):
    secret = 'p"a\\ss-wörd'
    # Letta 0.16.8's validation error when the repr cannot be parsed (it holds a ValueError): shown as it came.
    detail = f"[{{'type': 'value_error', 'ctx': {{'error': ValueError('no')}}, 'input': [{secret!r}]}}]"
    respx.patch(f"{BASE}/v1/agents/agent-1").respond(422, json={"detail": detail})
    client.hide(secret)
    with pytest.raises(LettaAPIError) as caught:
        client.patch("/v1/agents/agent-1", json={})
    assert "'input': ['***']" in str(caught.value) and "ss-w" not in str(caught.value)


@respx.mock
def test_a_password_in_the_url_is_sent_as_basic_auth_and_never_shown():
    route = respx.get("http://127.0.0.1:8283/v1/agents/").mock(side_effect=httpx.ConnectError("refused"))
    client = LettaClient("http://admin:hunter%402@127.0.0.1:8283", api_key="", retries=0)
    with client, pytest.raises(LettaConnectionError) as caught:
        client.get("/v1/agents/")
    assert client.base_url == "http://127.0.0.1:8283"
    assert route.calls.last.request.headers["Authorization"] == httpx.BasicAuth("admin", "hunter@2")._auth_header
    assert "hunter" not in str(caught.value) and "admin" not in str(caught.value)


def test_a_password_in_the_url_and_an_api_key_are_refused_together():
    with pytest.raises(LettaError, match="only one can be used"):
        LettaClient("https://admin:pw@letta.example", api_key="sk-key")


@pytest.mark.parametrize("url", ["http://letta.example:8283", "http://10.0.0.5:8283", "http://user:pw@letta.example"])
def test_credentials_over_plain_http_to_another_host_are_refused(url):
    with pytest.raises(LettaError, match="--allow-insecure-http"):
        LettaClient(url, api_key=None if "@" in url else "sk-key")


@pytest.mark.parametrize(
    "url", ["http://localhost:8283", "http://127.0.0.2:8283", "http://[::1]:8283", "https://letta.example"]
)
def test_credentials_go_to_this_machine_or_over_https(url):
    LettaClient(url, api_key="sk-key").close()


def test_plain_http_is_allowed_when_the_caller_says_so():
    LettaClient("http://letta.example:8283", api_key="sk-key", allow_insecure_http=True).close()


@pytest.mark.parametrize("url", ["ws://10.1.1.1", "ftp://letta.example", "http:10.255.255.1:8283", "letta.example"])
def test_a_base_url_that_is_not_http_or_https_with_a_host_is_refused_before_anything_is_sent(url):
    with pytest.raises(LettaError, match="is not an http:// or https:// address with a host"):
        LettaClient(url, api_key="sk-key")


@respx.mock
def test_a_narrow_reads_page_shorter_than_any_cap_is_its_end(client):
    route = respx.get(f"{BASE}/v1/agents/").mock(side_effect=capped_server([{"id": "a1"}, {"id": "a2"}], cap=100))
    assert client.list_all("/v1/agents/", name="support", short_page_ends=True) == [{"id": "a1"}, {"id": "a2"}]
    assert route.call_count == 1


@respx.mock
def test_a_narrow_reads_page_as_long_as_a_cap_could_be_is_not_taken_for_the_end(client):
    items = [{"id": f"a{index:02d}"} for index in range(60)]
    route = respx.get(f"{BASE}/v1/agents/").mock(side_effect=capped_server(items, cap=50))
    assert client.list_all("/v1/agents/", name="support", short_page_ends=True) == items
    assert route.call_count == 3  # 50, then 10, then the empty page
