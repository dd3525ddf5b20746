"""The plan for machines: the versioned JSON document described in docs/plan-json.md."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lettafleet.core.engine.applying import ApplyReport
from lettafleet.core.engine.diagnostics import Diagnostic
from lettafleet.core.engine.model import PLAN_FORMAT_VERSION, Plan


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=False)


def render_apply_json(plan: Plan, report: ApplyReport) -> str:
    document = plan.to_json()
    document["apply"] = {
        "ok": report.ok,
        "interrupted": report.interrupted,
        "not_attempted": [result.address for result in report.not_attempted],
        "recompile_owed": list(report.recompile_owed),
        "results": [
            {"address": r.address, "action": r.action.value, "status": r.status, "message": r.message}
            for r in report.results
        ],
        "recompiled": [
            {
                "address": r.address,
                "conversations": r.conversations,
                "skipped": list(r.skipped),
                "ok": not r.error,
                "message": r.error,
            }
            for r in report.recompiled
        ],
        "pace": report.pace.to_json() if report.pace else None,
    }
    return json.dumps(document, indent=2)


def render_error_json(message: str, diagnostics: Sequence[Diagnostic] = (), *, interrupted: bool = False) -> str:
    """What `-o json` prints when a command stops before it has a plan: nothing was changed, and why."""
    error = {
        "message": message,
        "diagnostics": [
            {"file": d.file, "line": d.line, "column": d.column, "message": d.message, "hint": d.hint}
            for d in diagnostics
        ],
    }
    document = {"format_version": PLAN_FORMAT_VERSION, "ok": False, "interrupted": interrupted, "changed": False}
    return json.dumps({**document, "error": error}, indent=2)
