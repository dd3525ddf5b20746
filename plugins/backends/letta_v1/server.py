"""Which V1 servers make isolated conversation blocks: self-hosted Letta 0.16.4 to 0.16.x does, hosted Letta stopped
on 2026-04-23. Told by a server's answers first, and by the version its health answer gives."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lettafleet.core import ServerInfo

# The day hosted Letta stopped making isolated conversation blocks (letta-python commits aa75f2af, ed0a3d42).
ISOLATED_BLOCKS_REMOVED = "2026-04-23"
# Self-hosted Letta makes isolated copies from 0.16.4 on; 0.16.8 is the last self-hosted V1 release.
_ISOLATED_BLOCKS_SINCE = (0, 16, 4)
_SELF_HOSTED_SERIES = (0, 16)
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def makes_isolated_blocks(server: ServerInfo) -> bool | None:
    """Whether the server makes isolated conversation blocks: only self-hosted 0.16.4 to 0.16.x do. None when its
    version is unknown (it then has to show it in its answers)."""
    found = _VERSION.match(server.version or "")
    if found is None:
        return None
    version = tuple(int(part) for part in found.groups())
    return version[:2] == _SELF_HOSTED_SERIES and version >= _ISOLATED_BLOCKS_SINCE


def isolated_blocks_missing(conversations: Sequence[Mapping[str, Any]], server: Callable[[], ServerInfo]) -> str | None:
    """Why the server makes no isolated conversation blocks, or None when it does or cannot tell. Its answers
    speak first: every 0.16.4+ conversation carries `isolated_block_ids`, hosted Letta's carry none. A server
    with no conversation yet is judged by its version (`server` reads it, once per client)."""
    if conversations:
        if any("isolated_block_ids" in conversation for conversation in conversations):
            return None
        return "its conversations carry no isolated_block_ids"
    info = server()
    if makes_isolated_blocks(info) is False:
        return f"it reports version {info.version}"
    return None
