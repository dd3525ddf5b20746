"""The Markdown plan: what a reviewer sees in a pull request comment, and that it always fits in one."""

from __future__ import annotations

import re

import pluggy
import pytest

from lettafleet.core.engine.kinds import ResourceKind
from lettafleet.core.engine.model import Action, Ambiguity, Change, Plan
from lettafleet.core.engine.plugin_manager import resource_kinds
from lettafleet.core.render.markdown import COMMENT_LIMIT, inline_code, render_plan_markdown


@pytest.fixture
def kinds(manager: pluggy.PluginManager) -> dict[str, ResourceKind]:
    return resource_kinds(manager)


def agent(name: str, action: Action = Action.CREATE, **fields: object) -> Change:
    before = {key: value[0] for key, value in fields.items()} if action is Action.UPDATE else None  # type: ignore[index]
    after = (
        {key: value[1] for key, value in fields.items()} if action is Action.UPDATE else {"model": "letta/letta-free"}
    )  # type: ignore[index]
    return Change(f"agent.{name}", "agent", name, action, before, after)


def child(parent: str, kind: str, name: str, action: Action = Action.CREATE, drift: str | None = None) -> Change:
    address = f"agent.{parent}.{kind}.{name}"
    after = None if action is Action.DELETE else {"value": name}
    before = None if action is Action.CREATE else {"value": name}
    return Change(address, kind, name, action, before, after, parent=f"agent.{parent}", drift=drift)


def mixed_plan() -> Plan:
    return Plan.build(
        "fleets/support.yaml",
        "http://127.0.0.1:8283",
        [
            agent("new-agent"),
            child("new-agent", "block", "faq"),
            child("new-agent", "conversation", "ticket-1"),
            agent("old-agent", Action.UPDATE, description=("before", "after")),
            child("old-agent", "block", "notes", Action.DELETE),
            agent("odd-agent", Action.NO_OP),
            child("odd-agent", "block", "shared", Action.NO_OP, drift="has copies the fleet does not declare"),
        ],
    )


def above_the_fold(markdown: str) -> str:
    return markdown.split("<details>", 1)[0]


def test_summary_line_is_visible_without_expanding(kinds: dict[str, ResourceKind]) -> None:
    markdown = render_plan_markdown(mixed_plan(), kinds)

    assert "**Plan: 2 to create, 1 to update, 1 to delete; 1 new conversation.**" in above_the_fold(markdown)


def test_heading_names_the_fleet_file(kinds: dict[str, ResourceKind]) -> None:
    markdown = render_plan_markdown(mixed_plan(), kinds)

    assert markdown.startswith("### lettafleet plan for `fleets/support.yaml`\n")


def test_deletions_are_called_out_above_the_fold(kinds: dict[str, ResourceKind]) -> None:
    fold = above_the_fold(render_plan_markdown(mixed_plan(), kinds))

    assert "[!CAUTION]" in fold
    assert "1 resource (1 block) will be deleted" in fold
    assert "`agent.old-agent.block.notes`" in fold


def test_drift_is_called_out_above_the_fold_with_its_reason(kinds: dict[str, ResourceKind]) -> None:
    fold = above_the_fold(render_plan_markdown(mixed_plan(), kinds))

    assert "[!WARNING]" in fold
    assert "cannot be changed in place" in fold
    assert "`agent.odd-agent.block.shared`: has copies the fleet does not declare" in fold


def test_each_agent_has_its_own_folded_diff_block(kinds: dict[str, ResourceKind]) -> None:
    markdown = render_plan_markdown(mixed_plan(), kinds)

    summaries = re.findall(r"<details><summary>(.*?)</summary>", markdown)
    assert [summary.split(" (")[0] for summary in summaries] == ["+ new-agent", "! odd-agent", "~ old-agent"]
    assert markdown.count("```diff\n") == 3


def test_diff_lines_carry_their_symbol_in_column_zero(kinds: dict[str, ResourceKind]) -> None:
    markdown = render_plan_markdown(mixed_plan(), kinds)

    diff_lines = [line for block in re.findall(r"```diff\n(.*?)\n```", markdown, re.S) for line in block.splitlines()]
    assert "+     block faq" in diff_lines
    assert "-     block notes" in diff_lines
    assert "-       before" in diff_lines and "+       after" in diff_lines
    assert all(line[0] in "+-~!= " for line in diff_lines)


def test_a_plan_without_changes_says_so(kinds: dict[str, ResourceKind]) -> None:
    plan = Plan.build("fleet.yaml", "http://127.0.0.1:8283", [agent("calm", Action.NO_OP)])

    markdown = render_plan_markdown(plan, kinds)

    assert "**No changes. The server matches the fleet.**" in markdown
    assert "<details>" not in markdown


def test_backticks_in_names_cannot_close_the_code_block(kinds: dict[str, ResourceKind]) -> None:
    plan = Plan.build("fleet.yaml", "http://h", [agent("a"), child("a", "conversation", "``` oops")])

    markdown = render_plan_markdown(plan, kinds)

    assert "````diff\n" in markdown
    assert "\n````\n" in markdown


def test_inline_code_survives_backticks_in_the_text() -> None:
    assert inline_code("a`b") == "``a`b``"
    assert inline_code("`edge`") == "`` `edge` ``"


def test_credentials_in_the_server_url_are_not_shown(kinds: dict[str, ResourceKind]) -> None:
    plan = Plan.build("fleet.yaml", "https://user:s3cret-password@letta.example.com:8443", [agent("a")])

    markdown = render_plan_markdown(plan, kinds)

    assert "s3cret-password" not in markdown
    assert "`https://letta.example.com:8443`" in markdown


def large_plan(agents: int = 400, conversations: int = 12) -> Plan:
    changes = []
    for number in range(agents):
        name = f"agent-{number:04d}-with-a-reasonably-long-name"
        changes.append(agent(name))
        changes += [child(name, "conversation", f"ticket-{ticket}") for ticket in range(conversations)]
    return Plan.build("fleet.yaml", "http://127.0.0.1:8283", changes)


def test_a_plan_too_large_for_a_comment_is_cut_under_the_limit(kinds: dict[str, ResourceKind]) -> None:
    plan = large_plan()
    marker = "<!-- lettafleet-plan fleet=fleet.yaml -->"

    markdown = render_plan_markdown(plan, kinds, marker=marker, full_plan_at="the job summary")

    assert len(markdown) < COMMENT_LIMIT
    assert markdown.startswith(marker + "\n")
    assert "**Plan: 400 to create, 0 to update, 0 to delete; 4800 new conversations.**" in markdown
    assert "This plan is too long to show here in full" in markdown
    assert "The full plan is in the job summary." in markdown
    assert markdown.rstrip().endswith("</sub>")  # the footer with the plan hash survives the cut


def test_a_cut_plan_keeps_every_code_block_closed(kinds: dict[str, ResourceKind]) -> None:
    markdown = render_plan_markdown(large_plan(), kinds, budget=20_000)

    assert markdown.count("<details>") == markdown.count("</details>")
    assert len(re.findall(r"^```", markdown, re.M)) % 2 == 0


def test_one_agent_too_large_for_the_budget_shows_its_first_lines(kinds: dict[str, ResourceKind]) -> None:
    plan = large_plan(agents=1, conversations=3000)

    markdown = render_plan_markdown(plan, kinds, budget=10_000)

    assert len(markdown.encode()) <= 10_000
    assert "+     conversation ticket-0" in markdown
    assert re.search(r"\.\.\. \d+ more line\(s\), see the full plan", markdown)


def test_the_budget_counts_bytes_so_wide_characters_still_fit(kinds: dict[str, ResourceKind]) -> None:
    plan = Plan.build(
        "fleet.yaml",
        "http://h",
        [
            change
            for number in range(300)
            for change in (agent(f"agent-{number}"), child(f"agent-{number}", "block", "ü" * 90))
        ],
    )

    markdown = render_plan_markdown(plan, kinds, budget=20_000)

    assert len(markdown.encode("utf-8")) <= 20_000


def test_a_long_one_line_value_shows_the_part_that_changed(kinds: dict[str, ResourceKind]) -> None:
    before = "Our opening hours are listed below. " * 100
    after = before[:3_000] + "Closed on Sundays." + before[3_018:]
    plan = Plan.build(
        "fleet.yaml",
        "http://h",
        [
            agent("a", Action.UPDATE, description=("x", "y")),
            Change(
                "agent.a.block.faq",
                "block",
                "faq",
                Action.UPDATE,
                {"value": before},
                {"value": after},
                parent="agent.a",
            ),
        ],
    )

    markdown = render_plan_markdown(plan, kinds)

    [removed] = [line for line in markdown.splitlines() if line.startswith("-") and "..." in line]
    [added] = [line for line in markdown.splitlines() if line.startswith("+") and "..." in line]
    assert "Closed on Sundays." in added and "Closed on Sundays." not in removed
    assert "(first difference at character 3,001)" in markdown


def test_ambiguities_and_replacements_are_called_out_above_the_fold(kinds: dict[str, ResourceKind]) -> None:
    replaced = Change(
        "agent.new-agent.conversation.T",
        "conversation",
        "T",
        Action.REPLACE,
        {},
        {},
        parent="agent.new-agent",
        detail="it lacks its isolated copy of ctx",
    )
    found = Ambiguity.first_of(
        "agent.new-agent", "2 agents are named 'new-agent'", ["agent-1", "agent-2"], "delete one"
    )
    plan = Plan.build("fleet.yaml", "http://x", [agent("new-agent", Action.NO_OP), replaced], [found])

    fold = above_the_fold(render_plan_markdown(plan, kinds))

    assert "1 resource will be deleted and created again" in fold
    assert "`agent.new-agent.conversation.T`: it lacks its isolated copy of ctx" in fold
    assert "1 resource matches more than one on the server" in fold
    assert (
        "`agent.new-agent`: 2 agents are named 'new-agent': the plan uses the oldest, agent-1, and leaves agent-2"
        in fold
    )
    assert "**To fix:** delete one" in fold


def test_removals_and_held_removals_are_counted_above_the_fold(kinds: dict[str, ResourceKind]) -> None:
    plan = Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            Change("agent.gone", "agent", "gone", Action.DELETE, {}, None, held="prune", drift="kept: its memory"),
            agent("kept", Action.NO_OP),
            child("kept", "block", "notes", Action.DELETE),
            child("kept", "block", "rules", Action.DELETE),
        ],
    )

    fold = above_the_fold(render_plan_markdown(plan, kinds))

    assert "**Plan: 0 to create, 0 to update, 2 to delete, 1 held.**" in fold
    assert "> **2 resources (2 blocks) will be deleted:**" in fold
    assert "> - `agent.kept.block.notes`" in fold
    assert "> **1 removal (1 agent) planned and held back; apply does not make them:**" in fold
    assert "> - `agent.gone` (held: needs --prune): kept: its memory" in fold
    assert "cannot be changed in place" not in fold  # a held removal is not drift
