"""Agent commands (`get agents`, `describe agent`, `delete agent`), and how every command names an agent and prints.

An agent is named by its name or its id (`agent-...`). Names are resolved with one filtered request, never by
listing every agent. Output is a table for people (plain text when not on a terminal), JSON or YAML for machines.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import rich_click as click
from rich.console import Console
from rich.table import Table

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
from lettafleet.plugins.server_reads import AGENT_RELATIONS, is_managed

F = TypeVar("F", bound=Callable[..., Any])
# Naming one cheap relation makes Letta leave out the others (tools carry their source code): see server_reads.
LIGHT_AGENT = ["agent.tags"]
PREVIEW_WIDTH = 60
# Agent names may start with "agent-" too; only this shape is an id.
AGENT_ID = re.compile(r"^agent-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class NotFoundError(LettaError):
    """A name or id the user gave is not on the server."""


# ---------------------------------------------------------------------------------------------- naming agents


def find_agent(
    client: LettaClient, name_or_id: str, *, include: Sequence[str] | None = None, unique: bool = False
) -> dict[str, Any]:
    """The agent called `name_or_id` (a name, or an id `agent-<uuid>`), in one request.

    Letta allows two agents with one name; like a plan, the one lettafleet manages wins, then the oldest.
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
    matches = client.get("/v1/agents/", name=name_or_id, include=relations, order="asc", limit=50)
    if not matches:
        raise NotFoundError(_no_agent(client, f"named '{name_or_id}'"))
    if len(matches) == 1:
        return matches[0]
    ids = ", ".join(agent["id"] + (" (managed by lettafleet)" if is_managed(agent) else "") for agent in matches)
    if unique:
        raise LettaError(f"{len(matches)} agents are named '{name_or_id}': {ids}. Name the one you mean by its id.")
    chosen = next((agent for agent in matches if is_managed(agent)), matches[0])
    click.echo(
        f"note: {len(matches)} agents are named '{name_or_id}'; using {chosen['id']}. Name another by its id ({ids}).",
        err=True,
    )
    return chosen


def _no_agent(client: LettaClient, which: str) -> str:
    return f"no agent {which} on {client.base_url}. List the agents with `lettafleet get agents`."


# ---------------------------------------------------------------------------------------------- printing


def output_option(*formats: str) -> Callable[[F], F]:
    """`-o/--output`: the first format is for people (the default), the others for scripts."""
    people, scripts = formats[0], " or ".join(formats[1:])
    return click.option(
        "-o",
        "--output",
        type=click.Choice(list(formats)),
        default=people,
        show_default=True,
        help=f"{people} for people; {scripts} for scripts.",
    )


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Mapping[str, Any]], Any] | None = None  # how print_records gets the cell from a record
    # Free text (summaries, values) has a width and wraps on a terminal; names, ids and dates never wrap.
    # Plain output (not a terminal) never wraps nor truncates.
    width: int | None = None


def print_records(
    records: Sequence[Mapping[str, Any]], columns: Sequence[Column], output: str, empty: str = "Nothing found."
) -> None:
    """Records as a table (people) or as a JSON / YAML list (machines). JSON and YAML carry whole records."""
    if output == "json":
        click.echo(json.dumps(list(records), indent=2))
    elif output == "yaml":
        click.echo(to_yaml(list(records)), nl=False)
    elif not records:
        click.echo(empty)
    else:
        print_table(
            [[_cell(column.value(record) if column.value else None) for column in columns] for record in records],
            columns,
        )


def print_table(rows: Sequence[Sequence[str]], columns: Sequence[Column]) -> None:
    console = Console()
    if console.is_terminal:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column.header, max_width=column.width, overflow="fold", no_wrap=column.width is None)
        for row in rows:
            table.add_row(*row)
        console.print(table, markup=False, highlight=False)
        return
    # Not a terminal: aligned plain text, one line per row, so grep and awk see whole values.
    widths = [max(len(column.header), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    for cells in [[column.header for column in columns], *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """`Label: value` lines, aligned, for describe commands."""
    pairs = list(pairs)
    width = max(len(label) for label, _ in pairs) + 1
    for label, value in pairs:
        click.echo(f"{label + ':':<{width}} {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def preview(text: str | None, width: int = PREVIEW_WIDTH) -> str:
    """One line of at most `width` characters, for table cells."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def short_date(stamp: str | None) -> str:
    """`2026-11-25T17:38:12.767871Z` -> `2026-11-25 17:38:12` (UTC, as the server gives it)."""
    return stamp.replace("T", " ")[:19] if stamp else "-"


def public_url(url: str | None) -> str | None:
    """An endpoint without user, password or query string: those can carry credentials."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def to_yaml(value: Any) -> str:
    """YAML for JSON-like data. Strings that could be read as anything else are written as JSON strings, which
    are valid YAML double-quoted scalars, so the document reads back exactly (no PyYAML needed to write it)."""
    return "\n".join(_yaml_lines(value, "")) + "\n"


def _yaml_lines(value: Any, pad: str) -> list[str]:
    lines: list[str] = []
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            head = f"{pad}{_yaml_scalar(str(key))}:"
            if _yaml_nested(item):
                lines.append(head)
                lines.extend(_yaml_lines(item, pad + "  "))
            else:
                lines.append(f"{head} {_yaml_scalar(item)}")
    elif isinstance(value, list | tuple) and value:
        for item in value:
            if _yaml_nested(item):
                nested = _yaml_lines(item, pad + "  ")
                lines.append(f"{pad}- {nested[0][len(pad) + 2 :]}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(value))
    return lines


def _yaml_nested(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and bool(value)


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _RESERVED:
        return value
    text = json.dumps(value, ensure_ascii=False)
    # JSON leaves some non-printable characters (U+2028, U+0085, ...) raw; YAML readers take them as line breaks.
    return "".join(char if char.isprintable() else json.dumps(char)[1:-1] for char in text)


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
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_agents(base_url: str, output: str) -> None:
    """List every agent on the server: name, id, model, number of blocks, tags, creation date."""
    with make_client(base_url) as client:
        agents = client.list_all("/v1/agents/", include=AGENT_RELATIONS, order="asc")
    print_records(
        [agent_summary(agent) for agent in agents],
        AGENT_COLUMNS,
        output,
        empty=f"No agents on {base_url}. Create some with `lettafleet apply -f fleet.yaml`.",
    )


@click.command("agent")
@click.argument("agent")
@server_options
@output_option("text", "json", "yaml")
@reports_errors
def describe_agent(agent: str, base_url: str, output: str) -> None:
    """Show one agent in detail: model, system prompt, memory blocks, tools and its number of conversations.

    AGENT is the agent's name or id (agent-...).
    """
    with make_client(base_url) as client:
        found = find_agent(client, agent)  # no `include`: Letta returns every relation (blocks and tools)
        conversations = client.list_all("/v1/conversations/", agent_id=found["id"])
    llm = found.get("llm_config") or {}
    record = {
        **agent_summary(found),
        "model_endpoint": public_url(llm.get("model_endpoint")),
        "context_window": llm.get("context_window"),
        "embedding": embedding_of(found),
        "agent_type": found.get("agent_type"),
        "system": found.get("system"),
        "blocks": [
            {"label": b.get("label"), "id": b["id"], "limit": b.get("limit"), "value": b.get("value") or ""}
            for b in found.get("blocks") or []
        ],
        "tools": sorted(tool.get("name") for tool in found.get("tools") or []),
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
            ("Created", short_date(record["created_at"])),
            ("Updated", short_date(record["updated_at"])),
            ("Conversations", record["conversations"]),
            ("Tools", record["tools"]),
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


@dataclass(frozen=True)
class BlockToDelete:
    id: str
    label: str
    owner: str  # "agent", or the conversation the block is an isolated copy for


@dataclass(frozen=True)
class AgentRemoval:
    """Everything `delete agent` removes or keeps, gathered before anything is deleted."""

    agent: Mapping[str, Any]
    conversations: Sequence[Mapping[str, Any]]
    doomed: Sequence[BlockToDelete] = field(default_factory=tuple)
    kept: Sequence[tuple[BlockToDelete, str]] = field(default_factory=tuple)  # (block, why)


def plan_agent_removal(client: LettaClient, agent: Mapping[str, Any]) -> AgentRemoval:
    """The agent's blocks and its conversations' isolated copies, each checked for other users.

    Letta deletes an agent's conversations with it but leaves every block behind (its own and the copies), so
    they are gathered first: once the agent is gone, nothing links them to it any more.
    """
    conversations = client.list_all("/v1/conversations/", agent_id=agent["id"], order="asc")
    candidates = [BlockToDelete(b["id"], b.get("label") or "", "agent") for b in agent.get("blocks") or []]
    for conversation in conversations:
        title = conversation.get("summary") or conversation["id"]
        candidates += [
            BlockToDelete(block_id, "", f"conversation '{title}'")
            for block_id in conversation.get("isolated_block_ids") or []
        ]
    shared_fleet_blocks = {
        b["id"] for b in agent.get("blocks") or [] if is_managed(b) and (b.get("metadata") or {}).get("shared")
    }
    doomed: list[BlockToDelete] = []
    kept: list[tuple[BlockToDelete, str]] = []
    for block in candidates:
        if block.id in shared_fleet_blocks:
            kept.append((block, "a fleet-wide shared block (declared under shared_blocks)"))
            continue
        users = client.get(f"/v1/blocks/{block.id}/agents", include=LIGHT_AGENT, limit=10)
        others = sorted({user.get("name") or user["id"] for user in users if user["id"] != agent["id"]})
        if others:
            kept.append((block, f"also used by {', '.join(others)}"))
        else:
            doomed.append(block)
    return AgentRemoval(agent, conversations, doomed, kept)


def _block_name(block: BlockToDelete) -> str:
    if block.owner == "agent":
        return f"block {block.label or '(no label)'} ({block.id})"
    return f"isolated block copy {block.id} of {block.owner}"


def describe_removal(removal: AgentRemoval, done: bool) -> list[str]:
    agent = removal.agent
    verb = "Deleted" if done else "Would delete"
    count = len(removal.conversations)
    lines = [
        f"{verb} agent {agent.get('name')} ({agent['id']})",
        f"  {count} conversation{'s' if count != 1 else ''} and every message in them",
    ]
    lines += [f"  {_block_name(block)}" for block in removal.doomed]
    lines += [f"Kept {_block_name(block)}: {why}" for block, why in removal.kept]
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
        found = find_agent(client, agent, include=["agent.blocks"], unique=True)
        removal = plan_agent_removal(client, found)
        if not force:
            for line in describe_removal(removal, done=False):
                click.echo(line)
            click.echo("Nothing was deleted. Run again with --force to delete.", err=True)
            sys.exit(1)
        client.delete(f"/v1/agents/{found['id']}")
        failures = []
        for block in removal.doomed:
            try:
                client.delete(f"/v1/blocks/{block.id}")
            except LettaAPIError as error:
                if error.status != 404:  # already gone is what we wanted
                    failures.append(f"{_block_name(block)}: {error}")
    for line in describe_removal(removal, done=True):
        click.echo(line)
    if failures:
        click.echo(
            "error: the agent is deleted but these blocks could not be; they are orphans now. "
            "Delete them with `DELETE /v1/blocks/{id}`:",
            err=True,
        )
        for failure in failures:
            click.echo(f"  {failure}", err=True)
        sys.exit(1)


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [
        PluginCommand(get_agents, verb="get"),
        PluginCommand(describe_agent, verb="describe"),
        PluginCommand(delete_agent, verb="delete"),
    ]
