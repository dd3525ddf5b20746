"""A tiny WebSocket server on 127.0.0.1 whose answers a test scripts: for the App Server client's own behaviour
(timeouts, answers out of order, events in between, a socket that closes), which the real server shows only
by chance. Each received frame is passed to the test's `answer(frame, send)`; `send` writes a frame back."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.server import ServerConnection, serve

Frame = dict[str, Any]
Answer = Callable[[Frame, Callable[[Frame], None]], None]


class ScriptedServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.frames: list[Frame] = []
        self.upgrade_headers: list[dict[str, str]] = []
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"

    def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        self.upgrade_headers.append({key.lower(): value for key, value in connection.request.headers.raw_items()})
        lock = threading.Lock()

        def send(frame: Frame) -> None:
            with lock:
                connection.send(json.dumps(frame))

        for message in connection:
            frame = json.loads(message)
            self.frames.append(frame)
            self.answer(frame, send)


@contextmanager
def scripted_server(answer: Answer) -> Iterator[ScriptedServer]:
    server = ScriptedServer(answer)
    thread = threading.Thread(target=server._server.serve_forever, name="scripted-ws", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._server.shutdown()
        thread.join(timeout=5)


def answer_of(frame: Frame, **fields: Any) -> Frame:
    """The success answer to `frame`, as the App Server shapes it."""
    return {"type": f"{frame['type']}_response", "request_id": frame["request_id"], "success": True, **fields}
