"""The App Server backend as core sees it: the ws:// and wss:// URLs it claims and its capability table, what a
fleet may declare there and what it may not (docs/app-server.md), its client and the handlers of its kinds."""

from __future__ import annotations

from collections.abc import Iterable

from lettafleet.core import (
    Backend,
    Capabilities,
    Connection,
    Lacks,
    NoEffect,
    ServerSettings,
    hookimpl,
)
from lettafleet.plugins.backends.app_server.agents import AppServerAgentHandler
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.conversations import AppServerConversationHandler
from lettafleet.plugins.backends.app_server.fleet_connection import AppServerConnection
from lettafleet.plugins.backends.app_server.locks import AppServerLocks
from lettafleet.plugins.backends.app_server.memfs import AppServerMemfsHandler, AppServerMemorySwitch
from lettafleet.plugins.backends.app_server.memory_files import BLOCK, MemoryFileHandler
from lettafleet.plugins.backends.app_server.secrets import AppServerSecretHandler
from lettafleet.plugins.backends.app_server.shared_files import ATTACHMENT, SHARED, SharedFileHandler
from lettafleet.plugins.backends.app_server.skills import NOTHING_TO_REPROJECT, NoSkillProjection
from lettafleet.plugins.backends.app_server.tool_choice import NO_TOOL_CHOICE
from lettafleet.plugins.resources.agents import AGENT
from lettafleet.plugins.resources.conversations import CONVERSATION
from lettafleet.plugins.resources.memfs import MEMORY_FILE, MEMORY_MODE
from lettafleet.plugins.resources.memfs_skills import SKILL_PROJECTION
from lettafleet.plugins.resources.secrets import KIND as SECRET

NAME = "Letta App Server"

ISOLATE = (
    "one agent per conversation is the way to isolate: give the conversation that needs blocks of its own an agent "
    "of its own, or remove `isolated_blocks`"
)
NO_FOLDERS = Lacks("has no folders", "remove `folders` and `shared_folders`, or put the files' text in memory blocks")
LACKS_KINDS = {
    "isolated_block": Lacks("has no isolated blocks: all conversations of an agent share its memory", ISOLATE),
    "tool": Lacks(
        "cannot define tools from source: its agents run the tools of Letta Code",
        "remove the tool's `source_code`/`from_file` (and the entry), or keep this agent on a V1 server",
        when_set="source_code",
    ),
    "tool_attachment": NO_TOOL_CHOICE,
    "folder": NO_FOLDERS,
    "folder_attachment": NO_FOLDERS,
    "archive": Lacks("has no archives", "remove `archives`, or keep this agent on a V1 server"),
    "archive_attachment": Lacks("has no archives", "remove the agent's `archives`, or keep it on a V1 server"),
    "mcp_server": Lacks("cannot register MCP servers over its protocol", "remove `mcp_servers`"),
    "mcp_tools": Lacks("cannot register MCP servers over its protocol", "remove the agent's `mcp_tools`"),
}
# Not a key lettafleet reads today (validate refuses it as unknown); listed so that a plugin adding it is refused.
LACKS_KEYS = {"agents.identities": Lacks("has no identities", "remove `identities`")}
NO_EMBEDDINGS = NoEffect("it keeps no embeddings (memory is files)", "the key is accepted so a lettactl file applies")
NO_EFFECT_KEYS = {
    "agents.embedding": NO_EMBEDDINGS,
    "agents.embedding_config": NO_EMBEDDINGS,
    "agents.include_base_tools": NoEffect("its agents have Letta Code's tools", "the key is accepted and ignored"),
    "agents.reasoning": NoEffect("the model's settings decide", "the key is accepted and ignored"),
}
NO_EFFECT_KINDS = {SKILL_PROJECTION: NOTHING_TO_REPROJECT}
CAPABILITIES = Capabilities(LACKS_KINDS, LACKS_KEYS, NO_EFFECT_KEYS, NO_EFFECT_KINDS)


def connect(settings: ServerSettings) -> Connection:
    """The App Server's client for the server the settings name: one WebSocket, opened here (a server that is not
    there is a LettaError saying so)."""
    return AppServerConnection(AppServerClient(settings.base_url, allow_insecure=settings.allow_insecure_http))


# The kinds this backend plans, each with its own handler: no V1 handler ever sees an App Server connection.
SHARED_FILES = SharedFileHandler()  # one handler for both kinds: a shared block is its copies here
MEMORY_FILES = MemoryFileHandler()
MEMFS = AppServerMemfsHandler()
HANDLERS = {
    AGENT: AppServerAgentHandler(ahead=(MEMORY_FILES, SHARED_FILES, MEMFS)),
    BLOCK: MEMORY_FILES,
    SHARED: SHARED_FILES,
    ATTACHMENT: SHARED_FILES,
    SECRET: AppServerSecretHandler(),
    CONVERSATION: AppServerConversationHandler(),
    MEMORY_FILE: MEMFS,
    MEMORY_MODE: AppServerMemorySwitch(),
    SKILL_PROJECTION: NoSkillProjection(),
}


@hookimpl
def lettafleet_backends() -> Iterable[Backend]:
    return [Backend(NAME, ("ws", "wss"), connect, CAPABILITIES, handlers=HANDLERS, locks=AppServerLocks)]
