"""Runs a console script of Letta's venv (`letta server`) so that every connection uvicorn accepts has TCP_NODELAY.

Letta's own Python runs this file, not lettafleet's: `python tcp_nodelay_launcher.py <venv>/bin/letta server ...`.
It imports nothing from lettafleet, and Letta's venv, not lettafleet's, has uvicorn.

Why: with more than one worker (`LETTA_UVICORN_WORKERS=2`), uvicorn binds the listening socket itself, as
`socket.socket(family)`, whose `proto` is 0. Accepted sockets inherit that `proto`, and asyncio switches Nagle's
algorithm off only on sockets whose `proto` is IPPROTO_TCP. Nagle then holds back the body of each response until
the client acknowledges the headers, which a client on a kept-alive connection delays by up to 40 ms (uvicorn
issue #3149). A single worker is not affected: asyncio binds that socket itself, from getaddrinfo, with `proto` 6.
"""

from __future__ import annotations

import importlib
import os
import runpy
import socket
import sys
from collections.abc import Callable
from typing import Any

BindSocket = Callable[[Any], socket.socket]


def listening_as_tcp(bind_socket: BindSocket) -> BindSocket:
    """Wrap uvicorn's `Config.bind_socket` so that its TCP listener says it is TCP."""

    def bind_tcp_socket(config: Any) -> socket.socket:
        listener = bind_socket(config)
        if listener.family in (socket.AF_INET, socket.AF_INET6) and listener.proto != socket.IPPROTO_TCP:
            # The same bound socket under an object that names its protocol; sockets it accepts inherit the name.
            return socket.socket(listener.family, listener.type, socket.IPPROTO_TCP, fileno=listener.detach())
        return listener

    return bind_tcp_socket


def main(arguments: list[str]) -> None:
    uvicorn_config: Any = importlib.import_module("uvicorn.config")
    uvicorn_config.Config.bind_socket = listening_as_tcp(uvicorn_config.Config.bind_socket)
    script, *script_arguments = arguments
    sys.argv = [script, *script_arguments]
    # Python put this file's folder first on the path, where lettafleet's modules (`progress`, `supervisor`, ...)
    # would shadow packages of Letta's venv; the script gets the path it would have when run by itself.
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
