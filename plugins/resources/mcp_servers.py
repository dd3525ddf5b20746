"""MCP servers: the top-level `mcp_servers:` a fleet registers on Letta, and each agent's `mcp_tools:`, the tools
of those servers it has attached, as lettactl declares them.

A server's auth token, custom headers and env are sensitive: masked in plans, logs and comments. `${VAR}` in an
entry's values is the environment variable's value, as in lettactl; an unset variable is an error at its line
(lettactl would send an empty string). `type: stdio` is refused: Letta would run the command on its own host.

Letta 0.16.8 keeps no metadata on an MCP server, so lettafleet cannot tell the servers it registered from anyone
else's: a server taken out of the file is left on the server (as lettactl does). An agent's `mcp_tools` entry is
one resource per server (`agent.support.mcp_tools.search`), whose value is the names of that server's tools the
agent has attached; its removal is recorded like any attachment and detaches them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    Action,
    ApplyError,
    ApplySession,
    Change,
    Fleet,
    LettaAPIError,
    LiveReader,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    attributes,
    compare,
    hookimpl,
    secret,
    string,
    string_list,
)
from lettafleet.plugins.backends.letta_v1.reads import AGENTS_WITH_TOOLS
from lettafleet.plugins.resources.agents import agent_address, declared_agents, live_agents

SERVER = "mcp_server"
TOOLS = "mcp_tools"
SERVERS: Read = ("/v1/mcp-servers/", {})
TYPES = ("sse", "streamable_http", "stdio")
SENSITIVE = frozenset({"auth_token", "custom_headers", "env"})
SETTINGS = ("type", "server_url", "auth_header", "auth_token", "custom_headers")
EVERY_TOOL = "all"
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    handler = MCPHandler()
    return [
        ResourceKind(SERVER, "MCP servers", "an MCP server registered on Letta", handler=handler),
        ResourceKind(TOOLS, "MCP tool attachments", "the tools of one MCP server an agent has", handler=handler),
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    headers = secret({"type": "dict", "keysrules": {"type": "string"}, "valuesrules": {"type": "string"}})
    server = {
        "name": string(required=True, regex=NAME_PATTERN),
        "type": {"type": "string", "allowed": list(TYPES), "required": True},
        "server_url": string(empty=False),
        "auth_header": string(empty=False),
        "auth_token": secret(string(empty=False)),
        "custom_headers": headers,
        "command": string(empty=False),
        "args": {"type": "list", "schema": {"type": "string"}},
        "env": headers,
    }
    servers = {"type": "list", "schema": {"type": "dict", "schema": server}}
    selection = {
        "server": string(required=True, empty=False),
        "tools": {"anyof": [{"type": "string", "allowed": [EVERY_TOOL]}, string_list()], "required": True},
    }
    tools = {"type": "list", "schema": {"type": "dict", "schema": selection}}
    return [SchemaFragment({"mcp_servers": servers}), SchemaFragment({TOOLS: tools}, at=("agents",))]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    """stdio is refused, a URL server needs its URL, names are unique, and an agent's `mcp_tools` names a server
    of the file. `${VAR}` is checked when planning: validating needs no environment."""
    problems: list[Problem] = []
    names: set[str] = set()
    for index, entry in enumerate(fleet.data.get("mcp_servers") or []):
        at = ("mcp_servers", index)
        if entry["type"] == "stdio":
            problems.append(
                Problem(
                    (*at, "type"),
                    f"MCP server '{entry['name']}': a stdio server runs its command on the Letta server's host",
                    "run the server yourself and declare it as `type: streamable_http` (or sse) with its URL",
                )
            )
        elif not entry.get("server_url"):
            problems.append(Problem(at, f"MCP server '{entry['name']}' has no server_url", "add its URL"))
        if entry["name"] in names:
            problems.append(Problem((*at, "name"), f"MCP server '{entry['name']}' is declared twice", "keep one"))
        names.add(entry["name"])
    for agent in declared_agents(fleet):
        for index, selection in enumerate(agent.data.get(TOOLS) or []):
            if selection["server"] not in names:
                problems.append(
                    Problem(
                        (*agent.at, TOOLS, index, "server"),
                        f"MCP server '{selection['server']}' is not in the file's mcp_servers",
                        "declare it under the top-level `mcp_servers:`",
                    )
                )
    return problems


def _unset_variables(entry: Mapping[str, Any], at: tuple[Any, ...]) -> list[Problem]:
    problems = []
    for key, value in entry.items():
        for text in _texts(value):
            for variable in VARIABLE.findall(text):
                if variable not in os.environ:
                    problems.append(
                        Problem((*at, key), f"environment variable {variable} is not set", "set it for this command")
                    )
    return problems


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def _expanded(value: Any) -> Any:
    """`${VAR}` replaced by the variable's value, in strings, mappings and lists."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda match: os.environ.get(match.group(1), ""), value)
    if isinstance(value, Mapping):
        return {key: _expanded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expanded(item) for item in value]
    return value


def server_address(name: str) -> str:
    return address_of(SERVER, name)


class MCPHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for index, entry in enumerate(fleet.data.get("mcp_servers") or []):
            values = attributes(**{key: _expanded(entry.get(key)) for key in SETTINGS})
            yield Resource(
                server_address(entry["name"]),
                SERVER,
                entry["name"],
                values,
                source=("mcp_servers", index),
                sensitive=SENSITIVE,
                state={"unset": _unset_variables(entry, ("mcp_servers", index))},
            )
        for agent in declared_agents(fleet):
            for index, selection in enumerate(agent.data.get(TOOLS) or []):
                wanted = selection["tools"]
                yield Resource(
                    address_of(TOOLS, selection["server"], agent.address),
                    TOOLS,
                    selection["server"],
                    {"tools": wanted if wanted == EVERY_TOOL else sorted(set(wanted))},
                    parent=agent.address,
                    depends_on=(server_address(selection["server"]),),
                    source=(*agent.at, TOOLS, index),
                )

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [SERVERS, AGENTS_WITH_TOOLS] if desired else []

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Every `${VAR}` is set, and a tool named in `mcp_tools` is one its server offers, where the server is
        registered already."""
        problems = [problem for resource in desired for problem in resource.state.get("unset") or []]
        if problems or not any(resource.kind == TOOLS for resource in desired):
            return problems
        servers = _servers(reader)
        for resource in desired:
            server = servers.get(resource.name)
            if resource.kind != TOOLS or server is None or resource.attributes["tools"] == EVERY_TOOL:
                continue
            offered = {tool.get("name") for tool in _server_tools(reader, server["id"])}
            for name in resource.attributes["tools"]:
                if name not in offered:
                    problems.append(
                        Problem(
                            (*resource.source, "tools"),
                            f"MCP server '{resource.name}' offers no tool '{name}'",
                            f"it offers: {', '.join(sorted(filter(None, offered))) or 'no tools (is it reachable?)'}",
                        )
                    )
        return problems

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        if not desired:
            return []
        servers = _servers(reader)
        found: list[Resource] = []
        for resource in desired:
            server = servers.get(resource.name)
            if server is None:
                continue
            if resource.kind == SERVER:
                found.append(_live_server(server, reader))
            else:
                found.extend(_live_tools(reader, resource.parent or "", server))
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource]:
        """Recorded selections no longer declared, where the agent still has some of that server's tools."""
        servers = _servers(reader)
        found = []
        for selection in recorded:
            server = servers.get(selection.name)
            for live in _live_tools(reader, selection.parent or "", server) if server else ():
                if live.attributes["tools"]:
                    found.append(live)
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """`tools: all` is the server's tools as Letta lists them now; for a server not yet registered, the
        plan says `all` and apply attaches every tool Letta lists once it is."""
        if desired is not None and live is not None and desired.attributes.get("tools") == EVERY_TOOL:
            offered = sorted(live.state.get("offered") or [])
            return compare(replace(desired, attributes={"tools": offered}), live)
        return compare(desired, live)

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.kind == TOOLS:
            return _apply_tools(change, session)
        if change.action is Action.DELETE:
            raise ApplyError(f"{change.address}: lettafleet never deletes an MCP server")
        after = dict(change.after or {})
        session.client.hide(*_texts({key: after.get(key) for key in SENSITIVE}))
        config = {"mcp_server_type": after.pop("type"), **after}
        if change.action is Action.CREATE:
            answer = session.client.post("/v1/mcp-servers/", json={"server_name": change.name, "config": config})
            session.record_id(change.address, answer["id"])
            return _public(answer)
        answer = session.client.patch(f"/v1/mcp-servers/{change.id}", json={"config": config})
        ignored = sorted(key for key in change.changed_fields() if key in SENSITIVE and answer.get(key) != after[key])
        if ignored:  # Letta 0.16.8 answers 200 to a new auth_token and keeps the old one
            raise ApplyError(
                f"{session.client.base_url} kept the old {', '.join(ignored)} of MCP server {change.name} (it ignores "
                f"a new one): delete the server (DELETE /v1/mcp-servers/{change.id}) and apply again to register it "
                "anew"
            )
        return _public(answer)


def _public(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The server's answer without what it repeats of the sensitive settings."""
    return {key: value for key, value in answer.items() if key not in SENSITIVE}


def _servers(reader: LiveReader) -> dict[str, dict[str, Any]]:
    """The registered MCP servers by name (Letta lists them all in one answer); their secrets are masked from now."""
    path, params = SERVERS
    servers = {str(server.get("server_name")): server for server in reader.get(path, **params) or []}
    for server in servers.values():
        reader.client.hide(*_texts({key: server.get(key) for key in SENSITIVE}))
    return servers


def _server_tools(reader: LiveReader, server_id: str) -> list[dict[str, Any]]:
    return reader.get(f"/v1/mcp-servers/{server_id}/tools") or []


def _live_server(server: Mapping[str, Any], reader: LiveReader) -> Resource:
    values = {
        "type": server.get("mcp_server_type"),
        **{key: server.get(key) for key in SETTINGS if key != "type"},
    }
    name = str(server.get("server_name"))
    return Resource(server_address(name), SERVER, name, values, id=server["id"], sensitive=SENSITIVE)


def _live_tools(reader: LiveReader, agent: str, server: Mapping[str, Any]) -> list[Resource]:
    """The server's tools the agent has attached, as one resource; `state` keeps what the server offers."""
    offered = {tool["id"]: str(tool.get("name")) for tool in _server_tools(reader, server["id"]) if tool.get("id")}
    for name, live in live_agents(reader, AGENTS_WITH_TOOLS).items():
        if agent_address(name) != agent:
            continue
        attached = sorted({offered[tool["id"]] for tool in live.get("tools") or [] if tool.get("id") in offered})
        server_name = str(server.get("server_name"))
        state = {"offered": sorted(offered.values()), "ids": offered, "server_id": server["id"]}
        return [
            Resource(address_of(TOOLS, server_name, agent), TOOLS, server_name, {"tools": attached}, agent, state=state)
        ]
    return []


def _apply_tools(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    """Attach the tools the change adds and detach the ones it takes away, by their ids on the MCP server."""
    agent_id = session.id_of(change.parent or "")
    server_id = change.state.get("server_id") if change.state else None
    server_id = server_id or session.id_of(server_address(change.name))
    ids = {str(tool.get("name")): tool["id"] for tool in session.client.get(f"/v1/mcp-servers/{server_id}/tools") or []}
    before = set((change.before or {}).get("tools") or [])
    wanted = (change.after or {}).get("tools") or []
    after = set(ids) if wanted == EVERY_TOOL else set(wanted)
    missing = sorted(after - set(ids))
    if missing:
        raise ApplyError(f"MCP server '{change.name}' offers no tool {', '.join(missing)}")
    for name in sorted(after - before):
        session.client.patch(f"/v1/agents/{agent_id}/tools/attach/{ids[name]}")
    for name in sorted(before - after):
        if name in ids:
            _detach(session, agent_id, ids[name])
    return None


def _detach(session: ApplySession, agent_id: str, tool_id: str) -> None:
    try:
        session.client.patch(f"/v1/agents/{agent_id}/tools/detach/{tool_id}")
    except LettaAPIError as error:
        if error.status != 404:
            raise
