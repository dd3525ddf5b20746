"""lettafleet core: fleet files, plans, the plugin manager, the Letta client and the CLI.

Plugin authors import from here (and only from here): `hookimpl` to mark hook implementations, and the
types the hooks take and return. Core knows no resource kind; every kind comes from a plugin.
"""

from lettafleet.core.cli.options import make_client, reports_errors, server_options
from lettafleet.core.engine.applying import ApplyError, ApplySession
from lettafleet.core.engine.diagnostics import Problem
from lettafleet.core.engine.files import MAX_REFERENCED_FILE_BYTES, UnreadableFile
from lettafleet.core.engine.fleet import Fleet
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
from lettafleet.core.engine.model import Action, Ambiguity, Change, Resource, address_of
from lettafleet.core.engine.planning import attributes, compare
from lettafleet.core.hookspecs import hookimpl
from lettafleet.core.letta.client import LettaAPIError, LettaClient, LettaError
from lettafleet.core.letta.masking import SecretMasker, public_url

__all__ = [
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
    "Resource",
    "ResourceKind",
    "SchemaFragment",
    "SecretMasker",
    "UnreadableFile",
    "address_of",
    "attributes",
    "boolean",
    "compare",
    "hookimpl",
    "integer",
    "make_client",
    "mapping_list",
    "public_url",
    "reports_errors",
    "server_options",
    "string",
    "string_list",
    "text_source",
]
