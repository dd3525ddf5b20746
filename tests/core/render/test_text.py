"""The plan and the apply report for people: the closing lines a person reads first."""

from __future__ import annotations

import json

import pluggy
import pytest

from lettafleet.core.engine.applying import INTERRUPTED, ApplyReport, ChangeResult
from lettafleet.core.engine.kinds import ResourceKind
from lettafleet.core.engine.model import Action, Ambiguity, Change, Plan
from lettafleet.core.engine.plugin_manager import resource_kinds
from lettafleet.core.render.json import render_apply_json
from lettafleet.core.render.text import closing_line, render_plan, render_report


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


def prompt_change(before: str, after: str) -> Plan:
    change = Change("agent.support", "agent", "support", Action.UPDATE, {"system": before}, {"system": after})
    return Plan.build("fleet.yaml", "http://127.0.0.1:8283", [change])


def test_a_long_text_shows_only_the_lines_that_changed_and_where(kinds: dict[str, ResourceKind]) -> None:
    before = "\n".join(f"Rule {number}: be kind." for number in range(1, 41))
    after = before.replace("Rule 30: be kind.", "Rule 30: be brief.")

    text = render_plan(prompt_change(before, after), kinds)

    assert "      line 30:\n      - Rule 30: be kind.\n      + Rule 30: be brief.\n" in text
    assert "Rule 29" not in text and "Rule 31" not in text


def test_a_text_rewritten_throughout_is_cut_after_twenty_changed_lines(kinds: dict[str, ResourceKind]) -> None:
    before = "\n".join(f"old {number}" for number in range(30))
    after = "\n".join(f"new {number}" for number in range(30))

    text = render_plan(prompt_change(before, after), kinds)

    assert "- old 19" in text and "+ new" not in text  # the first 20 changed lines are the removed ones
    assert "... and 40 more changed lines" in text


def test_a_sensitive_text_shows_no_line_of_it(kinds: dict[str, ResourceKind]) -> None:
    change = Change(
        "agent.support",
        "agent",
        "support",
        Action.UPDATE,
        {"system": "a\nsecret b"},
        {"system": "a\nsecret c"},
        sensitive=frozenset({"system"}),
    )

    text = render_plan(Plan.build("fleet.yaml", "http://127.0.0.1:8283", [change]), kinds)

    assert "secret" not in text and "(sensitive)" in text


def test_lines_that_look_like_diff_headers_are_still_shown(kinds: dict[str, ResourceKind]) -> None:
    before = "# Rules\n---\n++ bonus\nBe kind."
    after = "# Rules\nBe kind."

    text = render_plan(prompt_change(before, after), kinds)

    assert "      - ---\n      - ++ bonus\n" in text


def block_change(before: str, after: str) -> Plan:
    change = Change(
        "agent.support.block.faq",
        "block",
        "faq",
        Action.UPDATE,
        {"value": before},
        {"value": after},
        parent="agent.support",
    )
    return Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [Change("agent.support", "agent", "support", Action.NO_OP, {}, {}), change],
    )


def changed_rows(text: str) -> tuple[str, str]:
    [removed] = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]
    [added] = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("+ ")]
    return removed, added


def test_a_long_one_line_value_changed_near_the_end_shows_the_change(kinds: dict[str, ResourceKind]) -> None:
    before = "".join(f"fact {number:04d}; " for number in range(300))  # 3,000 characters on one line
    after = before[:2_900] + "CHANGED" + before[2_907:]

    text = render_plan(block_change(before, after), kinds)

    removed, added = changed_rows(text)
    assert removed != added
    assert "CHANGED" in added and "CHANGED" not in removed
    assert removed.startswith("...") and removed.endswith("...")
    assert "(first difference at character 2,901)" in text


def test_a_long_one_line_value_changed_in_the_middle_shows_the_change(kinds: dict[str, ResourceKind]) -> None:
    before = "x" * 1_500 + "old words" + "y" * 1_500
    after = "x" * 1_500 + "new words" + "y" * 1_500

    removed, added = changed_rows(render_plan(block_change(before, after), kinds))

    assert "old words" in removed and "new words" in added
    assert len(removed) == len(added) == 100


def test_a_long_value_that_only_grows_shows_where_it_grows(kinds: dict[str, ResourceKind]) -> None:
    before = "z" * 4_000

    removed, added = changed_rows(render_plan(block_change(before, before + " and more"), kinds))

    assert removed == "..." + "z" * 30 and added == "..." + "z" * 30 + " and more"


def test_a_change_at_the_start_of_a_long_value_keeps_the_head(kinds: dict[str, ResourceKind]) -> None:
    before = "a" * 3_000

    removed, added = changed_rows(render_plan(block_change(before, "b" + before[1:]), kinds))

    assert removed == "a" * 97 + "..." and added == "b" + "a" * 96 + "..."


def test_a_long_line_edited_deep_in_a_text_shows_the_change(kinds: dict[str, ResourceKind]) -> None:
    long_line = "word " * 600
    before = f"Intro\n{long_line}end of old\nOutro"
    after = f"Intro\n{long_line}end of new\nOutro"

    text = render_plan(prompt_change(before, after), kinds)

    removed, added = changed_rows(text)
    assert removed.endswith("end of old") and added.endswith("end of new")
    assert "line 2, character 3,008:" in text


def test_a_carriage_return_in_a_value_is_shown_not_obeyed(kinds: dict[str, ResourceKind]) -> None:
    text = render_plan(block_change("a", "b\r::error::forged"), kinds)

    assert "\r" not in text
    assert "+ b\\r::error::forged" in text


def test_an_ambiguity_is_shown_with_its_remedy_and_the_plan_never_says_no_changes(kinds):
    agent = Change("agent.support", "agent", "support", Action.NO_OP, {}, {})
    found = Ambiguity.first_of("agent.support", "2 agents are named 'support'", ["agent-1", "agent-2"], "delete one")
    text = render_plan(Plan.build("fleet.yaml", "http://x", [agent], [found]), kinds)
    assert "[?] agent.support (AMBIGUOUS): 2 agents are named 'support': the plan uses the oldest, agent-1" in text
    assert "    To fix: delete one" in text
    assert "No changes" not in text
    assert text.endswith(
        "Ambiguous: 1 resource(s) match more than one on the server (marked [?] above); the plan "
        "uses the one it names, until you remove the others."
    )


def test_a_replaced_conversation_shows_why_and_is_counted_as_replaced(kinds):
    agent = "agent.support"
    plan = Plan.build(
        "fleet.yaml",
        "http://x",
        [
            Change(agent, "agent", "support", Action.NO_OP, {}, {}),
            Change(
                f"{agent}.conversation.T",
                "conversation",
                "T",
                Action.REPLACE,
                {},
                {},
                parent=agent,
                detail="replace (delete and create): it lacks its isolated copy of ctx",
            ),
        ],
    )
    text = render_plan(plan, kinds)
    assert "    -/+ conversation T: replace (delete and create): it lacks its isolated copy of ctx" in text
    assert (
        closing_line(plan, kinds) == "Plan: 0 to create, 0 to update, 0 to delete; 0 new conversations, 1 to replace."
    )
    assert "1 replaced" in render_report(report(plan), plan, kinds)


def many_agents_plan(count: int) -> Plan:
    changes = [Change(f"agent.a{n:02d}", "agent", f"a{n:02d}", Action.CREATE, None, {}) for n in range(count)]
    return Plan.build("fleet.yaml", "http://127.0.0.1:8283", changes)


def interrupted(plan: Plan, applied: int, failed: int = 0) -> ApplyReport:
    results = []
    for index, change in enumerate(plan.changes):
        if index < applied:
            results.append(ChangeResult(change.address, change.action, "applied"))
        elif index < applied + failed:
            results.append(ChangeResult(change.address, change.action, "failed", "server said no"))
        else:
            results.append(ChangeResult(change.address, change.action, "skipped", INTERRUPTED))
    return ApplyReport(tuple(results), interrupted=True)


def test_an_interrupted_apply_says_what_was_applied_failed_and_not_attempted_and_how_to_resume(kinds) -> None:
    plan = many_agents_plan(30)

    text = render_report(interrupted(plan, applied=3, failed=1), plan, kinds)

    assert text.splitlines() == [
        "Apply interrupted: 3 created, 0 updated, 0 deleted; 1 failed, 26 not attempted.",
        "Applied (3): agent.a00, agent.a01, agent.a02",
        "  agent.a03: failed - server said no",
        "Not attempted (26): agent.a04, agent.a05, agent.a06, agent.a07, agent.a08, agent.a09, agent.a10, "
        "agent.a11, agent.a12, agent.a13 and 16 more",
        "Run `lettafleet apply` again to finish: it picks up what is left.",
    ]


def test_the_json_of_an_interrupted_apply_says_so_and_lists_every_change_not_attempted() -> None:
    plan = many_agents_plan(30)

    document = json.loads(render_apply_json(plan, interrupted(plan, applied=3)))

    assert document["apply"]["interrupted"] is True and document["apply"]["ok"] is False
    assert document["apply"]["not_attempted"] == [f"agent.a{n:02d}" for n in range(3, 30)]


def removal_plan() -> Plan:
    """A named fleet's plan with one agent removed and held, one protected, and a block removed from a kept agent."""
    kept, gone, guarded = "agent.kept", "agent.gone", "agent.guarded"
    return Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            Change(kept, "agent", "kept", Action.NO_OP, {}, {}),
            Change(f"{kept}.block.notes", "block", "notes", Action.DELETE, {"value": "n"}, None, parent=kept),
            Change(gone, "agent", "gone", Action.DELETE, {}, None, held="prune", drift="removed, kept: memory"),
            Change(guarded, "agent", "guarded", Action.DELETE, {}, None, held="protect", protected=True, drift="p"),
        ],
        owner="prod",
    )


def test_a_held_removal_is_marked_held_with_its_reason(kinds: dict[str, ResourceKind]) -> None:
    text = render_plan(removal_plan(), kinds)

    assert "[-] gone (DELETE, held: needs --prune)\n    removed, kept: memory" in text
    assert "[-] guarded (DELETE, held: protected)" in text
    assert "[~] kept (UPDATE)\n    - block notes\n" in text


def test_the_summary_counts_removals_apart_from_held_ones(kinds: dict[str, ResourceKind]) -> None:
    lines = closing_line(removal_plan(), kinds).splitlines()

    assert lines[0] == "Plan: 0 to create, 0 to update, 1 to delete, 2 held."
    assert lines[1] == (
        "Held: 2 removal(s) planned and not applied (marked held above): 1 need --prune (or `prune: true`), "
        "1 are protected."
    )
    assert not any(line.startswith("Drift:") for line in lines)


def test_the_apply_report_counts_deleted_resources_and_conversations(kinds: dict[str, ResourceKind]) -> None:
    agent = "agent.support"
    plan = Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            Change(agent, "agent", "support", Action.NO_OP, {}, {}),
            Change(f"{agent}.block.faq", "block", "faq", Action.DELETE, {"value": ""}, None, parent=agent),
            Change(f'{agent}.conversation["A"]', "conversation", "A", Action.DELETE, {}, None, parent=agent),
        ],
    )

    assert closing_line(plan, kinds) == "Plan: 0 to create, 0 to update, 1 to delete; 0 new conversations, 1 to delete."
    assert render_report(report(plan), plan, kinds) == (
        "Apply complete: 0 created, 0 updated, 1 deleted; 0 new conversations, 1 deleted."
    )


def test_a_top_level_drift_and_a_rename_say_why_under_their_line(kinds: dict[str, ResourceKind]) -> None:
    kept = "agent sales-2 has it attached and is not in the fleet: the tool is kept"
    plan = Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            Change("tool.lookup", "tool", "lookup", Action.NO_OP, {}, {}, drift=kept),
            Change(
                "agent.helpdesk",
                "agent",
                "helpdesk",
                Action.UPDATE,
                {"name": "support"},
                {"name": "helpdesk"},
                detail="renamed from agent.support (moved)",
            ),
        ],
    )
    text = render_plan(plan, kinds)
    assert f"[!] tool lookup (DRIFT)\n    {kept}" in text
    assert "[~] helpdesk (UPDATE)\n    renamed from agent.support (moved)" in text


def test_children_of_a_kind_not_listed_are_summed_up_by_their_parents_detail_not_listed_one_by_one() -> None:
    kinds = {
        "group": ResourceKind("group", "groups"),
        "member": ResourceKind("member", "members", listed=False),
    }
    members = [
        Change(f"group.g.member.m{i}", "member", f"m{i}", Action.UPDATE, {"x": 1}, {"x": 2}, parent="group.g")
        for i in range(3)
    ]
    parent = Change("group.g", "group", "g", Action.NO_OP, {}, {}, detail="3 members would change")
    plan = Plan.build("fleet.yaml", "http://127.0.0.1:8283", [parent, *members])

    assert render_plan(plan, kinds).splitlines() == [
        "[~] group g (UPDATE)",
        "    3 members would change",
        "",
        "Plan: 0 to create, 3 to update, 0 to delete.",
    ]


def test_a_change_a_plugin_holds_for_its_own_reason_is_counted_with_that_reason(kinds: dict[str, ResourceKind]) -> None:
    shared = Change("agent.shared", "agent", "shared", Action.UPDATE, {"v": 1}, {"v": 2}, held="left by --x", drift="x")
    plan = Plan.build("fleet.yaml", "http://127.0.0.1:8283", [shared])

    lines = closing_line(plan, kinds).splitlines()

    assert lines[0] == "Plan: 0 to create, 0 to update, 0 to delete, 1 held."
    assert lines[1] == "Held: 1 change(s) planned and not applied (marked held above): 1 left by --x."
