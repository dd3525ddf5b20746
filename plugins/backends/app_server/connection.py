"""One WebSocket to an App Server's `/ws` (Protocol V2): every request has an id and a timeout, answers are matched
to their request by that id while events interleave, and many requests may be in flight at once (pipelining).

The server never answers a frame it does not understand (no `request_id`, an unknown type, bad JSON), so a
request without an answer fails after its timeout instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from lettafleet.core import LettaError, SecretMasker

DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# Events kept for a caller that looks at them (memory_updated, stream deltas); older ones are dropped.
EVENTS_KEPT = 1000
# Frames are JSON the server builds: a page of agents with long system prompts can exceed websockets' 1 MiB.
MAX_FRAME_BYTES = 64 * 1024 * 1024

Frame = dict[str, Any]
# The event a listener gets when the socket closes (no frame of the server's has this type).
CONNECTION_CLOSED = "lettafleet_connection_closed"
_GONE = object()  # put in a waiting request's inbox when the connection closes


class AppServerError(LettaError):
    """The App Server refused a request, in its own words (free text: the protocol has no error codes), with
    every secret masked."""

    SAID = "the App Server refused {}"

    def __init__(self, request_type: str, detail: str) -> None:
        self.request_type, self.detail = request_type, detail
        super().__init__(f"{self.SAID.format(request_type)}: {detail}")


class AppServerTimeout(AppServerError):
    """No answer in time: the server drops frames it does not understand, and a busy one may be slow."""

    SAID = "the App Server did not answer {}"


class AppServerConnectionError(AppServerError):
    """The WebSocket could not be opened, or closed while a request waited (every waiting request fails at once)."""

    SAID = "the App Server did not answer {}"


class AppServerUnreachable(AppServerConnectionError):
    """The WebSocket could not be opened."""

    SAID = "the App Server refused {}"


class Connection:
    """The socket, a reader thread that routes each frame to the request waiting for it, and the send side."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        masker: SecretMasker,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.url, self.timeout, self._masker = url, timeout, masker
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[str, queue.SimpleQueue[object]] = {}
        self._closed_because: str | None = None
        self.events: deque[Frame] = deque(maxlen=EVENTS_KEPT)
        self._listeners: list[queue.SimpleQueue[Frame]] = []
        self._socket = self._open(dict(headers), connect_timeout)
        self._reader = threading.Thread(target=self._read, name="app-server-reader", daemon=True)
        self._reader.start()

    def _open(self, headers: dict[str, str], connect_timeout: float) -> ClientConnection:
        try:
            # origin=None: no Origin header, which the App Server refuses. The token, if any, rides on the upgrade.
            return connect(
                self.url,
                additional_headers=headers,
                origin=None,
                open_timeout=connect_timeout,
                max_size=MAX_FRAME_BYTES,
                user_agent_header="lettafleet",
                legacy=True,  # the connection itself, held for the client's life (closed by `close`)
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
            detail = self._masker(f"{error}") or type(error).__name__
            raise AppServerUnreachable(
                "the connection", f"could not open {self.url} ({detail}). Is the App Server running there?"
            ) from error

    def request(self, frame_type: str, fields: Mapping[str, Any], *, until_done: bool = False) -> list[Frame]:
        """Send one request and return its answer: one frame, or with `until_done` every frame up to `done: true`
        (each within the timeout). Other frames that arrive meanwhile go to `events` or to their own request."""
        request_id = f"lettafleet-{next(self._ids)}"
        inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        with self._lock:
            if self._closed_because is not None:
                raise AppServerConnectionError(frame_type, f"{self._closed_because}: not sent")
            self._waiting[request_id] = inbox
        try:
            self._send({"type": frame_type, "request_id": request_id, **fields}, frame_type)
            return self._collect(inbox, frame_type, until_done)
        finally:
            with self._lock:
                self._waiting.pop(request_id, None)

    def send_only(self, frame_type: str, fields: Mapping[str, Any]) -> None:
        """Send one request and wait for nothing: its answer, if any, goes to `events`."""
        self._send({"type": frame_type, "request_id": f"lettafleet-{next(self._ids)}", **fields}, frame_type)

    def _send(self, frame: Frame, frame_type: str) -> None:
        try:
            self._socket.send(json.dumps(frame))
        except (ConnectionClosed, OSError) as error:
            raise AppServerConnectionError(
                frame_type, self._lost(f"the connection to {self.url} closed ({error})")
            ) from error

    @staticmethod
    def _lost(why: str) -> str:
        """Why a sent request got no answer, and what to do: it may have been carried out all the same."""
        return f"{why}. It may have landed: `lettafleet plan` shows what the server has now"

    def _collect(self, inbox: queue.SimpleQueue[object], frame_type: str, until_done: bool) -> list[Frame]:
        frames: list[Frame] = []
        while True:
            try:
                frame = inbox.get(timeout=self.timeout)
            except queue.Empty:
                raise AppServerTimeout(
                    frame_type,
                    f"no answer within {self.timeout:g} s (the server does not answer a request it does not "
                    "understand; a busy one may need a longer timeout). It may have landed: `lettafleet plan` shows "
                    "what the server has now",
                ) from None
            if frame is _GONE:
                raise AppServerConnectionError(frame_type, self._lost(self._closed_because or "the connection closed"))
            assert isinstance(frame, dict)
            frames.append(frame)
            if not until_done or frame.get("done") or frame.get("success") is False:
                return frames

    def _read(self) -> None:
        """Route every frame until the socket closes, then wake every request still waiting."""
        reason = "the connection closed"
        try:
            for message in self._socket:
                self._route(message)
        except ConnectionClosed as error:
            reason = f"the connection to {self.url} closed ({error})"
        except OSError as error:
            reason = f"the connection to {self.url} failed ({error})"
        finally:
            with self._lock:
                self._closed_because = reason
                waiting = list(self._waiting.values())
                listeners = list(self._listeners)
            for inbox in waiting:
                inbox.put(_GONE)
            for listener in listeners:
                listener.put({"type": CONNECTION_CLOSED, "error": reason})

    def _route(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            return  # not the protocol's; nothing waits for it
        if not isinstance(frame, dict):
            return
        with self._lock:
            inbox = self._waiting.get(str(frame.get("request_id")))
            listeners = list(self._listeners) if inbox is None else []
        if inbox is not None:
            inbox.put(frame)
        else:
            self.events.append(frame)
            for listener in listeners:
                listener.put(frame)

    @contextlib.contextmanager
    def listening(self) -> Iterator[queue.SimpleQueue[Frame]]:
        """Every event (a frame that answers no request of ours) from now until the block ends, in order."""
        listener: queue.SimpleQueue[Frame] = queue.SimpleQueue()
        with self._lock:
            self._listeners.append(listener)
        try:
            yield listener
        finally:
            with self._lock:
                self._listeners.remove(listener)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._socket.close()
        self._reader.join(timeout=5)
