"""Letta's V1 REST API (self-hosted 0.16.x and hosted Letta), over http:// and https://.

The public API of this backend for the plugins that speak V1 REST (the built-in resource handlers and commands, or
a third party's): its client, and `v1_client(connection)` for what only V1 REST does (uploads, streamed replies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lettafleet.core import Connection, LettaError

if TYPE_CHECKING:
    from lettafleet.plugins.backends.letta_v1.client import LettaClient


def v1_client(connection: Connection, needs: str) -> LettaClient:
    """The V1 REST client `connection` is; another backend's is a clear error saying what `needs` it."""
    from lettafleet.plugins.backends.letta_v1.client import LettaClient

    if isinstance(connection, LettaClient):
        return connection
    raise LettaError(
        f"{needs} needs Letta's V1 REST API, which {connection.base_url} does not speak: use an http:// or https:// "
        "Letta server for it"
    )


def __getattr__(name: str) -> Any:
    """`LettaClient` on first use: its HTTP library is loaded by the commands that talk V1 REST, not by every one."""
    if name == "LettaClient":
        from lettafleet.plugins.backends.letta_v1.client import LettaClient

        return LettaClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LettaClient", "v1_client"]
