"""The review loop, with a planner that needs no server: plan comments on pull requests, apply on merge."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pluggy
import pytest

from lettafleet.core.engine.applying import ApplyReport, ChangeResult
from lettafleet.core.engine.diagnostics import Diagnostic, FleetError
from lettafleet.core.engine.locking import HeldLock, LockHeld
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.engine.plugin_manager import get_plugin_manager, resource_kinds
from lettafleet.core.engine.validation import load_fleet
from lettafleet.core.letta.masking import SecretMasker
from lettafleet.plugins.github.actions import ActionsEnvironment
from lettafleet.plugins.github.api import GitHubAPI
from lettafleet.plugins.github.comments import PlanMarker
from lettafleet.plugins.github.review import ResultCallback, ReviewLoop, ReviewOptions, _lock_id
from tests.fakes.actions_runner import workflow_commands
from tests.fakes.github_api import BOT, MALLORY, OCTOCAT, FakeGitHub, running_github_api

LETTA_KEY = "letta-secret-key-abcdef"
MERGE_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


def plan_of(*names: str, description: str = "helpful", action: Action = Action.CREATE) -> Plan:
    changes = [
        Change(
            f"agent.{name}",
            "agent",
            name,
            action,
            None if action is Action.CREATE else {"description": "old"},
            {"description": description},
        )
        for name in names
    ]
    return Plan.build("fleet.yaml", "http://127.0.0.1:8283", changes)


@dataclass
class FakePlanner:
    """Plans what the test says; records what it was asked to apply; fails the addresses it is told to."""

    plans: dict[str, Plan | Exception] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    applied: list[Plan] = field(default_factory=list)
    locked_by_others: dict[str, HeldLock] = field(default_factory=dict)

    @contextmanager
    def locked(self, fleet: str) -> Iterator[None]:
        if fleet in self.locked_by_others:
            raise LockHeld(self.locked_by_others[fleet])
        yield

    def plan(self, fleet: str) -> Plan:
        planned = self.plans[fleet]
        if isinstance(planned, Exception):
            raise planned
        return planned

    def apply(self, plan: Plan, parallelism: int, on_result: ResultCallback) -> ApplyReport:
        self.applied.append(plan)
        results = []
        for change in plan.changes:
            failed = change.address in self.failing
            result = ChangeResult(
                change.address, change.action, "failed" if failed else "applied", "server said no" if failed else ""
            )
            on_result(change, result)
            results.append(result)
        return ApplyReport(tuple(results))


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with running_github_api(FakeGitHub(max_per_page=2)) as fake:
        yield fake


@dataclass
class Job:
    """One run of the action's Python step: the loop, and what it wrote where."""

    github: FakeGitHub
    planner: FakePlanner
    tmp_path: Path
    manager: pluggy.PluginManager
    event_name: str = "pull_request"
    log: list[str] = field(default_factory=list)

    def env(self) -> ActionsEnvironment:
        event = {"pull_request": {"number": 7}} if self.event_name == "pull_request" else {"after": MERGE_SHA}
        return ActionsEnvironment(
            event_name=self.event_name,
            event=event,
            repository=self.github.repository,
            sha=MERGE_SHA,
            api_url=self.github.url,
            run_id="99",
            token=self.github.token,
            output_file=self.tmp_path / "output",
            summary_file=self.tmp_path / "summary.md",
            temp_dir=self.tmp_path,
            mask=SecretMasker([LETTA_KEY, self.github.token]),
        )

    def run(self, command: str, fleets: tuple[str, ...] = ("fleet.yaml",), **options: object) -> int:
        env = self.env()
        with GitHubAPI(env.repository, env.token, api_url=env.api_url) as api:
            loop = ReviewLoop(
                env,
                self.planner,
                resource_kinds(self.manager),
                api,
                ReviewOptions(out_dir=self.tmp_path / "plans", **options),
                self.log.append,
            )  # type: ignore[arg-type]
            step: Callable[[list[str]], int] = getattr(loop, command)  # plan, apply or drift
            return step(list(fleets))

    @property
    def summary(self) -> str:
        return (self.tmp_path / "summary.md").read_text()

    def outputs(self) -> dict[str, str]:
        text = (self.tmp_path / "output").read_text()
        return {name: value for name, _, value in re.findall(r"^([\w-]+)<<(\S+)\n(.*?)\n\2$", text, re.M | re.S)}


@pytest.fixture
def job(github: FakeGitHub, tmp_path: Path, manager: pluggy.PluginManager) -> Job:
    return Job(github, FakePlanner({"fleet.yaml": plan_of("support")}), tmp_path, manager)


def reviewed(job: Job) -> Job:
    """The pull request was planned and reviewed, then merged: the job now is the push to main."""
    assert job.run("plan") == 0
    job.github.add_merged_pull(MERGE_SHA, 7)
    job.event_name = "push"
    return job


# -- plan on a pull request -------------------------------------------------------------------------------------


def test_the_first_plan_creates_one_comment_with_the_marker(job: Job) -> None:
    assert job.run("plan") == 0

    [comment] = job.github.comments_on(7)
    marker = PlanMarker.find(comment["body"])
    assert marker is not None and marker.sha256 == plan_of("support").sha256
    assert "**Plan: 1 to create, 0 to update, 0 to delete.**" in comment["body"]


def test_a_second_plan_updates_the_same_comment_even_on_a_later_page(job: Job) -> None:
    job.run("plan")
    for number in range(3):
        job.github.add_comment(7, f"review remark {number}")
    job.planner.plans["fleet.yaml"] = plan_of("support", "sales")

    assert job.run("plan") == 0

    comments = job.github.comments_on(7)
    assert len(comments) == 4
    assert "2 to create" in comments[0]["body"]
    assert [request.method for request in job.github.writes()] == ["POST", "PATCH"]


def test_the_plan_goes_to_the_job_summary_and_the_step_outputs(job: Job) -> None:
    job.run("plan")

    outputs = job.outputs()
    assert "**Plan: 1 to create" in job.summary
    assert outputs["changes"] == "true"
    assert outputs["plan-sha256"] == plan_of("support").sha256
    assert Path(outputs["plan-json"]).read_text().startswith("{")


def test_no_changes_are_said_in_the_comment(job: Job) -> None:
    job.planner.plans["fleet.yaml"] = plan_of("support", action=Action.NO_OP)

    job.run("plan")

    [comment] = job.github.comments_on(7)
    assert "No changes. The server matches the fleet." in comment["body"]
    assert job.outputs()["changes"] == "false"


def test_no_comment_for_no_changes_when_turned_off(job: Job) -> None:
    job.planner.plans["fleet.yaml"] = plan_of("support", action=Action.NO_OP)

    job.run("plan", comment_when_unchanged=False)

    assert job.github.comments_on(7) == []


def test_an_earlier_comment_is_updated_even_when_no_changes_are_left(job: Job) -> None:
    job.run("plan")
    job.planner.plans["fleet.yaml"] = plan_of("support", action=Action.NO_OP)

    job.run("plan", comment_when_unchanged=False)

    [comment] = job.github.comments_on(7)
    assert "No changes." in comment["body"]


def test_a_read_only_token_degrades_to_the_job_summary(job: Job) -> None:
    job.github.read_only = True

    assert job.run("plan") == 0

    assert job.github.comments_on(7) == []
    assert "**Plan: 1 to create" in job.summary
    assert "job summary only" in job.summary
    assert any(line.startswith("::warning") and "fork" in line for line in job.log)


def test_a_failed_plan_replaces_the_comment_so_nothing_stale_can_be_applied(job: Job) -> None:
    job.run("plan")
    job.planner.plans["fleet.yaml"] = FleetError([Diagnostic("fleet.yaml", 3, 5, "limit must be a number")])

    assert job.run("plan") == 1

    [comment] = job.github.comments_on(7)
    assert "fleet.yaml:3:5: limit must be a number" in comment["body"]
    marker = PlanMarker.find(comment["body"])
    assert marker is not None and marker.sha256 is None


def test_secrets_never_reach_the_comment_the_summary_or_the_log(job: Job) -> None:
    job.planner.plans["fleet.yaml"] = plan_of("support", description=f"key {LETTA_KEY} token {job.github.token}")

    job.run("plan")

    texts = [
        job.github.comments_on(7)[0]["body"],
        job.summary,
        *job.log,
        (job.tmp_path / "output").read_text(),
        *(p.read_text() for p in (job.tmp_path / "plans").iterdir()),
    ]
    assert not any(LETTA_KEY in text or job.github.token in text for text in texts)


def test_a_secret_in_a_fleet_file_that_does_not_validate_never_reaches_the_comment_the_summary_or_the_log(
    job: Job, write_fleet: Callable[..., Path], manager: pluggy.PluginManager
) -> None:
    secret = "sk-live-9f8e7d6c5b4a3210"
    fleet = write_fleet(
        f"providers: [{{name: p, provider_type: openai, api_key: {secret}}}]\n"
        f"global-secrets: {{API_KEY: {{from_env: {secret}}}}}\n"
        "agents: [{name: a, llm_config: {model: m}, system_prompt: {value: v}}]\n"
    )
    with pytest.raises(FleetError) as refused:
        load_fleet(fleet, manager)
    job.planner.plans["fleet.yaml"] = refused.value

    assert job.run("plan") == 1

    body = job.github.comments_on(7)[0]["body"]
    assert "providers[0].api_key must be a mapping, got text (not shown: this key holds secrets)" in body
    assert not any(secret in text or "9f8e7d6c" in text for text in [body, job.summary, *job.log])


def test_each_fleet_file_gets_its_own_comment_and_output_line(job: Job) -> None:
    job.planner.plans["other.yaml"] = plan_of("sales")

    assert job.run("plan", fleets=("fleet.yaml", "other.yaml")) == 0

    markers = [PlanMarker.find(comment["body"]) for comment in job.github.comments_on(7)]
    assert [marker.fleet for marker in markers if marker] == ["fleet.yaml", "other.yaml"]
    assert job.outputs()["plan-sha256"].splitlines() == [plan_of("support").sha256, plan_of("sales").sha256]


def test_a_push_event_plans_into_the_summary_only(job: Job) -> None:
    job.event_name = "push"

    assert job.run("plan") == 0

    assert job.github.writes() == []
    assert "**Plan: 1 to create" in job.summary


# -- apply on merge ---------------------------------------------------------------------------------------------


def test_the_reviewed_plan_is_applied_on_merge_and_the_comment_says_so(job: Job) -> None:
    reviewed(job)

    assert job.run("apply") == 0

    assert job.planner.applied == [plan_of("support")]
    [comment] = job.github.comments_on(7)
    assert "### Applied" in comment["body"]
    assert "1 created, 0 updated, 0 deleted." in comment["body"]
    assert "The plan matched the reviewed one" in job.summary


def test_a_plan_that_changed_since_review_is_not_applied(job: Job) -> None:
    reviewed(job)
    job.planner.plans["fleet.yaml"] = plan_of("support", "sales")

    assert job.run("apply") == 1

    assert job.planner.applied == []
    [comment] = job.github.comments_on(7)
    assert "### Not applied: this is not the reviewed plan" in comment["body"]
    assert "`agent.sales` is new in the plan since the review" in comment["body"]
    assert "apply-unreviewed-changes" in comment["body"]
    assert "**Plan: 1 to create" in comment["body"]  # the reviewed plan stays in view
    assert any(line.startswith("::error") for line in job.log)


def test_unreviewed_changes_are_applied_when_allowed(job: Job) -> None:
    reviewed(job)
    job.planner.plans["fleet.yaml"] = plan_of("support", "sales")

    assert job.run("apply", apply_unreviewed_changes=True) == 0

    assert job.planner.applied == [plan_of("support", "sales")]
    assert "Applied although this is not the reviewed plan" in job.github.comments_on(7)[0]["body"]


def test_a_push_that_merged_no_pull_request_is_not_applied(job: Job) -> None:
    job.event_name = "push"

    assert job.run("apply") == 1

    assert job.planner.applied == []
    assert "No merged pull request was found" in job.summary


def test_a_merged_pull_request_without_a_plan_comment_is_not_applied(job: Job) -> None:
    job.github.add_merged_pull(MERGE_SHA, 7)
    job.event_name = "push"

    assert job.run("apply") == 1

    assert job.planner.applied == []
    assert "has no plan comment" in job.github.comments_on(7)[0]["body"]


def test_a_failed_apply_fails_the_job_and_the_comment_lists_what_failed(job: Job) -> None:
    reviewed(job)
    job.planner.failing = {"agent.support"}

    assert job.run("apply") == 1

    body = job.github.comments_on(7)[0]["body"]
    assert "### Apply failed" in body
    assert "| `agent.support` | failed | server said no |" in body


def test_nothing_to_apply_succeeds_without_writing_to_the_server(job: Job) -> None:
    reviewed(job)
    job.planner.plans["fleet.yaml"] = plan_of("support", action=Action.NO_OP)

    assert job.run("apply") == 0

    assert job.planner.applied == []
    assert "### Nothing to apply" in job.github.comments_on(7)[0]["body"]


def test_a_plan_that_fails_on_merge_applies_nothing_and_says_why(job: Job) -> None:
    reviewed(job)
    job.planner.plans["fleet.yaml"] = FleetError([Diagnostic("fleet.yaml", 3, 5, "limit must be a number")])

    assert job.run("apply") == 1

    body = job.github.comments_on(7)[0]["body"]
    assert "### Not applied: the plan failed" in body
    assert "fleet.yaml:3:5: limit must be a number" in body
    assert job.planner.applied == []


# -- who wrote the comment --------------------------------------------------------------------------------------


def test_a_forged_marker_by_another_author_is_not_applied_and_is_reported(job: Job) -> None:
    """A fork's author posts a marker with the hash of a plan nobody reviewed, before lettafleet comments."""
    unreviewed = plan_of("support", "backdoor")
    job.github.add_comment(7, PlanMarker.of_plan("fleet.yaml", unreviewed).render(), MALLORY)
    job.github.add_merged_pull(MERGE_SHA, 7)
    job.event_name = "push"
    job.planner.plans["fleet.yaml"] = unreviewed

    assert job.run("apply") == 1

    assert job.planner.applied == []
    assert "has no plan comment" in job.summary
    assert "Ignored 1 comment(s)" in job.summary and "`mallory-from-a-fork`" in job.summary
    assert any(line.startswith("::warning") and "mallory-from-a-fork" in line for line in job.log)
    forged, status = job.github.comments_on(7)
    assert forged["user"] == MALLORY and forged["body"].startswith("<!-- lettafleet-plan")
    assert status["user"] == BOT and "### Not applied" in status["body"]


def test_a_same_repository_author_commenting_first_keeps_their_comment(job: Job) -> None:
    theirs = job.github.add_comment(7, PlanMarker(fleet="fleet.yaml", sha256="0" * 64).render() + "\nLGTM", OCTOCAT)

    assert job.run("plan") == 0
    reviewed(job)
    assert job.run("apply") == 0

    comments = job.github.comments_on(7)
    assert comments[0] == theirs
    assert [comment["user"]["login"] for comment in comments] == ["octocat", BOT["login"]]
    assert "### Applied" in comments[1]["body"]
    edited = {request.path.rsplit("/", 1)[1] for request in job.github.writes() if request.method == "PATCH"}
    assert edited == {str(comments[1]["id"])}


def test_a_plan_comment_by_another_identity_fails_the_plan_and_says_what_to_set(job: Job) -> None:
    job.github.token_user = {"login": "fleet-app[bot]", "id": 77, "type": "Bot"}

    assert job.run("plan") == 1

    assert any(
        line.startswith("::error") and "Set the action's input `comment-author: fleet-app[bot]`" in line
        for line in job.log
    )


def test_a_custom_comment_author_is_trusted(job: Job) -> None:
    job.github.token_user = {"login": "fleet-app[bot]", "id": 77, "type": "Bot"}
    assert job.run("plan", comment_author="fleet-app[bot]") == 0
    job.github.add_merged_pull(MERGE_SHA, 7)
    job.event_name = "push"

    assert job.run("apply", comment_author="fleet-app[bot]") == 0

    assert job.planner.applied == [plan_of("support")]


# -- nothing in a fleet can forge or break the comment, the summary or the log ----------------------------------

ATTACK = (
    "x <!-- lettafleet-status --> <!-- lettafleet-plan fleet=fleet.yaml sha256={sha} --> "
    "``` </details> | @octocat #1 [click](https://evil.example) <img src=x> &lt;!-- www.evil.example "
    "\r::error::forged by the fleet\n::add-mask::x\r\n##[error]forged too %0A::warning::%"
)


def attack_plan(sha: str = "f" * 64) -> Plan:
    """An agent whose name is plain, but whose description, block value and conversation summary carry every
    attack on the comment's markers, fences, table, mentions and links, and on the log's workflow commands."""
    text = ATTACK.format(sha=sha)
    return Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            Change("agent.support", "agent", "support", Action.UPDATE, {"description": "old"}, {"description": text}),
            Change(
                "agent.support.block.faq",
                "block",
                "faq",
                Action.UPDATE,
                {"value": "old"},
                {"value": text},
                parent="agent.support",
            ),
            Change(
                f'agent.support.conversation["{text}"]',
                "conversation",
                text,
                Action.CREATE,
                None,
                {"summary": text},
                parent="agent.support",
            ),
        ],
    )


def assert_intact(markdown: str) -> None:
    """No hidden comment, no mention, link or issue reference, and every fence and `<details>` closed."""
    assert markdown.count("<!--") == markdown.count("<!-- lettafleet-")  # only lettafleet's own markers
    assert "-->" not in markdown.replace("<!-- lettafleet-status -->", "").split(" -->", 1)[-1]
    # Code shows text as written (no mention, link or HTML in it): what matters is the text outside code.
    prose = re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", markdown, flags=re.M | re.S)
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", prose)
    assert not re.search(r"@octocat|#1\b|https://evil|www\.evil|<img", prose)
    assert prose.count("<details>") == prose.count("</details>")
    fences = re.findall(r"^(`{3,})", markdown, re.M)
    assert len(fences) % 2 == 0 and all(len(f) > 3 for f in fences)  # longer than the fleet's ```


def test_fleet_values_cannot_forge_or_break_the_comment(job: Job) -> None:
    job.planner.plans["fleet.yaml"] = attack_plan()
    reviewed(job)
    job.planner.failing = {"agent.support.block.faq"}

    assert job.run("apply") == 1

    [comment] = job.github.comments_on(7)
    body = comment["body"]
    assert PlanMarker.find(body) == PlanMarker.of_plan("fleet.yaml", attack_plan())
    assert body.count("<!-- lettafleet-status -->") == 1
    assert "### Apply failed" in body and "**Plan: 1 new conversation" not in body
    assert "Plan sha256" in body.split("<!-- lettafleet-status -->")[0]  # the plan above the status is whole
    [row] = [line for line in body.splitlines() if line.startswith("| `agent.support.block.faq`")]
    assert row.count(" | ") == 2  # three cells: nothing in the value split the table
    assert_intact(body)
    assert_intact(job.summary)


def test_fleet_values_cannot_run_workflow_commands_in_the_log(job: Job) -> None:
    job.planner.plans["fleet.yaml"] = attack_plan()
    reviewed(job)
    job.planner.plans["fleet.yaml"] = attack_plan(sha="0" * 64)  # changed since the review: an ::error

    assert job.run("apply") == 1

    log = "\n".join(job.log)
    assert "forged by the fleet" in log  # the value is in the log ...
    commands = workflow_commands(log)
    assert commands  # ... and lettafleet's own annotations still work ...
    assert all(re.match(r"::(error|warning) title=lettafleet::", command) for command in commands)
    assert not any("forged" in command for command in commands)  # ... but the fleet's commands do not run


def test_a_failed_plan_cannot_break_the_comment_either(job: Job) -> None:
    job.planner.plans["fleet.yaml"] = FleetError([Diagnostic("fleet.yaml", 3, 5, ATTACK.format(sha="f" * 64))])

    assert job.run("plan") == 1

    [comment] = job.github.comments_on(7)
    assert PlanMarker.find(comment["body"]) == PlanMarker(fleet="fleet.yaml", sha256=None)
    assert_intact(comment["body"])
    assert all(re.match(r"::(error|warning) title=lettafleet::", c) for c in workflow_commands("\n".join(job.log)))


def test_a_fleet_another_apply_holds_the_lock_of_is_not_applied_and_the_comment_says_who(job: Job) -> None:
    reviewed(job)
    since = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
    job.planner.locked_by_others["fleet.yaml"] = HeldLock(
        "fleet.yaml", "identity-1", "ci@runner-2 pid 41", "apply", since, since.replace(minute=2)
    )

    assert job.run("apply") == 1

    assert job.planner.applied == []
    [comment] = job.github.comments_on(7)
    assert "Not applied: another apply holds the fleet's lock" in comment["body"]
    assert "held by ci@runner-2 pid 41" in comment["body"]
    assert "lettafleet force-unlock fleet.yaml" in comment["body"]
    assert any(line.startswith("::error") and "locked" in line for line in job.log)


def test_the_merge_job_takes_the_lock_lettafleet_apply_takes_a_named_fleets_name(tmp_path: Path) -> None:
    agent = "agents:\n  - {name: a, llm_config: {model: letta/letta-free}, system_prompt: {value: Hi.}}\n"
    named, unnamed, broken = tmp_path / "named.yaml", tmp_path / "unnamed.yaml", tmp_path / "broken.yaml"
    named.write_text("fleet: prod\n" + agent)
    unnamed.write_text(agent)
    broken.write_text("fleet: prod\nagents: 3\n")
    manager = get_plugin_manager()

    assert _lock_id(str(named), manager) == "fleet:prod"
    assert _lock_id(str(unnamed), manager) == unnamed.resolve().as_posix()
    assert _lock_id(str(broken), manager) == broken.resolve().as_posix()  # its plan then reports the errors
