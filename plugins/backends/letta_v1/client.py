"""The V1 REST client, the one way lettafleet talks to a V1 Letta server: httpx with timeouts, retries, pagination
and counting.

The API key is sent as a bearer token and never appears in messages: errors mask it wherever it shows up. A user
name and password written into the base URL are sent as basic auth and never shown; no credential is sent over
plain http to a host that is not this machine unless the caller allows it.
"""

from __future__ import annotations

import ast
import base64
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from httpx_sse import EventSource, SSEError

from lettafleet.core.letta.connection import (
    LettaAPIError,
    LettaConnectionError,
    LettaError,
    RequestStats,
    refuse_credential_in_the_clear,
)
from lettafleet.core.letta.masking import SecretMasker, public_url
from lettafleet.core.letta.pacing import DEFAULT_PATIENCE, Pacer, PacingGaveUp
from lettafleet.core.letta.retries import RETRY_BUDGET, RetryPolicy
from lettafleet.core.letta.server import ServerInfo
from lettafleet.plugins.backends.letta_v1.paging import CursorGone, read_every_page

DEFAULT_BASE_URL = "http://localhost:8283"
PAGE_SIZE = 1000
MAX_CONNECTIONS = 32
ERROR_DETAIL_LIMIT = 1000  # characters of a server's error message shown, counted after masking


class LettaClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.25,
        retry_budget: float = RETRY_BUDGET,
        rate_limit_patience: float = DEFAULT_PATIENCE,
        transport: httpx.BaseTransport | None = None,
        allow_insecure_http: bool = False,
        project: str | None = None,
        project_id: str | None = None,
    ) -> None:
        given_url = (base_url or os.environ.get("LETTA_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("LETTA_API_KEY") or None
        url_auth = _url_credentials(given_url)
        self._url_auth = url_auth
        self.masker = SecretMasker([self._api_key, *(url_auth or ())])
        self.base_url = public_url(given_url)  # what every message and plan shows
        _check_base_url(self.base_url, self._api_key, url_auth, allow_insecure_http)
        headers = {"Accept": "application/json", "User-Agent": "lettafleet"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # Hosted Letta's projects, sent as Letta's own SDK sends them (letta-python src/letta_client/_client.py).
        self.project = project or None
        if project:
            headers["X-Project"] = project
        if project_id:
            headers["X-Project-Id"] = project_id
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            auth=httpx.BasicAuth(*url_auth) if url_auth else None,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        )
        self.retry = RetryPolicy(retries=retries, backoff=backoff, budget=retry_budget)
        # Every request of this client, from every thread, is paced together (core/letta/pacing.py).
        self.pacer = Pacer(ceiling=MAX_CONNECTIONS, patience=rate_limit_patience)
        self.stats = RequestStats()
        self._server_info: ServerInfo | None = None
        self._server_info_lock = threading.Lock()

    @property
    def plan_hash_key(self) -> bytes:
        """The key a plan's hash takes its sensitive values with (docs/plan-json.md): the API key, so that only
        someone holding it could test a guess of a secret against a published hash."""
        return (self._api_key or "").encode()

    def git_authorization(self) -> str | None:
        """The Authorization header git's smart HTTP sends to this server's `/v1/git` (git-backed memory): basic
        auth with the API key as the password and `letta` as the user, as Letta Code sends it, or the base URL's own
        user and password; None without a credential. Hidden from every message this client masks."""
        user, password = ("letta", self._api_key) if self._api_key else self._url_auth or ("", "")
        if not password:
            return None
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.masker.add(token, base64.b64encode(password.encode()).decode())
        return f"Basic {token}"

    def server_info(self) -> ServerInfo:
        """The server's URL, version and project, its version read once (`GET /v1/health/`) for this client's
        life: a plan names them, and what the version supports is decided before any write. A server whose
        health answer names no version is described as such, not refused: its answers show the rest."""
        with self._server_info_lock:
            if self._server_info is None:
                try:
                    health = self.get("/v1/health/")
                except LettaAPIError:  # a server without the endpoint still serves the API
                    health = None
                version = health.get("version") if isinstance(health, dict) else None
                self._server_info = ServerInfo(self.base_url, str(version) if version else None, self.project)
            return self._server_info

    def __enter__(self) -> LettaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def hide(self, *values: str) -> None:
        """Mask these values too (sensitive values a plan sends) wherever an error message repeats them."""
        self.masker.add(*values)

    def mask(self, text: str) -> str:
        """`text` with the API key and every hidden value masked, in any form: for anything that may be printed."""
        return self.masker(text)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("POST", path, params=params, json=json)

    def patch(self, path: str, json: Any = None, **params: Any) -> Any:
        # Every PATCH lettafleet sends sets values (or attaches by id): sending it twice does no harm.
        return self.request("PATCH", path, params=params, json=json, idempotent=True)

    def upload(self, path: str, name: str, content: bytes, media_type: str, **params: Any) -> Any:
        """POST one file as the multipart form field `file` (a folder's upload)."""
        return self.request("POST", path, params=params, files={"file": (name, content, media_type)})

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        method = method.upper()
        repeatable = self.retry.repeatable(method, idempotent)
        query = {key: value for key, value in (params or {}).items() if value is not None}

        def send_once() -> httpx.Response:
            self.stats.count(method)  # retries included
            return self._http.request(method, path, params=query, json=json, files=files)

        try:
            sent = self.retry.send(send_once, repeatable=repeatable, pacer=self.pacer)
        except PacingGaveUp as error:
            raise LettaError(f"{method} {path}: {error}") from None
        except httpx.TransportError as error:
            raise self._connection_error(method, path, error, repeatable) from None
        except httpx.HTTPError as error:
            raise LettaConnectionError(f"{method} {path}: {self.mask(str(error))}") from None
        return self._decode(method, path, sent.response)

    def _connection_error(
        self, method: str, path: str, error: httpx.TransportError, repeatable: bool
    ) -> LettaConnectionError:
        if isinstance(error, httpx.ConnectError):
            return LettaConnectionError(
                f"cannot reach the Letta server at {self.base_url}: {self.mask(str(error))}. "
                "Is it running? Start one with `lettafleet dev-server up`, or set --base-url / LETTA_BASE_URL."
            )
        return LettaConnectionError(self._unanswered(method, path, error, repeatable))

    def _unanswered(self, method: str, path: str, error: httpx.TransportError, repeatable: bool) -> str:
        what = (
            "the Letta server did not answer in time"
            if isinstance(error, httpx.TimeoutException)
            else f"the connection dropped before the server answered ({self.mask(str(error)) or type(error).__name__})"
        )
        if repeatable:
            return f"{method} {path}: {what}, {self.retry.retries} retries included"
        # Sending a create again could make it twice: the next plan reads what the server holds instead.
        return (
            f"{method} {path}: {what}, so whether it was done is unknown; it was not sent again. "
            "Run plan or apply again: they read the server and make only what is missing"
        )

    def list_all(
        self,
        path: str,
        *,
        short_page_ends: bool = False,
        trim: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        **params: Any,
    ) -> list[dict[str, Any]]:
        """Every item of a collection, page by page until a page comes back empty (paging.py: a list in an
        `order` that is longer than a page is read from both ends at once). `limit` is the page size asked for
        (PAGE_SIZE unless given): a smaller one for a collection of large items lets the two ends share the work
        sooner. `short_page_ends`: a first page of fewer than paging.SMALLEST_CAP items is the end. `trim`
        makes what is kept of each item as its page arrives (the rest of the page is freed at once)."""
        limit = int(params.pop("limit", PAGE_SIZE))

        def read_page(size: int, after: str | None, query: dict[str, Any]) -> list[dict[str, Any]]:
            try:
                page: list[dict[str, Any]] = self.get(path, limit=size, after=after, **query)
            except LettaAPIError as error:
                # Letta answers 404 when the item the cursor names was deleted meanwhile (another client at work).
                if error.status == 404 and after is not None:
                    raise CursorGone(after) from None
                raise
            return [trim(item) for item in page] if trim else page

        return read_every_page(read_page, limit, params, short_page_ends=short_page_ends)

    @contextmanager
    def stream(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Iterator[httpx.Response]:
        """A streaming request (server-sent events); never retried, as a message must not be sent twice."""
        self.stats.count(method)
        try:
            with self._http.stream(method, path, json=json, params=params, timeout=httpx.Timeout(300.0)) as response:
                if response.is_error:
                    response.read()
                    self._decode(method, path, response)
                yield response
        except httpx.ConnectError as error:
            raise LettaConnectionError(
                f"cannot reach the Letta server at {self.base_url}: {self.mask(str(error))}"
            ) from None
        except httpx.TimeoutException:
            raise LettaConnectionError(f"{method} {path}: the Letta server stopped answering mid-stream") from None
        except httpx.HTTPError as error:
            raise LettaConnectionError(f"{method} {path}: the stream broke: {self.mask(str(error))}") from None

    def stream_events(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The JSON events of a server-sent-events answer as they arrive, up to Letta's closing `[DONE]`. Never
        retried, as a message must not be sent twice; a stream that breaks off raises `LettaError`."""
        with self.stream(method, path, json=json, params=params) as response:
            try:
                for event in EventSource(response).iter_sse():
                    if event.data == "[DONE]":
                        return
                    if event.data:  # an event with no data (a bare `event:` line) carries nothing
                        yield event.json()
            except SSEError as error:
                raise LettaError(
                    f"{method} {path}: the server did not answer with a stream of events: {error}"
                ) from None
            except ValueError as error:
                raise LettaError(f"{method} {path}: the server sent an event that is not JSON: {error}") from None

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if response.is_error:
            detail = self.masker.cut(_error_detail(response), ERROR_DETAIL_LIMIT)
            raise LettaAPIError(method, path, response.status_code, detail)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text


def _url_credentials(url: str) -> tuple[str, str] | None:
    """The user name and password written into a URL (`http://user:pass@host`), if any."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


def _check_base_url(url: str, api_key: str | None, url_auth: tuple[str, str] | None, allow_insecure_http: bool) -> None:
    """Stop before a request goes to an address that is not a Letta server's, or a credential would travel where
    it can be read or be sent twice."""
    if api_key and url_auth:
        raise LettaError(
            "the base URL carries a user name and password and LETTA_API_KEY is set: both are sent as the "
            "Authorization header, so only one can be used. Remove `user:password@` from the URL, or unset "
            "LETTA_API_KEY."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LettaError(
            f"the Letta base URL {url!r} is not an http:// or https:// address with a host. Write it like "
            "https://api.letta.com or http://127.0.0.1:8283 (--base-url or LETTA_BASE_URL)."
        )
    if api_key or url_auth:
        credential = "LETTA_API_KEY" if api_key else "the password in the base URL"
        refuse_credential_in_the_clear(url, credential, allow_insecure_http)


def _error_detail(response: httpx.Response) -> str:
    """The server's own words, whole: the caller masks them before cutting them short."""
    try:
        body = response.json()
    except ValueError:
        return _without_database_internals(response.text.strip()) or response.reason_phrase
    errors = _validation_errors(body.get("detail") if isinstance(body, dict) else None)
    if errors is not None:
        # A request the server's validation refused: say where and why, never the `input` it echoes back
        # (which may be the whole request body, secrets included).
        reasons = (f"{'.'.join(map(str, e.get('loc') or ())) or 'request'}: {e.get('msg')}" for e in errors)
        return "; ".join(reasons)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("detail") or detail
        return _without_database_internals(str(detail))
    return _without_database_internals(str(body))


# Where a server error starts quoting its database or its code: SQLAlchemy's exception text, the statement and
# its parameters (the request's values, secrets included), the link to SQLAlchemy's docs, a Python traceback.
_DATABASE_INTERNALS = re.compile(
    r"\(?(?:sqlalchemy|asyncpg|psycopg)|\[SQL:|\[parameters:|\(Background on this error|Traceback \(most recent",
    re.IGNORECASE,
)
_CONSTRAINT = re.compile(r'constraint "([^"]+)"')
_POSTGRES_DETAIL = re.compile(r"DETAIL:\s*(.+)")


def _without_database_internals(text: str) -> str:
    """What conflicted, from an error that quotes the database. Letta 0.16.8 answers a duplicate with a sentence
    of its own followed by SQLAlchemy's whole exception; keep the sentence, the constraint's name and
    PostgreSQL's DETAIL line (which key, which values), and drop the SQL, its parameters and any traceback."""
    found = _DATABASE_INTERNALS.search(text)
    if not found:
        return text
    said = text[: found.start()].rstrip(" :\n") or "the server failed"
    detail = _POSTGRES_DETAIL.search(text)
    constraint = _CONSTRAINT.search(text)
    if detail:
        said += ": " + detail[1].strip().rstrip(".")
    if constraint:
        said += f" (constraint {constraint[1]})"
    return said if detail or constraint else f"{said} (its SQL and stack trace are not shown)"


def _validation_errors(detail: Any) -> list[dict[str, Any]] | None:
    """FastAPI's list of validation errors, as JSON or (as Letta 0.16.8 sends it) as a Python repr in a string."""
    if isinstance(detail, str) and detail.startswith("[{"):
        try:
            detail = ast.literal_eval(detail)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: {[1]: 2}
            return None
    if isinstance(detail, list) and detail and all(isinstance(e, dict) and "msg" in e for e in detail):
        return detail
    return None
