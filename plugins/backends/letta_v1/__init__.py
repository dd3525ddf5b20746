"""Letta's V1 REST API (self-hosted 0.16.x and hosted Letta), over http:// and https://.

The public API of this backend for the plugins that speak V1 REST (the built-in resource handlers and commands, or
a third party's): its client, and `v1_client(connection)` for what only V1 REST does (uploads, streamed replies).
"""

from __future__ import annotations

from lettafleet.core import Connection, LettaError
from lettafleet.plugins.backends.letta_v1.client import LettaClient


def v1_client(connection: Connection, needs: str) -> LettaClient:
    """The V1 REST client `connection` is; another backend's is a clear error saying what `needs` it."""
    if isinstance(connection, LettaClient):
        return connection
    raise LettaError(
        f"{needs} needs Letta's V1 REST API, which {connection.base_url} does not speak: use an http:// or https:// "
        "Letta server for it"
    )


__all__ = ["LettaClient", "v1_client"]
