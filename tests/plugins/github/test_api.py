"""The GitHub REST client: authentication, pagination, and errors that say what to do."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from lettafleet.plugins.github.api import GitHubAPI, GitHubError, GitHubPermissionError
from tests.fakes.github_api import FakeGitHub, running_github_api


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with running_github_api(FakeGitHub(max_per_page=2)) as fake:
        yield fake


def client(github: FakeGitHub, token: str | None = None) -> GitHubAPI:
    return GitHubAPI(github.repository, token or github.token, api_url=github.url)


def test_comments_are_read_across_every_page(github: FakeGitHub) -> None:
    for number in range(5):
        github.add_comment(7, f"comment {number}")

    with client(github) as api:
        bodies = [comment["body"] for comment in api.issue_comments(7)]

    assert bodies == [f"comment {number}" for number in range(5)]
    assert [request.query.get("page", "1") for request in github.requests] == ["1", "2", "3"]


def test_requests_carry_a_bearer_token_and_the_api_version(github: FakeGitHub) -> None:
    with client(github) as api:
        api.create_comment(7, "hello")

    headers = github.requests[0].headers
    assert headers["authorization"] == f"Bearer {github.token}"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["accept"] == "application/vnd.github+json"


def test_a_comment_is_created_and_then_updated_in_place(github: FakeGitHub) -> None:
    with client(github) as api:
        created = api.create_comment(7, "first")
        api.update_comment(created["id"], "second")

    assert [comment["body"] for comment in github.comments_on(7)] == ["second"]


def test_a_read_only_token_raises_a_permission_error_that_names_forks(github: FakeGitHub) -> None:
    github.read_only = True

    with client(github) as api, pytest.raises(GitHubPermissionError, match="fork") as raised:
        api.create_comment(7, "hello")

    assert raised.value.status == 403


def test_a_wrong_token_says_to_check_the_input_and_never_shows_the_token(github: FakeGitHub) -> None:
    with client(github, token="ghp_wrong_token_value") as api, pytest.raises(GitHubError) as raised:
        list(api.issue_comments(7))

    assert raised.value.status == 401
    assert "github-token" in str(raised.value)
    assert "ghp_wrong_token_value" not in str(raised.value)


def test_pulls_for_a_commit_lists_the_merged_pull_request(github: FakeGitHub) -> None:
    github.add_merged_pull("abc123", 42)

    with client(github) as api:
        pulls = api.pulls_for_commit("abc123")

    assert [pull["number"] for pull in pulls] == [42]


def test_an_unreachable_api_is_an_error_not_a_traceback() -> None:
    api = GitHubAPI("acme/fleets", "token-value", api_url="http://127.0.0.1:9", retries=0)

    with api, pytest.raises(GitHubError, match="cannot reach the GitHub API"):
        api.create_comment(1, "x")


def test_a_repository_without_owner_is_refused() -> None:
    with pytest.raises(GitHubError, match="owner/name"):
        GitHubAPI("fleets", "token-value")


# ---------------------------------------------------------------------------------------------- retries
# The GitHub client follows the Letta client's retry policy (core/letta/retries.py).

API = "https://github.test"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr("lettafleet.core.letta.retries.time.sleep", waited.append)
    return waited


def test_a_comment_github_refused_with_429_is_sent_again_after_the_wait_it_asks_for(sleeps: list[float]) -> None:
    with respx.mock(base_url=API) as github:
        route = github.post("/repos/acme/fleets/issues/7/comments").mock(
            side_effect=[
                httpx.Response(429, json={"message": "slow down"}, headers={"Retry-After": "3"}),
                httpx.Response(201, json={"id": 1, "body": "hello"}),
            ]
        )
        with GitHubAPI("acme/fleets", "token-value", api_url=API) as api:
            created = api.create_comment(7, "hello")

    assert created["id"] == 1 and route.call_count == 2
    assert sleeps == [3.0]


def test_a_comment_answered_with_502_is_not_sent_again_as_it_may_exist(sleeps: list[float]) -> None:
    with respx.mock(base_url=API) as github:
        route = github.post("/repos/acme/fleets/issues/7/comments").respond(502, json={"message": "bad gateway"})
        with GitHubAPI("acme/fleets", "token-value", api_url=API) as api, pytest.raises(GitHubError) as raised:
            api.create_comment(7, "hello")

    assert route.call_count == 1 and raised.value.status == 502


def test_a_read_answered_with_502_is_sent_again(sleeps: list[float]) -> None:
    with respx.mock(base_url=API) as github:
        route = github.get("/repos/acme/fleets/commits/abc/pulls").mock(
            side_effect=[httpx.Response(502), httpx.Response(200, json=[{"number": 42}])]
        )
        with GitHubAPI("acme/fleets", "token-value", api_url=API) as api:
            pulls = api.pulls_for_commit("abc")

    assert [pull["number"] for pull in pulls] == [42] and route.call_count == 2
