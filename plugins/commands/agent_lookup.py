"""Naming an agent on the command line: its name or its id (`agent-...`), resolved in one request."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import rich_click as click

from lettafleet.core import Connection, LettaAPIError, LettaError
from lettafleet.plugins.resources.agents import described, meant_first

# Naming one cheap relation makes Letta leave out the others (tools carry their source code): see core/letta/reads.
LIGHT_AGENT = ["agent.tags"]
# Agent names may start with "agent-" too; only this shape is an id.
AGENT_ID = re.compile(r"^agent-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class NotFoundError(LettaError):
    """A name or id the user gave is not on the server."""


def find_agent(
    client: Connection, name_or_id: str, *, include: Sequence[str] | None = None, unique: bool = False
) -> dict[str, Any]:
    """The agent called `name_or_id` (a name, or an id `agent-<uuid>`), in one request.

    Letta allows two agents with one name; as in a plan (`meant_first`), the one lettafleet manages wins, then the
    oldest.
    `unique=True` (for deletes) refuses to guess and asks for the id instead.
    """
    relations = list(include) if include is not None else None
    if AGENT_ID.match(name_or_id):
        try:
            return client.get(f"/v1/agents/{name_or_id}", include=relations)
        except LettaAPIError as error:
            # 404: no such agent; 422: Letta's own id check is stricter (a version-4 uuid).
            if error.status in (404, 422):
                raise NotFoundError(_no_agent(client, f"with id '{name_or_id}'")) from None
            raise
    matches = meant_first(client.list_all("/v1/agents/", name=name_or_id, include=relations, order="asc"))
    if not matches:
        raise NotFoundError(_no_agent(client, f"named '{name_or_id}'", _close_names(client, name_or_id)))
    if len(matches) == 1:
        return matches[0]
    ids = ", ".join(described(agent) for agent in matches)
    if unique:
        raise LettaError(f"{len(matches)} agents are named '{name_or_id}': {ids}. Name the one you mean by its id.")
    chosen = matches[0]
    click.echo(
        f"note: {len(matches)} agents are named '{name_or_id}'; using {chosen['id']}. Name another by its id ({ids}).",
        err=True,
    )
    return chosen


def _no_agent(client: Connection, which: str, close: Sequence[str] = ()) -> str:
    maybe = f" Did you mean {', '.join(close)}?" if close else ""
    return f"no agent {which} on {client.base_url}.{maybe} List the agents with `lettafleet get agents`."


def _close_names(client: Connection, name: str) -> list[str]:
    """Up to three agent names close to a misspelled one (read only once the name is known to be missing)."""
    names = {agent.get("name") or "" for agent in client.list_all("/v1/agents/", include=LIGHT_AGENT)}
    return difflib.get_close_matches(name, sorted(names - {""}), n=3)
