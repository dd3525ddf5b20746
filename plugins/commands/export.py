"""`lettafleet export`: a fleet file (and its `from_file` files) written from agents that exist on a server,
chosen by name, glob or tag, that plans "No changes" when applied at once.

It is a command plugin rather than a core command because choosing agents by name follows the agents plugin's one
rule for several agents of one name (`agents_named`), and core never imports a plugin."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import rich_click as click

from lettafleet.core import (
    Backend,
    BackendError,
    ExportedFleet,
    ExportError,
    FleetPlugins,
    LiveReader,
    PluginCommand,
    export_fleet,
    get_plugin_manager,
    hookimpl,
    make_client,
    reports_errors,
    server_options,
    to_yaml,
    write_export,
)
from lettafleet.plugins.commands.export_fit import fitted_for
from lettafleet.plugins.resources.agents import agents_by_name_on
from lettafleet.plugins.resources.conversations import CONVERSATION

SHOWN_NAMES = 10  # names listed when nothing matched
# Kinds `import` leaves out: applications make them at runtime, and a declared one is managed. (`export` leaves
# out only those no record lists, unless asked for with --conversations.)
RUNTIME_KINDS = (CONVERSATION,)


@click.command(name="export")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--tags",
    metavar="TAG[,TAG]",
    multiple=True,
    help="Only agents carrying every one of these tags (comma-separated, repeatable). With NAMEs: both must match.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    help="Write the fleet file here, and the files it refers to (prompts/, blocks/, tools/) beside it. Default: "
    "print the YAML (only when it needs no file beside it).",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist already (otherwise nothing is written).")
@click.option(
    "--conversations",
    is_flag=True,
    help="Also export each agent's conversations made at runtime that have a summary (with their isolated blocks); "
    "those a fleet declared are always exported. Applying the file then manages them: a conversation later removed "
    "from it is deleted (with its messages on --prune).",
)
@click.option(
    "--for",
    "for_url",
    metavar="URL",
    help="Fit the file to the server at URL (e.g. ws://127.0.0.1:4617, an App Server): leave out what its backend "
    "cannot hold or ignores, saying each entry and why. Nothing is read from URL: its scheme names the backend.",
)
@server_options
@reports_errors
def export(
    names: tuple[str, ...],
    tags: tuple[str, ...],
    out: Path | None,
    force: bool,
    conversations: bool,
    for_url: str | None,
    base_url: str,
) -> None:
    """Write a fleet file from agents on the server, so that `lettafleet apply -f FILE` at once plans "No changes".

    Choose agents by NAME (globs such as 'support-*' allowed; '*' for every agent) and/or --tags. Exported: each
    agent's description, system prompt, model, embedding, tags, memory blocks (lettafleet's shared blocks as shared
    blocks), tools (custom tools as tools/NAME.py) and secrets, by name only: `from_env: NAME` with
    `preserve_existing: true`, never a value. Long texts go to prompts/AGENT.md and blocks/AGENT/LABEL.md.
    Conversations a fleet declared always; the others only with --conversations (most are made at runtime; a
    declared one is managed). Agents of a named fleet export its `fleet:` name; agents of several fleets are refused.
    """
    wanted = wanted_tags(tags)
    if not names and not wanted:
        raise ExportError("name the agents to export (globs allowed, '*' for every agent), or give --tags")
    manager = get_plugin_manager()
    target = _target_backend(manager, for_url) if for_url else None  # a mistyped URL fails before any read
    backend = manager.backend_for(base_url)
    serving = manager.serving(backend)  # each kind read by the handler of the backend the server speaks
    with make_client(base_url, manager) as client:
        reader = LiveReader(client, reads=backend.plan_reads)
        try:
            live = agents_by_name_on(serving, reader)
            chosen = chosen_agents(live, names, wanted)
            if not chosen:
                raise ExportError(nothing_matched(live, names, wanted, client.base_url))
            exported = export_fleet(serving, reader, chosen, with_runtime=conversations)
        finally:
            reader.close()
    for note in exported.notes:
        click.echo(f"note: {note}", err=True)
    if target:
        exported = _fitted(exported, manager, target, client.base_url)
    if out is None:
        if exported.files:
            raise ExportError(
                f"the export has files beside the fleet file ({', '.join(sorted(exported.files)[:3])}): "
                "write it with --out FILE"
            )
        click.echo(to_yaml(exported.document), nl=False)
        return
    written = write_export(exported, out, force=force)
    click.echo(f"Exported {len(chosen)} agent{'s' if len(chosen) != 1 else ''} to {out} ({len(written)} files).")


def _target_backend(manager: FleetPlugins, for_url: str) -> Backend:
    """The backend `--for URL` names by its scheme."""
    try:
        return manager.backend_for(for_url)
    except BackendError:
        known = ", ".join(f"{scheme}://" for scheme in sorted(manager.backends))
        raise ExportError(
            f"--for {for_url}: no backend speaks that URL's scheme (known: {known}); give the URL of the server the "
            "file is for, e.g. ws://127.0.0.1:4617 for an App Server"
        ) from None


def _fitted(exported: ExportedFleet, manager: FleetPlugins, backend: Backend, source: str) -> ExportedFleet:
    """The export without what `backend` lacks or ignores, each entry left out said on stderr."""
    fitted, left_out = fitted_for(exported, manager, backend)
    for line in left_out:
        click.echo(f"note: {line}", err=True)
    click.echo(f"note: messages are not part of a fleet file: they stay on {source}", err=True)
    return fitted


def chosen_agents(
    live: Mapping[str, Sequence[Mapping[str, Any]]], names: Sequence[str], tags: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The agent meant by each name that matches a NAME pattern (if any) and carries every tag, by name."""
    chosen = []
    for name, agents in sorted(live.items()):
        agent = agents[0]
        if names and not any(fnmatch.fnmatchcase(name, pattern) for pattern in names):
            continue
        if set(tags) <= set(agent.get("tags") or []):
            chosen.append(agent)
    return chosen


def wanted_tags(given: Sequence[str]) -> list[str]:
    """The tags of `--tags`, comma-separated and repeatable."""
    return [tag.strip() for option in given for tag in option.split(",") if tag.strip()]


def nothing_matched(live: Mapping[str, Any], names: Sequence[str], tags: Sequence[str], server: str) -> str:
    asked = " ".join([*names, *(f"--tags {tag}" for tag in tags)])
    some = sorted(live)[:SHOWN_NAMES]
    listed = ", ".join(some) + (f" and {len(live) - len(some)} more" if len(live) > len(some) else "")
    return f"no agent on {server} matches {asked}. Agents there: {listed or 'none'}"


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(export)]
