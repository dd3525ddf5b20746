"""The GitHub Action, step by step as a runner would run action.yml: its own `run:` scripts with the variables
GitHub sets, against the stand-in GitHub API and the real Letta dev server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.core.render.markdown import COMMENT_LIMIT
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.github.comments import PlanMarker
from tests.fakes.actions_runner import workflow_commands
from tests.fakes.github_api import MALLORY, FakeGitHub, running_github_api

PROJECT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((PROJECT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
LETTA_KEY = "sk-let-integration-secret-9f8e7d"
MERGE_SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
PR_NUMBER = 12


# -- running action.yml ----------------------------------------------------------------------------------------


@dataclass
class ActionRun:
    returncode: int
    outputs: dict[str, str]
    log: str
    summary: str


@dataclass
class Runner:
    """What a GitHub-hosted runner gives a job: a workspace, RUNNER_TEMP, the event, and the API to talk to."""

    workspace: Path
    runner_temp: Path
    github: FakeGitHub
    runs: list[ActionRun] = field(default_factory=list)

    def run(self, command: str, event_name: str, **inputs: str) -> ActionRun:
        values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        values.update(command=command, **{name.replace("_", "-"): value for name, value in inputs.items()})
        context: dict[str, str] = {"github.token": self.github.token, "github.action_path": str(PROJECT)}
        values = {name: self._evaluate(value, values, context) for name, value in values.items()}
        event = {"pull_request": {"number": PR_NUMBER}} if event_name == "pull_request" else {"after": MERGE_SHA}
        event_path = self.runner_temp / f"event-{len(self.runs)}.json"
        event_path.write_text(json.dumps(event))
        summary = self.runner_temp / f"summary-{len(self.runs)}.md"
        summary.touch()
        base = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": self.github.repository,
            "GITHUB_SHA": MERGE_SHA,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_SERVER_URL": "https://github.test",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_ACTION_PATH": str(PROJECT),
            "RUNNER_TEMP": str(self.runner_temp),
        }
        log, steps, code = "", {}, 0
        for index, step in enumerate(ACTION["runs"]["steps"]):
            output = self.runner_temp / f"output-{len(self.runs)}-{index}"
            output.touch()
            env = {**base, "GITHUB_OUTPUT": str(output)}
            env.update({name: self._evaluate(str(value), values, context) for name, value in step["env"].items()})
            script = self.runner_temp / f"step-{index}.sh"
            script.write_text(step["run"])
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                env=env,
                cwd=self.workspace,
                capture_output=True,
                text=True,
                timeout=600,
            )
            log += done.stdout + done.stderr
            if "id" in step:
                steps[step["id"]] = _read_outputs(output.read_text())
                context.update({f"steps.{step['id']}.outputs.{k}": v for k, v in steps[step["id"]].items()})
            if done.returncode:
                code = done.returncode
                break
        outputs = {name: self._evaluate(spec["value"], values, context) for name, spec in ACTION["outputs"].items()}
        run = ActionRun(code, outputs, log, summary.read_text())
        self.runs.append(run)
        return run

    @staticmethod
    def _evaluate(text: str, inputs: Mapping[str, str], context: Mapping[str, str]) -> str:
        """The `${{ }}` forms action.yml may use: inputs, github.token, github.action_path and step outputs."""

        def value(found: re.Match[str]) -> str:
            name = found[1]
            if name.startswith("inputs."):
                return inputs[name.removeprefix("inputs.")]
            if name.startswith("steps."):
                return context.get(name, "")
            assert name in context, f"action.yml uses an expression this harness does not know: {name}"
            return context[name]

        return EXPRESSION.sub(value, text)


def _read_outputs(text: str) -> dict[str, str]:
    return {name: value for name, _, value in re.findall(r"^([\w-]+)<<(\S+)\n(.*?)\n\2$", text, re.M | re.S)}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with running_github_api(FakeGitHub(max_per_page=2)) as fake:
        yield fake


@pytest.fixture
def runner(tmp_path: Path, github: FakeGitHub) -> Runner:
    """A fresh job. lettafleet is already where the action's install step puts it (this test run's own
    environment), so that step takes its "already installed" path; tests/integration/test_pre_commit.py covers
    installing this checkout from scratch."""
    installed = Path(sys.prefix)
    assert (installed / "bin" / "lettafleet").exists(), f"lettafleet is not installed in {installed}"
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    (runner_temp / "lettafleet-venv").symlink_to(installed, target_is_directory=True)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return Runner(workspace=workspace, runner_temp=runner_temp, github=github)


# -- fleets on the real server ----------------------------------------------------------------------------------


@pytest.fixture
def agent_names(client: LettaClient) -> Iterator[list[str]]:
    """Names for this test's agents (unique per test run); those agents and their memory blocks are deleted after."""
    suffix = uuid.uuid4().hex[:8]
    names = [f"gh-{suffix}-{number}" for number in range(300)]
    yield names
    chosen = set(names)
    for agent in client.list_all("/v1/agents/"):
        if agent["name"] in chosen:
            # Deleting an agent leaves its memory blocks behind: collect them first.
            blocks = client.get(f"/v1/agents/{agent['id']}/core-memory/blocks")
            client.delete(f"/v1/agents/{agent['id']}")
            for block in blocks:
                client.delete(f"/v1/blocks/{block['id']}")


def write_fleet(workspace: Path, names: list[str], conversations: int = 1) -> str:
    (workspace / "knowledge").mkdir(exist_ok=True)
    (workspace / "knowledge" / "faq.md").write_text("Q: Opening hours? A: 9 to 5.\n")
    agents = []
    for name in names:
        tickets = "\n".join(f'      - summary: "Ticket #{number}"' for number in range(conversations))
        agents.append(f"""\
  - name: {name}
    description: "Support agent {name}"
    llm_config:
      model: letta/letta-free
      context_window: 32000
    system_prompt:
      value: You are a customer support agent.
    embedding: letta/letta-free
    memory_blocks:
      - name: faq
        description: "Frequently asked questions"
        limit: 5000
        from_file: knowledge/faq.md
    conversations:
{tickets}
""")
    (workspace / "fleet.yaml").write_text("agents:\n" + "".join(agents))
    return "fleet.yaml"


def agents_on_server(client: LettaClient, names: list[str]) -> set[str]:
    wanted = set(names)
    return {agent["name"] for agent in client.list_all("/v1/agents/") if agent["name"] in wanted}


def plan_inputs(letta_server: str) -> dict[str, str]:
    return {"fleet": "fleet.yaml", "letta_base_url": letta_server, "letta_api_key": LETTA_KEY}


# -- the action's own files -------------------------------------------------------------------------------------

WORKFLOWS = sorted((PROJECT / "docs" / "workflows").glob("*.yml"))


def test_every_step_names_its_shell_and_takes_inputs_through_env() -> None:
    for step in ACTION["runs"]["steps"]:
        assert step.get("shell") == "bash", step["name"]
        assert "${{" not in step["run"], f"step {step['name']!r}: pass inputs through env:, not ${{{{ }}}} in run:"


def test_the_action_and_the_example_workflows_pass_zizmor(tmp_path: Path) -> None:
    zizmor = Path(sys.executable).parent / "zizmor"
    assert zizmor.exists(), "zizmor is missing: pip install -e '.[test]'"
    # The examples name the action by a placeholder (YOUR-ORG/lettafleet@v0.1.0) that cannot be pinned to a
    # commit; every real third-party action in them is pinned, as zizmor requires.
    config = tmp_path / "zizmor.yml"
    config.write_text(
        'rules:\n  unpinned-uses:\n    config:\n      policies:\n        "YOUR-ORG/lettafleet": ref-pin\n'
        '        "*": hash-pin\n'
    )

    result = subprocess.run(
        [
            str(zizmor),
            "--offline",
            "--persona",
            "pedantic",
            "--config",
            str(config),
            "--no-progress",
            str(PROJECT / "action.yml"),
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert len(WORKFLOWS) == 3
    assert result.returncode == 0, result.stdout + result.stderr


# -- plan on a pull request -------------------------------------------------------------------------------------


def test_the_first_plan_creates_one_comment_and_sets_the_outputs(
    runner: Runner, letta_server: str, agent_names: list[str]
) -> None:
    write_fleet(runner.workspace, agent_names[:2])

    run = runner.run("plan", "pull_request", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    [comment] = runner.github.comments_on(PR_NUMBER)
    marker = PlanMarker.find(comment["body"])
    assert marker is not None and marker.fleet == "fleet.yaml"
    assert marker.sha256 == run.outputs["plan-sha256"]
    assert run.outputs["changes"] == "true"
    assert json.loads(Path(run.outputs["plan-json"]).read_text())["sha256"] == run.outputs["plan-sha256"]
    assert "**Plan: 4 to create, 0 to update, 0 to delete; 2 new conversations.**" in comment["body"]
    assert "**Plan: 4 to create" in run.summary


def test_no_secret_reaches_the_log_the_summary_or_the_comment(
    runner: Runner, letta_server: str, agent_names: list[str]
) -> None:
    write_fleet(runner.workspace, agent_names[:1])

    run = runner.run("plan", "pull_request", **plan_inputs(letta_server))

    texts = [run.log, run.summary, *(c["body"] for c in runner.github.comments_on(PR_NUMBER)), *run.outputs.values()]
    assert not any(LETTA_KEY in text or runner.github.token in text for text in texts)


def test_a_second_plan_updates_the_same_comment_on_page_two(
    runner: Runner, letta_server: str, agent_names: list[str]
) -> None:
    write_fleet(runner.workspace, agent_names[:1])
    runner.run("plan", "pull_request", **plan_inputs(letta_server))
    for number in range(3):
        runner.github.add_comment(PR_NUMBER, f"Looks good, one question ({number})")
    write_fleet(runner.workspace, agent_names[:2])

    run = runner.run("plan", "pull_request", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    comments = runner.github.comments_on(PR_NUMBER)
    assert len(comments) == 4
    assert "**Plan: 4 to create" in comments[0]["body"]
    assert [request.method for request in runner.github.writes()] == ["POST", "PATCH"]
    pages = [r.query.get("page", "1") for r in runner.github.requests if r.method == "GET"]
    assert "2" in pages


def test_a_plan_too_large_for_a_comment_is_cut_and_points_to_the_summary(
    runner: Runner, letta_server: str, agent_names: list[str]
) -> None:
    write_fleet(runner.workspace, agent_names[:300], conversations=4)

    run = runner.run("plan", "pull_request", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    [comment] = runner.github.comments_on(PR_NUMBER)
    assert len(comment["body"]) < COMMENT_LIMIT
    assert "**Plan: 600 to create, 0 to update, 0 to delete; 1200 new conversations.**" in comment["body"]
    assert (
        "The full plan is in the [job summary](https://github.test/acme/fleets/actions/runs/4242)" in (comment["body"])
    )
    assert "too long" not in run.summary  # the summary holds it all
    assert run.summary.count("<details>") == 300


def test_a_pull_request_from_a_fork_gets_the_plan_in_the_summary_only(
    runner: Runner, letta_server: str, agent_names: list[str]
) -> None:
    runner.github.read_only = True
    write_fleet(runner.workspace, agent_names[:1])

    run = runner.run("plan", "pull_request", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    assert runner.github.comments_on(PR_NUMBER) == []
    assert "**Plan: 2 to create" in run.summary
    assert "::warning title=lettafleet::" in run.log


def test_comment_false_keeps_the_plan_in_the_summary(runner: Runner, letta_server: str, agent_names: list[str]) -> None:
    write_fleet(runner.workspace, agent_names[:1])

    run = runner.run("plan", "pull_request", comment="false", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    assert runner.github.writes() == []
    assert "**Plan: 2 to create" in run.summary


def test_plan_output_markdown_prints_what_the_comment_shows(
    tmp_path: Path, letta_server: str, agent_names: list[str]
) -> None:
    write_fleet(tmp_path, agent_names[:1])

    result = CliRunner().invoke(
        main, ["plan", "-f", str(tmp_path / "fleet.yaml"), "--output", "markdown"], env={"LETTA_BASE_URL": letta_server}
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"### lettafleet plan for `{tmp_path / 'fleet.yaml'}`")
    assert "**Plan: 2 to create, 0 to update, 0 to delete; 1 new conversation.**" in result.output
    assert f"<details><summary>+ {agent_names[0]} (CREATE) - 1 conversation</summary>" in result.output


def test_an_unknown_command_fails_with_a_clear_message(runner: Runner, letta_server: str) -> None:
    run = runner.run("destroy", "pull_request", **plan_inputs(letta_server))

    assert run.returncode == 1
    assert "command must be plan, apply or drift, not 'destroy'" in run.log


# -- apply on merge ---------------------------------------------------------------------------------------------


def test_apply_on_merge_applies_the_reviewed_plan(
    runner: Runner, letta_server: str, client: LettaClient, agent_names: list[str]
) -> None:
    names = agent_names[:2]
    write_fleet(runner.workspace, names)
    reviewed = runner.run("plan", "pull_request", **plan_inputs(letta_server))
    runner.github.add_merged_pull(MERGE_SHA, PR_NUMBER)

    run = runner.run("apply", "push", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    assert run.outputs["plan-sha256"] == reviewed.outputs["plan-sha256"]
    assert agents_on_server(client, names) == set(names)
    [comment] = runner.github.comments_on(PR_NUMBER)
    assert "### Applied" in comment["body"]
    assert "4 created, 0 updated, 0 deleted; 2 new conversations" in comment["body"]  # 2 agents, 2 blocks
    again = runner.run("plan", "push", **plan_inputs(letta_server))
    assert again.outputs["changes"] == "false"


def test_apply_refuses_a_plan_that_changed_since_review(
    runner: Runner, letta_server: str, client: LettaClient, agent_names: list[str]
) -> None:
    write_fleet(runner.workspace, agent_names[:1])
    runner.run("plan", "pull_request", **plan_inputs(letta_server))
    runner.github.add_merged_pull(MERGE_SHA, PR_NUMBER)
    write_fleet(runner.workspace, agent_names[:2])  # main moved after the review

    run = runner.run("apply", "push", **plan_inputs(letta_server))

    assert run.returncode == 1
    assert agents_on_server(client, agent_names[:2]) == set()
    [comment] = runner.github.comments_on(PR_NUMBER)
    assert "### Not applied: this is not the reviewed plan" in comment["body"]
    assert f"`agent.{agent_names[1]}` is new in the plan since the review" in comment["body"]
    assert "::error title=lettafleet::" in run.log


def test_apply_anyway_when_unreviewed_changes_are_allowed(
    runner: Runner, letta_server: str, client: LettaClient, agent_names: list[str]
) -> None:
    write_fleet(runner.workspace, agent_names[:1])
    runner.run("plan", "pull_request", **plan_inputs(letta_server))
    runner.github.add_merged_pull(MERGE_SHA, PR_NUMBER)
    write_fleet(runner.workspace, agent_names[:2])

    run = runner.run("apply", "push", apply_unreviewed_changes="true", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    assert agents_on_server(client, agent_names[:2]) == set(agent_names[:2])


def test_a_failed_apply_fails_the_job_and_names_what_failed(
    runner: Runner, letta_server: str, agent_names: list[str]
) -> None:
    good, bad = agent_names[:2]
    # An endpoint type the server does not know passes validation and planning, and fails when the agent is created.
    (runner.workspace / "fleet.yaml").write_text(f"""\
agents:
  - name: {good}
    llm_config: {{model: letta/letta-free, context_window: 16000}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
  - name: {bad}
    llm_config: {{model: some-model, model_endpoint_type: no-such-type, model_endpoint: "http://127.0.0.1:9/v1",
                  context_window: 16000}}
    embedding: letta/letta-free
    system_prompt: {{value: You help too.}}
""")
    reviewed = runner.run("plan", "pull_request", **plan_inputs(letta_server))
    assert reviewed.returncode == 0, reviewed.log
    runner.github.add_merged_pull(MERGE_SHA, PR_NUMBER)

    run = runner.run("apply", "push", **plan_inputs(letta_server))

    assert run.returncode == 1
    [comment] = runner.github.comments_on(PR_NUMBER)
    assert "### Apply failed" in comment["body"]
    assert f"| `agent.{bad}` | failed |" in comment["body"]
    assert f"agent.{good}" not in comment["body"].split("### Apply failed")[1]


def test_a_marker_forged_by_another_author_is_ignored_on_merge(
    runner: Runner, letta_server: str, client: LettaClient, agent_names: list[str]
) -> None:
    """A fork's author comments first with the marker of the plan they want applied; nobody reviewed it."""
    write_fleet(runner.workspace, agent_names[:1])
    unreviewed = runner.run("plan", "push", **plan_inputs(letta_server))  # the plan, as the fork's author sees it
    forged = PlanMarker(fleet="fleet.yaml", sha256=unreviewed.outputs["plan-sha256"]).render()
    runner.github.add_comment(PR_NUMBER, forged, MALLORY)
    runner.github.add_merged_pull(MERGE_SHA, PR_NUMBER)

    run = runner.run("apply", "push", **plan_inputs(letta_server))

    assert run.returncode == 1
    assert agents_on_server(client, agent_names[:1]) == set()
    assert "::warning title=lettafleet::Ignored 1 comment(s)" in run.log
    assert "`mallory-from-a-fork`" in run.summary
    theirs, ours = runner.github.comments_on(PR_NUMBER)
    assert theirs["body"] == forged
    assert ours["user"]["login"] == "github-actions[bot]" and "has no plan comment" in ours["body"]


def test_a_carriage_return_in_a_fleet_value_runs_no_workflow_command(
    runner: Runner, letta_server: str, agent_names: list[str]
) -> None:
    write_fleet(runner.workspace, agent_names[:1])
    fleet = runner.workspace / "fleet.yaml"
    fleet.write_text(
        fleet.read_text().replace('summary: "Ticket #0"', 'summary: "Ticket\\r::error::forged\\r##[error]x"')
    )

    run = runner.run("plan", "pull_request", **plan_inputs(letta_server))

    assert run.returncode == 0, run.log
    assert "forged" in run.log
    assert workflow_commands(run.log) == []


# -- drift on a schedule ----------------------------------------------------------------------------------------


def test_drift_opens_an_issue_naming_the_changed_agent_and_closes_it_after_apply(
    runner: Runner, letta_server: str, client: LettaClient, agent_names: list[str]
) -> None:
    name = agent_names[0]
    write_fleet(runner.workspace, [name])
    applied = runner.run("apply", "push", apply_unreviewed_changes="true", **plan_inputs(letta_server))
    assert applied.returncode == 0, applied.log
    assert runner.run("drift", "schedule", **plan_inputs(letta_server)).returncode == 0
    assert runner.github.issues == []  # in sync: no issue
    [agent] = [agent for agent in client.list_all("/v1/agents/") if agent["name"] == name]
    client.patch(f"/v1/agents/{agent['id']}", json={"description": "changed by hand in the ADE"})

    drifted = runner.run("drift", "schedule", **plan_inputs(letta_server))

    assert drifted.returncode == 1, drifted.log
    [issue] = runner.github.issues
    assert issue["state"] == "open" and drifted.outputs["issue-url"] == issue["html_url"]
    assert (
        "| `fleet.yaml` | Plan: 0 to create, 1 to update, 0 to delete; 0 new conversations. | 0 | 0 |"
        in (issue["body"])
    )
    assert f"~ {name} (UPDATE)" in issue["body"]
    assert f"-       changed by hand in the ADE\n+       Support agent {name}\n" in issue["body"]
    assert drifted.outputs["drifted"] == "true"
    assert LETTA_KEY not in issue["body"] + drifted.log + drifted.summary

    reapplied = runner.run("apply", "push", apply_unreviewed_changes="true", **plan_inputs(letta_server))
    assert reapplied.returncode == 0, reapplied.log
    matched = runner.run("drift", "schedule", **plan_inputs(letta_server))

    assert matched.returncode == 0, matched.log
    [issue] = runner.github.issues
    assert issue["state"] == "closed"
    [comment] = runner.github.comments_on(issue["number"])
    assert comment["body"].startswith("The server matches the fleet files again")
    assert matched.outputs["drifted"] == "false"
