"""A fleet checked against the backend it is about to be planned on: what the backend lacks is refused at its line,
before any connection or write; what it ignores is noted at its line. `validate` never asks: a file's validity
is the same for every backend."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from lettafleet.core.engine.backends import Backend, Lacks, key_paths
from lettafleet.core.engine.diagnostics import Diagnostic, FleetError, Note, Path, Problem
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.model import Resource
from lettafleet.core.engine.plugin_manager import FleetPlugins


def check_capabilities(fleet: Fleet, manager: FleetPlugins, backend: Backend) -> tuple[Diagnostic, ...]:
    """Raise FleetError, every refusal at its line, if the fleet declares what `backend` lacks; else the notes
    for what it ignores, located, for the command to show."""
    if backend.holds_everything:
        return ()
    found = refuse_lacking(fleet, _declared_of_lacking_kinds(fleet, manager, backend), backend)
    notes = {fleet.document.diagnostic(note.path, f"note: {note.message}", note.hint) for note in found}
    return tuple(sorted(notes))


def backend_problems(fleet: Fleet, manager: FleetPlugins, backend: Backend) -> list[Problem]:
    """What the fleet declares that `backend` lacks (problems) or ignores (notes), at their paths, raising
    nothing: for a command that fits a file to the backend (`export --for`) rather than refusing it."""
    if backend.holds_everything:
        return []
    return capability_problems(fleet, _declared_of_lacking_kinds(fleet, manager, backend), backend)


def refuse_lacking(fleet: Fleet, resources: Iterable[Resource], backend: Backend) -> list[Problem]:
    """Raise FleetError, every refusal at its line, if `resources` (or the file's keys) hold what `backend` lacks;
    else the notes for what it ignores, not yet located."""
    if backend.holds_everything:
        return []
    found = capability_problems(fleet, resources, backend)
    refused = [problem for problem in found if not isinstance(problem, Note)]
    if refused:
        document = fleet.document
        raise FleetError(document.diagnostic(problem.path, problem.message, problem.hint) for problem in refused)
    return found


def capability_problems(fleet: Fleet, resources: Iterable[Resource], backend: Backend) -> list[Problem]:
    """What the fleet declares that `backend` lacks, as problems at the declarations' places, and what it ignores,
    as notes: each names the backend and says what to do."""
    table = backend.capabilities
    found: list[Problem] = []
    for resource in resources:
        lacking = backend.lacks(resource.kind)
        if lacking is not None and lacking.refuses(resource) and resource.source is not None:
            found.append(_refusal(backend, resource.source, lacking))
        ignored = table.no_effect_kinds.get(resource.kind)
        if ignored is not None and resource.source:  # one the file does not place (asked for by no line): no note
            what = resource.kind.replace("_", " ")
            found.append(
                Note(resource.source, f"{what} has no effect on the {backend} backend: {ignored.note}", ignored.hint)
            )
    written = fleet.document.data  # what the file says, before the schema filled in defaults
    for dotted, lacking in table.lacks_keys.items():
        found.extend(_refusal(backend, path, lacking) for path in key_paths(written, dotted))
    for dotted, ignored in table.no_effect_keys.items():
        found.extend(
            Note(path, f"{_last_key(path)} has no effect on the {backend} backend: {ignored.note}", ignored.hint)
            for path in key_paths(written, dotted)
        )
    return found


def _declared_of_lacking_kinds(fleet: Fleet, manager: FleetPlugins, backend: Backend) -> Iterator[Resource]:
    """The declared resources of the kinds the backend lacks or has nothing to do for, asked only of the handlers of
    those kinds."""
    for handler, kinds in manager.handlers():
        lacking = {kind for kind in kinds if backend.lacks(kind) is not None}
        lacking |= set(kinds) & set(backend.capabilities.no_effect_kinds)
        if lacking:
            yield from (resource for resource in handler.desired(fleet) if resource.kind in lacking)


def _refusal(backend: Backend, path: Path, lacking: Lacks) -> Problem:
    return Problem(path, f"{_last_key(path)}: the {backend} backend {lacking.reason}", lacking.what_to_do)


def _last_key(path: Path) -> str:
    keys = [part for part in path if isinstance(part, str)]
    return keys[-1] if keys else "(top level)"
