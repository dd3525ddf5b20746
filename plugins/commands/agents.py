"""Agent commands: `get agents`, `describe agent`, `delete agent`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import rich_click as click

from lettafleet.core import (
    PREVIEW_WIDTH,
    Column,
    LettaAPIError,
    LettaError,
    PluginCommand,
    hookimpl,
    is_managed,
    make_client,
    output_option,
    preview,
    print_fields,
    print_records,
    print_table,
    public_url,
    reports_errors,
    server_options,
    short_date,
    to_yaml,
)
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.letta_v1.reads import AGENT_RELATIONS
from lettafleet.plugins.commands import app_server_reads as on_app_server
from lettafleet.plugins.commands.agent_lookup import find_agent
from lettafleet.plugins.commands.app_server_lookup import app_server_of, find_app_agent, users_agents
from lettafleet.plugins.resources.agent_removal import AgentRemoval, plan_agent_removal, remove_agent
from lettafleet.plugins.resources.canary import DEFAULT_PREFIX, copy_of

# ---------------------------------------------------------------------------------------------- agent records


def model_of(agent: Mapping[str, Any]) -> str:
    llm = agent.get("llm_config") or {}
    return llm.get("handle") or llm.get("model") or agent.get("model") or "-"


def embedding_of(agent: Mapping[str, Any]) -> str:
    embedding = agent.get("embedding_config") or {}
    return embedding.get("handle") or embedding.get("embedding_model") or "-"


def agent_summary(agent: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `get agents` shows, for every output format."""
    return {
        "id": agent["id"],
        "name": agent.get("name"),
        "description": agent.get("description"),
        "model": model_of(agent),
        "tags": sorted(agent.get("tags") or []),
        "blocks": [block.get("label") for block in agent.get("blocks") or []],
        "managed_by_lettafleet": is_managed(agent),
        "canary_of": copy_of(agent),  # the agent this is a canary copy of (`apply --canary`), or None
        "created_at": agent.get("created_at"),
    }


AGENT_COLUMNS = (
    Column("NAME", lambda a: a["name"]),
    Column("ID", lambda a: a["id"]),
    Column("MODEL", lambda a: a["model"]),
    Column("BLOCKS", lambda a: len(a["blocks"])),
    Column("TAGS", lambda a: a["tags"], width=30),
    Column("CREATED", lambda a: short_date(a["created_at"])),
)


@click.command("agents")
@click.option("--canary", is_flag=True, help="Only the canary copies `apply --canary` made (docs/canary.md).")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_agents(canary: bool, base_url: str, output: str) -> None:
    """List every agent on the server: name, id, model, number of blocks, tags, creation date."""
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:  # the canary copies chosen first: each agent's memory is one more request
            agents = [agent for agent in users_agents(app) if copy_of(agent) or not canary]
            agents = on_app_server.agents_with_memory(app, agents)
        else:
            agents = client.list_all("/v1/agents/", include=AGENT_RELATIONS, order="asc")
    if canary:
        agents = [agent for agent in agents if copy_of(agent)]
    none = "No canary copies" if canary else "No agents"
    print_records(
        [agent_summary(agent) for agent in agents],
        AGENT_COLUMNS,
        output,
        empty=f"{none} on {client.base_url}. Create some with `lettafleet apply -f fleet.yaml{' --canary' * canary}`.",
    )


@click.command("agent")
@click.argument("agent")
@click.option("--canary", is_flag=True, help="Describe AGENT's canary copy (`apply --canary`), CANARY-AGENT.")
@click.option("--canary-prefix", metavar="PREFIX", default=DEFAULT_PREFIX, help="With --canary: the copies' prefix.")
@server_options
@output_option("text", "json", "yaml")
@reports_errors
def describe_agent(agent: str, canary: bool, canary_prefix: str, base_url: str, output: str) -> None:
    """Show one agent in detail: model, system prompt, memory blocks, tools, secret names (never their values) and
    its number of conversations.

    AGENT is the agent's name or id (agent-...).
    """
    agent = f"{canary_prefix}{agent}" if canary else agent
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            found, conversations = on_app_server.described_agent(app, agent)
        else:
            found = find_agent(client, agent)  # no `include`: Letta returns every relation (blocks and tools)
            conversations = client.list_all("/v1/conversations/", agent_id=found["id"])
    llm = found.get("llm_config") or {}
    record = {
        **agent_summary(found),
        "model_endpoint": public_url(llm["model_endpoint"]) if llm.get("model_endpoint") else None,
        "context_window": llm.get("context_window"),
        "embedding": embedding_of(found),
        "agent_type": found.get("agent_type"),
        "system": found.get("system"),
        "blocks": [
            {"label": b.get("label"), "id": b["id"], "limit": b.get("limit"), "value": b.get("value") or ""}
            for b in found.get("blocks") or []
        ],
        "tools": sorted(tool.get("name") for tool in found.get("tools") or []),
        "secrets": sorted(secret.get("key") for secret in found.get("secrets") or []),  # names only, never values
        "conversations": len(conversations),
        "updated_at": found.get("updated_at"),
    }
    if output != "text":
        click.echo(json.dumps(record, indent=2) if output == "json" else to_yaml(record), nl=output == "json")
        return
    print_fields(
        [
            ("Name", record["name"]),
            ("ID", record["id"]),
            ("Description", record["description"]),
            ("Model", f"{record['model']}" + (f" at {record['model_endpoint']}" if record["model_endpoint"] else "")),
            ("Context window", record["context_window"]),
            ("Embedding", record["embedding"]),
            ("Agent type", record["agent_type"]),
            ("Tags", record["tags"]),
            ("Managed by lettafleet", "yes" if record["managed_by_lettafleet"] else "no"),
            *([("Canary copy of", record["canary_of"])] if record["canary_of"] else []),
            ("Created", short_date(record["created_at"])),
            ("Updated", short_date(record["updated_at"])),
            ("Conversations", record["conversations"]),
            ("Tools", record["tools"]),
            ("Secrets", record["secrets"]),
            ("System prompt", preview(record["system"], 100)),
        ]
    )
    click.echo("")
    click.echo("Memory blocks:")
    if not record["blocks"]:
        click.echo("  (none)")
        return
    print_table(
        [
            [b["label"] or "-", b["id"], f"{len(b['value'])}/{b['limit'] or '-'}", preview(b["value"])]
            for b in record["blocks"]
        ],
        [Column("LABEL"), Column("ID"), Column("CHARS"), Column("VALUE", width=PREVIEW_WIDTH)],
    )


# ---------------------------------------------------------------------------------------------- delete agent


def describe_removal(removal: AgentRemoval, done: bool) -> list[str]:
    agent = removal.agent
    verb = "Deleted" if done else "Would delete"
    count = len(removal.conversations)
    lines = [
        f"{verb} agent {agent.get('name')} ({agent['id']})",
        f"  {count} conversation{'s' if count != 1 else ''} and every message in {'them' if count != 1 else 'it'}",
    ]
    lines += [f"  {block.describe()}" for block in removal.doomed]
    lines += [f"Kept {block.describe()}: {why}" for block, why in removal.kept]
    return lines


@click.command("agent")
@click.argument("agent")
@click.option("--force", is_flag=True, help="Really delete. Without it, only show what would be deleted.")
@server_options
@reports_errors
def delete_agent(agent: str, force: bool, base_url: str) -> None:
    """Delete an agent with its conversations and the memory blocks only it used (conversation copies too).

    Blocks other agents also use are kept, and so are the fleet's shared blocks (declared under shared_blocks).
    Without --force, shows what would go, changes nothing and exits 1.
    AGENT is the agent's name or id (agent-...).
    """
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            delete_on_app_server(app, agent, force)
            return
        found = find_agent(client, agent, include=["agent.blocks"], unique=True)
        removal = plan_agent_removal(client, found)
        if not force:
            for line in describe_removal(removal, done=False):
                click.echo(line)
            click.echo("Nothing was deleted. Run again with --force to delete.", err=True)
            sys.exit(1)
        try:
            remove_agent(client, removal)
        except LettaAPIError as error:
            click.echo(
                f"error: {error}. The agent {found.get('name')} ({found['id']}) was not deleted (of its blocks, "
                "some may be). Run the command again to finish.",
                err=True,
            )
            sys.exit(1)
    for line in describe_removal(removal, done=True):
        click.echo(line)


def delete_on_app_server(app: AppServerClient, name_or_id: str, force: bool) -> None:
    """`delete agent` on an App Server: the agent goes with its conversations, its memory files and its secrets
    (unset first: the server would leave them on disk). A name several agents share is refused."""
    if not name_or_id.startswith("agent-") and len(app.agents_named(name_or_id)) > 1:
        raise LettaError(f"several agents are named '{name_or_id}' on {app.base_url}: name the one to delete by its id")
    found = find_app_agent(app, name_or_id)
    count = len(app.list_conversations(found["id"]))
    files = on_app_server.memory_blocks(app.list_memory(found["id"]))

    def said(verb: str) -> None:
        click.echo(f"{verb} agent {found.get('name')} ({found['id']})")
        click.echo(
            f"  {count} conversation{'s' if count != 1 else ''} and every message in {'them' if count != 1 else 'it'}"
        )
        click.echo(f"  its {len(files)} memory file{'s' if len(files) != 1 else ''} and its secrets")

    if not force:
        said("Would delete")
        click.echo("Nothing was deleted. Run again with --force to delete.", err=True)
        sys.exit(1)
    app.delete_agent(found["id"])
    said("Deleted")


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [
        PluginCommand(get_agents, verb="get"),
        PluginCommand(describe_agent, verb="describe"),
        PluginCommand(delete_agent, verb="delete"),
    ]
