"""Context commands: clear an agent's messages (`reset-messages`), rebuild its system prompt from the current
blocks (`recompile`), stop what it is running (`cancel-messages`); each for the agent's own (legacy) history or
one conversation, as lettactl spells them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import rich_click as click

from lettafleet.core import (
    Connection,
    ConversationRecompile,
    LettaAPIError,
    LettaError,
    PluginCommand,
    hookimpl,
    make_client,
    output_option,
    reports_errors,
    server_options,
)
from lettafleet.plugins.backends.letta_v1.conversations import recompile_conversation, recompile_conversations
from lettafleet.plugins.commands import app_server_contexts as app_server_contexts
from lettafleet.plugins.commands import app_server_reads as on_app_server
from lettafleet.plugins.commands.agent_lookup import LIGHT_AGENT, NotFoundError, find_agent
from lettafleet.plugins.commands.app_server_lookup import app_server_of, find_app_agent
from lettafleet.plugins.commands.histories import conversation_of
from lettafleet.plugins.commands.messages import CONVERSATION_OPTION_HELP


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


# ---------------------------------------------------------------------------------------------- reset-messages


@click.command("reset-messages")
@click.argument("agent")
@click.option("--conversation-id", help=CONVERSATION_OPTION_HELP)
@click.option(
    "--add-default",
    is_flag=True,
    help="Start the emptied history with Letta's default first messages (as at creation), as in lettactl.",
)
@server_options
@output_option("text", "json")
@reports_errors
def reset_messages(agent: str, conversation_id: str | None, add_default: bool, base_url: str, output: str) -> None:
    """Empty an agent's context window: of its own (legacy) history, or of one conversation. The next message
    starts afresh from the system prompt; memory blocks stay, and so do older messages in the history (Letta
    keeps them for conversation_search), out of context.

    AGENT is the agent's name or id (agent-...).
    """
    body = {"add_default_initial_messages": add_default}
    with make_client(base_url) as client:
        on_app_server.refuse_v1_only(client, "reset-messages")
        found = find_agent(client, agent, include=LIGHT_AGENT)
        if conversation_id:
            conversation_of(client, found, conversation_id)
            where = f"conversation {conversation_id}"
            try:
                client.patch(f"/v1/conversations/{conversation_id}/reset-messages", json=body)
            except LettaAPIError as error:
                # The conversation exists (checked above), so a 404 or 405 is the route itself missing.
                if error.status not in (404, 405):
                    raise
                raise LettaError(
                    f"the server at {client.base_url} cannot reset one conversation (PATCH "
                    f"/v1/conversations/{{id}}/reset-messages answered {error.status}; Letta 0.16.8 has no such "
                    "route, hosted Letta has). Nothing was changed. Start afresh in a new conversation with "
                    f"`lettafleet create conversation {found['name']}`."
                ) from None
        else:
            where = f"the legacy history of {found['name']}"
            client.patch(f"/v1/agents/{found['id']}/reset-messages", json=body)
    if output == "json":
        echo_json({"agent": found["name"], "agent_id": found["id"], "conversation_id": conversation_id, "reset": True})
        return
    click.echo(
        f"Reset {where}: the agent's context now holds only its system prompt"
        + (" and Letta's default first messages." if add_default else ".")
        + " Older messages stay in its history (`get messages`), out of context."
    )


# ---------------------------------------------------------------------------------------------- recompile


def as_json(result: ConversationRecompile) -> dict[str, Any]:
    """One history's recompile as `recompile -o json` prints it ("default" is the legacy history)."""
    return {
        "conversation_id": result.conversation_id,
        "ok": result.ok,
        "error": result.error or None,
        "skipped": result.skipped or None,
    }


@click.command("recompile")
@click.argument("agent")
@click.option("--conversation-id", help="Only this conversation of AGENT (conv-...).")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="The agent's own history and every conversation (also what no option does, as in lettactl).",
)
@server_options
@output_option("text", "json")
@reports_errors
def recompile(agent: str, conversation_id: str | None, everything: bool, base_url: str, output: str) -> None:
    """Rebuild the system prompt of an agent's histories from its current memory blocks and system prompt, so
    running conversations see edits made since they started.

    Without options (or with --all): the agent's own (legacy) history and every conversation. With
    --conversation-id: that conversation only. A conversation with isolated block copies is skipped (Letta
    0.16.8 would compile the agent's blocks in place of its copies). AGENT is the agent's name or id. On an App
    Server (ws://) the agent's own conversation (`default`) stands for the legacy history.
    """
    if conversation_id and everything:
        raise click.UsageError("--conversation-id and --all exclude each other: name one.")
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:  # its own conversation (`default`) stands for the legacy history
            found = find_app_agent(app, agent)
            results = app_server_contexts.recompile_histories(app, found, conversation_id)
        elif conversation_id:
            found = find_agent(client, agent, include=LIGHT_AGENT)
            conversation = conversation_of(client, found, conversation_id)
            results = [recompile_conversation(client, found["id"], conversation)]
        else:
            found = find_agent(client, agent, include=LIGHT_AGENT)
            results = recompile_conversations(client, found["id"], legacy=True)
    failed = [result for result in results if result.error]
    skipped = [result for result in results if result.skipped]
    if output == "json":
        echo_json({"agent": found["name"], "agent_id": found["id"], "results": [as_json(r) for r in results]})
    else:
        for result in failed:
            click.echo(f"error: {result.conversation_id}: {result.error}", err=True)
        for result in skipped:
            click.echo(f"note: {result.conversation_id} {result.skipped}.", err=True)
        histories = len(results) - 1 if not conversation_id else 1
        what = (
            f"conversation {conversation_id}"
            if conversation_id
            else (f"the legacy history and {histories} conversation{'s' if histories != 1 else ''}")
        )
        done = len(results) - len(failed) - len(skipped)
        click.echo(f"Recompiled {done}/{len(results)}: {what} of {found['name']}.")
    if failed:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- cancel-messages


def check_runs(client: Connection, agent: Mapping[str, Any], run_ids: list[str]) -> None:
    """Each run must be the agent's: Letta answers "failed" for a run id it does not know."""
    for run_id in run_ids:
        try:
            run = client.get(f"/v1/runs/{run_id}")
        except LettaAPIError as error:
            if error.status in (404, 422):
                raise NotFoundError(f"no run with id '{run_id}' on {client.base_url}. Nothing was cancelled.") from None
            raise
        if run.get("agent_id") != agent["id"]:
            raise LettaError(
                f"run {run_id} belongs to agent {run.get('agent_id')}, not to {agent['name']} ({agent['id']}). "
                "Nothing was cancelled."
            )


def cancel_v1_runs(client: Connection, agent: str, wanted: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The agent, and its runs cancelled on a V1 server (each checked first to be the agent's): {run id: status}."""
    found = find_agent(client, agent, include=LIGHT_AGENT)
    check_runs(client, found, wanted)
    body = {"run_ids": wanted} if wanted else {}
    try:
        cancelled: dict[str, str] = client.post(f"/v1/agents/{found['id']}/messages/cancel", json=body)
    except LettaAPIError as error:
        if error.status != 409:  # 409: nothing running
            raise
        cancelled = {}
    return found, cancelled


@click.command("cancel-messages")
@click.argument("agent")
@click.option(
    "--run-ids",
    metavar="ID,ID",
    help="Only these runs (comma-separated run-... ids, each checked to be AGENT's). Default: every active run.",
)
@server_options
@output_option("text", "json")
@reports_errors
def cancel_messages(agent: str, run_ids: str | None, base_url: str, output: str) -> None:
    """Cancel the messages an agent is processing (its active runs), or only the runs named.

    Nothing running is no error: the command says so and exits 0. AGENT is the agent's name or id. On an App
    Server (ws://) the turn running in each of the agent's conversations stops; the server names no run, so the
    result is per conversation, and a run id it does not know cancels nothing (it cannot be checked first).
    """
    wanted = [run_id.strip() for run_id in (run_ids or "").split(",") if run_id.strip()]
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            found = find_app_agent(app, agent)
            cancelled = app_server_contexts.cancel_turns(app, found, wanted)
        else:
            found, cancelled = cancel_v1_runs(client, agent, wanted)
    if output == "json":
        echo_json({"agent": found["name"], "agent_id": found["id"], "runs": cancelled})
        return
    if not cancelled:
        click.echo(f"Nothing to cancel: agent {found['name']} has no active run.")
        return
    for run_id, status in cancelled.items():
        click.echo(f"{run_id}: {status}")


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(reset_messages), PluginCommand(recompile), PluginCommand(cancel_messages)]
