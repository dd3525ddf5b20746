"""What the read commands (`get agents`, `describe agent`, `get models`, `health`, `report memory`) see on an App
Server, shaped as V1 shows it so each command prints the same fields: an agent's memory files stand for its
memory blocks, its `model` for the `llm_config.handle`. And the one line a command V1 alone can serve says there."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lettafleet.core import Connection, LettaError
from lettafleet.plugins.backends.app_server.agents import RECORD_SECRET
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.memory_files import (
    FILE_LIMIT,
    FIRST_V2,
    INDEX,
    SYSTEM_FOLDER,
    V1,
    layout_of,
)
from lettafleet.plugins.backends.app_server.memory_reads import MEMORY_READS
from lettafleet.plugins.commands.app_server_lookup import app_server_of, find_app_agent, users_agents

APP_SERVER = "the Letta App Server"


def memory_blocks(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An agent's memory files as V1's blocks: the path is the label's place and the block's id, the 20,000
    characters a file may hold its limit (the `MEMORY.md` indexes are the server's, not memory). Under MemFS v1
    (`system/<label>.md`, as 0.32.x makes) the label is the file's name without its folder."""
    folder = SYSTEM_FOLDER if layout_of(files, FIRST_V2) == V1 else ""
    return [
        {
            "label": str(entry.get("relative_path") or "").removeprefix(folder).removesuffix(".md"),
            "id": entry.get("relative_path"),
            "value": str(entry.get("content") or ""),
            "limit": FILE_LIMIT,
            "description": entry.get("description"),
        }
        for entry in files
        if not str(entry.get("relative_path") or "").endswith(INDEX)
    ]


def as_v1_agent(agent: Mapping[str, Any], files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An App Server agent with V1's field names (`llm_config.handle`, `blocks`), its memory files as blocks."""
    llm = dict(agent.get("llm_config") or {})
    llm["handle"] = agent.get("model") or llm.get("handle")
    window = (agent.get("model_settings") or {}).get("context_window_limit") or llm.get("context_window")
    llm["context_window"] = window
    llm.pop("model_endpoint", None)  # the provider's, with no meaning for the agent (`example.invalid` and such)
    return {**agent, "llm_config": llm, "blocks": memory_blocks(files or [])}


def agents_with_memory(app: AppServerClient, agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each agent V1-shaped with its memory files, in the order given: the listings pipelined on the one socket,
    `MEMORY_READS` at once (each runs git on the server, some 150 ms of its time an agent)."""
    with ThreadPoolExecutor(max_workers=MEMORY_READS, thread_name_prefix="lettafleet-memory") as pool:
        return list(pool.map(lambda agent: as_v1_agent(agent, app.list_memory(agent["id"])), agents))


def secret_names(app: AppServerClient, agent_id: str) -> list[str]:
    """The agent's secrets by name (never a value), lettafleet's own record left out."""
    return sorted(name for name in app.secret_names(agent_id) if name != RECORD_SECRET)


def model_records(app: AppServerClient) -> list[dict[str, Any]]:
    """The models of the providers connected to the App Server, as `get models` lists V1's."""
    return [
        {
            "handle": model.get("handle"),
            "name": model.get("label") or model.get("id"),
            "provider_name": str(model.get("handle") or "").partition("/")[0] or None,
            "provider_type": (model.get("updateArgs") or {}).get("provider_type"),
            "context_window": (model.get("updateArgs") or {}).get("context_window"),
            "endpoint": None,
        }
        for model in app.list_models(refresh=False)
    ]


def health_record(app: AppServerClient) -> dict[str, Any]:
    """`health` on an App Server: it answers `app_server_info` (ok), its version, and its number of agents; it has
    no blocks, tools or folders to count (memory is files, tools are Letta Code's)."""
    info = app.server_info()
    return {
        "server": app.base_url,
        "status": "ok" if info.get("success", True) else "error",
        "version": f"App Server {info.get('letta_code_version')} ({info.get('backend')} backend, protocol "
        f"{info.get('protocol_version')})",
        "counts": {"agents": len(users_agents(app)), "blocks": None, "tools": None, "folders": None},
    }


def refuse_on_app_server(connection: Connection, command: str, lacks: str, instead: str) -> None:
    """Stop `command` in one line when it talks to an App Server, naming what that server lacks and what to do."""
    if app_server_of(connection) is not None:
        raise LettaError(f"`{command}`: {APP_SERVER} at {connection.base_url} {lacks}; {instead}")


def described_agent(app: AppServerClient, name_or_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The agent `describe agent` shows, V1-shaped (its memory files as blocks, its secrets by name), and its
    conversations."""
    found = find_app_agent(app, name_or_id)
    agent = as_v1_agent(found, app.list_memory(found["id"]))
    agent["secrets"] = [{"key": name} for name in secret_names(app, found["id"])]
    return agent, app.list_conversations(found["id"])


# What each V1-only command finds missing on an App Server, and what to do instead: (what it lacks, what to do).
V1_SERVER = "run it against a V1 server (--base-url http://...)"
LACKS = {
    "get blocks": (
        "has no blocks of their own: each agent's memory is its own files",
        "see them with `lettafleet describe agent NAME` or `lettafleet report memory --all`",
    ),
    "get tools": (
        "keeps no tool list: its agents run Letta Code's own toolset (Bash, Read, Edit, ...)",
        f"see docs/app-server.md, or {V1_SERVER}",
    ),
    "get folders": ("has no folders", f"put a file's text in a memory block, or {V1_SERVER}"),
    "get archives": ("has no archives", V1_SERVER),
    "get mcp-servers": ("cannot list MCP servers over its protocol", V1_SERVER),
    "get providers": (
        "does not list its connected providers over its protocol",
        "`lettafleet get models` lists the models they offer",
    ),
    "reset-messages": (
        "has no reset of a conversation's context",
        "start a new conversation (`lettafleet create conversation AGENT`), or compact this one "
        "(`lettafleet compact-messages AGENT`)",
    ),
}


def refuse_v1_only(connection: Connection, command: str) -> None:
    """Stop a command V1 alone serves, in one line, when it talks to an App Server (`LACKS` says why)."""
    lacks, instead = LACKS[command]
    refuse_on_app_server(connection, command, lacks, instead)
