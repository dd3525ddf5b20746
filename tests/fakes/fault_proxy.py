"""A fault injector for tests only: an HTTP proxy on 127.0.0.1 in front of the real Letta dev server that
misbehaves the way real servers and networks do, and counts what it saw.

It is not a Letta server and fakes no answer of one: every request it lets through goes to the real server.
What it can do wrong (see `Faults`):

- cap list pages: rewrite a GET's `limit` query so the server returns at most N items a page (hosted Letta caps
  `limit` at a value it does not publish);
- refuse writes without forwarding them: 429 (with or without `Retry-After`) or 503, as a busy server does;
- forward a write, then drop the connection before answering (the outcome is unknown to the client);
- forward a write, then answer 500, 502 or 504 instead of the server's answer (done, but reported as failed);
- "die" after N requests: from then on, open connections are closed unanswered and new ones are refused;
- hold one request (`Hold`: the n-th of a method whose path and body match) until the test releases it, so a test
  can kill or interrupt the client at that exact moment; then forward it, drop it unsent, or forward it and
  lose the answer;
- aim the random faults at some requests only (`Faults.only`, a regex of paths: a git push, say).

Decisions come from one `random.Random(seed)`, drawn once per write in the order writes arrive: the same seed
deals the same sequence of faults (with one worker, to the same requests).

    with running_fault_proxy(letta_url, Faults(refuse=0.2)) as proxy:
        run lettafleet against proxy.url ...
        assert proxy.counts.refused.total() > 0
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Headers that describe one hop, not the request: the proxy's own connection and body framing replace them. A
# request's body is passed on as it came (its Content-Encoding with it); an answer's arrives decoded by httpx.
REQUEST_HOP_HEADERS = frozenset({"host", "connection", "keep-alive", "content-length", "transfer-encoding"})
HOP_HEADERS = REQUEST_HOP_HEADERS | {"content-encoding"}


@dataclass(frozen=True)
class Refusal:
    """One way to refuse a write: a status, and the `Retry-After` header sent with it (None: no header)."""

    status: int
    retry_after: str | None = None


DEFAULT_REFUSALS = (Refusal(429), Refusal(429, "0"), Refusal(429, "1"), Refusal(503))


@dataclass(frozen=True)
class Hold:
    """The request to hold: the `nth` whose method is `method`, whose path matches the regex `path` and whose body
    contains `body`. Once released, `then` says what becomes of it: "forward" (it lands, late), "drop" (never
    sent: the connection is closed) or "lose-answer" (it lands, and the connection closes before the answer)."""

    method: str
    path: str
    body: str = ""
    nth: int = 1
    then: str = "forward"

    def matches(self, method: str, target: str, body: bytes) -> bool:
        path = urlsplit(target).path
        return method == self.method and re.search(self.path, path) is not None and self.body.encode() in body


@dataclass(frozen=True)
class Faults:
    """What the proxy does wrong. Fractions are of write requests (POST, PATCH, PUT, DELETE); at most one fault
    hits a write, tried in the order refuse, drop, fail."""

    seed: int = 7
    list_limit: int | None = None  # a GET's `limit` is lowered to this (added when absent)
    refuse: float = 0.0  # answered with one of `refusals`, never forwarded
    refusals: tuple[Refusal, ...] = DEFAULT_REFUSALS
    drop: float = 0.0  # forwarded, then the connection is closed without an answer
    fail: float = 0.0  # forwarded, then answered with one of `fail_statuses` instead
    fail_statuses: tuple[int, ...] = (500, 502, 504)
    kill_after: int | None = None  # requests answered before the proxy dies
    only: str | None = None  # a regex: refuse, drop and fail hit only the writes whose path matches it
    # Writes about this collection (e.g. "agents") wait `slow_seconds` before they are forwarded: a slow server,
    # so that a change is surely still in flight when a test acts.
    slow_collection: str | None = None
    slow_seconds: float = 0.0
    hold: Hold | None = None  # the one request held until `FaultProxy.release()`


@dataclass
class ProxyCounts:
    """What the proxy saw and did, for tests to assert on."""

    received: Counter[str] = field(default_factory=Counter)  # by method, every request that arrived
    forwarded: Counter[str] = field(default_factory=Counter)  # by method, sent on to the server
    # by (method, collection), e.g. ("POST", "agents"): which resources the forwarded requests were about
    forwarded_to: Counter[tuple[str, str]] = field(default_factory=Counter)
    # by method and exact path, e.g. "PATCH /v1/agents/agent-1": a write counted twice reached the server twice
    forwarded_writes: Counter[str] = field(default_factory=Counter)
    capped: int = 0  # GETs whose `limit` was lowered
    refused: Counter[int] = field(default_factory=Counter)  # by status, never forwarded
    dropped: Counter[str] = field(default_factory=Counter)  # by method, forwarded but never answered
    failed: Counter[int] = field(default_factory=Counter)  # by status, forwarded then answered with an error
    unanswered_after_death: int = 0


class FaultProxy:
    """The proxy's state: its URL, the faults in force (replace `faults` at any time) and the counts."""

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.counts = ProxyCounts()
        self.dead = False
        self._lock = threading.Lock()
        self._forwarder = httpx.Client(base_url=self.upstream, timeout=120.0, limits=httpx.Limits(max_connections=64))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.held = threading.Event()  # set when the request to hold has arrived (and waits)
        self.hold_done = threading.Event()  # set once the held request, released, was forwarded or dropped
        self._released = threading.Event()
        self.faults = faults or Faults()

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """New faults start a new random sequence and a new count towards `kill_after`."""
        with self._lock:
            self._faults = faults
            self._random = random.Random(faults.seed)
            self._requests_since_faults = 0
            self._hold_matches = 0
            self.held.clear()
            self.hold_done.clear()
            self._released.clear()

    def wait_until_held(self, seconds: float = 120.0) -> None:
        """Return once the request to hold has arrived (it waits at the proxy until `release`)."""
        assert self.held.wait(seconds), f"no request matching {self._faults.hold} arrived in {seconds:g} s"

    def release(self) -> None:
        """Let the held request go on as its `Hold.then` says."""
        self._released.set()

    def killed_while_held(self, hold: Hold, start: Callable[[], subprocess.Popen[str]]) -> None:
        """Start a client (`start`, through this proxy), SIGKILL it while `hold` waits here, then let the held
        request go on as `hold.then` says. A client started as its own session is killed with its whole process
        group (the git commands it runs, whose HTTP layer would send a dropped push again)."""
        self.faults = Faults(hold=hold)
        client = start()
        try:
            self.wait_until_held()
            if os.getpgid(client.pid) == client.pid:
                os.killpg(client.pid, signal.SIGKILL)
            else:
                client.kill()
            client.wait(30)
        finally:
            self.release()
            client.communicate()
        assert self.hold_done.wait(60)
        self.faults = Faults()

    def holding(self, method: str, target: str, body: bytes) -> Hold | None:
        """The hold this request is, if it is the one to hold: it then waits here until `release`."""
        hold = self._faults.hold
        if hold is None or not hold.matches(method, target, body):
            return None
        with self._lock:
            self._hold_matches += 1
            if self._hold_matches != hold.nth:
                return None
        self.held.set()
        self._released.wait(300)
        return hold

    # -- deciding -----------------------------------------------------------------------------------------------

    def decide(self, method: str, target: str = "") -> tuple[str, Any]:
        """What to do with the next request: ("die", None), ("refuse", Refusal), ("drop", None),
        ("fail", status) or ("forward", None)."""
        with self._lock:
            self.counts.received[method] += 1
            self._requests_since_faults += 1
            faults = self._faults
            if self.dead or (faults.kill_after is not None and self._requests_since_faults > faults.kill_after):
                self.counts.unanswered_after_death += 1
                return "die", None
            if method not in WRITE_METHODS or not self._aimed_at(target):
                return "forward", None
            draw = self._random.random()
            pick = self._random.randrange(1_000_000)
            if draw < faults.refuse:
                refusal = faults.refusals[pick % len(faults.refusals)]
                self.counts.refused[refusal.status] += 1
                return "refuse", refusal
            if draw < faults.refuse + faults.drop:
                return "drop", None
            if draw < faults.refuse + faults.drop + faults.fail:
                return "fail", faults.fail_statuses[pick % len(faults.fail_statuses)]
            return "forward", None

    def _aimed_at(self, target: str) -> bool:
        only = self._faults.only
        return only is None or re.search(only, urlsplit(target).path) is not None

    def page_cap(self) -> int | None:
        """The most items a list page may hold (None: as the server answers): the faults' `list_limit` here."""
        return self._faults.list_limit

    def capped_query(self, method: str, query: str) -> str:
        limit = self.page_cap()
        if method != "GET" or limit is None:
            return query
        pairs = [(key, value) for key, value in parse_qsl(query, keep_blank_values=True) if key != "limit"]
        asked = [int(value) for key, value in parse_qsl(query) if key == "limit" and value.isdigit()]
        with self._lock:
            self.counts.capped += 1
        return urlencode([*pairs, ("limit", str(min([limit, *asked])))])

    def forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        """Count the request as forwarded, and `send` it."""
        with self._lock:
            self.counts.forwarded[method] += 1
            self.counts.forwarded_to[method, _collection(target)] += 1
            if method in WRITE_METHODS:
                self.counts.forwarded_writes[f"{method} {urlsplit(target).path}"] += 1
        return self.send(method, target, headers, body)

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        """The server's answer to a request the faults let through: the real server's here. A stand-in serves some
        requests itself (tests/fakes/hosted_git_memory.py: git's smart HTTP), faults and counts alike."""
        return self._forwarder.request(method, target, headers=headers, content=body)

    def pushes(self, path: str = r"/git-receive-pack$") -> int:
        """How many POSTs whose path matches `path` were forwarded (by default: git pushes)."""
        with self._lock:
            return sum(n for request, n in self.counts.forwarded_writes.items() if re.search(path, request))

    def answer_instead(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response | None:
        """An answer given without asking the server, or None to forward: none here. A proxy that stands in for
        another server (tests/fakes/hosted_letta.py) answers what that server answers itself (`json_answer`)."""
        return None

    def rewrite(self, method: str, target: str, status: int, payload: bytes) -> bytes:
        """The server's answer as the client receives it: unchanged here; a stand-in reshapes it."""
        return payload

    def record(self, outcome: str, method: str, status: int | None = None) -> None:
        with self._lock:
            if outcome == "drop":
                self.counts.dropped[method] += 1
            elif outcome == "fail" and status is not None:
                self.counts.failed[status] += 1

    # -- running ------------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()

    def die(self) -> None:
        """Stop listening, so new connections are refused; open ones are closed at their next request."""
        with self._lock:
            if self.dead:
                return
            self.dead = True
        # shutdown() waits for serve_forever to return, so it must not run on a request's own thread.
        threading.Thread(target=self._close_listener, name="fault-proxy-death", daemon=True).start()

    def revive(self) -> None:
        """Listen again at the same URL after `die`, as a server restarted with its data: no faults in force."""
        port = urlsplit(self.url).port or 0
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.dead = False
        self.faults = Faults()
        self.start(port)

    def stop(self) -> None:
        self._close_listener()
        self._forwarder.close()

    def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server: lettafleet reuses its connections

        def _serve(self) -> None:
            body = self._body()
            held = proxy.holding(self.command, self.path, body)
            try:
                self._go_on(body, held)
            finally:
                if held is not None:
                    proxy.hold_done.set()

        def _go_on(self, body: bytes, held: Hold | None) -> None:
            if held is not None and held.then == "drop":
                self.close_connection = True  # never sent: the server never hears of it
                return
            outcome, detail = proxy.decide(self.command, self.path)
            if held is not None and held.then == "lose-answer":
                outcome = "drop"
            if outcome == "die":
                proxy.die()
                self.close_connection = True
                return
            if outcome == "refuse":
                extra = {"Retry-After": detail.retry_after} if detail.retry_after is not None else {}
                self._answer(detail.status, b'{"detail":"refused by the fault proxy"}', extra)
                return
            parts = urlsplit(self.path)
            headers = {key: value for key, value in self.headers.items() if key.lower() not in REQUEST_HOP_HEADERS}
            instead = proxy.answer_instead(self.command, self.path, headers, body)
            if instead is not None:
                self._answer(instead.status_code, instead.content, _end_to_end(instead.headers))
                return
            faults = proxy.faults
            if self.command != "GET" and faults.slow_collection == _collection(self.path):
                time.sleep(faults.slow_seconds)
            target = parts.path + ("?" + query if (query := proxy.capped_query(self.command, parts.query)) else "")
            response = proxy.forward(self.command, target, headers, body)
            proxy.record(outcome, self.command, detail)
            if outcome == "drop":
                self.close_connection = True  # the server did the work; the client never hears of it
                return
            if outcome == "fail":
                self._answer(detail, b'{"detail":"injected by the fault proxy"}', {})
                return
            payload = proxy.rewrite(self.command, target, response.status_code, response.content)
            try:
                self._answer(response.status_code, payload, _end_to_end(response.headers))
            except OSError:  # the client was killed while its request was held: nobody to answer
                self.close_connection = True

        def _body(self) -> bytes:
            """The request's body, sent whole (Content-Length) or in chunks (git sends a large push so)."""
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()  # the blank line after the last, empty chunk
            return b"".join(chunks)

        def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the test output is about lettafleet
            pass

    return Handler


def json_answer(status: int, value: Any, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """An answer a stand-in gives itself (`FaultProxy.answer_instead`): `value` as JSON."""
    return httpx.Response(status, json=value, headers=headers)


def _end_to_end(headers: httpx.Headers) -> dict[str, str]:
    # The proxy's own response line already carries Date and Server.
    skipped = HOP_HEADERS | {"date", "server"}
    return {key: value for key, value in headers.items() if key.lower() not in skipped}


@contextmanager
def running_fault_proxy(
    upstream: str, faults: Faults | None = None, kind: type[FaultProxy] = FaultProxy
) -> Iterator[FaultProxy]:
    """A FaultProxy (or a subclass, `kind`) in front of `upstream` on a free port of 127.0.0.1, stopped when the
    block ends."""
    proxy = kind(upstream, faults)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _collection(target: str) -> str:
    """`agents` for `/v1/agents/agent-1/core-memory/blocks?limit=1`: the collection a request is about."""
    parts = [part for part in urlsplit(target).path.split("/") if part]
    return parts[1] if len(parts) > 1 else (parts[0] if parts else "")
