"""The plan and the apply report for people: the closing lines a person reads first."""

from __future__ import annotations

import pluggy
import pytest

from lettafleet.core.applying import ApplyReport, ChangeResult
from lettafleet.core.kinds import ResourceKind
from lettafleet.core.model import Action, Change, Plan
from lettafleet.core.plugin_manager import resource_kinds
from lettafleet.core.render.text import closing_line, render_report


@pytest.fixture
def kinds(manager: pluggy.PluginManager) -> dict[str, ResourceKind]:
    return resource_kinds(manager)


def new_agent_plan() -> Plan:
    agent = "agent.support"
    return Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            Change(agent, "agent", "support", Action.CREATE, None, {"description": "d"}),
            Change(f"{agent}.block.faq", "block", "faq", Action.CREATE, None, {"value": ""}, parent=agent),
            Change(f'{agent}.conversation["A"]', "conversation", "A", Action.CREATE, None, {}, parent=agent),
            Change(f'{agent}.conversation["B"]', "conversation", "B", Action.CREATE, None, {}, parent=agent),
        ],
    )


def report(plan: Plan, *failed: str) -> ApplyReport:
    return ApplyReport(
        tuple(
            ChangeResult(change.address, change.action, "failed" if change.address in failed else "applied")
            for change in plan.changes
        )
    )


def test_the_apply_summary_counts_what_was_done_as_the_plan_counted_it(kinds: dict[str, ResourceKind]) -> None:
    plan = new_agent_plan()

    assert closing_line(plan, kinds) == "Plan: 2 to create, 0 to update, 0 to delete; 2 new conversations."
    assert render_report(report(plan), plan, kinds) == (
        "Apply complete: 2 created, 0 updated, 0 deleted; 2 new conversations."
    )


def test_a_failed_apply_counts_only_what_landed_and_names_what_failed(kinds: dict[str, ResourceKind]) -> None:
    plan = new_agent_plan()

    text = render_report(report(plan, 'agent.support.conversation["B"]'), plan, kinds)

    assert text.splitlines()[0] == "Apply finished with errors:"
    assert 'agent.support.conversation["B"]: failed' in text
    assert "Apply failed: 2 created, 0 updated, 0 deleted; 1 new conversation; 1 failed, 0 not attempted." in text
