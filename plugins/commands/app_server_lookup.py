"""What commands need to act on an App Server: its protocol client behind the command's connection, and the agent
and conversation the user named, found over the protocol (the V1 lookups speak REST)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import rich_click as click

from lettafleet.core import Connection, LettaError
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError
from lettafleet.plugins.backends.app_server.fleet_connection import AppServerConnection
from lettafleet.plugins.backends.app_server.locks import LOCK_TAG
from lettafleet.plugins.commands.agent_lookup import NotFoundError
from lettafleet.plugins.resources.agents import described, meant_first

# The conversation the App Server keeps for an agent itself: what V1 calls the agent's own (legacy) history.
AGENT_OWN_CONVERSATION = "default"


def app_server_of(connection: Connection) -> AppServerClient | None:
    """The protocol client when the command talks to an App Server, else None (a V1 server)."""
    return connection.app if isinstance(connection, AppServerConnection) else None


def users_agents(app: AppServerClient) -> list[dict[str, Any]]:
    """Every agent on the server but the apply lock's own (docs/locking.md): what listings, counts and globs see."""
    return [agent for agent in app.list_agents() if LOCK_TAG not in (agent.get("tags") or ())]


def find_app_agent(app: AppServerClient, name_or_id: str) -> dict[str, Any]:
    """The agent called `name_or_id` (a name, or an id `agent-...`); of several with one name, the one a plan
    would mean (lettafleet's own, then the oldest), with a note."""
    if name_or_id.startswith("agent-"):
        try:
            return app.retrieve_agent(name_or_id)
        except AppServerError:
            pass  # a name may start with "agent-" too
    agents = users_agents(app)
    matches = meant_first([agent for agent in agents if agent.get("name") == name_or_id])
    if not matches:
        names = sorted({str(agent.get("name") or "") for agent in agents} - {""})
        close = difflib.get_close_matches(name_or_id, names, n=3)
        maybe = f" Did you mean {', '.join(close)}?" if close else ""
        raise NotFoundError(
            f"no agent named or with id '{name_or_id}' on {app.base_url}.{maybe} List the agents with "
            "`lettafleet get agents`."
        )
    if len(matches) > 1:
        ids = ", ".join(described(agent) for agent in matches)
        click.echo(
            f"note: {len(matches)} agents are named '{name_or_id}'; using {matches[0]['id']}. Name another by its "
            f"id ({ids}).",
            err=True,
        )
    return matches[0]


def find_app_conversation(app: AppServerClient, conversation_id: str) -> dict[str, Any]:
    """The conversation of that id; one the server does not have is a NotFoundError saying how to list them."""
    try:
        return app.retrieve_conversation(conversation_id)
    except AppServerError as error:
        raise NotFoundError(
            f"no conversation with id '{conversation_id}' on {app.base_url} ({error.detail}). List an agent's "
            "conversations with `lettafleet get conversations AGENT`."
        ) from None


def app_conversation_of(app: AppServerClient, agent: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
    """The conversation, checked to belong to `agent` (the server would act on another agent's history)."""
    conversation = find_app_conversation(app, conversation_id)
    if conversation.get("agent_id") != agent["id"]:
        raise LettaError(
            f"conversation {conversation_id} belongs to agent {conversation.get('agent_id')}, not to "
            f"{agent.get('name')} ({agent['id']}). Name the agent it belongs to."
        )
    return conversation
