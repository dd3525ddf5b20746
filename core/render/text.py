"""The plan for people: one line per top-level resource, details indented under it, a closing summary."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lettafleet.core.engine.applying import ApplyReport
from lettafleet.core.engine.kinds import ResourceKind
from lettafleet.core.engine.model import SENSITIVE, Action, Change, Plan
from lettafleet.core.letta.masking import public_url
from lettafleet.core.letta.server import ServerInfo

SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.REPLACE: "-/+", Action.NO_OP: "="}
AMBIGUOUS = "?"
VALUE_WIDTH = 100
# Of a long value that changes past the point where VALUE_WIDTH cuts it: how much unchanged text is shown before
# the first difference, so the `-` and `+` lines show the part that differs, not the same head twice.
CONTEXT_BEFORE = 30
MAX_CHANGED_LINES = 20  # of one multi-line value; the JSON plan has them all
PLANNED = {
    Action.CREATE: "to create",
    Action.UPDATE: "to update",
    Action.DELETE: "to delete",
    Action.REPLACE: "to replace",
}
DONE = {Action.CREATE: "created", Action.UPDATE: "updated", Action.DELETE: "deleted", Action.REPLACE: "replaced"}
# Why a planned removal is held back (`Change.held`), as the plan's line for it says.
HELD = {"prune": "held: needs --prune", "protect": "held: protected"}


@dataclass(frozen=True)
class Row:
    """One line of a plan for people: a symbol (None for detail lines), how deep it sits, and its text.
    The text and Markdown renderers lay the same rows out differently."""

    symbol: str | None
    depth: int
    text: str
    offset: int = 0  # extra spaces before the symbol (the `- old` / `+ new` under a field name)


def plan_rows(plan: Plan, kinds: Mapping[str, ResourceKind], *, verbose: bool = False) -> list[list[Row]]:
    """The plan's rows, one group per top-level resource that changes (every one with `verbose`)."""
    groups: list[list[Row]] = []
    for root in (change for change in plan.changes if change.parent is None):
        subtree = _subtree(plan, root)
        if not verbose and not any(c.changes_something or c.drift for c in subtree):
            continue
        summed_up = any(not _listed(change, kinds) and change.changes_something for change in subtree[1:])
        rows = [_root_row(root, subtree, plan, kinds), *_root_reason(root, summed_up), *_details(root, depth=1)]
        for change in subtree[1:]:
            if _listed(change, kinds) and (change.changes_something or change.drift):
                rows.append(Row(_symbol(change), 1, _describe(change, root, kinds)))
                rows.extend(_details(change, depth=2))
        groups.append(rows)
    return groups


def plan_header(plan: Plan) -> str:
    """The line above a plan: which fleet, against which server, its version and the project."""
    return f"Plan for {plan.fleet} against {server_of(plan).describe()}"


def server_of(plan: Plan) -> ServerInfo:
    """The server a plan was read from, as it described itself."""
    return ServerInfo(public_url(plan.server), plan.server_version, plan.project)


def render_plan(plan: Plan, kinds: Mapping[str, ResourceKind], *, verbose: bool = False) -> str:
    lines = [_laid_out(row) for rows in plan_rows(plan, kinds, verbose=verbose) for row in rows]
    lines += [_laid_out(row) for row in ambiguity_rows(plan)]
    lines += [str(warning) for warning in plan.context_warnings]
    return "\n".join([*lines, "", closing_line(plan, kinds)]).lstrip("\n")


def held_label(change: Change) -> str:
    """`held: needs --prune` or `held: protected`: why a planned removal is not applied."""
    return HELD.get(change.held or "", f"held: {change.held}")


def _root_reason(root: Change, summed_up: bool = False) -> list[Row]:
    """Under a top-level resource, what a child's line says after its name: why a removal is held and what to do,
    the drift apply cannot fix, or the change's detail (a rename, the `moved` entry that would keep its data; for
    a parent whose changing children are not listed, `summed_up`, what they change)."""
    if root.removes:
        reason = root.drift if root.held else root.detail
    else:
        reason = root.drift or (root.detail if root.action is not Action.NO_OP or summed_up else "")
    return [Row(None, 1, reason)] if reason else []


def _listed(change: Change, kinds: Mapping[str, ResourceKind]) -> bool:
    """Whether the plan for people lists the change on a line of its own (see `ResourceKind.listed`)."""
    kind = kinds.get(change.kind)
    return kind is None or kind.listed


def ambiguity_rows(plan: Plan) -> list[Row]:
    """Each ambiguity the live read resolved: its address and what was found, then what to do."""
    rows = []
    for ambiguity in plan.ambiguities:
        rows.append(Row(AMBIGUOUS, 0, f"{ambiguity.address} (AMBIGUOUS): {ambiguity.message}"))
        rows.append(Row(None, 1, f"To fix: {ambiguity.remedy}"))
    return rows


def _laid_out(row: Row) -> str:
    if row.depth == 0:
        return f"[{row.symbol}] {row.text}"
    return "    " * row.depth + " " * row.offset + (f"{row.symbol} " if row.symbol else "") + row.text


def closing_line(plan: Plan, kinds: Mapping[str, ResourceKind]) -> str:
    counted = [k for k in kinds.values() if k.counted and k.name in plan.counts]
    if not plan.needs_attention:
        return "No changes. The server matches the fleet" + "".join(f"; 0 new {kind.plural}" for kind in counted) + "."
    text = "Plan: " + _tally(plan.changes, kinds, counted, PLANNED) + "."
    drift = sum(1 for change in plan.changes if change.drift and not change.held)
    if drift:
        text += f"\nDrift: {drift} difference(s) apply cannot fix in place (marked [!] above)."
    held = [change for change in plan.changes if change.held]
    if held:
        text += "\n" + _held_line(held)
    if plan.ambiguities:
        text += (
            f"\nAmbiguous: {len(plan.ambiguities)} resource(s) match more than one on the server (marked "
            f"[{AMBIGUOUS}] above); the plan uses the one it names, until you remove the others."
        )
    return text


def applied_line(report: ApplyReport, plan: Plan, kinds: Mapping[str, ResourceKind]) -> str:
    """What an apply did, counted as the plan's closing line counts what it would do:
    `4 created, 0 updated, 0 deleted; 2 new conversations`, then what failed or was not attempted."""
    by_address = plan.by_address()
    done = [by_address[result.address] for result in report.results if result.status == "applied"]
    counted = [k for k in kinds.values() if k.counted and k.name in plan.counts]
    text = _tally(done, kinds, counted, DONE)
    if not report.ok:
        text += f"; {report.count('failed')} failed, {report.count('skipped')} not attempted"
        unrecompiled = len(report.recompile_owed) + sum(1 for agent in report.recompiled if agent.error)
        if unrecompiled:
            text += f"; the conversations of {unrecompiled} agent{'s' * (unrecompiled != 1)} not recompiled"
    return text


def _what_next(report: ApplyReport) -> str:
    """What to do after an apply that did not do everything: what the next apply will do."""
    if report.failed:
        return "Fix the cause and run apply again: it picks up where this one stopped."
    return "Run apply again: it recompiles them (their records say a recompile is owed)."


def _held_line(held: list[Change]) -> str:
    """`Held: 2 removal(s) planned and not applied ...: 1 need --prune (or `prune: true`), 1 are protected`; a
    change held for another reason a plugin gave (`Change.held`) is counted with that reason."""
    reasons = Counter(change.held for change in held)
    pruned, protected = reasons.pop("prune", 0), reasons.pop("protect", 0)
    parts = [f"{pruned} need --prune (or `prune: true`)", f"{protected} are protected"] if pruned or protected else []
    parts += [f"{count} {reason}" for reason, count in sorted(reasons.items(), key=lambda item: str(item[0]))]
    noun = "change(s)" if reasons else "removal(s)"
    return f"Held: {len(held)} {noun} planned and not applied (marked held above): {', '.join(parts)}."


def _tally(
    changes: Iterable[Change],
    kinds: Mapping[str, ResourceKind],
    counted: list[ResourceKind],
    words: Mapping[Action, str],
) -> str:
    """Changes by action (`4 to create, 1 to update, 0 to delete`, `1 to replace` when any is, and `2 held` when
    removals are held back), then the new (and replaced, deleted) ones of each counted kind (conversations), which
    people track apart from configuration and so are left out of the action counts."""
    everything = list(changes)
    changes = [change for change in everything if not change.held]
    totals = {action: 0 for action in (Action.CREATE, Action.UPDATE, Action.DELETE, Action.REPLACE)}
    for change in changes:
        if change.action in totals and not (change.kind in kinds and kinds[change.kind].counted):
            totals[change.action] += 1
    text = ", ".join(
        f"{count} {words[action]}" for action, count in totals.items() if count or action is not Action.REPLACE
    )
    held = len(everything) - len(changes)
    text += f", {held} held" if held else ""
    for kind in counted:
        new = sum(1 for change in changes if change.kind == kind.name and change.action is Action.CREATE)
        text += f"; {new} new {kind.singular if new == 1 else kind.plural}"
        for action in (Action.REPLACE, Action.DELETE):
            count = sum(1 for change in changes if change.kind == kind.name and change.action is action)
            text += f", {count} {words[action]}" if count else ""
    return text


def render_report(report: ApplyReport, plan: Plan, kinds: Mapping[str, ResourceKind]) -> str:
    if report.interrupted:
        return _interrupted_report(report, plan, kinds)
    lines = [f"  {result.address}: {result.status} - {result.message}" for result in report.failed]
    lines += _recompiled_lines(report)
    # Apply acted on the match each ambiguity names, as the plan said; the others were left as they are.
    lines += [f"{found.address} is ambiguous: apply used {found.used}, as the plan said." for found in plan.ambiguities]
    if report.pace:
        lines.append(report.pace.describe())
    if report.ok:
        lines.append(f"Apply complete: {applied_line(report, plan, kinds)}.")
    else:
        lines.insert(0, "Apply finished with errors:")
        lines.append(f"Apply failed: {applied_line(report, plan, kinds)}. {_what_next(report)}")
    return "\n".join(lines)


def _recompiled_lines(report: ApplyReport) -> list[str]:
    """A line for the conversations recompiled after the changes, and one for each agent whose were not."""
    done = [agent for agent in report.recompiled if not agent.error]
    lines = [
        f"  {agent.address}: conversations not recompiled - {agent.error}. They keep the old system prompt and "
        "blocks until recompiled: the agent's record says a recompile is owed, so the next apply does it."
        for agent in report.recompiled
        if agent.error
    ]
    lines += [
        f"  {agent.address}: {_conversations(len(agent.skipped))} with isolated block copies not recompiled "
        f"(Letta would compile the agent's blocks over their copies): {_some(list(agent.skipped))}."
        for agent in report.recompiled
        if agent.skipped
    ]
    if done:
        count = sum(agent.conversations for agent in done)
        lines.append(
            f"Recompiled {_conversations(count)} of {len(done)} "
            f"agent{'s' if len(done) != 1 else ''} whose system prompt or blocks changed: "
            f"{_some([agent.address for agent in done])}."
        )
    return lines


def _conversations(count: int) -> str:
    return f"{count} conversation{'s' if count != 1 else ''}"


def _interrupted_report(report: ApplyReport, plan: Plan, kinds: Mapping[str, ResourceKind]) -> str:
    """What a stopped apply did, failed and never started; the long lists shortened (`-o json` has them all)."""
    not_attempted = report.not_attempted
    failed = [result for result in report.failed if result not in not_attempted]
    applied = [result.address for result in report.results if result.status == "applied"]
    lines = [f"Apply interrupted: {applied_line(report, plan, kinds)}."]
    lines.append(f"Applied ({len(applied)}): {_some(applied)}")
    lines.extend(f"  {result.address}: {result.status} - {result.message}" for result in failed)
    lines.append(f"Not attempted ({len(not_attempted)}): {_some([result.address for result in not_attempted])}")
    lines += _recompiled_lines(report)
    if report.recompile_owed:
        owed = list(report.recompile_owed)
        lines.append(f"Conversations not recompiled ({len(owed)} agents): {_some(owed)}; their records say so.")
    if report.pace:
        lines.append(report.pace.describe())
    if report.ok:
        lines.append("Every change had landed and every record was written when it stopped: nothing is left to do.")
    else:
        lines.append("Run `lettafleet apply` again to finish: it picks up what is left.")
    return "\n".join(lines)


def _some(addresses: list[str], shown: int = 10) -> str:
    if not addresses:
        return "none"
    more = len(addresses) - shown
    return ", ".join(addresses[:shown]) + (f" and {more} more" if more > 0 else "")


def result_line(change: Change, status: str, message: str = "") -> str:
    verb = DONE.get(change.action, "done") if status == "applied" else status
    return f"{change.address}: {verb}" + (f" ({message})" if message and status != "applied" else "")


def _subtree(plan: Plan, root: Change) -> list[Change]:
    return [root, *plan.descendants(root.address)]


def _root_row(root: Change, subtree: list[Change], plan: Plan, kinds: Mapping[str, ResourceKind]) -> Row:
    action = root.action
    if action is Action.NO_OP and any(c.changes_something for c in subtree[1:]):
        action = Action.UPDATE
    drifted = action is Action.NO_OP and any(c.drift for c in subtree)
    symbol = "!" if drifted else SYMBOLS[action]
    label = "DRIFT" if drifted else "no changes" if action is Action.NO_OP else action.value.upper()
    if root.held:
        label += f", {held_label(root)}"
    line = f"{_title(root, kinds)} ({label})"
    counts = []
    for kind in (k for k in kinds.values() if k.counted):
        children = [c for c in plan.children(root.address) if c.kind == kind.name]
        if children:
            new = sum(1 for c in children if c.action is Action.CREATE)
            text = f"{len(children)} {kind.singular if len(children) == 1 else kind.plural}"
            counts.append(text + (f", {new} new" if new and action is not Action.CREATE else ""))
    return Row(symbol, 0, line + (" - " + "; ".join(counts) if counts else ""))


def _title(change: Change, kinds: Mapping[str, ResourceKind]) -> str:
    kind = kinds.get(change.kind)
    if kind is not None and not kind.named_in_plan:
        return change.name
    return f"{kind.singular if kind else change.kind} {_quoted(change.name)}"


def _describe(change: Change, root: Change, kinds: Mapping[str, ResourceKind]) -> str:
    text = _title(change, kinds)
    if change.parent and change.parent != root.address:
        text += f" of {change.parent.removeprefix(root.address + '.')}"
    if change.held:
        text += f" ({held_label(change)})"
    if change.drift:
        return f"{text}: {change.drift}"
    if change.detail and change.action is not Action.NO_OP:
        return f"{text}: {change.detail}"
    return text


def _symbol(change: Change) -> str:
    return "!" if change.drift and not change.held else SYMBOLS[change.action]


def _details(change: Change, depth: int) -> list[Row]:
    """Changed fields as `field:` then `- old` and `+ new` beneath it; of a text of several lines, only the lines
    that changed, so an edit deep in a long system prompt or tool source shows where and what it is."""
    if change.action is not Action.UPDATE or change.drift:
        return []
    lines = []
    for field in change.changed_fields():
        before, after = (change.before or {}).get(field), (change.after or {}).get(field)
        if field in change.sensitive:
            before, after = (None if value is None else SENSITIVE for value in (before, after))
        lines.append(Row(None, depth, f"{field}:"))
        if isinstance(before, str) and isinstance(after, str) and ("\n" in before or "\n" in after):
            lines.extend(_changed_lines(before, after, depth))
            continue
        lines.extend(_changed_value(_shown_whole(before), _shown_whole(after), depth))
    return lines


def _changed_lines(before: str, after: str, depth: int) -> list[Row]:
    """The lines one text changed from the other, each hunk under the line number it starts at (in `after`)."""
    rows: list[Row] = []
    changed = 0
    # The first two lines are the `---` / `+++` file headers; a changed line may start like them too.
    for hunk in _hunks(list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm=""))[2:]):
        start = hunk[0].split("+")[1].split(",")[0].split(" ")[0]
        removed = [_line_shown(line[1:]) for line in hunk[1:] if line.startswith("-")]
        added = [_line_shown(line[1:]) for line in hunk[1:] if line.startswith("+")]
        # A line edited in place is cut around its first difference in both versions, so that a change far
        # along a long line shows; removed lines still come first, then added ones, as in a unified diff.
        starts = [_window_start(old, new) for old, new in zip(removed, added, strict=False)]
        where = f"line {max(1, int(start))}"
        if len(removed) == len(added) == 1 and starts[0]:
            where += f", character {starts[0] + CONTEXT_BEFORE + 1:,}"
        rows.append(Row(None, depth, f"{where}:", offset=2))
        for symbol, lines in (("-", removed), ("+", added)):
            for index, line in enumerate(lines):
                changed += 1
                if changed <= MAX_CHANGED_LINES:
                    rows.append(
                        Row(symbol, depth, _window(line, starts[index] if index < len(starts) else 0), offset=2)
                    )
    if changed > MAX_CHANGED_LINES:
        rows.append(Row(None, depth, f"... and {changed - MAX_CHANGED_LINES} more changed lines", offset=2))
    return rows


def _hunks(diff: list[str]) -> list[list[str]]:
    """Unified diff lines grouped by hunk, each group starting with its `@@` header."""
    hunks: list[list[str]] = []
    for line in diff:
        if line.startswith("@@"):
            hunks.append([line])
        elif hunks:
            hunks[-1].append(line)
    return hunks


def _line_shown(line: str) -> str:
    return _shown_whole(line) if line else "(empty line)"


def _changed_value(before: str, after: str, depth: int) -> list[Row]:
    """`- before` and `+ after`, each cut to VALUE_WIDTH around their first difference, which is named when the
    cut does not start at the beginning."""
    start = _window_start(before, after)
    rows = [Row("-", depth, _window(before, start), offset=2), Row("+", depth, _window(after, start), offset=2)]
    if start:
        rows.insert(0, Row(None, depth, f"(first difference at character {start + CONTEXT_BEFORE + 1:,})", offset=2))
    return rows


def _window_start(before: str, after: str) -> int:
    """Where to start showing two long versions of a value so that their first difference is in view; 0 when it
    already is (or the values are short enough to show whole)."""
    if max(len(before), len(after)) <= VALUE_WIDTH:
        return 0
    first = next(
        (i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), min(len(before), len(after))
    )
    return first - CONTEXT_BEFORE if first > VALUE_WIDTH - CONTEXT_BEFORE else 0


def _window(text: str, start: int) -> str:
    """VALUE_WIDTH characters of `text` from `start`, with `...` where text is left out on either side."""
    head = "..." if start else ""
    room = VALUE_WIDTH - len(head)
    if len(text) - start <= room:
        return head + text[start:]
    return head + text[start : start + room - 3] + "..."


def _shown_whole(value: Any) -> str:
    """A value on one line, uncut: line breaks (`\\r` too, which terminals and Markdown also break lines at) are
    written as escapes."""
    if value is None:
        return "(none)"
    if isinstance(value, list | tuple):
        text = ", ".join(map(str, value)) or "(none)"
    else:
        text = value if isinstance(value, str) else str(value)
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _quoted(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else f'"{name}"'
