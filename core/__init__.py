"""lettafleet core: fleet files, plans, the plugin manager, the Letta client and the CLI.

This module is the public API: plugin authors import from here (and, for kinds nested under agents, from the
agents plugin, `lettafleet.plugins.resources.agents`). `hookimpl` marks hook implementations; `ResourceHandler` is
what a kind's plugin subclasses; the rest are the values handlers take and return, the Letta client and the
fleet-wide reads of Letta's collections, and what command plugins share (server options, error reporting,
printing). Core knows no resource kind; every kind comes from a plugin.

The command-line helpers load on first use, so that importing the engine loads no click or rich.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lettafleet.core.cli.private_files import write_private_text
from lettafleet.core.engine.adopting import Adoption, adoptions, mark_adopted
from lettafleet.core.engine.applying import ApplyReport, ApplySession, ChangeResult, StopSignal, apply_plan
from lettafleet.core.engine.backends import (
    Backend,
    BackendError,
    Capabilities,
    ConversationRecompile,
    Lacks,
    NoEffect,
    Recompiler,
    ServerSettings,
)
from lettafleet.core.engine.capabilities import backend_problems
from lettafleet.core.engine.context_budget import (
    DEFAULT_CONTEXT_THRESHOLD,
    ContextUse,
    estimated_tokens,
    with_context_warnings,
)
from lettafleet.core.engine.diagnostics import FleetError, Note, Problem
from lettafleet.core.engine.exporting import Exported, ExportedFleet, ExportError, export_fleet, exported_text_source
from lettafleet.core.engine.files import MAX_REFERENCED_FILE_BYTES, UnreadableFile
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.handlers import ApplyError, ResourceHandler, RideAlongCheck, created_with
from lettafleet.core.engine.kinds import (
    PlanOption,
    PluginCommand,
    ResourceKind,
    SchemaFragment,
    boolean,
    from_bucket,
    integer,
    mapping_list,
    not_supported_yet,
    refused,
    secret,
    string,
    string_list,
    text_source,
)
from lettafleet.core.engine.live import AgentScope, LiveReader, PlainReads, PlanReads, Read
from lettafleet.core.engine.locking import (
    FleetLock,
    HeldLock,
    LockError,
    LockRecord,
    LockStore,
    default_lock_id,
    held_lock,
    lock_store,
)
from lettafleet.core.engine.model import Action, Ambiguity, Change, Plan, Resource, address_of, attributes, compare
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.plugin_manager import FleetPlugins, PluginError, get_plugin_manager, resource_kinds
from lettafleet.core.engine.validation import load_fleet
from lettafleet.core.hookspecs import hookimpl
from lettafleet.core.letta.connection import Connection, LettaAPIError, LettaError, refuse_credential_in_the_clear
from lettafleet.core.letta.masking import SecretMasker, public_url
from lettafleet.core.letta.ownership import (
    FLEET_TAG,
    MANAGED_BY,
    MANAGED_TAG,
    MARK_PREFIX,
    PROTECT_KEY,
    Owner,
    Recorded,
    fleet_of,
    fleet_tagged,
    is_managed,
    is_ownership_tag,
    is_tagged_managed,
    managed_metadata,
    owner_named,
    read_record,
    with_record,
)
from lettafleet.core.letta.retries import RetryPolicy
from lettafleet.core.letta.server import ServerInfo
from lettafleet.core.render.json import render_apply_json, render_plan_json
from lettafleet.core.render.markdown import (
    COMMENT_BUDGET,
    COMMENT_LIMIT,
    SUMMARY_BUDGET,
    code_block,
    escape_markdown,
    inline_code,
    render_plan_markdown,
    summary_line,
)
from lettafleet.core.render.text import applied_line, render_plan, render_report, result_line

if TYPE_CHECKING:
    from lettafleet.core.cli.export_files import PendingWrite, appended_export, write_export
    from lettafleet.core.cli.interrupts import INTERRUPTED_EXIT, EitherStop, Stopping, ctrl_c_stops, exit_code
    from lettafleet.core.cli.locks import release_at_once
    from lettafleet.core.cli.options import (
        Duration,
        context_threshold_option,
        make_client,
        reports_errors,
        server_options,
    )
    from lettafleet.core.cli.output import (
        PREVIEW_WIDTH,
        Column,
        output_option,
        preview,
        print_fields,
        print_records,
        print_table,
        short_date,
        to_yaml,
    )

# For command plugins: where each name is defined, imported when a plugin first asks for it.
_COMMAND_LINE = {
    "lettafleet.core.cli.export_files": ("PendingWrite", "appended_export", "write_export"),
    "lettafleet.core.cli.interrupts": ("INTERRUPTED_EXIT", "EitherStop", "Stopping", "ctrl_c_stops", "exit_code"),
    "lettafleet.core.cli.locks": ("release_at_once",),
    "lettafleet.core.cli.options": (
        "Duration",
        "context_threshold_option",
        "make_client",
        "reports_errors",
        "server_options",
    ),
    "lettafleet.core.cli.output": (
        "PREVIEW_WIDTH",
        "Column",
        "output_option",
        "preview",
        "print_fields",
        "print_records",
        "print_table",
        "short_date",
        "to_yaml",
    ),
}
_LAZY = {name: module for module, names in _COMMAND_LINE.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # looked up once
    return value


__all__ = [
    "COMMENT_BUDGET",
    "COMMENT_LIMIT",
    "DEFAULT_CONTEXT_THRESHOLD",
    "FLEET_TAG",
    "INTERRUPTED_EXIT",
    "MANAGED_BY",
    "MANAGED_TAG",
    "MARK_PREFIX",
    "MAX_REFERENCED_FILE_BYTES",
    "PREVIEW_WIDTH",
    "PROTECT_KEY",
    "SUMMARY_BUDGET",
    "Action",
    "Adoption",
    "AgentScope",
    "Ambiguity",
    "ApplyError",
    "ApplyReport",
    "ApplySession",
    "Backend",
    "BackendError",
    "Capabilities",
    "Change",
    "ChangeResult",
    "Column",
    "Connection",
    "ContextUse",
    "ConversationRecompile",
    "Duration",
    "EitherStop",
    "ExportError",
    "Exported",
    "ExportedFleet",
    "Fleet",
    "FleetError",
    "FleetLock",
    "FleetPlugins",
    "HeldLock",
    "Lacks",
    "LettaAPIError",
    "LettaError",
    "LiveReader",
    "LockError",
    "LockRecord",
    "LockStore",
    "NoEffect",
    "Note",
    "Owner",
    "PendingWrite",
    "PlainReads",
    "Plan",
    "PlanOption",
    "PlanReads",
    "PluginCommand",
    "PluginError",
    "Problem",
    "Read",
    "Recompiler",
    "Recorded",
    "Resource",
    "ResourceHandler",
    "ResourceKind",
    "RetryPolicy",
    "RideAlongCheck",
    "SchemaFragment",
    "SecretMasker",
    "ServerInfo",
    "ServerSettings",
    "StopSignal",
    "Stopping",
    "UnreadableFile",
    "address_of",
    "adoptions",
    "appended_export",
    "applied_line",
    "apply_plan",
    "attributes",
    "backend_problems",
    "boolean",
    "code_block",
    "compare",
    "context_threshold_option",
    "created_with",
    "ctrl_c_stops",
    "default_lock_id",
    "escape_markdown",
    "estimated_tokens",
    "exit_code",
    "export_fleet",
    "exported_text_source",
    "fleet_of",
    "fleet_tagged",
    "from_bucket",
    "get_plugin_manager",
    "held_lock",
    "hookimpl",
    "inline_code",
    "integer",
    "is_managed",
    "is_ownership_tag",
    "is_tagged_managed",
    "load_fleet",
    "lock_store",
    "make_client",
    "managed_metadata",
    "mapping_list",
    "mark_adopted",
    "not_supported_yet",
    "output_option",
    "owner_named",
    "plan_fleet",
    "preview",
    "print_fields",
    "print_records",
    "print_table",
    "public_url",
    "read_record",
    "refuse_credential_in_the_clear",
    "refused",
    "release_at_once",
    "render_apply_json",
    "render_plan",
    "render_plan_json",
    "render_plan_markdown",
    "render_report",
    "reports_errors",
    "resource_kinds",
    "result_line",
    "secret",
    "server_options",
    "short_date",
    "string",
    "string_list",
    "summary_line",
    "text_source",
    "to_yaml",
    "with_context_warnings",
    "with_record",
    "write_export",
    "write_private_text",
]
