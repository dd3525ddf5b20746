"""How lettafleet marks what it makes on a Letta server, so later runs tell their own resources from anyone else's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MANAGED_BY = "lettafleet"


def managed_metadata(**fields: Any) -> dict[str, Any]:
    """The metadata lettafleet puts on what it creates (agents, blocks), with any `fields` of the plugin's own."""
    return {"managed_by": MANAGED_BY, **fields}


def is_managed(item: Mapping[str, Any]) -> bool:
    """Whether lettafleet made this server resource (it carries `managed_metadata`)."""
    return (item.get("metadata") or {}).get("managed_by") == MANAGED_BY
