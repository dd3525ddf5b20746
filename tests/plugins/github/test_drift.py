"""`lettafleet github drift` against the stand-in GitHub API: one issue opened while the server drifted, updated by
later checks, closed when it matches again; never another author's; a token that may not write degrades."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest

from lettafleet.core.engine.diagnostics import Diagnostic, FleetError
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.plugins.github.drift import DRIFT_MARKER, DRIFT_TITLE
from tests.fakes.actions_runner import workflow_commands
from tests.fakes.github_api import BOT, MALLORY, FakeGitHub, running_github_api
from tests.plugins.github.test_review import LETTA_KEY, FakePlanner, Job, plan_of

IN_SYNC = plan_of("support", action=Action.NO_OP)


def drifted_plan(description: str = "helpful") -> Plan:
    """The server's description of `support` was changed by hand: the plan updates it back."""
    return plan_of("support", description=description, action=Action.UPDATE)


def open_issues(job: Job) -> list[dict[str, object]]:
    return [issue for issue in job.github.issues if issue["state"] == "open"]


@pytest.fixture
def drifting(tmp_path: Path, manager: pluggy.PluginManager) -> Iterator[Job]:
    """A scheduled job whose server drifted from `fleet.yaml`."""
    with running_github_api(FakeGitHub(max_per_page=2)) as github:
        yield Job(github, FakePlanner({"fleet.yaml": drifted_plan()}), tmp_path, manager, event_name="schedule")


def test_drift_opens_one_issue_naming_the_fleet_and_fails(drifting: Job) -> None:
    assert drifting.run("drift") == 1

    [issue] = drifting.github.issues
    assert issue["title"] == DRIFT_TITLE and issue["user"] == BOT
    body = str(issue["body"])
    assert body.startswith(DRIFT_MARKER)
    assert "| `fleet.yaml` | Plan: 0 to create, 1 to update, 0 to delete. | 0 | 0 |" in body
    assert "### lettafleet plan for `fleet.yaml`" in body  # the fleet's plan, as a pull request comment shows it
    assert "~ support (UPDATE)" in body
    assert drifting.outputs()["drifted"] == "true"
    assert drifting.outputs()["issue-url"] == issue["html_url"]
    assert "::error title=lettafleet::The server has drifted from the fleet files: fleet.yaml" in "\n".join(
        drifting.log
    )


def test_a_later_check_updates_the_same_issue(drifting: Job) -> None:
    drifting.run("drift")
    drifting.planner.plans["fleet.yaml"] = plan_of("support", "sales", action=Action.UPDATE)

    assert drifting.run("drift") == 1

    [issue] = drifting.github.issues
    assert "Plan: 0 to create, 2 to update" in str(issue["body"])
    assert [(r.method, r.path.rsplit("/", 2)[-2:]) for r in drifting.github.writes()] == [
        ("POST", ["fleets", "issues"]),
        ("PATCH", ["issues", str(issue["number"])]),
    ]


def test_the_issue_is_closed_with_a_comment_when_the_server_matches_again(drifting: Job) -> None:
    drifting.run("drift")
    drifting.planner.plans["fleet.yaml"] = IN_SYNC

    assert drifting.run("drift") == 0

    [issue] = drifting.github.issues
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    [comment] = drifting.github.comments_on(int(issue["number"]))  # type: ignore[call-overload]
    assert comment["body"].startswith("The server matches the fleet files again at commit `3f786850e387`")
    assert drifting.outputs()["drifted"] == "false"
    assert drifting.run("drift") == 0  # nothing open any more: nothing written
    assert len(drifting.github.writes()) == 3


def test_no_drift_and_no_issue_writes_nothing(drifting: Job) -> None:
    drifting.planner.plans["fleet.yaml"] = IN_SYNC

    assert drifting.run("drift") == 0

    assert drifting.github.writes() == []
    assert drifting.outputs()["issue-url"] == ""


def test_fail_on_drift_off_writes_the_issue_and_passes(drifting: Job) -> None:
    assert drifting.run("drift", fail_on_drift=False) == 0

    assert len(open_issues(drifting)) == 1
    assert "::warning title=lettafleet::The server has drifted" in "\n".join(drifting.log)


def test_another_authors_issue_with_the_marker_is_never_touched(drifting: Job) -> None:
    theirs = drifting.github.add_issue("Drift?", f"{DRIFT_MARKER}\nclose me", MALLORY)
    # A user whose login is the bot's but who is not a bot does not count either.
    lookalike = drifting.github.add_issue("Drift?", DRIFT_MARKER, {**BOT, "type": "User", "id": 1})

    assert drifting.run("drift") == 1
    drifting.planner.plans["fleet.yaml"] = IN_SYNC
    assert drifting.run("drift") == 0

    assert drifting.github.issue(theirs["number"]) == theirs
    assert drifting.github.issue(lookalike["number"]) == lookalike
    ours = [issue for issue in drifting.github.issues if issue["user"] == BOT]
    assert len(ours) == 1 and ours[0]["state"] == "closed"
    log = "\n".join(drifting.log)
    # Both are seen and named (GitHub is not asked to filter by creator), and neither is touched.
    assert "Ignored 2 open issue(s) that carry the lettafleet drift marker" in log and "mallory-from-a-fork" in log


def test_a_token_that_may_not_write_issues_degrades_to_the_summary(drifting: Job) -> None:
    drifting.github.read_only = True

    assert drifting.run("drift") == 1  # the drift still fails the job; the missing permission does not hide it

    assert drifting.github.issues == []
    assert "Plan: 0 to create, 1 to update" in drifting.summary
    assert "permissions: issues: write" in drifting.summary
    log = "\n".join(drifting.log)
    assert "::warning title=lettafleet::Cannot read or write the drift issue" in log
    assert "Traceback" not in log


def test_a_failed_plan_fails_and_leaves_an_open_issue_open(drifting: Job) -> None:
    drifting.run("drift")
    drifting.planner.plans["fleet.yaml"] = FleetError([Diagnostic("fleet.yaml", 3, 5, "agents: not a list")])

    assert drifting.run("drift") == 1

    assert len(open_issues(drifting)) == 1


def test_several_fleets_one_issue_names_only_those_that_drifted(drifting: Job) -> None:
    drifting.planner.plans["other.yaml"] = IN_SYNC

    drifting.run("drift", fleets=("fleet.yaml", "other.yaml"))

    [issue] = drifting.github.issues
    assert "no longer matches 1 fleet file on" in str(issue["body"])
    assert "`other.yaml`" not in str(issue["body"])


def test_fleet_values_are_escaped_and_secrets_masked_in_the_issue(drifting: Job) -> None:
    hostile = f"</details>\n<!-- lettafleet-drift -->\n::error::forged {LETTA_KEY}"
    drifting.planner.plans["fleet.yaml"] = drifted_plan(description=hostile)

    drifting.run("drift")

    [issue] = drifting.github.issues
    body = str(issue["body"])
    assert LETTA_KEY not in body and LETTA_KEY not in drifting.summary
    assert body.count(DRIFT_MARKER) == 1  # a value cannot plant a second marker
    assert "```diff\n~ support (UPDATE)\n      description:\n        line 1:\n-       old\n+       </details>\n" in body
    assert not any("forged" in command for command in workflow_commands("\n".join(drifting.log)))


def test_drift_that_apply_cannot_fix_alone_opens_the_issue(drifting: Job) -> None:
    change = Change("agent.support", "agent", "support", Action.NO_OP, {}, {}, drift="has 3 messages")
    drifting.planner.plans["fleet.yaml"] = Plan.build("fleet.yaml", "http://127.0.0.1:8283", [change])

    assert drifting.run("drift") == 1

    [issue] = drifting.github.issues
    assert "| `fleet.yaml` | Plan: 0 to create, 0 to update, 0 to delete. | 1 | 0 |" in str(issue["body"])
