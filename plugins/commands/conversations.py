"""Conversation and message commands: create, list, describe and delete conversations; send, list and compact
messages, either in one conversation (`--conversation-id`) or in the agent's own (legacy) history."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import rich_click as click

from lettafleet.core import (
    LettaAPIError,
    LettaClient,
    LettaError,
    PluginCommand,
    hookimpl,
    make_client,
    reports_errors,
    server_options,
)
from lettafleet.plugins.commands.agent_lookup import LIGHT_AGENT, NotFoundError, find_agent
from lettafleet.plugins.commands.output import (
    Column,
    output_option,
    preview,
    print_fields,
    print_records,
    print_table,
    short_date,
    to_yaml,
)

COUNT_PAGE = 1000
COUNT_WORKERS = 8
SYSTEM = "system_message"
CONVERSATION_OPTION_HELP = "A conversation of AGENT (conv-...). Without it: the agent's own (legacy) history."


# ---------------------------------------------------------------------------------------------- reading


def get_conversation(client: LettaClient, conversation_id: str) -> dict[str, Any]:
    try:
        return client.get(f"/v1/conversations/{conversation_id}")
    except LettaAPIError as error:
        # 422: not shaped like a conversation id; 404: no such conversation.
        if error.status in (404, 422):
            raise NotFoundError(
                f"no conversation with id '{conversation_id}' on {client.base_url}. List an "
                "agent's conversations with `lettafleet get conversations AGENT`."
            ) from None
        raise


def conversation_of(client: LettaClient, agent: Mapping[str, Any], conversation_id: str) -> dict[str, Any]:
    """The conversation, checked to belong to `agent`: Letta would otherwise act on another agent's history."""
    conversation = get_conversation(client, conversation_id)
    if conversation.get("agent_id") != agent["id"]:
        raise LettaError(
            f"conversation {conversation_id} belongs to agent {conversation.get('agent_id')}, not to "
            f"{agent.get('name')} ({agent['id']}). Name the agent it belongs to."
        )
    return conversation


@dataclass(frozen=True)
class History:
    """Where one message history is read: an agent's own (legacy) history, or one conversation."""

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # Letta 0.16.8's agent message list returns a newest-first (`order=desc`) page in oldest-first order (it
    # reverses it twice); the conversation message list returns it newest first, as asked.
    desc_page_reversed: bool = False


def legacy_history(agent_id: str) -> History:
    # Without conversation_id Letta returns every message of the agent, conversations included; "default" is the
    # agent's own history only.
    return History(f"/v1/agents/{agent_id}/messages", {"conversation_id": "default"}, desc_page_reversed=True)


def conversation_history(conversation_id: str) -> History:
    return History(f"/v1/conversations/{conversation_id}/messages")


def read_messages(client: LettaClient, history: History, *, newest_first: bool, page: int) -> Iterator[dict]:
    """Messages page by page, oldest first or newest first, following Letta's message-id cursors."""
    cursor = None
    while True:
        if newest_first:
            batch = client.get(history.path, **history.params, order="desc", limit=page, before=cursor)
            batch = batch[::-1] if history.desc_page_reversed else batch
        else:
            batch = client.get(history.path, **history.params, order="asc", limit=page, after=cursor)
        yield from batch
        if len(batch) < page:
            return
        cursor = batch[-1]["id"]


def count_messages(client: LettaClient, conversation: Mapping[str, Any]) -> int:
    """Messages in a conversation's history, system messages aside (what `get messages` lists by default).

    `in_context_message_ids` is no count: compaction shrinks it while the history keeps every message. A
    conversation that was never sent a message holds only its system message, so it costs no request.
    """
    if not conversation.get("last_message_at") and len(conversation.get("in_context_message_ids") or []) <= 1:
        return 0
    history = conversation_history(conversation["id"])
    messages = read_messages(client, history, newest_first=False, page=COUNT_PAGE)
    return sum(1 for message in messages if message.get("message_type") != SYSTEM)


def count_all(client: LettaClient, conversations: list[dict[str, Any]]) -> list[int]:
    # One request per conversation that has messages (Letta has no message count); they run side by side.
    with ThreadPoolExecutor(max_workers=COUNT_WORKERS) as pool:
        return list(pool.map(lambda conversation: count_messages(client, conversation), conversations))


def message_text(message: Mapping[str, Any]) -> str:
    """The readable part of any Letta message type."""
    kind = message.get("message_type")
    if kind == "reasoning_message":
        return message.get("reasoning") or ""
    if kind == "hidden_reasoning_message":
        return "(hidden reasoning)"
    if kind in ("tool_call_message", "approval_request_message"):
        return "; ".join(f"{call.get('name')}({call.get('arguments') or ''})" for call in tool_calls(message))
    if kind == "tool_return_message":
        return str(message.get("tool_return") or "")
    if kind == "summary_message":
        return message.get("summary") or ""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else json.dumps(content) if content is not None else ""


def tool_calls(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A tool-call message's calls: `tool_calls` is a list, or one delta while streaming; `tool_call` is older."""
    calls = message.get("tool_calls") or message.get("tool_call") or []
    return [calls] if isinstance(calls, dict) else list(calls)


def short_type(message: Mapping[str, Any]) -> str:
    return str(message.get("message_type") or "?").removesuffix("_message")


# ---------------------------------------------------------------------------------------------- conversations


def conversation_record(conversation: Mapping[str, Any], message_count: int) -> dict[str, Any]:
    return {
        "id": conversation["id"],
        "agent_id": conversation.get("agent_id"),
        "summary": conversation.get("summary"),
        "message_count": message_count,
        "isolated_block_ids": list(conversation.get("isolated_block_ids") or []),
        "created_at": conversation.get("created_at"),
        "updated_at": conversation.get("updated_at"),
        "last_message_at": conversation.get("last_message_at"),
    }


CONVERSATION_COLUMNS = (
    Column("ID", lambda c: c["id"]),
    Column("SUMMARY", lambda c: c["summary"], width=40),
    Column("MESSAGES", lambda c: c["message_count"]),
    Column("CREATED", lambda c: short_date(c["created_at"])),
)


@click.command("conversations")
@click.argument("agent")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_conversations(agent: str, base_url: str, output: str) -> None:
    """List an agent's conversations: id, summary, number of messages, creation date.

    AGENT is the agent's name or id (agent-...).
    """
    with make_client(base_url) as client:
        found = find_agent(client, agent, include=LIGHT_AGENT)
        conversations = client.list_all("/v1/conversations/", agent_id=found["id"], order="asc")
        counts = count_all(client, conversations)
    records = [conversation_record(c, n) for c, n in zip(conversations, counts, strict=True)]
    print_records(
        records,
        CONVERSATION_COLUMNS,
        output,
        empty=f"No conversations for agent {found['name']}. Create one with "
        f"`lettafleet create conversation {found['name']}`.",
    )


@click.command("conversation")
@click.argument("conversation_id", metavar="ID")
@server_options
@output_option("text", "json", "yaml")
@reports_errors
def describe_conversation(conversation_id: str, base_url: str, output: str) -> None:
    """Show one conversation: its agent, summary, number of messages, dates and isolated blocks."""
    with make_client(base_url) as client:
        conversation = get_conversation(client, conversation_id)
        agent = find_agent(client, conversation["agent_id"], include=LIGHT_AGENT)
        count = count_messages(client, conversation)
        blocks = [client.get(f"/v1/blocks/{block_id}") for block_id in conversation.get("isolated_block_ids") or []]
    record = {
        **conversation_record(conversation, count),
        "agent_name": agent.get("name"),
        "model": conversation.get("model"),
        "isolated_blocks": [{"label": b.get("label"), "id": b["id"], "value": b.get("value") or ""} for b in blocks],
    }
    if output != "text":
        click.echo(json.dumps(record, indent=2) if output == "json" else to_yaml(record), nl=output == "json")
        return
    print_fields(
        [
            ("ID", record["id"]),
            ("Agent", f"{record['agent_name']} ({record['agent_id']})"),
            ("Summary", record["summary"]),
            ("Messages", record["message_count"]),
            ("Model", record["model"] or "the agent's"),
            ("Created", short_date(record["created_at"])),
            ("Updated", short_date(record["updated_at"])),
            ("Last message", short_date(record["last_message_at"])),
        ]
    )
    click.echo("")
    click.echo("Isolated blocks:")
    if not blocks:
        click.echo("  (none: every block is the agent's, shared with its other conversations)")
        return
    print_table(
        [[b["label"] or "-", b["id"], preview(b["value"])] for b in record["isolated_blocks"]],
        [Column("LABEL"), Column("ID"), Column("VALUE", width=60)],
    )


@click.command("conversation")
@click.argument("agent")
@click.option(
    "--summary", "-d", help="The conversation's summary; fleet files match conversations by it. (-d as in lettactl.)"
)
@click.option(
    "--isolated-block",
    "isolated",
    multiple=True,
    metavar="LABEL",
    help="Give the conversation its own copy of the agent's block with this label (repeatable).",
)
@server_options
@output_option("text", "json")
@reports_errors
def create_conversation(agent: str, summary: str | None, isolated: tuple[str, ...], base_url: str, output: str) -> None:
    """Create a conversation for an agent: a message history of its own, sharing the agent's memory and tools.

    AGENT is the agent's name or id (agent-...).
    """
    labels = list(dict.fromkeys(isolated))
    with make_client(base_url) as client:
        found = find_agent(client, agent, include=["agent.blocks"] if labels else LIGHT_AGENT)
        _check_labels(found, labels)
        conversation = _create(client, found, summary, labels)
    if output == "json":
        click.echo(json.dumps(conversation, indent=2))
        return
    click.echo(f"Conversation created for agent {found['name']}")
    click.echo(f"Conversation ID: {conversation['id']}")
    for label, block_id in zip(labels, conversation.get("isolated_block_ids") or [], strict=False):
        click.echo(f"Isolated block: {label} ({block_id})")


def _check_labels(agent: Mapping[str, Any], labels: list[str]) -> None:
    # Letta answers 400 to an unknown label but creates the conversation anyway: check before asking.
    known = sorted(block.get("label") for block in agent.get("blocks") or [])
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise LettaError(
            f"agent {agent['name']} has no block labelled {', '.join(map(repr, unknown))}; its blocks "
            f"are: {', '.join(known) or 'none'}. Nothing was created."
        )


def _create(client: LettaClient, agent: Mapping[str, Any], summary: str | None, labels: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if summary is not None:
        body["summary"] = summary
    if labels:
        body["isolated_block_labels"] = labels
    before = {c["id"] for c in client.list_all("/v1/conversations/", agent_id=agent["id"])} if labels else set()
    try:
        conversation = client.post("/v1/conversations/", json=body, agent_id=agent["id"])
    except LettaAPIError as error:
        if error.status != 400 or not labels:
            raise
        # The labels were checked, yet Letta refused one (a block detached meanwhile?). It keeps a conversation
        # without the copies all the same: remove it, so that nothing half-made is left behind.
        for leftover in client.list_all("/v1/conversations/", agent_id=agent["id"]):
            if leftover["id"] not in before and leftover.get("summary") == summary:
                client.delete(f"/v1/conversations/{leftover['id']}")
        raise LettaError(f"Letta refused the isolated blocks: {error.detail}. Nothing was created.") from None
    if len(conversation.get("isolated_block_ids") or []) < len(labels):
        client.delete(f"/v1/conversations/{conversation['id']}")
        raise LettaError(
            f"the server at {client.base_url} ignored isolated_block_labels (Letta 0.16.4 to 0.16.x "
            "support them), so the conversation would share every block with the others. It was "
            "deleted; nothing was created."
        )
    return conversation


@click.command("conversation")
@click.argument("conversation_id", metavar="ID")
@click.option("--force", is_flag=True, help="Really delete. Without it, only show what would be deleted.")
@server_options
@reports_errors
def delete_conversation(conversation_id: str, force: bool, base_url: str) -> None:
    """Delete one conversation, its messages and its isolated block copies. The agent and its blocks stay.

    Plans delete a conversation only to replace one that lacks an isolated copy and has no messages; this command
    is the way to delete any other. Without --force, shows what would go and exits 1.
    """
    with make_client(base_url) as client:
        conversation = get_conversation(client, conversation_id)
        agent = find_agent(client, conversation["agent_id"], include=LIGHT_AGENT)
        copies = len(conversation.get("isolated_block_ids") or [])
        title = (
            f"conversation {conversation_id}"
            + (f" ('{conversation['summary']}')" if conversation.get("summary") else "")
            + f" of agent {agent.get('name')}"
        )
        what = f"{title}, its messages and {copies} isolated block cop{'y' if copies == 1 else 'ies'}"
        if not force:
            click.echo(f"Would delete {what}.")
            click.echo("Nothing was deleted. Run again with --force to delete.", err=True)
            sys.exit(1)
        client.delete(f"/v1/conversations/{conversation_id}")
    click.echo(f"Deleted {what}.")


# ---------------------------------------------------------------------------------------------- messages


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
    if output == "json":
        click.echo(json.dumps(messages, indent=2))
        return
    where = f"conversation {conversation_id}" if conversation_id else f"the legacy history of {found['name']}"
    if not messages:
        click.echo(f"No messages in {where}." + ("" if with_system else " (--system also lists system messages.)"))
        return
    print_table(
        [[short_date(m.get("date")), short_type(m), preview(message_text(m), 500)] for m in messages],
        [Column("DATE"), Column("TYPE"), Column("CONTENT", width=100)],
    )


@click.command("send")
@click.argument("agent")
@click.argument("message")
@click.option("--conversation-id", help=CONVERSATION_OPTION_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Also show reasoning, tool calls and token usage (on stderr).")
@server_options
@output_option("text", "json")
@reports_errors
def send(agent: str, message: str, conversation_id: str | None, verbose: bool, base_url: str, output: str) -> None:
    """Send MESSAGE to an agent and stream its reply as it arrives.

    With --conversation-id the message goes to that conversation only; without, to the agent's own (legacy)
    history. -o json prints one JSON event per line (Letta's streaming messages). AGENT is a name or an id.
    """
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": message}],
        "streaming": True,
        "stream_tokens": True,
    }
    with make_client(base_url) as client:
        found = find_agent(client, agent, include=LIGHT_AGENT)
        if conversation_id:
            conversation_of(client, found, conversation_id)
            path = f"/v1/conversations/{conversation_id}/messages"
        else:
            path = f"/v1/agents/{found['id']}/messages/stream"
        printer = ReplyPrinter(as_json=output == "json", verbose=verbose)
        try:
            with client.stream("POST", path, json=body) as response:
                for event in server_sent_events(response):
                    printer.show(event)
        except httpx.HTTPError as error:  # the stream broke after it started
            printer.finish()
            raise LettaError(
                f"the reply stream from {client.base_url} broke off: {client.mask(str(error))}. Part of the reply "
                "may have been saved: check with `lettafleet get messages`."
            ) from None
    printer.finish()
    if printer.errors:
        for line in printer.errors:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)


def server_sent_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON events of a server-sent-events stream, up to `[DONE]`."""
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
            continue
        if line or not data:
            continue  # `event:` and comment lines carry nothing the JSON does not
        payload, data = "\n".join(data), []
        if payload == "[DONE]":
            return
        yield json.loads(payload)
    if data and data != ["[DONE]"]:
        yield json.loads("\n".join(data))


@dataclass
class ReplyStep:
    """One non-text step of a reply (reasoning, a tool call, its result), gathered from its streamed pieces."""

    key: tuple[str, str]  # (message id, message type)
    tool: str = ""
    text: str = ""

    def line(self) -> str:
        kind = self.key[1].removesuffix("_message")
        return f"[{kind}] {self.tool}({self.text})" if self.tool else f"[{kind}] {self.text.strip()}"


class ReplyPrinter:
    """Shows a streamed reply: the assistant's text as it arrives (stdout); with verbose, the rest on stderr."""

    def __init__(self, *, as_json: bool, verbose: bool) -> None:
        self.as_json, self.verbose = as_json, verbose
        self.errors: list[str] = []
        self._open_line = False
        self._step: ReplyStep | None = None

    def show(self, event: Mapping[str, Any]) -> None:
        kind = event.get("message_type")
        if kind == "ping":
            return  # keep-alives, not part of the reply
        if kind == "error_message":
            detail = f" ({event['detail']})" if event.get("detail") else ""
            self.errors.append(
                f"{event.get('error_type', 'error')}: {event.get('message')}{detail}. Check the "
                "agent's model settings (`lettafleet describe agent`)."
            )
        if self.as_json:
            click.echo(json.dumps(event))
            return
        if kind == "assistant_message":
            self._flush_step()
            click.echo(message_text(event), nl=False)
            sys.stdout.flush()
            self._open_line = True
        elif kind == "stop_reason" and event.get("stop_reason") not in ("end_turn", None):
            self._flush_step()
            self._end_line()
            click.echo(f"note: the agent stopped: {event['stop_reason']}", err=True)
        elif kind == "usage_statistics" and self.verbose:
            self._flush_step()
            self._end_line()
            click.echo(f"[usage] {event.get('total_tokens')} tokens in {event.get('step_count')} step(s)", err=True)
        elif self.verbose and kind in ("reasoning_message", "tool_call_message", "tool_return_message"):
            self._add_to_step(event)

    def finish(self) -> None:
        self._flush_step()
        self._end_line()

    def _add_to_step(self, event: Mapping[str, Any]) -> None:
        # Token streaming splits a step into many events with one message id: the tool name comes once, the
        # arguments (or the reasoning) in pieces.
        key = (str(event.get("id")), str(event.get("message_type")))
        if self._step is None or self._step.key != key:
            self._flush_step()
            self._step = ReplyStep(key)
        if key[1] == "tool_call_message":
            for call in tool_calls(event)[:1]:
                self._step.tool = self._step.tool or call.get("name") or ""
                self._step.text += call.get("arguments") or ""
        else:
            self._step.text += message_text(event)

    def _flush_step(self) -> None:
        if self._step is not None:
            self._end_line()
            click.echo(self._step.line(), err=True)
        self._step = None

    def _end_line(self) -> None:
        if self._open_line:
            click.echo("")
            self._open_line = False


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
    if output == "json":
        click.echo(json.dumps(result, indent=2))
        return
    before, after = result.get("num_messages_before"), result.get("num_messages_after")
    if before == after:
        click.echo(f"Nothing to compact in {where}: {before} message(s) in context.")
        return
    click.echo(f"Compacted {where}: {before} -> {after} messages in context (model {settings['model']}).")
    if result.get("summary"):
        click.echo(f"Summary: {preview(result['summary'], 200)}")


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [
        PluginCommand(get_conversations, verb="get"),
        PluginCommand(get_messages, verb="get"),
        PluginCommand(describe_conversation, verb="describe"),
        PluginCommand(create_conversation, verb="create"),
        PluginCommand(delete_conversation, verb="delete"),
        PluginCommand(send),
        PluginCommand(compact_messages),
    ]
