"""The plan for pull requests: Markdown with the summary and the risky changes in view, per-agent detail folded,
and the whole kept under a size budget (GitHub refuses comments over 65,536 characters)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from lettafleet.core.engine.kinds import ResourceKind
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.letta.masking import public_url
from lettafleet.core.render.text import closing_line, held_label, plan_rows, server_of

COMMENT_LIMIT = 65_536
# Below the limit, so a comment can later gain the apply result without being cut again.
COMMENT_BUDGET = 60_000
# A job summary may hold 1 MiB per step; several fleets share one step.
SUMMARY_BUDGET = 900_000
# Deletions and drift are listed above the fold; past this many the rest are only in the details.
CALLOUT_ITEMS = 20

# What can start emphasis, a link, HTML, an entity, code, strikethrough or a table cell inside a line of text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
# What GitHub turns into a notification or a link even when it is escaped: `@user` and `@org/team` mentions,
# `#123` references (`owner/repo#123` too) and bare URLs. A zero-width space after the `@`, the `#`, the `:` of
# `://` or the `www` breaks each; it renders as nothing.
_REFERENCES = re.compile(r"(@)(?=[A-Za-z0-9])|(#)(?=[0-9])|(:)(?=//)|(\bwww)(?=\.)", re.IGNORECASE)
# The delimiters of an HTML comment, which the hidden markers of a plan comment are; fleet text shown verbatim (in
# code) gets a zero-width space inside them, so that it can never read as, or break, a marker.
_COMMENT_DELIMITERS = re.compile(r"<!(?=--)|--(?=!?>)")


def render_plan_markdown(
    plan: Plan,
    kinds: Mapping[str, ResourceKind],
    *,
    marker: str = "",
    budget: int = COMMENT_BUDGET,
    full_plan_at: str = "the output of `lettafleet plan`",
) -> str:
    """The plan as one Markdown document of at most `budget` bytes (UTF-8, which is never fewer than characters).

    `marker` (a hidden HTML comment) comes first and is always kept. When the per-agent detail does not fit, it
    is cut and a note says the full plan is in `full_plan_at`; heading, summary, callouts and marker stay.
    """
    head = [marker] if marker else []
    head += [f"### lettafleet plan for {inline_code(plan.fleet)}", "", f"**{summary_line(plan, kinds)}**", ""]
    head += _callouts(plan, kinds)
    server = f"{inline_code(public_url(plan.server))} ({escape_markdown(server_of(plan).facts())})"
    footer = [f"<sub>Plan sha256 {inline_code(plan.sha256)} against {server}</sub>"]
    groups = _diff_groups(plan, kinds)

    reserved = _size("\n".join(head + footer)) + _size(_cut_note(len(groups), len(groups), full_plan_at)) + 2
    shown, cut = _fit(groups, used=reserved, budget=budget)
    lines = head + shown
    if cut:
        lines += [_cut_note(len(groups) - cut, len(groups), full_plan_at), ""]
    return "\n".join(lines + footer) + "\n"


def summary_line(plan: Plan, kinds: Mapping[str, ResourceKind]) -> str:
    """`Plan: 1 to create, 2 to update, 0 to delete; 1 new conversation.` (drift is called out separately)."""
    return closing_line(plan, kinds).splitlines()[0]


def inline_code(text: str, *, in_table: bool = False) -> str:
    """`text` as a Markdown code span that any backticks inside cannot end early (nor, `in_table`, a `|` end the
    table cell: GitHub splits cells before it reads code spans)."""
    text = _inert_comment_delimiters(" ".join(text.splitlines()))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    code = f"{fence}{padded}{fence}"
    return code.replace("|", "\\|") if in_table else code


def escape_markdown(text: str) -> str:
    """Plain text that Markdown shows as written, on one line: no emphasis, links, HTML, table cells, mentions
    or issue references."""
    return _inert_references(_MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.splitlines())))


def escape_html(text: str) -> str:
    """Plain text inside HTML (a `<summary>`), on one line, that GitHub shows as written: no tags, mentions or
    issue references."""
    return _inert_references(html.escape(" ".join(text.splitlines())))


def code_block(lines: list[str], language: str = "") -> list[str]:
    """A fenced code block whose fence is longer than any backtick run in the content."""
    lines = [_inert_comment_delimiters(part) for line in lines for part in line.splitlines() or [""]]
    longest = max((len(run) for line in lines for run in re.findall(r"`{3,}", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", *lines, fence]


def _inert_references(markdown: str) -> str:
    return _REFERENCES.sub(lambda found: f"{found[0]}&#8203;", markdown)


def _inert_comment_delimiters(text: str) -> str:
    return _COMMENT_DELIMITERS.sub(lambda found: f"{found[0][0]}\u200b{found[0][1:]}", text)


def _callouts(plan: Plan, kinds: Mapping[str, ResourceKind]) -> list[str]:
    """Deletions, held removals, replacements, drift and ambiguities, above the fold: what a reviewer must not
    miss."""
    lines: list[str] = []
    deletions = [change for change in plan.changes if change.action is Action.DELETE and not change.held]
    if deletions:
        counted = f"{_count(len(deletions), 'resource')} ({_by_kind(deletions, kinds)})"
        lines += ["> [!CAUTION]", f"> **{counted} will be deleted:**"]
        lines += _listed([inline_code(change.address) for change in deletions])
        lines.append("")
    held = [change for change in plan.changes if change.held]
    if held:
        counted = f"{_count(len(held), 'removal')} ({_by_kind(held, kinds)})"
        lines += ["> [!IMPORTANT]", f"> **{counted} planned and held back; apply does not make them:**"]
        lines += _listed(
            [
                f"{inline_code(change.address)} ({held_label(change)}): {escape_markdown(change.drift or '')}"
                for change in held
            ]
        )
        lines.append("")
    replaced = [change for change in plan.changes if change.action is Action.REPLACE]
    if replaced:
        lines += ["> [!CAUTION]", f"> **{_count(len(replaced), 'resource')} will be deleted and created again:**"]
        lines += _listed(
            [f"{inline_code(change.address)}: {escape_markdown(change.detail)}".rstrip(": ") for change in replaced]
        )
        lines.append("")
    drifted = [change for change in plan.changes if change.drift and not change.held]
    if drifted:
        noun = "difference" if len(drifted) == 1 else "differences"
        lines += [
            "> [!WARNING]",
            f"> **{len(drifted)} {noun} cannot be changed in place; apply leaves them as they are:**",
        ]
        lines += _listed(
            [f"{inline_code(change.address)}: {escape_markdown(change.drift or '')}" for change in drifted]
        )
        lines.append("")
    if plan.ambiguities:
        lines += [
            "> [!WARNING]",
            f"> **{_count(len(plan.ambiguities), 'resource')} {'matches' if len(plan.ambiguities) == 1 else 'match'} "
            "more than one on the server; the plan uses the one it names:**",
        ]
        lines += _listed(
            [
                f"{inline_code(found.address)}: {escape_markdown(found.message)} "
                f"**To fix:** {escape_markdown(found.remedy)}"
                for found in plan.ambiguities
            ]
        )
        lines.append("")
    if plan.context_warnings:
        threshold = f"{100 * plan.context_warnings[0].threshold:.0f}%"
        counted = _count(len(plan.context_warnings), "context window")
        lines += [
            "> [!WARNING]",
            f"> **{counted} would be more than {threshold} full, leaving little room for messages:**",
        ]
        lines += _listed(
            [
                f"{inline_code(warning.address)}: about {warning.tokens:,} of {warning.window:,} tokens "
                f"({100 * warning.share:.0f}%). {escape_markdown(warning.remedy)}".rstrip()
                for warning in plan.context_warnings
            ]
        )
        lines.append("")
    return lines


def _by_kind(changes: list[Change], kinds: Mapping[str, ResourceKind]) -> str:
    """`2 agents, 1 block`: how many of each kind, in the order of the changes."""
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.kind] = counts.get(change.kind, 0) + 1
    return ", ".join(
        f"{count} {kinds[kind].singular if count == 1 else kinds[kind].plural}" if kind in kinds else f"{count} {kind}"
        for kind, count in counts.items()
    )


def _listed(items: list[str]) -> list[str]:
    lines = [f"> - {item}" for item in items[:CALLOUT_ITEMS]]
    if len(items) > CALLOUT_ITEMS:
        lines.append(f"> - and {len(items) - CALLOUT_ITEMS} more (see the details below)")
    return lines


def _diff_groups(plan: Plan, kinds: Mapping[str, ResourceKind]) -> list[list[str]]:
    """The text plan's rows, one group per top-level resource, each row's symbol in column 0 so that a `diff`
    code block colours it (+ green, - red)."""
    return [
        [f"{row.symbol or ' '} " + "    " * row.depth + " " * row.offset + row.text for row in rows]
        for rows in plan_rows(plan, kinds)
    ]


def _details_block(group: list[str], cut_lines: int = 0) -> list[str]:
    body = group + ([f"  ... {cut_lines} more line(s), see the full plan"] if cut_lines else [])
    return [f"<details><summary>{escape_html(group[0])}</summary>", "", *code_block(body, "diff"), "", "</details>", ""]


def _fit(groups: list[list[str]], *, used: int, budget: int) -> tuple[list[str], int]:
    """The detail blocks that fit in what is left of the budget (the last one shortened if only part of it fits),
    and how many groups are not shown in full."""
    lines: list[str] = []
    for index, group in enumerate(groups):
        block = _details_block(group)
        size = _size("\n".join(block)) + 1
        if used + size <= budget:
            lines += block
            used += size
            continue
        # Show the head of this group: as many lines as fit beside its wrapping and a "more lines" note.
        room = budget - used - (_size("\n".join(_details_block(group[:1], cut_lines=len(group)))) + 1)
        keep = 1
        while keep < len(group) and room >= _size(group[keep]) + 1:
            room -= _size(group[keep]) + 1
            keep += 1
        if room >= 0:
            lines += _details_block(group[:keep], cut_lines=len(group) - keep)
        return lines, len(groups) - index
    return lines, 0


def _cut_note(shown: int, total: int, full_plan_at: str) -> str:
    return (
        f"> [!NOTE]\n> This plan is too long to show here in full ({shown} of {total} resources shown in "
        f"full). The full plan is in {full_plan_at}."
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))
