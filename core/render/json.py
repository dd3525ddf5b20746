"""The plan for machines: the versioned JSON document described in docs/plan-json.md."""

from __future__ import annotations

import json

from lettafleet.core.engine.applying import ApplyReport
from lettafleet.core.engine.model import Plan


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=False)


def render_apply_json(plan: Plan, report: ApplyReport) -> str:
    document = plan.to_json()
    document["apply"] = {
        "ok": report.ok,
        "interrupted": report.interrupted,
        "not_attempted": [result.address for result in report.not_attempted],
        "results": [
            {"address": r.address, "action": r.action.value, "status": r.status, "message": r.message}
            for r in report.results
        ],
    }
    return json.dumps(document, indent=2)
