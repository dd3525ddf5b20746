"""lettafleet core: fleet files, plans, the plugin manager, the Letta client and the CLI.

This module is the public API: plugin authors import from here (and, for kinds nested under agents, from the
agents plugin, `lettafleet.plugins.resources.agents`). `hookimpl` marks hook implementations; `ResourceHandler` is
what a kind's plugin subclasses; the rest are the values handlers take and return, the Letta client and the
fleet-wide reads of Letta's collections. Core knows no resource kind; every kind comes from a plugin.
"""

from lettafleet.core.cli.options import make_client, reports_errors, server_options
from lettafleet.core.engine.applying import ApplySession
from lettafleet.core.engine.diagnostics import Problem
from lettafleet.core.engine.files import MAX_REFERENCED_FILE_BYTES, UnreadableFile
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.handlers import ApplyError, Read, ResourceHandler, RideAlongCheck, created_with
from lettafleet.core.engine.kinds import (
    PluginCommand,
    ResourceKind,
    SchemaFragment,
    boolean,
    integer,
    mapping_list,
    string,
    string_list,
    text_source,
)
from lettafleet.core.engine.live import LiveReader
from lettafleet.core.engine.model import Action, Ambiguity, Change, Resource, address_of, attributes, compare
from lettafleet.core.hookspecs import hookimpl
from lettafleet.core.letta.client import LettaAPIError, LettaClient, LettaError
from lettafleet.core.letta.masking import SecretMasker, public_url
from lettafleet.core.letta.ownership import MANAGED_BY, is_managed, managed_metadata
from lettafleet.core.letta.reads import (
    AGENT_RELATIONS,
    AGENTS,
    AGENTS_WITH_SECRETS,
    AGENTS_WITH_TOOLS,
    CONVERSATIONS,
    blocks_labelled,
    conversations_by_agent,
    has_messages,
    labelled,
)

__all__ = [
    "AGENTS",
    "AGENTS_WITH_SECRETS",
    "AGENTS_WITH_TOOLS",
    "AGENT_RELATIONS",
    "CONVERSATIONS",
    "MANAGED_BY",
    "MAX_REFERENCED_FILE_BYTES",
    "Action",
    "Ambiguity",
    "ApplyError",
    "ApplySession",
    "Change",
    "Fleet",
    "LettaAPIError",
    "LettaClient",
    "LettaError",
    "LiveReader",
    "PluginCommand",
    "Problem",
    "Read",
    "Resource",
    "ResourceHandler",
    "ResourceKind",
    "RideAlongCheck",
    "SchemaFragment",
    "SecretMasker",
    "UnreadableFile",
    "address_of",
    "attributes",
    "blocks_labelled",
    "boolean",
    "compare",
    "conversations_by_agent",
    "created_with",
    "has_messages",
    "hookimpl",
    "integer",
    "is_managed",
    "labelled",
    "make_client",
    "managed_metadata",
    "mapping_list",
    "public_url",
    "reports_errors",
    "server_options",
    "string",
    "string_list",
    "text_source",
]
