"""Conversation commands: create, list, describe and delete an agent's conversations."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
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
    print_fields,
    print_records,
    print_table,
    reports_errors,
    server_options,
    short_date,
    to_yaml,
)
from lettafleet.plugins.backends.letta_v1.conversations import (
    ISOLATED_LABELS,
    lacks_isolated_copies,
    remove_half_created,
)
from lettafleet.plugins.commands.agent_lookup import LIGHT_AGENT, find_agent
from lettafleet.plugins.commands.app_server_conversations import (
    NO_ISOLATED_BLOCKS,
    agent_conversations,
    conversation_with_agent,
    count_messages_of,
    create_on_app_server,
    refuse_delete,
)
from lettafleet.plugins.commands.app_server_lookup import app_server_of
from lettafleet.plugins.commands.histories import count_all, count_messages, get_conversation


def conversation_record(conversation: Mapping[str, Any], message_count: int) -> dict[str, Any]:
    return {
        "id": conversation["id"],
        "agent_id": conversation.get("agent_id"),
        "summary": conversation.get("summary"),
        "message_count": message_count,
        "isolated_block_ids": list(conversation.get("isolated_block_ids") or []),
        "archived": bool(conversation.get("archived")),  # hosted Letta's; 0.16.8 has no archived conversations
        "created_at": conversation.get("created_at"),
        "updated_at": conversation.get("updated_at"),
        "last_message_at": conversation.get("last_message_at"),
    }


CONVERSATION_COLUMNS = (
    Column("ID", lambda c: c["id"]),
    Column("SUMMARY", lambda c: c["summary"], width=40),
    Column("MESSAGES", lambda c: c["message_count"]),
    Column("CREATED", lambda c: short_date(c["created_at"])),
    Column("ARCHIVED", lambda c: "yes" if c["archived"] else "no"),
)


@click.command("conversations")
@click.argument("agent")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_conversations(agent: str, base_url: str, output: str) -> None:
    """List an agent's conversations: id, summary, number of messages, creation date, and whether it is archived
    (hosted Letta; archived ones are listed too).

    AGENT is the agent's name or id (agent-...).
    """
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            found, counted = agent_conversations(app, agent)
        else:
            found = find_agent(client, agent, include=LIGHT_AGENT)
            # Archived ones too (hosted Letta hides them unless asked; 0.16.8 has none and ignores the parameter).
            listed = client.list_all("/v1/conversations/", agent_id=found["id"], order="asc", archive_status="all")
            counted = list(zip(listed, count_all(client, listed), strict=True))
    records = [conversation_record(c, n) for c, n in counted]
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
    no_blocks = "(none: every block is the agent's, shared with its other conversations)"
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            conversation, agent = conversation_with_agent(app, conversation_id)
            blocks: list[dict[str, Any]] = []
            count, no_blocks = count_messages_of(app, conversation_id), f"(none: {NO_ISOLATED_BLOCKS})"
        else:
            conversation, agent, count, blocks = _described(client, conversation_id)
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
            ("Archived", "yes" if record["archived"] else "no"),
        ]
    )
    click.echo("")
    click.echo("Isolated blocks:")
    if not blocks:
        click.echo(f"  {no_blocks}")
        return
    print_table(
        [[b["label"] or "-", b["id"], preview(b["value"])] for b in record["isolated_blocks"]],
        [Column("LABEL"), Column("ID"), Column("VALUE", width=60)],
    )


def _described(
    client: Connection, conversation_id: str
) -> tuple[dict[str, Any], dict[str, Any], int, list[dict[str, Any]]]:
    """A V1 conversation, its agent, its message count and its isolated blocks."""
    conversation = get_conversation(client, conversation_id)
    agent = find_agent(client, conversation["agent_id"], include=LIGHT_AGENT)
    blocks = [client.get(f"/v1/blocks/{block_id}") for block_id in conversation.get("isolated_block_ids") or []]
    return conversation, agent, count_messages(client, conversation), blocks


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
        app = app_server_of(client)
        if app is not None:
            found, conversation = create_on_app_server(app, agent, summary, labels)
        else:
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


def _create(client: Connection, agent: Mapping[str, Any], summary: str | None, labels: list[str]) -> dict[str, Any]:
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
        # The labels were checked, yet Letta refused one (a block detached meanwhile?): leave nothing half-made.
        remove_half_created(client, agent["id"], summary, keep=before)
        raise LettaError(f"Letta refused the isolated blocks: {error.detail}. Nothing was created.") from None
    if lacks_isolated_copies(conversation, labels):
        client.delete(f"/v1/conversations/{conversation['id']}")
        raise LettaError(
            f"the server at {client.base_url} ignored {ISOLATED_LABELS}, so the conversation would share every "
            "block with the others. It was deleted; nothing was created."
        )
    return conversation


@click.command("conversation")
@click.argument("conversation_id", metavar="ID")
@click.option("--force", is_flag=True, help="Really delete. Without it, only show what would be deleted.")
@server_options
@reports_errors
def delete_conversation(conversation_id: str, force: bool, base_url: str) -> None:
    """Delete one conversation, its messages and its isolated block copies. The agent and its blocks stay.

    Plans delete only the conversations an apply made from the fleet file (removed from it, or replaced); this
    command is the way to delete any other. Without --force, shows what would go and exits 1.
    """
    with make_client(base_url) as client:
        if app_server_of(client) is not None:
            raise refuse_delete(conversation_id, client.base_url)
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


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [
        PluginCommand(get_conversations, verb="get"),
        PluginCommand(describe_conversation, verb="describe"),
        PluginCommand(create_conversation, verb="create"),
        PluginCommand(delete_conversation, verb="delete"),
    ]
