"""`send --all GLOB`: one message to every agent whose name matches, a few at a time, each reply gathered whole
(over V1 REST here; an App Server's turns are in app_server_bulk_send)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

from lettafleet.core import LettaError
from lettafleet.plugins.commands.agent_lookup import LIGHT_AGENT, NotFoundError
from lettafleet.plugins.commands.histories import message_text
from lettafleet.plugins.commands.replies import stream_error

if TYPE_CHECKING:
    from lettafleet.plugins.backends.letta_v1 import LettaClient

DEFAULT_CONCURRENCY = 4  # agents answered at once: each holds an LLM call on the server


def agents_matching(client: LettaClient, pattern: str) -> list[dict[str, Any]]:
    """Every agent whose name matches the shell-style `pattern` (`support-*`, `bot-?`), oldest first."""
    return named_like(client.list_all("/v1/agents/", include=LIGHT_AGENT, order="asc"), pattern, client.base_url)


def named_like(agents: list[dict[str, Any]], pattern: str, base_url: str) -> list[dict[str, Any]]:
    """The agents of one listing whose name matches `pattern`; none is an error that says how many there are."""
    matching = [agent for agent in agents if fnmatch.fnmatchcase(agent.get("name") or "", pattern)]
    if not matching:
        raise NotFoundError(
            f"no agent name on {base_url} matches '{pattern}' ({len(agents)} agents there). "
            "List them with `lettafleet get agents`; quote the pattern so the shell leaves it alone."
        )
    return matching


def send_one(client: LettaClient, agent: Mapping[str, Any], message: str) -> dict[str, Any]:
    """Send `message` to the agent's own history; its reply or what went wrong, never an exception."""
    body = {"messages": [{"role": "user", "content": message}], "streaming": True}
    replies: list[str] = []
    errors: list[str] = []
    try:
        for event in client.stream_events("POST", f"/v1/agents/{agent['id']}/messages/stream", json=body):
            if event.get("message_type") == "assistant_message":
                replies.append(message_text(event))
            elif event.get("message_type") == "error_message":
                errors.append(stream_error(event))
    except LettaError as error:
        errors.append(str(error))
    return {
        "agent": agent.get("name"),
        "agent_id": agent["id"],
        "ok": not errors,
        "reply": "\n".join(replies),
        "error": "; ".join(errors) or None,
    }


def send_to_all(
    send: Callable[[dict[str, Any]], dict[str, Any]],
    agents: list[dict[str, Any]],
    concurrency: int,
    progress: Callable[[int, dict[str, Any]], None] = lambda done, result: None,
) -> list[dict[str, Any]]:
    """`send` to every agent, at most `concurrency` at once; `progress` hears of each result as it comes (with how
    many are done), and the results come back in the agents' order."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(send, agent) for agent in agents]
        for done, future in enumerate(as_completed(futures), start=1):
            progress(done, future.result())
    return [future.result() for future in futures]
