"""An ASGI app that answers each request with the TCP_NODELAY setting of every connection its process holds.

Run by Letta's own uvicorn (`uvicorn tcp_nodelay_app:app --app-dir tests/fakes`), so that a test can read, from
the server's side, whether the sockets uvicorn accepted have Nagle's algorithm off. Needs Linux (/proc).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any


def connected_tcp_nodelay() -> list[int]:
    """TCP_NODELAY (1 on, 0 off) of each connected TCP socket of this process; the listener is not connected."""
    flags = []
    for name in os.listdir("/proc/self/fd"):
        try:
            descriptor = os.dup(int(name))
        except OSError:
            continue  # the descriptor that listdir itself used, closed by now
        try:
            connection = socket.socket(fileno=descriptor)
        except OSError:
            os.close(descriptor)  # not a socket
            continue
        with connection:
            if connection.family in (socket.AF_INET, socket.AF_INET6) and _is_connected(connection):
                flags.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    return flags


def _is_connected(connection: socket.socket) -> bool:
    try:
        connection.getpeername()
    except OSError:
        return False
    return connection.type == socket.SOCK_STREAM


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return  # lifespan events need no answer
    body = json.dumps({"tcp_nodelay": connected_tcp_nodelay()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
