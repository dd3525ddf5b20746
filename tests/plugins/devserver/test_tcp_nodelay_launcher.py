"""The launcher that gives every connection the dev server's Letta accepts TCP_NODELAY (Nagle's algorithm off)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from lettafleet.plugins.devserver import tcp_nodelay_launcher
from lettafleet.plugins.devserver.home import HOST, DevServerHome
from lettafleet.plugins.devserver.letta_server import letta_server_command
from lettafleet.plugins.devserver.tcp_nodelay_launcher import listening_as_tcp


def _bind_as_uvicorn_does(config: Any) -> socket.socket:
    """What uvicorn's `Config.bind_socket` does for a TCP host and port: a socket made with its family only."""
    listener = socket.socket(family=socket.AF_INET)
    listener.bind((HOST, 0))
    return listener


def _tcp_nodelay_of_accepted_connection(listener: socket.socket) -> int:
    """Serve on the listener with asyncio, as a uvicorn worker does, and read TCP_NODELAY on the accepted side."""

    async def accept_one() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Report(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                connection = transport.get_extra_info("socket")
                accepted.set_result(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Report, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            flag = await asyncio.wait_for(accepted, timeout=10)
            writer.close()
            return flag

    return asyncio.run(accept_one())


def test_connections_accepted_on_uvicorns_own_listener_keep_nagle_on() -> None:
    """The cause: asyncio sets TCP_NODELAY only where the listener says it is TCP, and uvicorn's does not."""
    assert _tcp_nodelay_of_accepted_connection(_bind_as_uvicorn_does(None)) == 0


def test_connections_accepted_on_the_launchers_listener_have_tcp_nodelay() -> None:
    listener = listening_as_tcp(_bind_as_uvicorn_does)(None)

    assert _tcp_nodelay_of_accepted_connection(listener) == 1


def test_the_launchers_listener_keeps_the_address_uvicorn_bound() -> None:
    uvicorns_listener = _bind_as_uvicorn_does(None)
    address = uvicorns_listener.getsockname()

    with listening_as_tcp(lambda config: uvicorns_listener)(None) as listener:
        assert listener.getsockname() == address


def test_a_unix_socket_listener_is_left_as_it_is() -> None:
    unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    with unix_listener:
        assert listening_as_tcp(lambda config: unix_listener)(None) is unix_listener


def test_the_dev_server_starts_letta_through_the_launcher_with_lettas_python(tmp_path: Path) -> None:
    home = DevServerHome(tmp_path)

    command = letta_server_command(home, 8283)

    assert command == [
        str(home.venv_bin / "python"),
        tcp_nodelay_launcher.__file__,
        str(home.venv_bin / "letta"),
        "server",
        f"--host={HOST}",
        "--port=8283",
    ]
