"""Message commands: list an agent's messages, send one and stream the reply, compact older ones; each in one
conversation (`--conversation-id`) or in the agent's own (legacy) history."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from functools import partial
from typing import Any

import rich_click as click

from lettafleet.core import (
    Column,
    Connection,
    LettaAPIError,
    LettaError,
    PluginCommand,
    hookimpl,
    make_client,
    output_option,
    preview,
    print_table,
    reports_errors,
    server_options,
    short_date,
)
from lettafleet.plugins.backends.letta_v1 import v1_client
from lettafleet.plugins.commands import app_server_bulk_send as on_app_server_bulk
from lettafleet.plugins.commands import app_server_messages as on_app_server
from lettafleet.plugins.commands.agent_lookup import LIGHT_AGENT, find_agent
from lettafleet.plugins.commands.app_server_lookup import app_server_of, users_agents
from lettafleet.plugins.commands.bulk_send import (
    DEFAULT_CONCURRENCY,
    agents_matching,
    named_like,
    send_one,
    send_to_all,
)
from lettafleet.plugins.commands.histories import (
    COUNT_PAGE,
    SYSTEM,
    conversation_history,
    conversation_of,
    legacy_history,
    message_text,
    read_messages,
    short_type,
)
from lettafleet.plugins.commands.replies import ReplyPrinter, approval_note

CONVERSATION_OPTION_HELP = (
    "A conversation of AGENT (conv-..., on an App Server local-conv-...). Without it: the agent's own (legacy) "
    "history (on an App Server: its own conversation, `default`)."
)


@click.command("messages")
@click.argument("agent")
@click.option("--conversation-id", help=CONVERSATION_OPTION_HELP)
@click.option("--system", "with_system", is_flag=True, help="Also list system messages.")
@click.option(
    "-l",
    "--limit",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the most recent messages to list.",
)
@click.option("-a", "--all", "everything", is_flag=True, help="List the whole history (overrides --limit).")
@server_options
@output_option("table", "json")
@reports_errors
def get_messages(
    agent: str, conversation_id: str | None, with_system: bool, limit: int, everything: bool, base_url: str, output: str
) -> None:
    """List the messages of one conversation, or of the agent's own (legacy) history, oldest first.

    The two never mix: conversation messages are not in the legacy history, legacy ones not in any conversation.
    AGENT is the agent's name or id (agent-...).
    """
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            found, conversation = on_app_server.conversation_for(app, agent, conversation_id)
            messages = on_app_server.read_messages(
                app, found["id"], conversation, with_system=with_system, limit=None if everything else limit
            )
            show_messages(messages, output, on_app_server.where(found, conversation), with_system)
            return
        found = find_agent(client, agent, include=LIGHT_AGENT)
        if conversation_id:
            conversation_of(client, found, conversation_id)
            history = conversation_history(conversation_id)
        else:
            history = legacy_history(found["id"])
        wanted = (
            m
            for m in read_messages(
                client,
                history,
                newest_first=not everything,
                page=COUNT_PAGE if everything else min(max(2 * limit, 20), COUNT_PAGE),
            )
            if with_system or m.get("message_type") != SYSTEM
        )
        if everything:
            messages = list(wanted)
        else:
            messages = []
            for message in wanted:
                messages.append(message)
                if len(messages) == limit:
                    break
            messages.reverse()
    where = f"conversation {conversation_id}" if conversation_id else f"the legacy history of {found['name']}"
    show_messages(messages, output, where, with_system)


def show_messages(messages: list[dict[str, Any]], output: str, where: str, with_system: bool) -> None:
    """The messages as JSON, or a table (oldest first)."""
    if output == "json":
        click.echo(json.dumps(messages, indent=2))
        return
    if not messages:
        click.echo(f"No messages in {where}." + ("" if with_system else " (--system also lists system messages.)"))
        return
    print_table(
        [
            [short_date(m.get("date")), short_type(m), preview(on_app_server.shown_text(m, message_text(m)), 500)]
            for m in messages
        ],
        [Column("DATE"), Column("TYPE"), Column("CONTENT", width=100)],
    )


@click.command("send")
@click.argument("words", nargs=-1, required=True, metavar="[AGENT] MESSAGE")
@click.option(
    "--all",
    "pattern",
    metavar="GLOB",
    help="Send MESSAGE to every agent whose name matches GLOB (shell-style, e.g. 'support-*'; quote it). "
    "Then give MESSAGE only.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="With --all: how many agents are sent to at once (on an App Server: one, see docs/app-server.md).",
)
@click.option("--conversation-id", help=CONVERSATION_OPTION_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Also show reasoning, tool calls and token usage (on stderr).")
@click.option(
    "--approve-tools",
    is_flag=True,
    help="App Server only: let the agent run the tools it asks for (a shell, file edits) on the server's host. "
    "Without it every such request is refused, and each refusal is shown.",
)
@server_options
@output_option("text", "json")
@reports_errors
def send(
    words: tuple[str, ...],
    pattern: str | None,
    concurrency: int,
    conversation_id: str | None,
    verbose: bool,
    approve_tools: bool,
    base_url: str,
    output: str,
) -> None:
    """Send MESSAGE to an agent and stream its reply as it arrives.

    With --conversation-id the message goes to that conversation only; without, to the agent's own (legacy)
    history. -o json prints one JSON event per line (Letta's streaming messages). AGENT is a name or an id.

    With --all GLOB (and no AGENT), MESSAGE goes to the legacy history of every agent whose name matches, a few
    at a time; each reply is printed whole, then a summary. Exits 1 if any agent failed.

    On an App Server (ws://), an agent may ask to run tools on the server's host: each request is refused, and
    said so, unless --approve-tools is given.
    """
    if pattern is not None:
        if len(words) != 1 or conversation_id:
            raise click.UsageError("with --all GLOB, give MESSAGE only (no AGENT, no --conversation-id).")
        send_matching(pattern, words[0], concurrency, base_url, output, approve_tools=approve_tools)
        return
    if len(words) != 2:
        raise click.UsageError("give AGENT and MESSAGE (or --all GLOB MESSAGE).")
    agent, message = words
    printer = ReplyPrinter(as_json=output == "json", verbose=verbose)
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            found, conversation = on_app_server.conversation_for(app, agent, conversation_id)
            on_app_server.send(app, found, conversation, message, printer, approve_tools=approve_tools)
        else:
            send_over_rest(client, agent, message, conversation_id, printer)
    if printer.errors:
        for line in printer.errors:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)


def send_over_rest(
    client: Connection, agent: str, message: str, conversation_id: str | None, printer: ReplyPrinter
) -> None:
    """A V1 server: the message goes to the conversation, or to the agent's own history, and the reply streams."""
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": message}],
        "streaming": True,
        "stream_tokens": True,
    }
    found = find_agent(client, agent, include=LIGHT_AGENT)
    if conversation_id:
        conversation_of(client, found, conversation_id)
        path = f"/v1/conversations/{conversation_id}/messages"
    else:
        path = f"/v1/agents/{found['id']}/messages/stream"
    try:
        for event in v1_client(client, "a streamed reply").stream_events("POST", path, json=body):
            printer.show(event)
    finally:
        printer.finish()  # ends the reply's line before any error is printed


def send_matching(
    pattern: str, message: str, concurrency: int, base_url: str, output: str, *, approve_tools: bool
) -> None:
    with make_client(base_url) as connection:
        app = app_server_of(connection)
        if app is not None:
            agents = named_like(users_agents(app), pattern, connection.base_url)
            send = partial(on_app_server_bulk.send_one, app, message=message, approve_tools=approve_tools)
            concurrency = on_app_server_bulk.OWN_CONVERSATION_TURNS_AT_ONCE
        else:
            client = v1_client(connection, "sending to every matching agent")
            agents = agents_matching(client, pattern)
            send = partial(send_one, client, message=message)
        results = send_to_all(send, agents, concurrency, partial(show_progress, len(agents)))
    failed = [r for r in results if not r["ok"]]
    summary = {"pattern": pattern, "agents": len(results), "replied": len(results) - len(failed), "failed": len(failed)}
    if output == "json":
        click.echo(json.dumps({"summary": summary, "results": results}, indent=2))
    else:
        for result in results:
            for decision in result.get("tools") or ():
                click.echo(f"{result['agent']}: {approval_note(decision)}", err=True)
            if result["ok"]:
                click.echo(f"{result['agent']}: {result['reply']}")
            else:
                click.echo(f"error: {result['agent']}: {result['error']}", err=True)
        click.echo(
            f"Sent to {summary['agents']} agent{'s' if len(results) != 1 else ''} matching '{pattern}': "
            f"{summary['replied']} replied, {summary['failed']} failed."
        )
    if failed:
        sys.exit(1)


def show_progress(total: int, done: int, result: dict[str, Any]) -> None:
    """One line on stderr as each agent's reply is in, so a long run shows it moves."""
    click.echo(f"[{done}/{total}] {result['agent']}: {'replied' if result['ok'] else 'failed'}", err=True)


@click.command("compact-messages")
@click.argument("agent")
@click.option("--conversation-id", help=CONVERSATION_OPTION_HELP)
@click.option(
    "--model",
    metavar="HANDLE",
    help="Model handle that writes the summary, e.g. openai/gpt-4o-mini (default: the agent's own model).",
)
@click.option(
    "--mode",
    type=click.Choice(["sliding_window", "all"]),
    help="sliding_window summarizes the oldest messages; all summarizes everything (default: the agent's setting).",
)
@server_options
@output_option("text", "json")
@reports_errors
def compact_messages(
    agent: str, conversation_id: str | None, model: str | None, mode: str | None, base_url: str, output: str
) -> None:
    """Summarize older messages to free context window space, in one conversation or in the legacy history.

    AGENT is the agent's name or id (agent-...).
    """
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            found, conversation = on_app_server.conversation_for(app, agent, conversation_id)
            result, used = on_app_server.compact(app, found, conversation, model, mode)
            show_compaction(result, output, on_app_server.where(found, conversation), used)
            return
        found = find_agent(client, agent, include=LIGHT_AGENT)
        llm = found.get("llm_config") or {}
        # An agent configured by endpoint has no handle; Letta then falls back from the unknown handle to the
        # agent's own llm_config, which is still "the agent's model" (its default would be a provider's pick).
        settings: dict[str, Any] = {"model": model or llm.get("handle") or llm.get("model")}
        if mode:
            settings["mode"] = mode
        if conversation_id:
            conversation_of(client, found, conversation_id)
            path, where = f"/v1/conversations/{conversation_id}/compact", f"conversation {conversation_id}"
        else:
            path, where = f"/v1/agents/{found['id']}/summarize", f"the legacy history of {found['name']}"
        try:
            result = client.post(path, json={"compaction_settings": settings})
        except LettaAPIError as error:
            if error.status == 400 and "reduce" in error.detail:
                raise LettaError(
                    f"nothing to compact in {where}: {error.detail} Try --mode all, or send more messages first."
                ) from None
            raise
    show_compaction(result, output, where, settings["model"])


def show_compaction(result: dict[str, Any], output: str, where: str, model: str) -> None:
    """What a compaction did: the server's answer as JSON, or the counts and the summary's start."""
    if output == "json":
        click.echo(json.dumps(result, indent=2))
        return
    before, after = result.get("num_messages_before"), result.get("num_messages_after")
    if before == after:
        click.echo(f"Nothing to compact in {where}: {before} message(s) in context.")
        return
    click.echo(f"Compacted {where}: {before} -> {after} messages in context (model {model}).")
    if result.get("summary"):
        click.echo(f"Summary: {preview(result['summary'], 200)}")


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(get_messages, verb="get"), PluginCommand(send), PluginCommand(compact_messages)]
