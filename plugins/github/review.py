"""The review loop in a GitHub Actions job: plan a pull request into its sticky comment, on merge apply the plan
only if it is still the one that was reviewed, and on a schedule report drift of the server in one issue."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lettafleet.core import (
    COMMENT_BUDGET,
    SUMMARY_BUDGET,
    ApplyReport,
    Change,
    ChangeResult,
    Connection,
    EitherStop,
    FleetError,
    FleetLock,
    FleetPlugins,
    HeldLock,
    LettaError,
    LockError,
    Plan,
    PluginError,
    ResourceKind,
    Stopping,
    applied_line,
    apply_plan,
    code_block,
    default_lock_id,
    escape_markdown,
    held_lock,
    inline_code,
    load_fleet,
    lock_store,
    plan_fleet,
    release_at_once,
    render_apply_json,
    render_plan,
    render_plan_json,
    render_plan_markdown,
    render_report,
    result_line,
    summary_line,
    with_context_warnings,
    write_private_text,
)
from lettafleet.plugins.github.actions import ActionsEnvironment, annotation, log_text
from lettafleet.plugins.github.api import GitHubAPI, GitHubError, GitHubPermissionError
from lettafleet.plugins.github.comments import (
    DEFAULT_COMMENT_AUTHOR,
    PlanMarker,
    StickyComments,
    comment_author,
    differences,
    status_room,
    with_status,
    written_by,
)
from lettafleet.plugins.github.drift import DriftIssue, drift_issue_body

ResultCallback = Callable[[Change, ChangeResult], None]
RERUN_HINT = (
    "To apply it anyway, re-run the apply job with the input `apply-unreviewed-changes: true` "
    "(docs/github-action.md shows a `workflow_dispatch` trigger for this); or open a pull request so "
    "the plan is reviewed."
)


class Planner(Protocol):
    """Plans and applies one fleet file; the review loop decides when."""

    def locked(self, fleet: str) -> AbstractContextManager[object]:
        """Hold the fleet's apply lock while inside (raises LockError when another apply holds it)."""
        ...

    def plan(self, fleet: str) -> Plan: ...

    def apply(self, plan: Plan, parallelism: int, on_result: ResultCallback) -> ApplyReport: ...


class LettaPlanner:
    """The planner for a real Letta server. It applies under the same lock as `lettafleet apply`, taken with
    `lock_client` (None: no lock), so a merge job and someone's laptop never apply one fleet at once. `stopping`
    (Ctrl-C, as `lettafleet apply` takes it) stops its applies too."""

    def __init__(
        self,
        client: Connection,
        manager: FleetPlugins,
        lock_client: Connection | None = None,
        lock_timeout: float = 0.0,
        echo: Callable[[str], None] = print,
        stopping: Stopping | None = None,
    ) -> None:
        self.client = client
        self.manager = manager
        self.lock_client = lock_client
        self.lock_timeout = lock_timeout
        self.echo = echo
        self.stop = threading.Event()  # set when the lock is lost: the apply then starts no more changes
        self.stopping = stopping
        self.lock: FleetLock | None = None  # the lock held now, for a second Ctrl-C to release at once

    @contextmanager
    def locked(self, fleet: str) -> Iterator[object]:
        if self.lock_client is None:
            yield None
            return
        self.stop.clear()

        def waiting(held: HeldLock) -> None:
            self.echo(log_text(f"{fleet}: waiting up to {self.lock_timeout:g} s for the lock. {held.describe()}."))

        def lost(why: str) -> None:
            self.echo(annotation("error", f"{fleet}: {why}; stopping this apply."))
            self.stop.set()

        lock_id = _lock_id(fleet, self.manager)

        def left_behind(message: str) -> None:
            self.echo(annotation("warning", f"{fleet}: {message}"))

        with held_lock(
            lock_store(self.manager.backend_for(self.lock_client.base_url), self.lock_client),
            lock_id,
            timeout=self.lock_timeout,
            on_wait=waiting,
            on_lost=lost,
            on_left_behind=left_behind,
        ) as lock:
            self.lock = lock
            try:
                yield lock
            finally:
                self.lock = None

    def release_at_once(self) -> None:
        """On the way out of a second Ctrl-C: release the lock held now, giving the server a few seconds."""
        release_at_once(self.lock)

    def plan(self, fleet: str) -> Plan:
        """The fleet's plan, naming the server (its version, as `lettafleet plan` does: "Letta App Server 0.34.12")
        and warning of context windows it would fill."""
        whole = plan_fleet(load_fleet(Path(fleet), self.manager), self.client, self.manager)
        server = self.client.server_info()
        whole = dataclasses.replace(whole, server_version=server.version, project=server.project)
        return with_context_warnings(whole, self.manager)

    def apply(self, plan: Plan, parallelism: int, on_result: ResultCallback) -> ApplyReport:
        stop = EitherStop(self.stop, self.stopping) if self.stopping else self.stop
        return apply_plan(plan, self.client, self.manager, parallelism=parallelism, on_result=on_result, stop=stop)


@dataclass(frozen=True)
class ReviewOptions:
    out_dir: Path | None = None  # where plan JSON files go; None: $RUNNER_TEMP/lettafleet, else .lettafleet/github
    comment: bool = True
    comment_when_unchanged: bool = True
    parallelism: int = 8
    apply_unreviewed_changes: bool = False
    # The identity whose comments hold reviewed plans: the one the token comments as.
    comment_author: str = DEFAULT_COMMENT_AUTHOR
    fail_on_drift: bool = True  # drift: exit 1 when the server has drifted


@dataclass
class FleetRun:
    """One fleet file in this job: its plan (or why there is none) and where its plan JSON was saved."""

    fleet: str
    json_path: Path
    plan: Plan | None = None
    error: str = ""
    ok: bool = True


class ReviewLoop:
    """`plan` on a pull request, `apply` on the push that merges it. Both return the job's exit code."""

    def __init__(
        self,
        env: ActionsEnvironment,
        planner: Planner,
        kinds: Mapping[str, ResourceKind],
        github: GitHubAPI | None,
        options: ReviewOptions,
        echo: Callable[[str], None],
        stopping: Stopping | None = None,
    ) -> None:
        self.stopping = stopping  # Ctrl-C: the fleets after the one it stopped are not applied
        self.env = env
        self.planner = planner
        self.kinds = kinds
        self.github = github
        self.options = options
        self.out_dir = options.out_dir or (env.temp_dir / "lettafleet" if env.temp_dir else Path(".lettafleet/github"))
        self._echo = echo

    # -- plan on a pull request ---------------------------------------------------------------------------------

    def plan(self, fleets: Sequence[str]) -> int:
        number = self.env.pull_request_number
        comments = self._comments(number) if number and self.options.comment else None
        if number is None:
            self.echo(f"Event {self.env.event_name} is not a pull request: the plan goes to the job summary only.")
        runs = []
        for fleet in fleets:
            run = self._plan_one(fleet)
            runs.append(run)
            self.env.add_summary(self._summary_markdown(run, len(fleets)))
            if comments is not None and not self._post_plan(comments, run):
                comments = None
        self._set_outputs(runs)
        return 0 if all(run.ok for run in runs) else 1

    def _post_plan(self, comments: StickyComments, run: FleetRun) -> bool:
        """Write the fleet's plan comment; False when commenting is not possible (the token is read-only)."""
        plan = run.plan
        unchanged = plan is not None and not plan.needs_attention
        if unchanged and not self.options.comment_when_unchanged and comments.find(run.fleet) is None:
            self.echo(f"{run.fleet}: no changes, so no comment (comment-when-unchanged is off).")
            return True
        written, commenting = self._write_comment(comments, run, self._comment_body(run))
        if written is None:
            return commenting
        self.echo(f"{run.fleet}: plan comment {written.get('html_url') or written.get('id')}")
        if not written_by(written, self.options.comment_author):
            run.ok = False
            self.annotate(
                "error",
                f"{run.fleet}: GitHub wrote the plan comment as {comment_author(written)}, but comment-author is "
                f"{self.options.comment_author}, so apply on merge would not trust it and would apply nothing. "
                f"Set the action's input `comment-author: {comment_author(written)}`.",
            )
        return True

    def _comment_body(self, run: FleetRun) -> str:
        if run.plan is None:
            marker = PlanMarker(fleet=run.fleet, sha256=None).render()
            return self.env.mask("\n".join([marker, *self._failure_markdown(run), ""]))
        where = f"the [job summary]({self.env.run_url})" if self.env.run_url else "this workflow run's job summary"
        return self.env.mask(
            render_plan_markdown(
                run.plan,
                self.kinds,
                marker=PlanMarker.of_plan(run.fleet, run.plan).render(),
                budget=COMMENT_BUDGET,
                full_plan_at=where,
            )
        )

    # -- apply on merge -----------------------------------------------------------------------------------------

    def apply(self, fleets: Sequence[str]) -> int:
        try:
            pull_request = self._merged_pull_request()
        except GitHubError as error:
            self.annotate("error", str(error))
            return 1
        comments = None
        if pull_request is not None:
            self.echo(f"Commit {self.env.sha[:12]} merged pull request #{pull_request['number']}.")
            comments = self._comments(pull_request["number"])
        runs = []
        for fleet in fleets:
            if self.stopping is not None and self.stopping.by_user:
                run, status = self._not_applied(fleet, "Not applied: interrupted", "Ctrl-C stopped the job first")
            else:
                run, status = self._apply_locked(fleet, len(fleets), comments, pull_request)
            runs.append(run)
            if comments is not None and self.options.comment and not self._post_status(comments, run, status):
                comments = None
        self._set_outputs(runs)
        return 0 if all(run.ok for run in runs) else 1

    def _apply_locked(
        self, fleet: str, fleet_count: int, comments: StickyComments | None, pull_request: Mapping[str, Any] | None
    ) -> tuple[FleetRun, str]:
        """Plan and apply one fleet under its lock (so the plan cannot go stale before it is applied)."""
        try:
            with self.planner.locked(fleet):
                run = self._plan_one(fleet)
                if run.plan is None:
                    self.env.add_summary(self._summary_markdown(run, fleet_count))
                    errors = "\n".join(code_block(run.error.splitlines()[:50]))
                    paragraphs = ["Nothing was changed. Fix these problems:", errors]
                    return run, _status("Not applied: the plan failed", paragraphs)
                status = self._apply_reviewed(run, run.plan, comments, pull_request)
                self.env.add_summary(self._summary_markdown(run, fleet_count) + "\n" + status)
                return run, status
        except LockError as error:
            return self._not_applied(fleet, "Not applied: another apply holds the fleet's lock", str(error))

    def _not_applied(self, fleet: str, title: str, why: str) -> tuple[FleetRun, str]:
        """A fleet this job changed nothing of, and why (said in the log, the summary and the status)."""
        run = FleetRun(fleet=fleet, json_path=self.out_dir / f"plan-{_file_slug(fleet)}.json", ok=False)
        run.error = self.env.mask(why)
        self.annotate("error", f"{fleet}: not applied: {run.error}")
        status = _status(title, [f"Nothing was changed: {run.error}"])
        self.env.add_summary(status)
        return run, status

    def _apply_reviewed(
        self, run: FleetRun, plan: Plan, comments: StickyComments | None, pull_request: Mapping[str, Any] | None
    ) -> str:
        """Apply the plan if it is the reviewed one (or unreviewed changes are allowed); the result as Markdown."""
        if not plan.has_changes:
            self.echo(f"{run.fleet}: nothing to apply; the server matches the fleet.")
            return _status("Nothing to apply", ["The server already matches the fleet; nothing was changed."])
        reviewed = comments.reviewed_plan(run.fleet) if comments is not None else None
        if reviewed is None or reviewed.sha256 != plan.sha256:
            reason = self._not_reviewed(run, plan, reviewed, pull_request)
            if not self.options.apply_unreviewed_changes:
                run.ok = False
                self.annotate("error", f"{run.fleet}: not applied. " + _plain(reason[0]))
                summary = f"[job summary]({self.env.run_url})" if self.env.run_url else "job summary"
                return _status(
                    "Not applied: this is not the reviewed plan",
                    [
                        *reason,
                        f"Nothing was changed. The new plan (sha256 {inline_code(plan.sha256[:12])}) is in this "
                        f"run's {summary}. {RERUN_HINT}",
                    ],
                )
            self.annotate("warning", f"{run.fleet}: applying although " + _plain(reason[0]))
            note = ["Applied although this is not the reviewed plan (`apply-unreviewed-changes` is on).", *reason]
        else:
            note = [f"The plan matched the reviewed one (sha256 {inline_code(plan.sha256)})."]
        report = self.planner.apply(plan, self.options.parallelism, self._echo_result)
        write_private_text(run.json_path, self.env.mask(render_apply_json(plan, report)) + "\n")
        self.echo(self.env.mask(render_report(report, plan, self.kinds)))
        commit = f"{inline_code(self.env.sha[:12])}" if self.env.sha else "this commit"
        where = f" ([workflow run]({self.env.run_url}))" if self.env.run_url else ""
        if report.ok:
            return _status("Applied", [*note, f"Applied at {commit}{where}: {applied_line(report, plan, self.kinds)}."])
        run.ok = False
        return _status(
            "Apply failed",
            [
                *note,
                f"Applied at {commit}{where}: {applied_line(report, plan, self.kinds)}. Fix the cause and re-run "
                "the job: apply picks up where it stopped.",
            ],
            rows=[(r.address, r.status, self.env.mask(r.message)) for r in report.failed],
        )

    def _not_reviewed(
        self, run: FleetRun, plan: Plan, reviewed: PlanMarker | None, pull_request: Mapping[str, Any] | None
    ) -> list[str]:
        """Why the plan is not the reviewed one: the first paragraph says it in a sentence, the rest in detail."""
        if pull_request is None:
            return [
                f"No merged pull request was found for commit {inline_code(self.env.sha[:12] or '(unknown)')}, "
                "so there is no reviewed plan to compare with."
            ]
        number = pull_request["number"]
        if reviewed is None:
            return [
                f"Pull request #{number} has no plan comment for {inline_code(run.fleet)} to compare with (a "
                "pull request from a fork cannot comment, or commenting was turned off)."
            ]
        if reviewed.sha256 is None:
            return [f"The last plan on pull request #{number} failed, so no plan was reviewed."]
        listed = "\n".join(f"- {line}" for line in differences(reviewed, plan))
        return [
            f"The plan now (sha256 {inline_code(plan.sha256[:12])}) is not the one reviewed on pull request "
            f"#{number} (sha256 {inline_code(reviewed.sha256[:12])}): the server or the fleet changed since the "
            "review.",
            f"What differs:\n\n{listed}",
        ]

    def _post_status(self, comments: StickyComments, run: FleetRun, status: str) -> bool:
        existing = comments.find(run.fleet)
        if existing is not None:
            base = existing.get("body") or ""
        else:  # no reviewed comment: the plan (or, if it failed, only the marker) goes above the status
            base = self._comment_body(run) if run.plan else PlanMarker(fleet=run.fleet, sha256=None).render()
        return self._write_comment(comments, run, with_status(base, _fit_status(status, status_room(base))))[1]

    def _write_comment(
        self, comments: StickyComments, run: FleetRun, body: str
    ) -> tuple[Mapping[str, Any] | None, bool]:
        """Write the fleet's comment. Returns what GitHub wrote (None when it refused, said in the log) and whether
        commenting may go on: not once the token proved unable to comment."""
        try:
            return comments.upsert(run.fleet, body), True
        except GitHubPermissionError as error:
            self._cannot_comment(error)
            return None, False
        except GitHubError as error:
            self.annotate("error", str(error))
            run.ok = False
            return None, True

    def _merged_pull_request(self) -> Mapping[str, Any] | None:
        if self.github is None or not self.env.sha:
            return None
        pulls = [pull for pull in self.github.pulls_for_commit(self.env.sha) if pull.get("merged_at")]
        # A commit can belong to several pull requests; the one it merged names it as its merge commit.
        merged_here = [pull for pull in pulls if pull.get("merge_commit_sha") == self.env.sha]
        candidates = merged_here or pulls
        return candidates[0] if candidates else None

    # -- drift on a schedule -----------------------------------------------------------------------------------

    def drift(self, fleets: Sequence[str]) -> int:
        """Plan every fleet (read-only); open or update the drift issue when one needs attention, close it when
        every plan succeeded and none does."""
        issue = self._drift_issue() if self.options.comment else None
        runs = [self._plan_one(fleet) for fleet in fleets]
        drifted = [run.plan for run in runs if run.plan is not None and run.plan.needs_attention]
        failed = [run.fleet for run in runs if run.plan is None]
        for run in runs:
            self.env.add_summary(self._summary_markdown(run, len(fleets)))
        ok = not failed
        if drifted:
            self.annotate("error" if self.options.fail_on_drift else "warning", self._drift_line(drifted))
            body = drift_issue_body(drifted, failed, self.kinds, self._checked_at(), self._full_plan_at())
            url = self._write_drift(issue, lambda found: found.upsert(self.env.mask(body)), "updated the drift issue")
            ok = ok and not self.options.fail_on_drift
        elif failed:
            url = ""  # unknown whether the failed fleets drifted: an open issue stays open
        else:
            self.echo("No drift: the server matches every fleet file.")
            url = self._write_drift(issue, lambda found: found.close(self._matches_again()), "closed the drift issue")
        self._set_outputs(runs, {"drifted": "true" if drifted else "false", "issue-url": url or ""})
        return 0 if ok and url is not None else 1

    def _drift_issue(self) -> DriftIssue | None:
        if self.github is None:
            self.annotate("warning", "no GitHub token, so no drift issue: pass `github-token`.")
            return None
        try:
            issue = DriftIssue(self.github, self.options.comment_author)
        except GitHubPermissionError as error:
            self._cannot_write_issue(error)
            return None
        if issue.ignored:
            authors = ", ".join(sorted({comment_author(found) for found in issue.ignored}))
            self.annotate(
                "warning",
                f"Ignored {len(issue.ignored)} open issue(s) that carry the lettafleet drift marker but are not by "
                f"{issue.author} (the comment-author input): by {authors}.",
            )
        return issue

    def _write_drift(
        self, issue: DriftIssue | None, write: Callable[[DriftIssue], Mapping[str, Any] | None], done: str
    ) -> str | None:
        """Write to the drift issue; its URL ("" when nothing was written), or None when GitHub failed."""
        if issue is None:
            return ""
        try:
            written = write(issue)
        except GitHubPermissionError as error:
            self._cannot_write_issue(error)
            return ""
        except GitHubError as error:
            self.annotate("error", str(error))
            return None
        if written is None:
            return ""
        url = str(written.get("html_url") or written.get("number"))
        self.echo(f"lettafleet {done}: {url}")
        return url

    def _cannot_write_issue(self, error: GitHubError) -> None:
        self._cannot_write(
            "Cannot read or write the drift issue, so the drift is in the job summary only (give the job "
            "`permissions: issues: write`).",
            error,
        )

    def _drift_line(self, drifted: Sequence[Plan]) -> str:
        """One log line naming each fleet that drifted, and how."""
        return "The server has drifted from the fleet files: " + "; ".join(
            f"{plan.fleet}: {summary_line(plan, self.kinds)} Drift apply cannot fix: "
            f"{sum(1 for change in plan.changes if change.drift)}; ambiguities: {len(plan.ambiguities)}."
            for plan in drifted
        )

    def _checked_at(self) -> str:
        commit = f"commit {inline_code(self.env.sha[:12])}" if self.env.sha else "this commit"
        return f"{commit} ([workflow run]({self.env.run_url}))" if self.env.run_url else commit

    def _full_plan_at(self) -> str:
        return f"the [job summary]({self.env.run_url})" if self.env.run_url else "this workflow run's job summary"

    def _matches_again(self) -> str:
        return f"The server matches the fleet files again at {self._checked_at()}. Closing."

    # -- shared -------------------------------------------------------------------------------------------------

    def _plan_one(self, fleet: str) -> FleetRun:
        run = FleetRun(fleet=fleet, json_path=self.out_dir / f"plan-{_file_slug(fleet)}.json")
        try:
            run.plan = self.planner.plan(fleet)
        except FleetError as error:
            run.error = "\n".join(str(diagnostic) for diagnostic in error.diagnostics)
        except (LettaError, PluginError, OSError) as error:
            run.error = str(error)
        if run.plan is None:
            run.ok = False
            run.error = self.env.mask(run.error)
            self.annotate("error", f"{fleet}: the plan failed:\n{run.error}")
            return run
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_private_text(run.json_path, self.env.mask(render_plan_json(run.plan)) + "\n")
        self.echo(self.env.mask(render_plan(run.plan, self.kinds)))
        return run

    def _summary_markdown(self, run: FleetRun, fleet_count: int) -> str:
        if run.plan is None:
            return "\n".join(self._failure_markdown(run))
        where = f"the plan JSON file {inline_code(run.json_path.name)} (the action's `plan-json` output)"
        return render_plan_markdown(
            run.plan, self.kinds, budget=SUMMARY_BUDGET // max(1, fleet_count), full_plan_at=where
        )

    def _failure_markdown(self, run: FleetRun) -> list[str]:
        return [
            f"### lettafleet plan for {inline_code(run.fleet)} failed",
            "",
            "Nothing can be applied until the plan succeeds. Fix these problems and push again:",
            "",
            *code_block(run.error.splitlines()[:200]),
            "",
        ]

    def _comments(self, number: int) -> StickyComments | None:
        if self.github is None:
            self.annotate("warning", "no GitHub token, so no pull request comment: pass `github-token`.")
            return None
        try:
            comments = StickyComments(self.github, number, self.options.comment_author)
        except GitHubPermissionError as error:
            self._cannot_comment(error)
            return None
        self._report_ignored(comments)
        return comments

    def _report_ignored(self, comments: StickyComments) -> None:
        """Say which comments carried a plan marker but were ignored, not being by the identity lettafleet trusts."""
        if not comments.ignored:
            return
        authors = sorted({comment_author(comment) for comment in comments.ignored})
        message = (
            f"Ignored {len(comments.ignored)} comment(s) on pull request #{comments.number} that carry a lettafleet "
            f"plan marker but are not by {comments.author} (the comment-author input): by {', '.join(authors)}. "
            "Only lettafleet's own comment holds the reviewed plan."
        )
        self.annotate("warning", message)
        listed = ", ".join(
            f"[{inline_code(comment_author(comment))}]({comment['html_url']})"
            if str(comment.get("html_url", "")).startswith(self.env.server_url)
            else inline_code(comment_author(comment))
            for comment in comments.ignored
        )
        self.env.add_summary(
            f"> [!WARNING]\n> Ignored {len(comments.ignored)} comment(s) carrying a lettafleet plan marker that are "
            f"not by {inline_code(comments.author)} (the `comment-author` input): {listed}. Only lettafleet's own "
            "comment holds the reviewed plan."
        )

    def _cannot_comment(self, error: GitHubError) -> None:
        self._cannot_write(
            "Cannot read or write comments on this pull request, so the plan is in the job summary only "
            "(a pull request from a fork gets a read-only token).",
            error,
        )

    def _cannot_write(self, situation: str, error: GitHubError) -> None:
        """Degrade to the job summary and the log: a warning, never a failed job nor a traceback."""
        message = f"{situation} {self.env.mask(str(error))}"
        self.annotate("warning", message)
        self.env.add_summary(f"> [!NOTE]\n> {escape_markdown(message)}")

    def _set_outputs(self, runs: Sequence[FleetRun], extra: Mapping[str, str] | None = None) -> None:
        planned = [run for run in runs if run.plan is not None]
        self.env.set_outputs(
            {
                "changes": "true" if any(run.plan.has_changes for run in planned if run.plan) else "false",
                "plan-json": "\n".join(str(run.json_path) for run in planned),
                "plan-sha256": "\n".join(run.plan.sha256 for run in planned if run.plan),
                **(extra or {}),
            }
        )

    def _echo_result(self, change: Change, result: ChangeResult) -> None:
        self.echo(result_line(change, result.status, result.message))

    def echo(self, text: str) -> None:
        """A line (or lines) for the job log; nothing in it can run a workflow command."""
        self._echo(log_text(self.env.mask(text)))

    def annotate(self, level: str, message: str) -> None:
        """A message on the run's page (an `::error` or `::warning` workflow command): lettafleet's own command."""
        self._echo(annotation(level, self.env.mask(message)))


def _lock_id(fleet: str, manager: FleetPlugins) -> str:
    """The lock `lettafleet apply` takes for this fleet file; one that does not load takes its path's (its plan
    then fails with the file's errors, under that lock)."""
    try:
        loaded = load_fleet(Path(fleet), manager)
    except FleetError:
        return default_lock_id(Path(fleet))
    return default_lock_id(loaded.path, loaded.name)


def _status(title: str, paragraphs: Sequence[str], rows: Sequence[tuple[str, str, str]] = ()) -> str:
    lines = [f"### {title}", ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    if rows:
        lines += ["| Resource | Result | Message |", "| --- | --- | --- |"]
        lines += [
            f"| {inline_code(address, in_table=True)} | {status} | {escape_markdown(_shortened(message))} |"
            for address, status, message in rows
        ]
    return "\n".join(lines).rstrip() + "\n"


def _fit_status(status: str, room: int) -> str:
    """The status cut to `room` bytes, at a line, when a long list of failures would not fit in the comment."""
    if len(status.encode("utf-8")) <= room:
        return status
    lines, used = [], 0
    note = "\n... (cut: the full list is in the job summary)"
    for line in status.splitlines():
        used += len(line.encode("utf-8")) + 1
        if used + len(note) > room:
            break
        lines.append(line)
    return "\n".join(lines) + note + "\n"


def _shortened(message: str, width: int = 600) -> str:
    """A server message as a table cell shows it; the full text is in the job's log."""
    return message if len(message) <= width else message[: width - 3] + "..."


def _plain(markdown: str) -> str:
    """A Markdown sentence as a log line (code spans unwrapped)."""
    return re.sub(r"`+ ?([^`]*?) ?`+", r"\1", markdown)


def _file_slug(fleet: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", fleet.strip("./")) or "fleet"
