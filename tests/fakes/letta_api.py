"""A stand-in for the Letta 0.16.8 REST API inside the test process (served through respx), for unit tests of
the resource plugins: agents, blocks, conversations (with isolated copies), tools, secrets and the model lists.

It holds a little state, answers the list reads a plan makes (paginated by `limit`/`after`, filtered as Letta
filters them, with only the relations `include` names) and carries out the writes an apply sends, recording each
one. Answers have the shape Letta 0.16.8 gives (see /work/shared/reference/letta-api-0.16.8.md), built from
the factories below, never from recorded bodies. It is not Letta: it checks only what the tests rely on. One
hosted Letta trait it has, for conversations a test archives (`archive`): the `archived` field and the
`archive_status` filter that leaves them out of lists unless asked.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from lettafleet.core.letta.ownership import RECORD_KEY

BASE_URL = "http://letta.test"
LLM_HANDLES = ("letta/letta-free", "openai/gpt-4o-mini")
EMBEDDING_HANDLES = ("letta/letta-free", "openai/text-embedding-3-small")
# The tools Letta attaches to every new agent besides the ones asked for.
BASE_TOOLS = ("conversation_search", "memory_insert", "memory_replace")
RELATIONS = {"agent.blocks": "blocks", "agent.tags": "tags", "agent.tools": "tools", "agent.secrets": "secrets"}


@dataclass(frozen=True)
class Write:
    """One request that changes something: method, path, query and JSON body, as sent."""

    method: str
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class Refusal:
    """An error the fake answers to the next matching write; `done_anyway` keeps what it would have made."""

    status: int
    detail: str
    done_anyway: bool = False


@dataclass
class FakeLetta:
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    mcp_servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> server, with its tools' ids
    writes: list[Write] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    queries: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)  # each read's path and query
    refusals: dict[tuple[str, str], Refusal] = field(default_factory=dict)
    ignores_isolated_labels: bool = False  # as Letta before 0.16.4 did
    drops_relations: set[str] = field(default_factory=set)  # create-request fields it silently ignores
    version: str | None = None  # what `GET /v1/health/` reports (None: no health endpoint, the version unknown)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        for name in BASE_TOOLS:
            self.add_tool(name, tags=["letta_core"])

    # -- seeding the server's state ----------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}"

    def add_agent(self, name: str, *, blocks: list[dict[str, Any]] = (), managed: bool = True, **fields: Any):
        """An agent as `POST /v1/agents/` would have made it; `fields` are create-request fields."""
        request = {"name": name, "metadata": {"managed_by": "lettafleet"} if managed else {}, **fields}
        request.setdefault("model", LLM_HANDLES[0])
        request.setdefault("embedding", EMBEDDING_HANDLES[0])
        request["block_ids"] = [block["id"] for block in blocks]
        return self._create_agent(request)

    def add_block(self, label: str, value: str = "", **fields: Any) -> dict[str, Any]:
        block = {
            "id": self.new_id("block"),
            "label": label,
            "value": value,
            "limit": 20000,
            "description": None,
            "metadata": {},
            "read_only": False,
            "tags": [],
            **fields,
        }
        self.blocks[block["id"]] = block
        return block

    def add_conversation(
        self, agent: dict[str, Any], summary: str, *, copies: list[str] = (), talked: bool = False
    ) -> dict[str, Any]:
        conversation = self._create_conversation(agent["id"], {"summary": summary, "isolated_block_labels": copies})
        if talked:
            self.talk_in(conversation)
        return conversation

    def talk_in(self, conversation: dict[str, Any]) -> None:
        """A user message and an answer, as `send` leaves them."""
        conversation["last_message_at"] = "2026-11-29T16:40:00Z"
        for kind in ("user_message", "assistant_message"):
            self.messages[conversation["id"]].append({"id": self.new_id("message"), "message_type": kind})

    def archive(self, conversation: dict[str, Any]) -> None:
        """As hosted Letta archives a conversation (0.16.8 cannot): listed only when `archive_status` asks."""
        conversation.update(archived=True, archived_at="2026-11-29T17:00:00Z")

    def detach_block(self, agent: dict[str, Any], block: dict[str, Any]) -> None:
        """As an apply leaves it that stopped between making a block and attaching it."""
        self.agents[agent["id"]]["block_ids"].remove(block["id"])

    def add_tool(self, name: str, source_code: str | None = None, **fields: Any) -> dict[str, Any]:
        tool = {
            "id": self.new_id("tool"),
            "name": name,
            "description": fields.pop("description", f"The {name} tool."),
            "source_type": "python",
            "source_code": source_code,
            "tags": [],
            "tool_type": "custom" if source_code else "letta_core",
            "metadata_": {},
            **fields,
        }
        self.tools[tool["id"]] = tool
        return tool

    def add_mcp_server(self, name: str, tools: list[str], **config: Any) -> dict[str, Any]:
        """A registered MCP server whose tools Letta has stored (as `external_mcp` tools)."""
        tool_ids = [self.add_tool(tool, tool_type="external_mcp")["id"] for tool in tools]
        server = {"id": self.new_id("mcp_server"), "server_name": name, "mcp_server_type": "streamable_http", **config}
        self.mcp_servers[server["id"]] = {**server, "tool_ids": tool_ids}
        return server

    def refuse(self, method: str, path: str, status: int, detail: str, *, done_anyway: bool = False) -> None:
        """Answer the next `method path` write with `status`: Letta refusing, or (done_anyway) half-doing it."""
        self.refusals[(method, path)] = Refusal(status, detail, done_anyway)

    def writes_to(self, method: str, path_start: str = "/v1/") -> list[Write]:
        return [write for write in self.writes if write.method == method and write.path.startswith(path_start)]

    @property
    def record_writes(self) -> list[Write]:
        """The writes that only bring an agent's record of what the fleet made under it up to date."""
        return [write for write in self.writes if _is_record_write(write)]

    @property
    def resource_writes(self) -> list[Write]:
        """Every write but the record writes: what a test of one kind's changes looks at."""
        return [write for write in self.writes if not _is_record_write(write)]

    def agent_named(self, name: str) -> dict[str, Any]:
        [agent] = [agent for agent in self.agents.values() if agent["name"] == name]
        return agent

    def conversations_of(self, agent: dict[str, Any]) -> list[dict[str, Any]]:
        return [c for c in self.conversations.values() if c["agent_id"] == agent["id"]]

    # -- answering requests --------------------------------------------------------------------------------------

    def answer(self, request: httpx.Request) -> httpx.Response:
        """The respx side effect: route one request to the handler of its method and path."""
        method, path = request.method, request.url.path
        params = {key: request.url.params.get_list(key) for key in request.url.params}
        body = json.loads(request.content) if request.content else None
        if method == "GET":
            self.reads.append(path)
            self.queries.append((path, params))
        else:
            self.writes.append(Write(method, path, {k: v[-1] for k, v in params.items()}, body))
        refusal = self.refusals.pop((method, path), None)
        if refusal and not refusal.done_anyway:
            return httpx.Response(refusal.status, json={"detail": refusal.detail})
        for pattern, handler in self._routes().get(method, []):
            found = re.fullmatch(pattern, path)
            if found:
                outcome = handler(*found.groups(), params=params, body=body)
                if refusal:
                    return httpx.Response(refusal.status, json={"detail": refusal.detail})
                return outcome if isinstance(outcome, httpx.Response) else httpx.Response(200, json=outcome)
        return httpx.Response(404, json={"detail": f"no route {method} {path} in the fake"})

    def _routes(self) -> dict[str, list[tuple[str, Callable[..., Any]]]]:
        return {
            "GET": [
                (r"/v1/health/", self._health),
                (r"/v1/models/", lambda **_: [_model(handle) for handle in LLM_HANDLES]),
                (r"/v1/models/embedding", lambda **_: [_embedding_model(handle) for handle in EMBEDDING_HANDLES]),
                (r"/v1/agents/", self._list_agents),
                (r"/v1/agents/count", lambda params, **_: len(self._agents_filtered(params))),
                (r"/v1/agents/([^/]+)/messages", self._list_agent_messages),
                (r"/v1/agents/([^/]+)/core-memory/blocks", self._core_memory),
                (r"/v1/agents/([^/]+)", self._get_agent),
                (r"/v1/blocks/", self._list_blocks),
                (r"/v1/blocks/([^/]+)", self._get_block),
                (r"/v1/blocks/([^/]+)/agents", self._block_agents),
                (r"/v1/conversations/", self._list_conversations),
                (r"/v1/conversations/([^/]+)", self._get_conversation),
                (r"/v1/conversations/([^/]+)/messages", self._list_messages),
                (r"/v1/tools/", lambda params, **_: _page(list(self.tools.values()), params)),
                (r"/v1/mcp-servers/", lambda **_: [_without(s, "tool_ids") for s in self.mcp_servers.values()]),
                (
                    r"/v1/mcp-servers/([^/]+)/tools",
                    lambda server_id, **_: [self.tools[i] for i in self.mcp_servers[server_id]["tool_ids"]],
                ),
            ],
            "POST": [
                (r"/v1/agents/", lambda body, **_: self._create_agent(body)),
                (r"/v1/blocks/", lambda body, **_: self.add_block(**body)),
                (
                    r"/v1/conversations/",
                    lambda params, body, **_: self._create_conversation(params["agent_id"][0], body),
                ),
                (r"/v1/tools/", lambda body, **_: self._create_tool(body)),
            ],
            "PATCH": [
                (r"/v1/agents/([^/]+)", self._update_agent),
                (r"/v1/agents/([^/]+)/core-memory/blocks/attach/([^/]+)", self._attach("block_ids")),
                (r"/v1/agents/([^/]+)/core-memory/blocks/detach/([^/]+)", self._detach_block),
                (r"/v1/agents/([^/]+)/tools/attach/([^/]+)", self._attach("tool_ids")),
                (r"/v1/agents/([^/]+)/tools/detach/([^/]+)", self._detach_tool),
                (r"/v1/blocks/([^/]+)", self._update("blocks")),
                (r"/v1/tools/([^/]+)", self._update("tools")),
                (r"/v1/mcp-servers/([^/]+)", self._update_mcp_server),
            ],
            "DELETE": [
                (r"/v1/conversations/([^/]+)", self._delete_conversation),
                (r"/v1/agents/([^/]+)", self._delete_agent),
                (r"/v1/blocks/([^/]+)", self._delete_block),
                (r"/v1/tools/([^/]+)", self._delete_tool),
            ],
        }

    # agents

    def _create_agent(self, request: dict[str, Any]) -> dict[str, Any]:
        request = {key: value for key, value in request.items() if key not in self.drops_relations}
        base = [tool["id"] for tool in self.tools.values() if tool["name"] in BASE_TOOLS]
        agent = {
            "id": self.new_id("agent"),
            "name": request["name"],
            "description": request.get("description"),
            "system": request.get("system", ""),
            "tags": list(request.get("tags") or []),
            "metadata": request.get("metadata") or {},
            "block_ids": [*(request.get("block_ids") or []), *self._inline_blocks(request)],
            "tool_ids": [*base, *(request.get("tool_ids") or [])],
            "secrets": dict(request.get("secrets") or {}),
            "agent_type": "letta_v1_agent",
            "created_at": "2026-11-29T16:31:31Z",
        }
        self._configure(agent, request)
        self.agents[agent["id"]] = agent
        # Its own history (`conversation_id=default`), which the agent's id keys: a system message, as Letta's.
        self.messages[agent["id"]] = [{"id": self.new_id("message"), "message_type": "system_message"}]
        return self._shown(agent)

    def _inline_blocks(self, request: dict[str, Any]) -> list[str]:
        """The ids of the blocks made from a create request's `memory_blocks`: as Letta 0.16.8 makes them, with
        label, value, description, limit (100,000 unless given) and tags, and without the metadata sent."""
        made = []
        for fields in request.get("memory_blocks") or []:
            kept = {key: fields[key] for key in ("description", "limit", "tags") if key in fields}
            made.append(self.add_block(fields["label"], fields.get("value") or "", **{"limit": 100_000, **kept})["id"])
        return made

    def _configure(self, agent: dict[str, Any], request: dict[str, Any]) -> None:
        """The model and embedding fields of a create or update request, as Letta stores them."""
        if "model" in request:
            agent["llm_config"] = {**_llm_config(request["model"]), "context_window": 30000}
        if "llm_config" in request:
            agent["llm_config"] = {**agent.get("llm_config", {}), **request["llm_config"], "handle": None}
        if "context_window_limit" in request:
            agent["llm_config"]["context_window"] = request["context_window_limit"]
        if "embedding" in request:
            agent["embedding_config"] = _embedding_config(request["embedding"])
        if "embedding_config" in request:
            agent["embedding_config"] = {**request["embedding_config"], "handle": None}
        agent["model"] = agent.setdefault("llm_config", {}).get("handle")
        agent["embedding"] = agent.setdefault("embedding_config", {}).get("handle")

    def _shown(self, agent: dict[str, Any], include: list[str] | None = None) -> dict[str, Any]:
        """An agent as Letta answers it: with every relation, or only those `include` names."""
        relations = {  # Letta shows an agent's blocks without their tags (its core-memory/blocks has them)
            "blocks": [{**block, "tags": []} for block in self._blocks_of(agent)],
            "tags": agent["tags"],
            "tools": [self.tools[tool_id] for tool_id in agent["tool_ids"]],
            "secrets": [
                {"id": self.new_id("agent-env"), "key": key, "value": value, "agent_id": agent["id"]}
                for key, value in agent["secrets"].items()
            ],
        }
        named = {RELATIONS[relation] for relation in include or []}
        shown = {key: value for key, value in agent.items() if key not in ("block_ids", "tool_ids", "secrets")}
        for relation, value in relations.items():
            shown[relation] = value if not include or relation in named else []
        return shown

    def _blocks_of(self, agent: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.blocks[block_id] for block_id in agent["block_ids"] if block_id in self.blocks]

    def _core_memory(self, agent_id: str, **_: Any) -> Any:
        if agent_id not in self.agents:
            return httpx.Response(404, json={"detail": f"Agent with id '{agent_id}' not found"})
        return self._blocks_of(self.agents[agent_id])

    def _list_agents(self, params: dict[str, list[str]], **_: Any) -> list[dict[str, Any]]:
        shown = [self._shown(agent, params.get("include")) for agent in self._agents_filtered(params)]
        return _page(shown, params)

    def _health(self, **_: Any) -> Any:
        if self.version is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        return {"version": self.version, "status": "ok"}

    def _agents_filtered(self, params: dict[str, list[str]]) -> list[dict[str, Any]]:
        """The agents `name`, `query_text` and `tags` select, as Letta 0.16.8 filters them: `query_text` anywhere in
        the name whatever the case, any of the tags (all with match_all_tags)."""
        names, tags = params.get("name"), set(params.get("tags") or [])
        within = (params.get("query_text") or [""])[0].lower()
        every = (params.get("match_all_tags") or ["false"])[0] == "true"
        return [
            agent
            for agent in self.agents.values()
            if (not names or agent["name"] == names[0])
            and within in agent["name"].lower()
            and (not tags or (tags <= set(agent["tags"]) if every else bool(tags & set(agent["tags"]))))
        ]

    def _get_agent(self, agent_id: str, params: dict[str, list[str]], **_: Any) -> Any:
        if agent_id not in self.agents:
            return httpx.Response(404, json={"detail": f"Agent with id '{agent_id}' not found"})
        return self._shown(self.agents[agent_id], params.get("include"))

    def _update_agent(self, agent_id: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        agent = self.agents[agent_id]
        for key in ("description", "system", "tags", "metadata"):  # metadata: the whole mapping, as Letta stores it
            if key in body:
                agent[key] = body[key]
        if "secrets" in body:
            agent["secrets"] = dict(body["secrets"])  # the whole set: what is not named is gone
        self._configure(agent, body)
        return self._shown(agent)

    def _delete_agent(self, agent_id: str, **_: Any) -> Any:
        """Letta deletes the agent's conversations with it, but none of its blocks (nor the conversations' copies)."""
        if self.agents.pop(agent_id, None) is None:
            return httpx.Response(404, json={"detail": f"Agent with id '{agent_id}' not found"})
        for conversation_id in [c for c, found in self.conversations.items() if found["agent_id"] == agent_id]:
            del self.conversations[conversation_id]
        return None

    def _attach(self, relation: str) -> Callable[..., dict[str, Any]]:
        def attach(agent_id: str, item_id: str, **_: Any) -> dict[str, Any]:
            agent = self.agents[agent_id]
            if item_id not in agent[relation]:
                agent[relation].append(item_id)
            return self._shown(agent)

        return attach

    def _detach_tool(self, agent_id: str, tool_id: str, **_: Any) -> Any:
        if agent_id not in self.agents or tool_id not in self.tools:
            return httpx.Response(404, json={"detail": f"Agent '{agent_id}' or tool '{tool_id}' not found"})
        agent = self.agents[agent_id]
        agent["tool_ids"] = [attached for attached in agent["tool_ids"] if attached != tool_id]
        return self._shown(agent)

    # blocks and tools

    def _list_blocks(self, params: dict[str, list[str]], **_: Any) -> list[dict[str, Any]]:
        label = (params.get("label") or [None])[0]
        return _page([block for block in self.blocks.values() if label in (None, block["label"])], params)

    def _get_block(self, block_id: str, **_: Any) -> Any:
        if block_id not in self.blocks:
            return httpx.Response(404, json={"detail": f"Block with id '{block_id}' not found"})
        return self.blocks[block_id]

    def _block_agents(self, block_id: str, params: dict[str, list[str]], **_: Any) -> list[dict[str, Any]]:
        holding = [agent for agent in self.agents.values() if block_id in agent["block_ids"]]
        return [self._shown(agent, params.get("include")) for agent in holding]

    def _detach_block(self, agent_id: str, block_id: str, **_: Any) -> Any:
        """Letta answers 404 for a block that is not attached to the agent (or does not exist)."""
        agent = self.agents[agent_id]
        if block_id not in agent["block_ids"]:
            return httpx.Response(404, json={"detail": f"No block with id '{block_id}' found for agent '{agent_id}'"})
        agent["block_ids"].remove(block_id)
        return self._shown(agent)

    def _delete_block(self, block_id: str, **_: Any) -> Any:
        """Letta deletes the block and detaches it from every agent; a second delete answers 404."""
        if self.blocks.pop(block_id, None) is None:
            return httpx.Response(404, json={"detail": f"Block not found with id='{block_id}'"})
        for agent in self.agents.values():
            if block_id in agent["block_ids"]:
                agent["block_ids"].remove(block_id)
        return None

    def _update(self, collection: str) -> Callable[..., dict[str, Any]]:
        def update(item_id: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
            getattr(self, collection)[item_id].update(body)
            return getattr(self, collection)[item_id]

        return update

    def _update_mcp_server(self, server_id: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        """As Letta 0.16.8 does (found on the dev server): the URL and header name change, the auth token
        does not, and the answer says so."""
        server = self.mcp_servers[server_id]
        server.update({key: value for key, value in body["config"].items() if key != "auth_token"})
        return _without(server, "tool_ids")

    def _create_tool(self, body: dict[str, Any]) -> dict[str, Any]:
        """Letta names a tool after the last function in its source."""
        functions = [node for node in ast.parse(body["source_code"]).body if isinstance(node, ast.FunctionDef)]
        return self.add_tool(functions[-1].name, **body)

    def _delete_tool(self, tool_id: str, **_: Any) -> Any:
        """Letta detaches a deleted tool from every agent that has it."""
        if self.tools.pop(tool_id, None) is None:
            return httpx.Response(404, json={"detail": f"Tool with id '{tool_id}' not found"})
        for agent in self.agents.values():
            agent["tool_ids"] = [attached for attached in agent["tool_ids"] if attached != tool_id]
        return None

    # conversations

    def _create_conversation(self, agent_id: str, body: dict[str, Any] | None) -> dict[str, Any]:
        body = body or {}
        labels = [] if self.ignores_isolated_labels else body.get("isolated_block_labels") or []
        own = {self.blocks[block_id]["label"]: self.blocks[block_id] for block_id in self.agents[agent_id]["block_ids"]}
        copies = [self.add_block(**_without_id(own[label])) for label in labels if label in own]
        conversation = {
            "id": self.new_id("conv"),
            "agent_id": agent_id,
            "summary": body.get("summary"),
            "in_context_message_ids": [],
            "isolated_block_ids": [copy["id"] for copy in copies],
            "model": None,
            "last_message_at": None,
            "created_at": "2026-11-29T16:31:31Z",
        }
        self.conversations[conversation["id"]] = conversation
        self.messages[conversation["id"]] = [{"id": self.new_id("message"), "message_type": "system_message"}]
        missing = [label for label in labels if label not in own]
        if missing:  # Letta keeps the conversation, without the copy it could not make
            detail = f"INVALID_ARGUMENT: Block with label '{missing[0]}' not found on agent '{agent_id}'"
            return httpx.Response(400, json={"detail": detail})
        return conversation

    def _list_conversations(self, params: dict[str, list[str]], **_: Any) -> list[dict[str, Any]]:
        agent_id = (params.get("agent_id") or [None])[0]
        search = (params.get("summary_search") or [""])[0]
        # Hosted Letta's filter: archived conversations are left out unless asked for.
        shown = {"all": (False, True), "archived": (True,)}.get((params.get("archive_status") or [""])[0], (False,))
        found = [
            conversation
            for conversation in self.conversations.values()
            if agent_id in (None, conversation["agent_id"])
            and search in (conversation["summary"] or "")
            and bool(conversation.get("archived")) in shown
        ]
        return _page(found, params)

    def _get_conversation(self, conversation_id: str, **_: Any) -> Any:
        return self.conversations.get(conversation_id) or _no_conversation(conversation_id)

    def _list_messages(self, conversation_id: str, params: dict[str, list[str]], **_: Any) -> Any:
        if conversation_id not in self.conversations:
            return _no_conversation(conversation_id)
        return self.messages[conversation_id][: int(params.get("limit", ["100"])[0])]

    def _list_agent_messages(self, agent_id: str, params: dict[str, list[str]], **_: Any) -> Any:
        """An agent's own history (the legacy one, outside conversations), which the agent's id keys."""
        if agent_id not in self.agents:
            return httpx.Response(404, json={"detail": f"Agent with id '{agent_id}' not found"})
        return self.messages[agent_id][: int(params.get("limit", ["100"])[0])]

    def _delete_conversation(self, conversation_id: str, **_: Any) -> Any:
        """Letta deletes a conversation's isolated copies with it (and its messages: gone from every read)."""
        if conversation_id not in self.conversations:
            return _no_conversation(conversation_id)
        for block_id in self.conversations.pop(conversation_id)["isolated_block_ids"]:
            self.blocks.pop(block_id, None)
        return None


def _no_conversation(conversation_id: str) -> httpx.Response:
    return httpx.Response(404, json={"detail": f"Conversation with id '{conversation_id}' not found"})


def _without_id(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "id"}


def _page(items: list[dict[str, Any]], params: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One page of a list, oldest first (newest first with `order=desc`): the items after the `after` cursor, at
    most `limit` of them."""
    if (params.get("order") or ["asc"])[0] == "desc":
        items = items[::-1]
    after = (params.get("after") or [None])[0]
    ids = [item["id"] for item in items]
    start = ids.index(after) + 1 if after in ids else 0
    return items[start : start + int((params.get("limit") or ["50"])[0])]


def _model(handle: str) -> dict[str, Any]:
    return {**_llm_config(handle), "model_type": "llm", "name": handle.split("/")[1]}


def _llm_config(handle: str) -> dict[str, Any]:
    provider, model = handle.split("/")
    return {
        "handle": handle,
        "model": model,
        "model_endpoint_type": "openai",
        "model_endpoint": "https://inference.letta.com/v1/" if provider == "letta" else "https://api.openai.com/v1",
        "provider_name": provider,
        "context_window": 30000,
        "put_inner_thoughts_in_kwargs": False,
        "temperature": 1.0,
        "max_tokens": 4096,
    }


def _embedding_model(handle: str) -> dict[str, Any]:
    return {**_embedding_config(handle), "model_type": "embedding", "name": handle.split("/")[1]}


def _embedding_config(handle: str) -> dict[str, Any]:
    return {
        "handle": handle,
        "embedding_endpoint_type": "openai",
        "embedding_endpoint": "https://inference.letta.com/v1/",
        "embedding_model": handle.split("/")[1],
        "embedding_dim": 1536,
        "embedding_chunk_size": 300,
    }


def _is_record_write(write: Write) -> bool:
    body = write.body if isinstance(write.body, dict) else {}
    return (
        write.method == "PATCH"
        and write.path.startswith("/v1/agents/")
        and set(body) == {"metadata"}
        and RECORD_KEY in (body["metadata"] or {})
    )


def _without(item: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name != key}
