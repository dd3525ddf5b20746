"""A tiny MCP server of our own (streamable HTTP, JSON answers) on 127.0.0.1, for Letta to register and list.

Letta 0.16.8 connects to a registered server when it is created (to store its tools) and when asked for its
tools: `initialize`, `notifications/initialized`, then `tools/list`. Only those are answered; a tool call returns
its name. When `token` is set, a request without `Authorization: Bearer TOKEN` is refused (401), so a test sees
that Letta sends the fleet's auth token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

PROTOCOL = "2025-03-26"


class FakeMCPServer:
    """Serves `tools` (names) until stopped; `requests` counts what it was asked."""

    def __init__(self, tools: Sequence[str], token: str | None = None) -> None:
        self.tools = list(tools)
        self.token = token
        self.methods: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/mcp"

    def start(self) -> FakeMCPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.methods.append(method)
        if method == "initialize":
            return {
                "protocolVersion": params.get("protocolVersion", PROTOCOL),
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "lettafleet-fake-mcp", "version": "1.0"},
            }
        if method == "tools/list":
            return {"tools": [_tool(name) for name in self.tools]}
        if method == "tools/call":
            return {"content": [{"type": "text", "text": f"called {params.get('name')}"}], "isError": False}
        return {}


def _tool(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"The fake MCP tool {name}.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    }


def _handler_for(fake: FakeMCPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the test output stays quiet
            pass

        def do_GET(self) -> None:  # no server-initiated stream
            self._send(405, b"")

        def do_DELETE(self) -> None:  # the end of a session
            self._send(200, b"")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                self._send(401, b'{"error": "unauthorized"}')
                return
            message = json.loads(body or b"{}")
            if "id" not in message:  # a notification
                self._send(202, b"")
                return
            result = fake.answer(message.get("method", ""), message.get("params") or {})
            self._send(200, json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Mcp-Session-Id", "lettafleet-fake")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def fake_mcp() -> Iterator[FakeMCPServer]:
    """An MCP server with two tools, `echo_text` and `shout_text`, stopped after the test."""
    server = FakeMCPServer(["echo_text", "shout_text"]).start()
    try:
        yield server
    finally:
        server.stop()
