"""How long the memory Letta 0.16.8 compiles into an agent's context is, computed from its blocks: the text each
block becomes, as the server's context endpoint (`GET /v1/agents/{id}/context`, `core_memory`) shows it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MEMORY_OPENING = "<memory_blocks>\nThe following memory blocks are currently engaged in your core memory unit:\n\n"
MEMORY_CLOSING = "</memory_blocks>"


def compiled_block_characters(label: str, value: str, description: str | None, limit: int | None) -> int:
    """The length of one block as Letta compiles it: its value in tags with its label, description and sizes,
    and the blank line that separates it from the next (or from the closing tag)."""
    text = (
        f"<{label}>\n<description>\n{description or ''}\n</description>\n<metadata>\n- chars_current={len(value)}\n"
        f"- chars_limit={limit or ''}\n</metadata>\n<value>\n{value}\n</value>\n</{label}>\n\n"
    )
    return len(text)


def compiled_memory_characters(blocks: Iterable[Mapping[str, Any]]) -> int:
    """The length of an agent's compiled memory: every block (Letta's block records) within the opening and
    closing lines Letta writes around them."""
    inner = sum(
        compiled_block_characters(b.get("label") or "", b.get("value") or "", b.get("description"), b.get("limit"))
        for b in blocks
    )
    return len(MEMORY_OPENING) + inner + len(MEMORY_CLOSING)
