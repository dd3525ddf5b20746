"""A stand-in for GitHub's REST API on 127.0.0.1, for tests only: the calls lettafleet's review loop makes
(pull request comments, the pull requests of a commit, issues), each request recorded, comments paginated with a Link
header and carrying their author (`user.login`, `user.id`, `user.type`) as GitHub does. It is not GitHub: it
knows one repository and checks only what the tests rely on."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

COMMENT_LIMIT = 65_536
# Who a comment is by, as GitHub reports it (`user` of a comment): the GITHUB_TOKEN's bot, and people.
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
OCTOCAT = {"login": "octocat", "id": 583231, "type": "User"}
MALLORY = {"login": "mallory-from-a-fork", "id": 9000001, "type": "User"}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """The state behind the stand-in. Tests arrange it (comments, merged pull requests) and read `requests`."""

    repository: str = "acme/fleets"
    token: str = "ghs_fake_token_0123456789"
    max_per_page: int = 100
    read_only: bool = False  # the token of a pull request from a fork: reads work, writes answer 403
    token_user: dict[str, Any] = field(default_factory=lambda: dict(BOT))  # whom the token comments as
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls_by_commit: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    issues: list[dict[str, Any]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(101))  # issue numbers
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_comment(self, number: int, body: str, user: dict[str, str] | None = None) -> dict[str, Any]:
        with self._lock:
            comment_id = next(self._ids)
            comment = {
                "id": comment_id,
                "body": body,
                "user": dict(user or OCTOCAT),
                "html_url": f"https://github.test/{self.repository}/pull/{number}#issuecomment-{comment_id}",
            }
            self.comments.setdefault(number, []).append(comment)
            return comment

    def add_issue(
        self, title: str, body: str, user: dict[str, Any] | None = None, labels: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        with self._lock:
            number = next(self._numbers)
            issue = {
                "number": number,
                "title": title,
                "body": body,
                "state": "open",
                "state_reason": None,
                "labels": [{"name": label} for label in labels],
                "user": dict(user or OCTOCAT),
                "html_url": f"https://github.test/{self.repository}/issues/{number}",
            }
            self.issues.append(issue)
            return dict(issue)

    def issue(self, number: int) -> dict[str, Any]:
        with self._lock:
            return next(dict(issue) for issue in self.issues if issue["number"] == number)

    def add_merged_pull(self, sha: str, number: int) -> None:
        self.pulls_by_commit.setdefault(sha, []).append(
            {"number": number, "state": "closed", "merged_at": "2026-01-01T00:00:00Z", "merge_commit_sha": sha}
        )

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(comment) for comment in self.comments.get(number, [])]

    def writes(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.method in ("POST", "PATCH")]

    # -- the API ------------------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, headers, body))
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials"}, {}
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(prefix) :]
        if found := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(found[1])
            if method == "GET":
                return self._page(path, query, self.comments_on(number))
            if method == "POST":
                return self._write(lambda: (201, self.add_comment(number, body["body"], self.token_user)), body)
        if (found := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            return self._write(lambda: self._update(int(found[1]), body["body"]), body)
        if rest == "/issues" and method == "GET":
            return self._page(path, query, self._listed_issues(query))
        if rest == "/issues" and method == "POST":
            return self._write(
                lambda: (201, self.add_issue(body.get("title", ""), body["body"], self.token_user)), body
            )
        if (found := re.fullmatch(r"/issues/(\d+)", rest)) and method == "PATCH":
            return self._write(lambda: self._update_issue(int(found[1]), body), body, required=False)
        if (found := re.fullmatch(r"/commits/([0-9a-f]+)/pulls", rest)) and method == "GET":
            return self._page(path, query, self.pulls_by_commit.get(found[1], []))
        return 404, {"message": "Not Found"}, {}

    def _listed_issues(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """GET /issues: `state` (open by default, closed, all), `creator` (a login, compared ignoring case) and
        `labels` (comma-separated, all required), newest first as GitHub sorts by default."""
        state = query.get("state", "open")
        creator = query.get("creator", "").casefold()
        labels = {label for label in query.get("labels", "").split(",") if label}
        with self._lock:
            found = [
                dict(issue)
                for issue in self.issues
                if state in ("all", issue["state"])
                and (not creator or issue["user"]["login"].casefold() == creator)
                and labels <= {label["name"] for label in issue["labels"]}
            ]
        return sorted(found, key=lambda issue: issue["number"], reverse=True)

    def _update_issue(self, number: int, fields: dict[str, Any]) -> tuple[int, Any]:
        # As for comments, stricter than GitHub: only the issue's author may edit it here.
        with self._lock:
            for issue in self.issues:
                if issue["number"] == number:
                    if issue["user"]["id"] != self.token_user["id"]:
                        return 403, {"message": "Resource not accessible by integration"}
                    if fields.get("state", "open") not in ("open", "closed"):
                        return 422, {"message": "Validation Failed"}
                    issue.update(
                        {key: fields[key] for key in ("title", "body", "state", "state_reason") if key in fields}
                    )
                    return 200, dict(issue)
        return 404, {"message": "Not Found"}

    def _write(self, action: Any, body: Any, required: bool = True) -> tuple[int, Any, dict[str, str]]:
        """A write as GitHub answers it: 403 for a read-only token, 422 for a missing (`required`) or long body."""
        if self.read_only:
            return 403, {"message": "Resource not accessible by integration"}, {}
        if not isinstance(body, dict) or not isinstance(body.get("body"), str if required else (str, type(None))):
            return 422, {"message": "Invalid request: body is required"}, {}
        if len(body.get("body") or "") > COMMENT_LIMIT:
            return (
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"message": f"Body is too long (maximum is {COMMENT_LIMIT} characters)"}],
                },
                {},
            )
        status, answer = action()
        return status, answer, {}

    def _update(self, comment_id: int, text: str) -> tuple[int, Any]:
        # Stricter than GitHub, where a token with write access to the repository may edit anyone's comment:
        # lettafleet must never try, so here only the comment's author may.
        with self._lock:
            for comment in itertools.chain.from_iterable(self.comments.values()):
                if comment["id"] == comment_id:
                    if comment["user"]["id"] != self.token_user["id"]:
                        return 403, {"message": "Resource not accessible by integration"}
                    comment["body"] = text
                    return 200, dict(comment)
        return 404, {"message": "Not Found"}

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", 30)), self.max_per_page)
        page = int(query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            links.append(f'<{self.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{self.url}{path}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{self.url}{path}?per_page={per_page}&page=1>; rel="first"')
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, items[(page - 1) * per_page : page * per_page], headers


@contextmanager
def running_github_api(github: FakeGitHub | None = None) -> Iterator[FakeGitHub]:
    """Serve `github` (a new FakeGitHub by default) on a free port of 127.0.0.1 until the block ends."""
    github = github or FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, answer, extra = github.handle(self.command, parts.path, query, headers, body)
            payload = json.dumps(answer).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the test output is about lettafleet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    github.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-github-api", daemon=True
    )
    thread.start()
    try:
        yield github
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
