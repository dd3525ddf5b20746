"""`lettafleet import`: agents that lettafleet did not create, adopted into a fleet file. Each is marked as
lettafleet's the way it marks what it creates (every handler's `adopt` steps) and its exported entry appended to
the fleet file, so that the next plan changes nothing and re-creates nothing.

It is a command plugin for the reason `export` is one: it chooses agents by the agents plugin's rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import rich_click as click

from lettafleet.core import (
    Adoption,
    Connection,
    ExportError,
    FleetPlugins,
    LiveReader,
    Owner,
    PluginCommand,
    adoptions,
    appended_export,
    apply_plan,
    export_fleet,
    get_plugin_manager,
    hookimpl,
    load_fleet,
    make_client,
    mark_adopted,
    plan_fleet,
    reports_errors,
    server_options,
)
from lettafleet.plugins.commands.export import RUNTIME_KINDS, chosen_agents, nothing_matched, wanted_tags
from lettafleet.plugins.resources.agents import agent_address, agents_by_name_on, declared_agents


@click.command(name="import")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "-f",
    "--file",
    "fleet_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The fleet file the agents join; their entries are appended to it, its text and comments kept.",
)
@click.option(
    "--tags",
    metavar="TAG[,TAG]",
    multiple=True,
    help="Only agents carrying every one of these tags (comma-separated, repeatable). With NAMEs: both must match.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be marked and appended; change nothing.")
@click.option("--force", is_flag=True, help="Overwrite files beside the fleet file that exist already.")
@server_options
@reports_errors
def adopt(
    names: tuple[str, ...], fleet_file: Path, tags: tuple[str, ...], dry_run: bool, force: bool, base_url: str
) -> None:
    """Adopt agents that lettafleet did not create into the fleet file FILE, without re-creating anything.

    Choose agents by NAME (globs allowed) and/or --tags, as `lettafleet export` does. Each agent gets lettafleet's
    marker in its metadata (its other metadata kept), its own memory blocks the block marker (a block other agents
    hold too is left alone, and said so), its custom tools lettafleet's tag; then its exported entry is appended to
    FILE (long texts in files beside it). Afterwards `lettafleet plan -f FILE` shows "No changes". Refused, with
    nothing changed, when an agent's name is declared in FILE already, or held by several agents on the server.
    """
    wanted = wanted_tags(tags)
    if not names and not wanted:
        raise ExportError("name the agents to import (globs allowed), or give --tags")
    manager = get_plugin_manager()
    fleet = load_fleet(fleet_file, manager)
    declared = {agent.name for agent in declared_agents(fleet)}
    backend = manager.backend_for(base_url)
    serving = manager.serving(backend)  # each kind read and marked by the handler of the backend the server speaks
    with make_client(base_url, manager) as client:
        # the marks carry the fleet's name, as apply's do
        reader = LiveReader(client, owner=Owner(fleet.name), reads=backend.plan_reads)
        try:
            live = agents_by_name_on(serving, reader)
            chosen = chosen_agents(live, names, wanted)
            _refuse_unclear(
                chosen, live, declared, fleet_file, nothing=nothing_matched(live, names, wanted, client.base_url)
            )
            exported = export_fleet(serving, reader, chosen, leave_out=RUNTIME_KINDS)
            steps = adoptions(serving, reader, chosen)
        finally:
            reader.close()
        pending = appended_export(exported, fleet_file, force=force)  # refused here, before anything is marked
        _show(steps, [str(agent["name"]) for agent in chosen], fleet_file, dry_run)
        for note in exported.notes:
            click.echo(f"note: {note}", err=True)
        if dry_run:
            return
        mark_adopted(client, steps)
        written = pending.write()
        _record(fleet_file, manager, client, [str(agent["name"]) for agent in chosen])
    agents = f"{len(chosen)} agent{'s' if len(chosen) != 1 else ''}"
    click.echo(f"Imported {agents} into {fleet_file} ({len(written)} files written).")


def _refuse_unclear(
    chosen: Sequence[Mapping[str, Any]],
    live: Mapping[str, Sequence[Mapping[str, Any]]],
    declared: set[str],
    fleet_file: Path,
    *,
    nothing: str,
) -> None:
    """Stop before anything changes when no agent matches, or one is declared already or its name is not unique."""
    if not chosen:
        raise ExportError(nothing)
    names = [str(agent["name"]) for agent in chosen]
    there = [name for name in names if name in declared]
    if there:
        raise ExportError(
            f"{', '.join(there)} {'is' if len(there) == 1 else 'are'} declared in {fleet_file} already: "
            "nothing was changed. Leave them out of the import."
        )
    for name in names:
        if len(live[name]) > 1:
            ids = ", ".join(str(agent["id"]) for agent in live[name])
            raise ExportError(
                f"{len(live[name])} agents are named '{name}' ({ids}): nothing was changed. Delete or rename the "
                "ones that should not be there, then import again."
            )


def _record(fleet_file: Path, manager: FleetPlugins, client: Connection, names: Sequence[str]) -> None:
    """Give each adopted agent the record apply keeps of what the file made under it, so that removing one of its
    lines later removes what it declared. The plan of the adopted agents changes nothing, so applying it writes
    only the records; should it change something (the server moved meanwhile), the next apply records them."""
    adopted = plan_fleet(load_fleet(fleet_file, manager), client, manager).targeted([agent_address(n) for n in names])
    if adopted.has_changes:
        click.echo("  note: the plan of these agents is not empty; `lettafleet apply` records what they hold")
        return
    for failed in apply_plan(adopted, client, manager).failed:
        click.echo(f"  note: {failed.address}: {failed.message}; `lettafleet apply` records it")


def _show(steps: Sequence[Adoption], names: Sequence[str], fleet_file: Path, dry_run: bool) -> None:
    """What the import does (or, on a dry run, would do): each marking write and note, and the entries appended."""
    click.echo("Would (dry run, nothing changed):" if dry_run else "Importing:")
    for step in steps:
        click.echo(f"  {step.line()}")
    click.echo(f"  append {', '.join(names)} to {fleet_file}")


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(adopt)]
