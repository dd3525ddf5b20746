"""Listing commands for what agents use and what the server offers: `get blocks`, `tools`, `folders`, `archives`,
`mcp-servers`, `providers` and `models`, as lettactl spells them.

Records carry names, ids and settings, never a credential: providers' keys, MCP servers' tokens, headers and
environment are left out of every output format, and URLs are shown without user, password or query string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import rich_click as click

from lettafleet.core import (
    Column,
    Connection,
    LettaAPIError,
    LettaError,
    PluginCommand,
    hookimpl,
    is_managed,
    is_tagged_managed,
    make_client,
    output_option,
    preview,
    print_records,
    public_url,
    reports_errors,
    server_options,
    short_date,
)
from lettafleet.plugins.commands import app_server_reads as on_app_server
from lettafleet.plugins.commands.agent_lookup import find_agent
from lettafleet.plugins.commands.agents import embedding_of
from lettafleet.plugins.commands.app_server_lookup import app_server_of

F = TypeVar("F", bound=Callable[..., Any])
# Hosted Letta's folders answer 400 since 2026-07-17 (letta-ai/agent-v1-to-v2-migration-guide, filesystem/README.md).
FOLDERS_GONE = "Hosted Letta has answered 400 to every folders request since 2026-07-17."


class UnsupportedByServer(LettaError):
    """The server refused a whole kind of resource (400, 404 or 405 on its collection)."""


def read_collection(client: Connection, what: str, read: Callable[[], Any], hint: str = "") -> Any:
    """`read()`, with a refusal of the whole collection said in one line: which server, what it answered."""
    try:
        return read()
    except LettaAPIError as error:
        if error.status not in (400, 404, 405):
            raise
        raise UnsupportedByServer(
            f"the server at {client.base_url} does not offer {what}: {error.method} {error.path} answered "
            f"{error.status} ({error.detail}). {hint}".rstrip()
        ) from None


# ---------------------------------------------------------------------------------------------- which agents


def scope_options(command: F) -> F:
    """-a AGENT and --tags: whose resources to list (default: every one on the server)."""
    command = click.option(
        "--tags",
        metavar="A,B",
        help="Only those used by agents having ALL these tags (comma-separated, as in lettactl).",
    )(command)
    command = click.option("-a", "--agent", metavar="AGENT", help="Only those of this agent (name or id).")(command)
    return command


def usage_options(command: F) -> F:
    """--shared and --orphaned: lettactl's filters on how many agents use a block or tool."""
    command = click.option("--orphaned", is_flag=True, help="Only those no agent uses (nor any conversation).")(command)
    command = click.option("--shared", is_flag=True, help="Only those two or more agents use.")(command)
    return command


def tag_list(tags: str | None) -> list[str]:
    return [tag.strip() for tag in (tags or "").split(",") if tag.strip()]


def agents_in_scope(
    client: Connection, agents: Sequence[Mapping[str, Any]], agent: str | None, tags: str | None
) -> list[Mapping[str, Any]] | None:
    """The agents whose resources are listed, out of `agents` (all of them, read once); None means no filter."""
    if agent:
        found = find_agent(client, agent, include=["agent.tags"])
        return [a for a in agents if a["id"] == found["id"]]
    wanted = set(tag_list(tags))
    if not wanted:
        return None
    return [a for a in agents if wanted <= set(a.get("tags") or [])]


def check_usage_filters(shared: bool, orphaned: bool) -> None:
    if shared and orphaned:
        raise click.UsageError("--shared and --orphaned exclude each other: name one.")


def kept_by_usage(users: int, holders: int, shared: bool, orphaned: bool) -> bool:
    """`users` agents and `holders` other holders (conversations) use the item."""
    if shared:
        return users >= 2
    if orphaned:
        return users == 0 and holders == 0
    return True


def attached_items(
    client: Connection, relation: str, agent: str | None, tags: str | None
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The `relation` items ("blocks" or "tools") in scope, and for each item id the names of the agents using it.

    Every agent is read once with that relation (the users need them all); without -a or --tags the items are
    the whole collection, unused ones included."""
    agents = client.list_all("/v1/agents/", include=[f"agent.{relation}", "agent.tags"], order="asc")
    scope = agents_in_scope(client, agents, agent, tags)
    users: dict[str, list[str]] = {}
    for user in agents:
        for item in user.get(relation) or []:
            users.setdefault(item["id"], []).append(user.get("name") or user["id"])
    if scope is None:
        items = client.list_all(f"/v1/{relation}/", order="asc")
    else:
        items = list({item["id"]: item for user in scope for item in user.get(relation) or []}.values())
    return items, {item: sorted(names) for item, names in users.items()}


def empty_message(what: str, agent: str | None, tags: str | None, shared: bool = False, orphaned: bool = False) -> str:
    filters = [f"of agent {agent}"] if agent else []
    filters += [f"of agents tagged {tags}"] if tags else []
    filters += ["shared by two or more agents"] if shared else []
    filters += ["that nothing uses"] if orphaned else []
    return f"No {what}{' ' + ', '.join(filters) if filters else ''}."


# ---------------------------------------------------------------------------------------------- blocks


def block_record(block: Mapping[str, Any], agents: list[str], conversations: list[str]) -> dict[str, Any]:
    value = block.get("value") or ""
    return {
        "id": block["id"],
        "label": block.get("label"),
        "description": block.get("description"),
        "chars": len(value),
        "limit": block.get("limit"),
        "agents": agents,
        "conversations": conversations,  # the conversations this block is an isolated copy for
        "managed_by_lettafleet": is_managed(block),
        "value": value,
    }


BLOCK_COLUMNS = (
    Column("LABEL", lambda b: b["label"]),
    Column("ID", lambda b: b["id"]),
    Column("CHARS", lambda b: f"{b['chars']}/{b['limit'] or '-'}"),
    Column("AGENTS", lambda b: len(b["agents"])),
    Column("USED BY", lambda b: b["agents"] + b["conversations"], width=40),
    Column("VALUE", lambda b: preview(b["value"], 40), width=40),
)


@click.command("blocks")
@scope_options
@usage_options
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_blocks(agent: str | None, tags: str | None, shared: bool, orphaned: bool, base_url: str, output: str) -> None:
    """List memory blocks: label, id, size/limit, the agents (and conversations) using each, value.

    A conversation's isolated copy is used by that conversation, so --orphaned never lists it.
    """
    check_usage_filters(shared, orphaned)
    with make_client(base_url) as client:
        on_app_server.refuse_v1_only(client, "get blocks")
        blocks, users = attached_items(client, "blocks", agent, tags)
        copies: dict[str, list[str]] = {}
        for conversation in client.list_all("/v1/conversations/", order="asc"):
            for block_id in conversation.get("isolated_block_ids") or []:
                copies.setdefault(block_id, []).append(conversation["id"])
    records = [block_record(b, users.get(b["id"], []), copies.get(b["id"], [])) for b in blocks]
    records = [r for r in records if kept_by_usage(len(r["agents"]), len(r["conversations"]), shared, orphaned)]
    print_records(records, BLOCK_COLUMNS, output, empty=empty_message("blocks", agent, tags, shared, orphaned))


# ---------------------------------------------------------------------------------------------- tools


def tool_record(tool: Mapping[str, Any], agents: list[str]) -> dict[str, Any]:
    return {
        "id": tool["id"],
        "name": tool.get("name"),
        "tool_type": tool.get("tool_type"),
        "description": tool.get("description"),
        "tags": sorted(tool.get("tags") or []),
        "agents": agents,
        "managed_by_lettafleet": is_tagged_managed(tool.get("tags")),
    }


TOOL_COLUMNS = (
    Column("NAME", lambda t: t["name"]),
    Column("ID", lambda t: t["id"]),
    Column("TYPE", lambda t: t["tool_type"]),
    Column("AGENTS", lambda t: len(t["agents"])),
    Column("DESCRIPTION", lambda t: preview(t["description"], 50), width=50),
)


@click.command("tools")
@scope_options
@usage_options
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_tools(agent: str | None, tags: str | None, shared: bool, orphaned: bool, base_url: str, output: str) -> None:
    """List tools: name, id, type, number of agents using each, description (never the source code)."""
    check_usage_filters(shared, orphaned)
    with make_client(base_url) as client:
        on_app_server.refuse_v1_only(client, "get tools")
        tools, users = attached_items(client, "tools", agent, tags)
    records = [tool_record(t, users.get(t["id"], [])) for t in tools]
    records = [r for r in records if kept_by_usage(len(r["agents"]), 0, shared, orphaned)]
    records.sort(key=lambda r: r["name"] or "")
    print_records(records, TOOL_COLUMNS, output, empty=empty_message("tools", agent, tags, shared, orphaned))


# ---------------------------------------------------------------------------------------------- folders, archives


def stored_record(item: Mapping[str, Any]) -> dict[str, Any]:
    """A folder or an archive: both are named stores of passages with an embedding."""
    return {
        "id": item["id"],
        "name": item.get("name"),
        "description": item.get("description"),
        "embedding": embedding_of(item),
        "created_at": item.get("created_at"),
    }


STORED_COLUMNS = (
    Column("NAME", lambda r: r["name"]),
    Column("ID", lambda r: r["id"]),
    Column("EMBEDDING", lambda r: r["embedding"]),
    Column("DESCRIPTION", lambda r: preview(r["description"], 50), width=50),
    Column("CREATED", lambda r: short_date(r["created_at"])),
)


@click.command("folders")
@click.option("-a", "--agent", metavar="AGENT", help="Only the folders attached to this agent (name or id).")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_folders(agent: str | None, base_url: str, output: str) -> None:
    """List folders (file sources): name, id, embedding, description, creation date.

    A server without folders (hosted Letta since 2026-07-17) gets a one-line error, exit 1.
    """
    with make_client(base_url) as client:
        on_app_server.refuse_v1_only(client, "get folders")
        path = f"/v1/agents/{find_agent(client, agent, include=['agent.tags'])['id']}/folders" if agent else ""
        folders = read_collection(
            client, "folders", lambda: client.list_all(path or "/v1/folders/", order="asc"), FOLDERS_GONE
        )
    print_records(
        [stored_record(f) for f in folders], STORED_COLUMNS, output, empty=empty_message("folders", agent, None)
    )


@click.command("archives")
@click.option("-a", "--agent", metavar="AGENT", help="Only the archives attached to this agent (name or id).")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_archives(agent: str | None, base_url: str, output: str) -> None:
    """List archives (archival memory stores): name, id, embedding, description, creation date."""
    with make_client(base_url) as client:
        on_app_server.refuse_v1_only(client, "get archives")
        params = {"agent_id": find_agent(client, agent, include=["agent.tags"])["id"]} if agent else {}
        archives = read_collection(client, "archives", lambda: client.list_all("/v1/archives/", order="asc", **params))
    print_records(
        [stored_record(a) for a in archives], STORED_COLUMNS, output, empty=empty_message("archives", agent, None)
    )


# ---------------------------------------------------------------------------------------------- server-level


def mcp_server_record(server: Mapping[str, Any]) -> dict[str, Any]:
    # auth_token, auth_header, custom_headers and env hold credentials; args may too: none is shown.
    url = server.get("server_url")
    return {
        "id": server.get("id"),
        "name": server.get("server_name"),
        "type": server.get("mcp_server_type"),
        "url": public_url(url) if url else None,
        "command": server.get("command"),
    }


MCP_COLUMNS = (
    Column("NAME", lambda s: s["name"]),
    Column("ID", lambda s: s["id"]),
    Column("TYPE", lambda s: s["type"]),
    Column("URL OR COMMAND", lambda s: s["url"] or s["command"]),
)


@click.command("mcp-servers")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_mcp_servers(base_url: str, output: str) -> None:
    """List the MCP servers registered on the Letta server: name, id, type, URL or command (never tokens,
    headers or environment)."""
    with make_client(base_url) as client:
        on_app_server.refuse_v1_only(client, "get mcp-servers")
        servers = read_collection(client, "MCP servers", lambda: client.get("/v1/mcp-servers/"))
    print_records([mcp_server_record(s) for s in servers], MCP_COLUMNS, output, empty="No MCP servers.")


def provider_record(provider: Mapping[str, Any]) -> dict[str, Any]:
    # api_key, access_key and their encrypted forms are never read out.
    url = provider.get("base_url")
    return {
        "id": provider.get("id"),
        "name": provider.get("name"),
        "provider_type": provider.get("provider_type"),
        "provider_category": provider.get("provider_category"),
        "base_url": public_url(url) if url else None,
        "region": provider.get("region"),
        "updated_at": provider.get("updated_at"),
    }


PROVIDER_COLUMNS = (
    Column("NAME", lambda p: p["name"]),
    Column("ID", lambda p: p["id"]),
    Column("TYPE", lambda p: p["provider_type"]),
    Column("CATEGORY", lambda p: p["provider_category"]),
    Column("BASE URL", lambda p: p["base_url"]),
)


@click.command("providers")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_providers(base_url: str, output: str) -> None:
    """List model providers added to the server (BYOK): name, id, type, category, base URL (never keys).

    The server's built-in providers (from its environment) are not listed; `get models` shows their models.
    """
    with make_client(base_url) as client:
        on_app_server.refuse_v1_only(client, "get providers")
        providers = read_collection(client, "providers", lambda: client.list_all("/v1/providers/", order="asc"))
    print_records(
        [provider_record(p) for p in providers],
        PROVIDER_COLUMNS,
        output,
        empty="No providers added to this server. Its built-in models: `lettafleet get models`.",
    )


def model_record(model: Mapping[str, Any]) -> dict[str, Any]:
    endpoint = model.get("model_endpoint")
    return {
        "handle": model.get("handle"),
        "name": model.get("name") or model.get("model"),
        "provider_name": model.get("provider_name"),
        "provider_type": model.get("provider_type") or model.get("model_endpoint_type"),
        "context_window": model.get("context_window"),
        "endpoint": public_url(endpoint) if endpoint else None,
    }


MODEL_COLUMNS = (
    Column("HANDLE", lambda m: m["handle"]),
    Column("PROVIDER", lambda m: m["provider_name"]),
    Column("TYPE", lambda m: m["provider_type"]),
    Column("CONTEXT", lambda m: m["context_window"]),
    Column("ENDPOINT", lambda m: m["endpoint"]),
)


@click.command("models")
@click.option("--query", metavar="TEXT", help="Only models whose handle contains TEXT (case-insensitive).")
@server_options
@output_option("table", "json", "yaml")
@reports_errors
def get_models(query: str | None, base_url: str, output: str) -> None:
    """List the LLM models the server offers: handle (what a fleet file's `model:` names), provider, context
    window, endpoint."""
    with make_client(base_url) as client:
        app = app_server_of(client)
        if app is not None:
            records = on_app_server.model_records(app)
        else:
            records = [model_record(m) for m in read_collection(client, "models", lambda: client.get("/v1/models/"))]
    if query:
        records = [r for r in records if query.lower() in (r["handle"] or "").lower()]
    print_records(records, MODEL_COLUMNS, output, empty="No models" + (f" matching '{query}'." if query else "."))


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [
        PluginCommand(command, verb="get")
        for command in (get_blocks, get_tools, get_folders, get_archives, get_mcp_servers, get_providers, get_models)
    ]
