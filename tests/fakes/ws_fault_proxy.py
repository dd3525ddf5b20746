"""A fault injector for tests only: a WebSocket proxy on 127.0.0.1 in front of the real dev App Server that
misbehaves the way a server and a network do, and counts what it saw.

It fakes no answer of the App Server: every frame it lets through goes to the real server, and every answer it
relays is the server's. Per request type (and, optionally, a substring of the request's JSON), the n-th such
request can be (see `WsFault`):

- "refuse": answered with an error frame as the server words one (free text, no code), never forwarded;
- "drop": forwarded, then the connection is cut before the server's answer reaches the client (the write
  happened, the client never heard);
- "swallow": forwarded, and its answer withheld: the client hears nothing and its request times out;
- "die": not forwarded, and the proxy dies there: every open connection is cut and no new one is accepted (a
  killed server);
- "hold": not forwarded, never answered: the request waits at the proxy until the test kills the client (an
  apply killed at that very request, before it reached the server).

A fault `after` another request (type and substring, as the fault's own) matches only once that one was
forwarded: the record write that follows a rename, say.

    with running_ws_fault_proxy(app_server_url, WsFault("agent_create", "drop")) as proxy:
        run lettafleet against proxy.url ...
        assert proxy.struck
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.sync.server import Server, ServerConnection, serve

ACTIONS = ("refuse", "drop", "swallow", "die", "hold")
MAX_FRAME_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class WsFault:
    """The `nth` request of type `request_type` whose JSON contains `contains` gets `action` (one of ACTIONS),
    and with `every` each such request after it too; a refusal says `error`. With `after` (a request type and a
    substring of its JSON), only requests that come once such a request was forwarded count."""

    request_type: str
    action: str
    nth: int = 1
    contains: str = ""
    every: bool = False
    error: str = "Internal error: the operation could not be completed"
    after: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; one of {ACTIONS}")

    def matches(self, frame: dict[str, Any], raw: str) -> bool:
        return frame.get("type") == self.request_type and self.contains in raw

    def is_after(self, frame: dict[str, Any], raw: str) -> bool:
        """Whether `frame` is the request this fault waits for before it counts any."""
        return self.after is not None and frame.get("type") == self.after[0] and self.after[1] in raw


class WsFaultProxy:
    """The proxy: its URL, the fault in force (replace `fault` at any time; None: a clean proxy) and the counts."""

    def __init__(self, upstream: str, fault: WsFault | None = None) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/ws") + "/ws"
        self.received: Counter[str] = Counter()  # by request type, every request that arrived
        self.forwarded: Counter[str] = Counter()  # by request type, sent on to the server
        self.struck = threading.Event()  # set once the fault hit its request
        self.held: list[str] = []  # the requests "hold" keeps, as sent
        self.dead = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fault = fault
        self._server: Server = serve(self._serve, "127.0.0.1", 0, max_size=MAX_FRAME_BYTES)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="ws-fault-proxy", daemon=True)
        self._thread.start()

    @property
    def fault(self) -> WsFault | None:
        return self._fault

    @fault.setter
    def fault(self, fault: WsFault | None) -> None:
        """A new fault counts its matches from zero."""
        with self._lock:
            self._fault, self._matches, self._armed = fault, 0, fault is None or fault.after is None
            self.struck.clear()

    def _serve(self, client: ServerConnection) -> None:
        if self.dead:
            _cut(client.socket)
            return
        try:
            upstream = connect(self.upstream, origin=None, max_size=MAX_FRAME_BYTES, open_timeout=10, legacy=True)
        except (OSError, TimeoutError):
            _cut(client.socket)
            return
        with self._lock:
            self._sockets += [client.socket, upstream.socket]
        withheld: dict[str, str] = {}  # request id -> what to do with its answer ("drop" or "swallow")
        relay = threading.Thread(target=self._relay_answers, args=(upstream, client, withheld), daemon=True)
        relay.start()
        try:
            for message in client:
                self._pass_on(str(message), client, upstream, withheld)
        except ConnectionClosed:
            pass
        finally:
            _cut(upstream.socket)
            relay.join(timeout=5)

    def _pass_on(
        self, raw: str, client: ServerConnection, upstream: ClientConnection, withheld: dict[str, str]
    ) -> None:
        """One request from the client: forwarded, or faulted as the fault in force says."""
        frame = json.loads(raw)
        request_type = str(frame.get("type"))
        action = self._decide(frame, raw)
        if action == "die":
            self.die()
            return
        if action == "hold":
            self.held.append(raw)
            return
        if action == "refuse":
            client.send(json.dumps(_refusal(frame, self._fault.error if self._fault else "")))
            return
        if action in ("drop", "swallow"):
            withheld[str(frame.get("request_id"))] = action
        upstream.send(raw)
        with self._lock:
            self.forwarded[request_type] += 1
            self._armed = self._armed or bool(self._fault and self._fault.is_after(frame, raw))

    def _decide(self, frame: dict[str, Any], raw: str) -> str | None:
        with self._lock:
            self.received[str(frame.get("type"))] += 1
            fault = self._fault
            if fault is None or not self._armed or (self.struck.is_set() and not fault.every):
                return None
            if not fault.matches(frame, raw):
                return None
            self._matches += 1
            if self._matches < fault.nth or (self._matches > fault.nth and not fault.every):
                return None
            self.struck.set()
            return fault.action

    def _relay_answers(self, upstream: ClientConnection, client: ServerConnection, withheld: dict[str, str]) -> None:
        """The server's frames, back to the client; the answer to a dropped request cuts the connection instead."""
        try:
            for message in upstream:
                action = withheld.pop(str(json.loads(message).get("request_id")), None)
                if action == "drop":
                    _cut(client.socket)
                    return
                if action is None:
                    client.send(message)
        except (ConnectionClosed, OSError, ValueError):
            pass
        finally:
            _cut(client.socket)

    def die(self) -> None:
        """A killed server: every open connection cut, none accepted from now on."""
        self.dead = True
        with self._lock:
            sockets = list(self._sockets)
        for each in sockets:
            _cut(each)
        with contextlib.suppress(OSError):
            self._server.socket.close()

    def stop(self) -> None:
        self.die()
        with contextlib.suppress(Exception):
            self._server.shutdown()
        self._thread.join(timeout=5)


def _refusal(frame: dict[str, Any], error: str) -> dict[str, Any]:
    """An error answer shaped as the App Server shapes one: `<type>_response`, `success: false`, free text."""
    return {"type": f"{frame.get('type')}_response", "request_id": frame.get("request_id"), "success": False,
            "error": error}  # fmt: skip


def _cut(each: socket.socket) -> None:
    """Close a connection as a network failure does: no close frame, the socket just goes."""
    with contextlib.suppress(OSError):
        each.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        each.close()


@contextmanager
def running_ws_fault_proxy(upstream: str, fault: WsFault | None = None) -> Iterator[WsFaultProxy]:
    proxy = WsFaultProxy(upstream, fault)
    try:
        yield proxy
    finally:
        proxy.stop()
