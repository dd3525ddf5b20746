"""validate, plan, apply and plugins: the commands that work on fleet files."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import rich_click as click

from lettafleet.core.cli.interrupts import INTERRUPTED_EXIT, RESUME_HINT, Stopping, ctrl_c_stops, exit_code
from lettafleet.core.cli.locks import apply_lock, release_at_once
from lettafleet.core.cli.options import (
    context_threshold_option,
    lock_options,
    make_client,
    reports_errors,
    server_options,
)
from lettafleet.core.cli.private_files import write_private_text
from lettafleet.core.engine.applying import ApplyReport, ChangeResult, StopSignal, apply_plan
from lettafleet.core.engine.backends import Backend
from lettafleet.core.engine.capabilities import check_capabilities
from lettafleet.core.engine.context_budget import with_context_warnings
from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.kinds import PlanOption, ResourceKind
from lettafleet.core.engine.live import EarlyReads
from lettafleet.core.engine.model import Change, Plan
from lettafleet.core.engine.planning import check_moves, desired_resources, plan_fleet, start_reading
from lettafleet.core.engine.plugin_manager import FleetPlugins, get_plugin_manager, plugin_names, resource_kinds
from lettafleet.core.engine.validation import load_fleet
from lettafleet.core.letta.connection import Connection
from lettafleet.core.render.json import render_apply_json, render_error_json, render_plan_json
from lettafleet.core.render.manifest import render_manifest_json
from lettafleet.core.render.markdown import render_plan_markdown
from lettafleet.core.render.text import plan_header, render_plan, render_report, result_line

# Looked for, in this order, when no file is named: lettafleet's name first, then lettactl's (`agents.yml`).
DEFAULT_FLEET_FILES = ("fleet.yaml", "fleet.yml", "agents.yml", "agents.yaml")
FILE_HELP = (
    "Fleet YAML file (lettactl fleet files work unchanged). Default: the first of "
    + ", ".join(DEFAULT_FLEET_FILES)
    + " in the current folder."
)
OUTPUT = click.Choice(["text", "json"])
PLAN_OUTPUT = click.Choice(["text", "json", "markdown"])

F = TypeVar("F", bound=Callable[..., Any])


@click.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("-f", "--file", "extra", multiple=True, type=click.Path(path_type=Path), help=FILE_HELP)
@click.option("-o", "--output", type=OUTPUT, default="text", show_default=True)
@click.option(
    "--match",
    "match",
    metavar="GLOB",
    help="Check the files as `plan`/`apply --match GLOB` read them: the first agent as a template.",
)
def validate(files: tuple[Path, ...], extra: tuple[Path, ...], output: str, match: str | None) -> None:
    """Check fleet files offline: YAML syntax, keys, values and references. No server is contacted.

    Every problem is printed as FILE:LINE:COL: message, one per line; exit 1 if any.
    """
    paths = list(files) + list(extra) or [default_fleet_file()]
    manager = get_plugin_manager()
    errors: list[str] = []
    results = []
    for path in paths:
        try:
            fleet = load_fleet(path, manager, match=match)
            declared_resources = desired_resources(fleet, manager)
            check_moves(fleet, declared_resources, manager)
        except FleetError as error:
            errors.extend(str(diagnostic) for diagnostic in error.diagnostics)
            results.append(
                {"file": str(path), "valid": False, "errors": [diagnostic.__dict__ for diagnostic in error.diagnostics]}
            )
            continue
        declared = Counter(resource.kind for resource in declared_resources)
        notes = [note.__dict__ for note in fleet.notes]
        results.append({"file": str(path), "valid": True, "resources": dict(sorted(declared.items())), "notes": notes})
        if output == "text":
            click.echo(f"{path}: valid ({_counted(declared, resource_kinds(manager))})")
            echo_notes(fleet)
    if output == "json":
        click.echo(json.dumps({"files": results}, indent=2))
    for line in errors:
        click.echo(line, err=True)
    if errors:
        click.echo(f"{len(errors)} error{'s' if len(errors) != 1 else ''}.", err=True)
        sys.exit(1)


def echo_notes(fleet: Fleet) -> None:
    """The fleet's notes (what lettafleet reads differently from lettactl, or ignores), on stderr: they stop
    nothing. `validate` (and so the pre-commit hook) prints them; plan and apply, run again and again on one file,
    do not repeat them."""
    for note in fleet.notes:
        click.echo(str(note), err=True)


def default_fleet_file() -> Path:
    """The fleet file to use when none is named: the first of DEFAULT_FLEET_FILES that exists here (whatever it
    is: reading it then says why a FIFO, a folder or a broken link cannot be a fleet file)."""
    for name in DEFAULT_FLEET_FILES:
        if Path(name).exists() or Path(name).is_symlink():
            return Path(name)
    click.echo(
        f"error: no fleet file named and none found in this folder (looked for {', '.join(DEFAULT_FLEET_FILES)}). "
        "Name one with -f FILE.",
        err=True,
    )
    sys.exit(1)


def _counted(declared: Counter[str], kinds: Mapping[str, ResourceKind]) -> str:
    """`1 agent, 2 blocks, 2 conversations`, in the order plugins declared their kinds."""
    parts = []
    for name, kind in kinds.items():
        if declared[name]:
            parts.append(f"{declared[name]} {kind.singular if declared[name] == 1 else kind.plural}")
    return ", ".join(parts) or "nothing declared"


def _scope_tags(context: click.Context, parameter: click.Parameter, value: str | None) -> tuple[str, ...]:
    """`--scope a,b` as its tags; an empty tag (`a,,b`, `--scope ''`) is a usage error."""
    if value is None:
        return ()
    tags = tuple(tag.strip() for tag in value.split(","))
    if not all(tags):
        raise click.BadParameter(f"{value!r} names an empty tag: give tags separated by commas, such as 'prod,eu'.")
    return tags


def _plan_options(command: F) -> F:
    command = context_threshold_option(
        "Warn when a change would fill more than this share of a context window (an agent's, with its system "
        "prompt and memory blocks): a warning line, `context_warnings` in JSON."
    )(command)
    command = click.option(
        "--match",
        "match",
        metavar="GLOB",
        help="lettactl's template mode: the file's first agent is a template applied to every live agent whose name "
        "matches GLOB (one lettafleet did not create), and is not itself created (docs/templates.md).",
    )(command)
    command = click.option(
        "--scope",
        "scope",
        callback=_scope_tags,
        metavar="TAG[,TAG]",
        help="Only the agents whose tags include ALL of these (lettactl's --scope), with what they contain and "
        "need; the fleet's shared blocks and tools are still planned, as lettactl does. Removals only in scope. "
        "With --target, both apply.",
    )(command)
    command = click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="ADDRESS",
        help="Only this part of the fleet: an address or glob such as 'agent.support-*' (lettactl's --agent), with "
        "what it contains, its parents and what it depends on. Repeatable.",
    )(command)
    command = click.option(
        "--prune",
        is_flag=True,
        help="Also make the removals that delete data: agents, memory blocks and conversations with messages the "
        "fleet no longer declares (`prune: true` in the fleet file does the same). Protected ones stay.",
    )(command)
    command = click.option(
        "-v", "--verbose", is_flag=True, help="Also list resources that do not change, and count the requests sent."
    )(command)
    command = click.option(
        "--detailed-exitcode",
        is_flag=True,
        help="Exit 0 when nothing changes, 2 when there are changes, drift or ambiguities, 1 on error.",
    )(command)
    command = click.option(
        "-o",
        "--output",
        type=PLAN_OUTPUT,
        default="text",
        show_default=True,
        help="json: the versioned plan document (docs/plan-json.md); markdown: for a pull "
        "request comment (docs/github-action.md).",
    )(command)
    command = click.option(
        "-f",
        "--file",
        "fleet_file",
        type=click.Path(path_type=Path),
        help=FILE_HELP,
    )(command)
    return server_options(command)


@click.command()
@_plan_options
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path),
    help="Also save the plan as JSON to this file (created readable by you only).",
)
@reports_errors
def plan(
    fleet_file: Path | None,
    base_url: str,
    output: str,
    detailed_exitcode: bool,
    verbose: bool,
    targets: tuple[str, ...],
    scope: tuple[str, ...],
    match: str | None,
    prune: bool,
    context_threshold: float,
    out_file: Path | None,
    **plugin_options: Any,
) -> None:
    """Show what apply would change on the server. Writes nothing."""
    manager = get_plugin_manager()
    reshape = _plugin_options(manager, "plan")
    path = fleet_file or default_fleet_file()
    backend = manager.backend_for(base_url)
    with contextlib.ExitStack() as stack:
        if backend.holds_everything:  # nothing to refuse: the server works while the file is parsed
            client = stack.enter_context(make_client(base_url, manager))
            early = start_reading(client, _text_of(path), backend)
            fleet = load_fleet(path, manager, match=match, options=plugin_options)
        else:  # the file is checked against the backend before any connection
            fleet = _loaded_for(backend, path, manager, match, plugin_options)
            client, early = stack.enter_context(make_client(base_url, manager)), None
        the_plan = _planned(
            fleet, client, manager, targets, scope, prune, context_threshold, reshape, backend=backend, early=early
        )
    _show_plan(the_plan, output, verbose, manager)
    if verbose:
        _echo_stats(client)
    if out_file:
        try:
            write_private_text(out_file, render_plan_json(the_plan) + "\n")
        except OSError as error:
            click.echo(
                f"error: cannot save the plan to {out_file}: {error.strerror}. Name a file in a folder you can write.",
                err=True,
            )
            sys.exit(1)
    if detailed_exitcode and the_plan.needs_attention:
        sys.exit(2)


@click.command()
@_plan_options
@click.option("--dry-run", is_flag=True, help="Only show the plan, like `lettafleet plan` (takes no lock).")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="How many changes run at once (across agents).",
)
@click.option(
    "--plan",
    "reviewed_plan",
    type=click.Path(path_type=Path),
    help="A plan saved with `plan --out` (or `-o json`): apply only if what apply would do now is still exactly "
    "that plan; otherwise change nothing and exit 1.",
)
@click.option(
    "--skip-recompile",
    is_flag=True,
    help="Do not recompile the conversations of agents whose system prompt or memory blocks changed (by default "
    "they are, after the changes, so running conversations see them).",
)
@click.option(
    "--manifest",
    "manifest",
    is_flag=False,
    flag_value="",
    metavar="FILE",
    help="Write a JSON manifest of the server id of every resource the fleet declares or the apply removed, and "
    "what the apply did to each (lettactl's --manifest; docs/manifest.md), also when the apply fails or is "
    "interrupted. Given without FILE: the fleet file's name with .manifest.json.",
)
@lock_options
@reports_errors
def apply(
    fleet_file: Path | None,
    base_url: str,
    output: str,
    detailed_exitcode: bool,
    verbose: bool,
    targets: tuple[str, ...],
    scope: tuple[str, ...],
    match: str | None,
    prune: bool,
    context_threshold: float,
    dry_run: bool,
    parallelism: int,
    reviewed_plan: Path | None,
    skip_recompile: bool,
    manifest: str | None,
    use_lock: bool,
    lock_timeout: float,
    lock_id: str | None,
    **plugin_options: Any,
) -> None:
    """Make the server match the fleet: compute the plan, then execute exactly its changes.

    A failure names the resource and the server's message; independent changes go on and the exit code is 1.
    Running apply again picks up what is left, without duplicates. While it plans and applies it holds the
    fleet's lock on the server, so a second apply of the fleet waits or stops (docs/locking.md). Ctrl-C stops
    it between changes (exit 130); a second Ctrl-C stops it at once.
    """
    manager = get_plugin_manager()
    reshape = _plugin_options(manager, "apply")
    path = fleet_file or default_fleet_file()
    backend = manager.backend_for(base_url)
    fleet = _loaded_for(backend, path, manager, match, plugin_options)
    stopping = Stopping()
    started = False
    manifest_file = _manifest_file(manifest, path)
    the_plan: Plan | None = None
    manifest_written = False
    try:
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(make_client(base_url, manager))
            lock = None
            if use_lock and not dry_run:
                lock = stack.enter_context(apply_lock(base_url, fleet, lock_id, lock_timeout, stopping, manager))
            the_plan = _planned(
                fleet, client, manager, targets, scope, prune, context_threshold, reshape, backend=backend
            )
            if reviewed_plan is not None:
                _require_reviewed(the_plan, reviewed_plan)
            if dry_run or not the_plan.has_changes:
                if manifest_file and not dry_run:
                    _write_manifest(manifest_file, the_plan, None, path)
                _show_plan(the_plan, output, verbose, manager)
                if verbose:
                    _echo_stats(client)
                if detailed_exitcode and the_plan.needs_attention:
                    sys.exit(2)
                return
            if output != "json":
                _show_plan(the_plan, output, verbose, manager)
                click.echo("")
            # From here to the lock's release, Ctrl-C stops the apply (exit 130 whenever it came).
            stack.enter_context(ctrl_c_stops(stopping, at_once=lambda: release_at_once(lock)))
            started = True
            run = functools.partial(
                _run_apply, the_plan, client, manager, parallelism, recompile=not skip_recompile, backend=backend
            )
            report = run(show_progress=output == "text", stop=stopping)
            if manifest_file:
                _write_manifest(manifest_file, the_plan, report, path)
                manifest_written = True
            if output == "json":
                click.echo(render_apply_json(the_plan, report))
            else:
                click.echo(render_report(report, the_plan, resource_kinds(manager)))
            if verbose:
                _echo_stats(client)
    except KeyboardInterrupt:  # before the apply started, or while its lock was released
        if started or stopping.by_user:
            if manifest_file and the_plan is not None and not manifest_written:
                _write_manifest(manifest_file, the_plan, None, path, stopped_at_once=True)
            click.echo(f"Interrupted again: stopping at once. {RESUME_HINT}", err=True)
        else:
            message = "Interrupted before any change was made: nothing was changed."
            click.echo(f"\n{message}", err=True)
            if output == "json":
                click.echo(render_error_json(message, interrupted=True))
        sys.exit(INTERRUPTED_EXIT)
    _exit_after_apply(report, stopping)


def _loaded_for(
    backend: Backend, path: Path, manager: FleetPlugins, match: str | None, options: Mapping[str, Any]
) -> Fleet:
    """The fleet file, valid and checked against the backend it is about to be planned on: what the backend lacks
    stops here, at its line; what it ignores is noted on stderr."""
    fleet = load_fleet(path, manager, match=match, options=options)
    for note in check_capabilities(fleet, manager, backend):
        click.echo(str(note), err=True)
    return fleet


def _exit_after_apply(report: ApplyReport, stopping: Stopping) -> None:
    """Exit 130 after Ctrl-C, 1 after any other failure. Changes abandoned in flight still run in threads that
    would hold the process open until their requests time out, so then the process ends without them."""
    code = exit_code(report, stopping)
    if report.abandoned:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        sys.exit(code)


def _text_of(path: Path) -> str:
    """The fleet file's text, for the reads a plan starts before parsing it; empty if unreadable (parsing says why)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _manifest_file(manifest: str | None, fleet_file: Path) -> Path | None:
    """Where `--manifest` writes: the FILE given, or beside the fleet file (`fleet.yaml` -> `fleet.manifest.json`)."""
    if manifest is None:
        return None
    return Path(manifest) if manifest else fleet_file.with_suffix(".manifest.json")


def _write_manifest(
    target: Path, the_plan: Plan, report: ApplyReport | None, fleet_file: Path, *, stopped_at_once: bool = False
) -> None:
    """Write the apply's manifest whole or not at all (a temporary file renamed over `target`)."""
    document = render_manifest_json(the_plan, report, fleet_file=str(fleet_file), stopped_at_once=stopped_at_once)
    try:
        write_private_text(target, document)
    except OSError as error:
        click.echo(
            f"error: cannot write the manifest to {target}: {error.strerror}. Name a file in a folder you can "
            "write; the apply itself is done (run `lettafleet apply --manifest FILE` again to write it).",
            err=True,
        )
        sys.exit(1)


def _planned(
    fleet: Fleet,
    client: Connection,
    manager: FleetPlugins,
    targets: tuple[str, ...],
    scope: tuple[str, ...],
    prune: bool,
    context_threshold: float,
    reshape: Callable[[Plan], Plan],
    *,
    backend: Backend,
    early: EarlyReads | None = None,
) -> Plan:
    """The fleet's plan as plugins' options shape it (`reshape`), narrowed to `scope` and then to `targets` when
    given (and said so on stderr), naming the server's version and the project it was read in, with a warning for
    each agent whose memory and prompt it would make take more than `context_threshold` percent of its context
    window."""
    whole = reshape(plan_fleet(fleet, client, manager, prune=prune, early=early, backend=backend))
    server = client.server_info()
    whole = dataclasses.replace(whole, server_version=server.version, project=server.project)
    part = whole.scoped(scope) if scope else whole
    part = part.targeted(targets) if targets else part
    if part is not whole:
        part = dataclasses.replace(part, server_version=server.version, project=server.project)
        used = " and ".join(name for name, given in (("--scope", scope), ("--target", targets)) if given)
        click.echo(
            f"Targeted: {len(part.changes)} of the fleet's {len(whole.changes)} resources ({used}); "
            "the rest is left out of this plan.",
            err=True,
        )
    return with_context_warnings(part, manager.serving(backend), context_threshold / 100)


def _plugin_options(manager: FleetPlugins, command: str) -> Callable[[Plan], Plan]:
    """Check the options plugins add to `command` against the command's other parameters (a combination one
    refuses is a usage error), and return how they shape its plan (`PlanOption.reshapes`)."""
    context = click.get_current_context(silent=True)
    params = dict(context.params) if context else {}
    options: list[PlanOption] = [
        option for group in manager.hook.lettafleet_plan_options() for option in group if command in option.commands
    ]
    for option in options:
        reason = option.refuses(params) if option.refuses else None
        if reason:
            raise click.UsageError(reason)

    def reshape(whole: Plan) -> Plan:
        for option in options:
            whole = option.reshapes(whole, params) if option.reshapes else whole
        return whole

    return reshape


def _require_reviewed(the_plan: Plan, reviewed: Path) -> None:
    """Stop unless the plan computed now is the saved one (same changes, same hash)."""
    try:
        text = reviewed.read_text(encoding="utf-8")
    except OSError as error:
        click.echo(f"error: {reviewed}: {error.strerror}. Name the file `lettafleet plan --out` saved.", err=True)
        sys.exit(1)
    try:
        saved = json.loads(text)
        saved_hash = saved["sha256"]
    except (ValueError, KeyError, TypeError):
        click.echo(f"error: {reviewed} is not a plan saved by `lettafleet plan --out` (no sha256 in it).", err=True)
        sys.exit(1)
    if saved_hash != the_plan.sha256:
        click.echo(
            f"error: the plan in {reviewed} (sha256 {saved_hash[:12]}) is not what apply would do now "
            f"(sha256 {the_plan.sha256[:12]}): the fleet file or the server changed since it was saved. "
            "Nothing was changed. Run `lettafleet plan` again and review the new plan.",
            err=True,
        )
        sys.exit(1)


def _run_apply(
    the_plan: Plan,
    client: Connection,
    manager: FleetPlugins,
    parallelism: int,
    *,
    show_progress: bool,
    stop: StopSignal,
    recompile: bool,
    backend: Backend,
) -> ApplyReport:
    from rich.console import Console  # loaded by an apply alone: a tenth of a second of every other command
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = sum(1 for change in the_plan.changes if change.changes_something)
    console = Console(stderr=True)
    run = functools.partial(
        apply_plan,
        the_plan,
        client,
        manager,
        parallelism=parallelism,
        stop=stop,
        recompile=recompile,
        backend=backend,
    )
    if not show_progress:
        return run()
    if console.is_terminal:
        columns = (TextColumn("Applying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("apply", total=total)

            def advance(change: Change, result: ChangeResult) -> None:
                progress.advance(task)
                if result.status != "applied":
                    progress.console.print(
                        result_line(change, result.status, result.message), markup=False, highlight=False
                    )

            return run(on_result=advance)

    def echo(change: Change, result: ChangeResult) -> None:
        click.echo(result_line(change, result.status, result.message))

    return run(on_result=echo)


def _echo_stats(client: Connection) -> None:
    by_method = ", ".join(f"{method} {count}" for method, count in sorted(client.stats.by_method.items()))
    click.echo(f"Requests: {client.stats.total} ({by_method or 'none'})", err=True)


def _show_plan(the_plan: Plan, output: str, verbose: bool, manager: FleetPlugins) -> None:
    if output == "json":
        click.echo(render_plan_json(the_plan))
    elif output == "markdown":
        click.echo(render_plan_markdown(the_plan, resource_kinds(manager)), nl=False)
    else:
        click.echo(plan_header(the_plan))
        click.echo(render_plan(the_plan, resource_kinds(manager), verbose=verbose))


class _PluginRow(TypedDict):
    """One line of `lettafleet plugins`, and one item of its JSON."""

    name: str
    source: str
    kinds: list[str]
    backends: list[dict[str, Any]]  # each backend's name and the URL schemes it claims


@click.command()
@click.option("-o", "--output", type=OUTPUT, default="text", show_default=True)
@reports_errors
def plugins(output: str) -> None:
    """List the loaded plugins, the resource kinds each one handles and the backends (URL schemes) it speaks."""
    manager = get_plugin_manager()
    rows: list[_PluginRow] = []
    for name, source in plugin_names(manager):
        plugin = manager.get_plugin(name)
        declared = plugin.lettafleet_kinds() if plugin is not None and hasattr(plugin, "lettafleet_kinds") else []
        spoken = plugin.lettafleet_backends() if plugin is not None and hasattr(plugin, "lettafleet_backends") else []
        backends = [{"name": backend.name, "schemes": list(backend.schemes)} for backend in spoken]
        rows.append({"name": name, "source": source, "kinds": [kind.name for kind in declared], "backends": backends})
    if output == "json":
        click.echo(json.dumps({"plugins": rows}, indent=2))
        return
    table = [(row["name"], _handles(row), row["source"]) for row in rows]
    widths = [max(len(cells[column]) for cells in table) for column in range(2)]
    for name, kinds, source in table:
        click.echo(f"{name:<{widths[0]}}  {kinds:<{widths[1]}}  {source}")


def _handles(row: _PluginRow) -> str:
    """`agent, block` for a plugin of kinds, `backend Letta App Server (ws://, wss://)` for a backend's."""
    backends = [
        f"backend {b['name']} ({', '.join(f'{scheme}://' for scheme in b['schemes'])})" for b in row["backends"]
    ]
    return ", ".join([*row["kinds"], *backends]) or "-"
