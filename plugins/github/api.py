"""The few GitHub REST calls the review loop makes: pull request comments, the pull requests of a commit, and the
drift issue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lettafleet.core import RetryPolicy, SecretMasker, public_url

if TYPE_CHECKING:
    import httpx  # loaded when a GitHub client is made, not by every command that registers this plugin

DEFAULT_API_URL = "https://api.github.com"
PAGE_SIZE = 100  # GitHub's largest page
# The `permissions:` a job needs for each kind of write, named in the error when the token may not write.
PULL_REQUESTS_WRITE = "pull-requests: write"
ISSUES_WRITE = "issues: write"


class GitHubError(Exception):
    """GitHub answered with an error, or could not be reached; the message says what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubPermissionError(GitHubError):
    """The token may not do this: the read-only token of a pull request from a fork, or missing `permissions`."""


class GitHubAPI:
    """A small GitHub REST client: bearer token, API version header, Link-header pagination, masked errors, and
    the retry policy the Letta client follows."""

    def __init__(
        self,
        repository: str,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if "/" not in repository:
            raise GitHubError(f"GITHUB_REPOSITORY must be owner/name, not {repository!r}")
        if not token:
            raise GitHubError("no GitHub token: pass `github-token` to the action (or set GITHUB_TOKEN)")
        self.repository = repository
        self.mask = SecretMasker([token])
        self._retry = RetryPolicy(retries=retries, backoff=0.5)
        import httpx

        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "lettafleet",
            },
            timeout=httpx.Timeout(30.0, connect=10.0),
            transport=transport,
        )

    def __enter__(self) -> GitHubAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def issue_comments(self, number: int) -> Iterator[dict[str, Any]]:
        """Every comment on pull request (issue) `number`, oldest first, across all pages."""
        return self._paginate(f"/repos/{self.repository}/issues/{number}/comments")

    def create_comment(self, number: int, body: str, *, permission: str = PULL_REQUESTS_WRITE) -> dict[str, Any]:
        return self._request(
            "POST", f"/repos/{self.repository}/issues/{number}/comments", json={"body": body}, permission=permission
        )

    def update_comment(self, comment_id: int, body: str) -> dict[str, Any]:
        return self._request("PATCH", f"/repos/{self.repository}/issues/comments/{comment_id}", json={"body": body})

    def open_issues(self) -> Iterator[dict[str, Any]]:
        """The repository's open issues, newest first, across all pages (pull requests excluded). Not filtered by
        creator on GitHub's side: how its `creator` filter matches an app's `name[bot]` login is not documented,
        and a filter that matched nothing would open a new issue on every run; callers check the author."""
        issues = self._paginate(f"/repos/{self.repository}/issues", {"state": "open"})
        return (issue for issue in issues if "pull_request" not in issue)

    def create_issue(self, title: str, body: str) -> dict[str, Any]:
        return self._request(
            "POST", f"/repos/{self.repository}/issues", json={"title": title, "body": body}, permission=ISSUES_WRITE
        )

    def update_issue(self, number: int, **fields: str) -> dict[str, Any]:
        """Change an issue's `body`, `title`, `state` (open, closed) or `state_reason`."""
        return self._request("PATCH", f"/repos/{self.repository}/issues/{number}", json=fields, permission=ISSUES_WRITE)

    def pulls_for_commit(self, sha: str) -> list[dict[str, Any]]:
        """The pull requests a commit belongs to; for a merge commit on the default branch, the merged one."""
        return list(self._paginate(f"/repos/{self.repository}/commits/{sha}/pulls"))

    def _paginate(self, path: str, query: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        url: str | None = path
        params: dict[str, Any] | None = {**(query or {}), "per_page": PAGE_SIZE}
        while url:
            response = self._send("GET", url, params=params)
            yield from response.json()
            # The next page's URL carries every query parameter already.
            url, params = response.links.get("next", {}).get("url"), None

    def _request(
        self, method: str, path: str, *, json: Any = None, permission: str = PULL_REQUESTS_WRITE
    ) -> dict[str, Any]:
        return self._send(method, path, json=json, permission=permission).json()

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        permission: str = PULL_REQUESTS_WRITE,
    ) -> httpx.Response:
        import httpx

        repeatable = self._retry.repeatable(method)
        try:
            sent = self._retry.send(
                lambda: self._http.request(method, url, params=params, json=json), repeatable=repeatable
            )
        except httpx.HTTPError as error:
            raise GitHubError(
                f"{method} {public_url(url)}: cannot reach the GitHub API: {self.mask(str(error))}"
            ) from None
        if sent.response.is_error:
            raise self._error(method, url, sent.response, permission)
        return sent.response

    def _error(self, method: str, url: str, response: httpx.Response, permission: str) -> GitHubError:
        try:
            detail = str(response.json().get("message", ""))
        except (ValueError, AttributeError):
            detail = response.text[:300]
        where = public_url(url)  # a next-page URL carries its query; shown like any other URL
        text = self.mask(f"{method} {where} answered {response.status_code}: {detail}")
        if response.status_code == 403 and "rate limit" not in detail.lower():
            return GitHubPermissionError(
                f"{text}. The token may not do this: a pull request from a fork gets a read-only token; otherwise "
                f"give the job `permissions: {permission}`.",
                response.status_code,
            )
        if response.status_code == 401:
            return GitHubError(f"{text}. Check the `github-token` input.", response.status_code)
        return GitHubError(text, response.status_code)
