"""The drift issue: one open issue that says the Letta server no longer matches the fleet files on main, found
again by a hidden marker at the start of its body and by its author, as the plan comments are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lettafleet.core import COMMENT_BUDGET, Plan, ResourceKind, inline_code, render_plan_markdown, summary_line
from lettafleet.plugins.github.api import ISSUES_WRITE, GitHubAPI
from lettafleet.plugins.github.comments import written_by

# The marker counts only where lettafleet writes it: at the very start of the issue's body.
DRIFT_MARKER = "<!-- lettafleet-drift -->"
DRIFT_TITLE = "lettafleet: the Letta server has drifted from the fleet files"


class DriftIssue:
    """The open drift issue of `author` (the identity the action writes as), read once; lettafleet never edits an
    issue by anyone else, whatever its body says. Issues that carry the marker but are not by `author` are kept in
    `ignored`, so the job can say so."""

    def __init__(self, github: GitHubAPI, author: str) -> None:
        self.github = github
        self.author = author
        self.ignored: list[dict[str, Any]] = []
        self.issue: dict[str, Any] | None = None
        for issue in github.open_issues():
            if not (issue.get("body") or "").startswith(DRIFT_MARKER):
                continue
            if not written_by(issue, author):
                self.ignored.append(issue)
                continue
            # The oldest open one is the issue; a later copy (a race of two jobs) is left alone.
            if self.issue is None or issue["number"] < self.issue["number"]:
                self.issue = issue

    def upsert(self, body: str) -> dict[str, Any]:
        """Update the open issue's body, or open the issue if there is none."""
        if self.issue is not None:
            self.issue = self.github.update_issue(self.issue["number"], body=body)
        else:
            self.issue = self.github.create_issue(DRIFT_TITLE, body)
        return self.issue

    def close(self, comment: str) -> dict[str, Any] | None:
        """Say why in a comment and close the open issue; None when there was none to close."""
        if self.issue is None:
            return None
        number = self.issue["number"]
        self.github.create_comment(number, comment, permission=ISSUES_WRITE)
        closed = self.github.update_issue(number, state="closed", state_reason="completed")
        self.issue = None
        return closed


def drift_issue_body(
    plans: Sequence[Plan], failed: Sequence[str], kinds: Mapping[str, ResourceKind], checked_at: str, full_at: str
) -> str:
    """The issue: which fleets drifted and how much above the fold, then each fleet's plan as a PR comment shows it
    (its values escaped by the same renderer), all within GitHub's size limit."""
    lines = [
        DRIFT_MARKER,
        f"The Letta server no longer matches {_count(len(plans), 'fleet file')} on {checked_at}:",
        "",
        "| Fleet file | Plan | Drift apply cannot fix | Ambiguities |",
        "| --- | --- | --- | --- |",
    ]
    for plan in plans:
        drift = sum(1 for change in plan.changes if change.drift)
        lines.append(
            f"| {inline_code(plan.fleet, in_table=True)} | {summary_line(plan, kinds)} | {drift} | "
            f"{len(plan.ambiguities)} |"
        )
    lines.append("")
    if failed:
        names = ", ".join(inline_code(fleet) for fleet in failed)
        lines += [f"The plan failed for {names}, so it is not known whether those drifted; see {full_at}.", ""]
    lines += [
        "Apply the fleet files (`lettafleet apply`) to put the server back, or change them to declare what the "
        "server has now. This issue is updated by each check and closed when the server matches again.",
        "",
    ]
    head = "\n".join(lines) + "\n"
    budget = (COMMENT_BUDGET - len(head.encode("utf-8"))) // max(1, len(plans))
    return head + "\n".join(render_plan_markdown(plan, kinds, budget=budget, full_plan_at=full_at) for plan in plans)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
