"""lettafleet core: fleet files, plans, the plugin manager, the Letta client and the CLI.

Plugin authors import from here (and only from here): `hookimpl` to mark hook implementations, and the
types the hooks take and return. Core knows no resource kind; every kind comes from a plugin.
"""

from lettafleet.core.applying import ApplyError, ApplySession
from lettafleet.core.client import LettaAPIError, LettaClient, LettaError
from lettafleet.core.command_options import make_client, reports_errors, server_options
from lettafleet.core.diagnostics import Problem
from lettafleet.core.files import MAX_REFERENCED_FILE_BYTES, UnreadableFile
from lettafleet.core.fleet import Fleet
from lettafleet.core.hookspecs import hookimpl
from lettafleet.core.kinds import (
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
from lettafleet.core.live import LiveReader
from lettafleet.core.masking import SecretMasker, public_url
from lettafleet.core.model import Action, Ambiguity, Change, Resource, address_of
from lettafleet.core.planning import attributes, compare

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
