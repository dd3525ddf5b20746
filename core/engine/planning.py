"""Plan: the desired resources of a validated fleet against the live ones, paired by address."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.handlers import ResourceHandler
from lettafleet.core.engine.live import LiveReader
from lettafleet.core.engine.model import Ambiguity, Plan, Resource
from lettafleet.core.engine.plugin_manager import FleetPlugins, PluginError
from lettafleet.core.engine.validation import locate
from lettafleet.core.letta.client import LettaClient


def plan_fleet(fleet: Fleet, client: LettaClient, manager: FleetPlugins) -> Plan:
    """Read the server and compute every change apply would make. Writes nothing.

    Each kind's handler sees only its own kinds' resources: core routes them by kind."""
    desired = desired_resources(fleet, manager)
    mine = _by_handler(desired, manager)
    reader = LiveReader(client)
    reader.prefetch(
        *{
            (path, _frozen_params(params)): (path, params)
            for handler, own in mine
            for path, params in handler.live_reads(own)
        }.values()
    )
    # The preflight's reads and the state's reads are independent: send them together. Reading is harmless
    # even when the preflight then stops the plan.
    with ThreadPoolExecutor(max_workers=1) as background:
        preflight = background.submit(lambda: [p for handler, own in mine for p in handler.preflight(reader, own)])
        found_live = [found for handler, own in mine for found in handler.read_live(reader, own, desired)]
        problems = preflight.result()
    reader.close()
    if problems:
        raise FleetError(locate(fleet.document, problems))
    ambiguities = [found for found in found_live if isinstance(found, Ambiguity)]
    live = _by_address((found for found in found_live if isinstance(found, Resource)), "live")
    wanted = _by_address(desired, "desired")
    changes = []
    for address in sorted(set(wanted) | set(live)):
        declared, found = wanted.get(address), live.get(address)
        kind = declared.kind if declared else live[address].kind
        changes.append(manager.handler(kind).diff(declared, found))
    return Plan.build(str(fleet.path), client.base_url, changes, ambiguities=ambiguities, hash_key=client.plan_hash_key)


def desired_resources(fleet: Fleet, manager: FleetPlugins) -> list[Resource]:
    """Every resource the fleet declares, from each kind's handler."""
    return [resource for handler, _ in manager.handlers() for resource in handler.desired(fleet)]


def _by_handler(resources: Sequence[Resource], manager: FleetPlugins) -> list[tuple[ResourceHandler, list[Resource]]]:
    """Each handler with the resources of its kinds (every handler, also one with none: it may read anyway)."""
    return [(handler, [r for r in resources if r.kind in kinds]) for handler, kinds in manager.handlers()]


def _frozen_params(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, repr(value)) for key, value in params.items()))


def _by_address(resources: Iterable[Resource], side: str) -> dict[str, Resource]:
    found: dict[str, Resource] = {}
    for resource in resources:
        if resource.address in found:
            # Addresses are identities: two at one address is a bug of the plugin owning the kind, never the user's.
            raise PluginError(
                f"the plugin handling kind {resource.kind!r} gave two {side} resources at {resource.address}; nothing "
                "was changed. Report this to the plugin's authors (`lettafleet plugins` lists them)."
            )
        found[resource.address] = resource
    return found
