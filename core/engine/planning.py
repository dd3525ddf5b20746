"""Plan: the desired resources of a validated fleet against the live ones, paired by address."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pluggy

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.live import LiveReader
from lettafleet.core.engine.model import Action, Ambiguity, Change, Plan, Resource
from lettafleet.core.engine.validation import locate
from lettafleet.core.letta.client import LettaClient


def plan_fleet(fleet: Fleet, client: LettaClient, manager: pluggy.PluginManager) -> Plan:
    """Read the server and compute every change apply would make. Writes nothing."""
    desired = desired_resources(fleet, manager)
    reader = LiveReader(client)
    reader.prefetch(
        *{
            (path, _frozen_params(params)): (path, params)
            for found in manager.hook.lettafleet_live_reads(desired=desired)
            for path, params in found
        }.values()
    )
    # The preflight's reads and the state's reads are independent: send them together. Reading is harmless
    # even when the preflight then stops the plan.
    with ThreadPoolExecutor(max_workers=1) as background:
        preflight = background.submit(_collect, manager.hook.lettafleet_preflight, reader, desired)
        found_live = _collect(manager.hook.lettafleet_read_live, reader, desired)
        problems = preflight.result()
    reader.close()
    if problems:
        raise FleetError(locate(fleet.document, problems))
    ambiguities = [found for found in found_live if isinstance(found, Ambiguity)]
    live = _by_address((found for found in found_live if isinstance(found, Resource)), "live")
    wanted = _by_address(desired, "desired")
    changes = []
    for address in sorted(set(wanted) | set(live)):
        pair = {"desired": wanted.get(address), "live": live.get(address)}
        changes.append(manager.hook.lettafleet_diff(**pair) or compare(**pair))
    return Plan.build(fleet=str(fleet.path), server=client.base_url, changes=changes, ambiguities=ambiguities)


def _frozen_params(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, repr(value)) for key, value in params.items()))


def _collect(hook: Any, reader: LiveReader, desired: list[Resource]) -> list[Any]:
    return [item for found in hook(reader=reader, desired=desired) for item in found]


def desired_resources(fleet: Fleet, manager: pluggy.PluginManager) -> list[Resource]:
    return [resource for found in manager.hook.lettafleet_desired(fleet=fleet) for resource in found]


def compare(
    desired: Resource | None,
    live: Resource | None,
    fields: Sequence[str] | None = None,
    *,
    detail: str = "",
) -> Change:
    """The plain diff: create what is missing, update the `fields` (default: all desired attributes) that differ.

    A live resource with no desired one is left alone: lettafleet deletes nothing the fleet did not ask it to.
    """
    if desired is None and live is None:
        raise ValueError("compare() needs a desired or a live resource")
    model = desired or live
    assert model is not None
    if desired is None:
        action, before, after = Action.NO_OP, dict(live.attributes), dict(live.attributes)  # type: ignore[union-attr]
    elif live is None:
        action, before, after = Action.CREATE, None, dict(desired.attributes)
    else:
        keys = list(fields) if fields is not None else list(desired.attributes)
        before = {key: live.attributes.get(key) for key in keys}
        after = {key: desired.attributes.get(key) for key in keys}
        action = Action.UPDATE if before != after else Action.NO_OP
    return Change(
        address=model.address,
        kind=model.kind,
        name=model.name,
        action=action,
        before=before,
        after=after,
        parent=model.parent,
        depends_on=desired.depends_on if desired else (),
        id=live.id if live else None,
        detail=detail,
        sensitive=desired.sensitive if desired else frozenset(),
    )


def _by_address(resources: Iterable[Resource], side: str) -> dict[str, Resource]:
    found: dict[str, Resource] = {}
    for resource in resources:
        if resource.address in found:
            raise ValueError(f"two {side} resources share the address {resource.address}")
        found[resource.address] = resource
    return found


def attributes(**values: Any) -> Mapping[str, Any]:
    """Resource attributes without the unset (None) ones, so absent and null compare equal."""
    return {key: value for key, value in values.items() if value is not None}
