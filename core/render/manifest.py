"""The manifest an apply writes with `--manifest FILE` (lettactl's): the server id of every resource the fleet
declares or the apply removed, and what the apply did to it. Ids, names and statuses only, never a value, so no
secret can be in it. docs/manifest.md describes the format."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lettafleet.core.engine.applying import ApplyReport, ChangeResult
from lettafleet.core.engine.model import Change, Plan

MANIFEST_FORMAT_VERSION = 1


def render_manifest_json(
    plan: Plan, report: ApplyReport | None, *, fleet_file: str, stopped_at_once: bool = False
) -> str:
    """The manifest of `plan`'s apply. `report` is None when no change ran (nothing to change), or when the apply
    was stopped at once (`stopped_at_once`: what it did is unknown, each change is marked so)."""
    results = {result.address: result for result in report.results} if report else {}
    ids: Mapping[str, str] = report.ids if report else {}
    entries = [_entry(change, results.get(change.address), ids, stopped_at_once) for change in plan.changes]
    document = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "status": _status(report, stopped_at_once),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fleet_file": fleet_file,
        "server": plan.server,
        "project": plan.project,
        "agents": {entry["name"]: entry["id"] for entry in entries if entry["kind"] == "agent" and entry["id"]},
        "resources": entries,
    }
    return json.dumps(document, indent=2) + "\n"


def _status(report: ApplyReport | None, stopped_at_once: bool) -> str:
    """complete, failed (some change did not land) or interrupted (stopped before every change ran)."""
    if stopped_at_once or (report is not None and report.interrupted):
        return "interrupted"
    return "failed" if report is not None and not report.ok else "complete"


def _entry(
    change: Change, result: ChangeResult | None, ids: Mapping[str, str], stopped_at_once: bool
) -> dict[str, Any]:
    """One resource: its address, kind, name, id (None when it does not exist) and what the apply did."""
    return {
        "address": change.address,
        "kind": change.kind,
        "name": change.name,
        "id": ids.get(change.address) or change.id,
        "action": change.action.value,
        "status": _entry_status(change, result, stopped_at_once),
    }


def _entry_status(change: Change, result: ChangeResult | None, stopped_at_once: bool) -> str:
    """unchanged, held (a removal not made), applied, failed, not attempted, or unknown (stopped at once)."""
    if not change.changes_something:
        return "held" if change.held else "unchanged"
    if result is None:
        return "unknown" if stopped_at_once else "not attempted"
    if result.status == "skipped":
        return "not attempted"
    return result.status
