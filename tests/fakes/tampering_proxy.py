"""A proxy on 127.0.0.1 in front of the real Letta server that can rewrite request bodies on their way.

It makes the real server refuse a request in a way that echoes the request back: Letta 0.16.8 answers an
invalid agent update with 422 and a Python repr of each refused input, secrets included. Only the request is
changed; the answer is the server's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Tamper = Callable[[str, str, Any], Any]  # (method, path, JSON body) -> the body to send instead


def refuse_with_echo(method: str, path: str, body: Any) -> Any:
    """An agent write that carries secrets is made invalid so that the server repeats every secret: each value
    becomes a list (refused, and echoed as input) next to a tool rule whose error makes the repr unparseable."""
    agent_write = method in ("POST", "PATCH") and path.startswith("/v1/agents/")
    if agent_write and isinstance(body, dict) and body.get("secrets"):
        body["secrets"] = {name: [value] for name, value in body["secrets"].items()}
        body["tool_rules"] = [{"type": "conditional", "tool_name": "t", "child_output_mapping": {}}]
    return body


class TamperingProxy:
    def __init__(self, upstream: str, tamper: Tamper) -> None:
        self.tamper = tamper
        self._upstream = httpx.Client(base_url=upstream, timeout=60.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> TamperingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._upstream.close()

    def forward(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> httpx.Response:
        if raw and "json" in httpx.Headers(headers).get("content-type", ""):
            raw = json.dumps(self.tamper(method, path.split("?")[0], json.loads(raw))).encode()
        kept = {name: value for name, value in headers.items() if name.lower() not in ("host", "content-length")}
        return self._upstream.request(method, path, headers=kept, content=raw)


def _handler_for(proxy: TamperingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the test output stays quiet
            pass

        def _relay(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            answer = proxy.forward(self.command, self.path, dict(self.headers), raw)
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _relay

    return Handler
