"""The rest of the CLI against a real App Server (Letta Code 0.34.12): `send --all` over the protocol, every command's
simplest form (it works, or stops in one line naming what the App Server lacks), the GitHub Action's plan comment,
and the pre-commit hook's check of a lettactl-style file. A private App Server of this module's own, with the
suite's LLM stand-in as its only provider, stopped by its PID at the end."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.memory_files import V1, file_path, file_text
from lettafleet.plugins.devserver import app_server as dev_app_server
from lettafleet.plugins.devserver.progress import SilentProgress
from tests.fakes.llm_server import RUN_PREFIX, FakeLLM
from tests.integration.conftest import home_with_the_shared_app_server
from tests.integration.test_github_action import MERGE_SHA, PR_NUMBER, Runner, github, plan_inputs, runner

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["github", "runner"]  # fixtures of the GitHub Action's tests, used here

MODEL = "openai-compatible/fake-echo-model"
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def private_url(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLLM, app_server_url: str) -> Iterator[str]:
    """An App Server of our own (the shared install's venv linked into a temporary dev-server home), its only
    provider the stand-in: the shared one has other helpers' providers. Stopped by its recorded PID."""
    home = home_with_the_shared_app_server(tmp_path_factory.mktemp("surface") / "dev-home")
    try:
        url = str(dev_app_server.up(port=0, home=home, progress=SilentProgress()).base_url)
        with AppServerClient(url) as client:
            client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
        yield url
    finally:
        dev_app_server.down(home=home, progress=SilentProgress())


@pytest.fixture
def prefix(private_url: str) -> Iterator[str]:
    """A name prefix unique to one test; its agents are deleted afterwards."""
    chosen = f"surf-{uuid.uuid4().hex[:6]}"
    yield chosen
    with AppServerClient(private_url) as client:
        for agent in client.list_agents():
            if str(agent.get("name", "")).startswith(chosen):
                client.delete_agent(agent["id"])


def make_agents(url: str, *names: str) -> list[dict[str, Any]]:
    with AppServerClient(url) as client:
        return [client.create_agent({"name": name, "model": MODEL}) for name in names]


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": url}, catch_exceptions=False)


def user_messages(url: str, agent: str) -> list[dict[str, Any]]:
    listed = cli(url, "get", "messages", agent, "--all", "-o", "json")
    assert listed.exit_code == 0, listed.output
    return [m for m in json.loads(listed.stdout) if m["message_type"] == "user_message"]


# ---------------------------------------------------------------------------------------------- send --all


def test_send_all_reaches_every_agent_matching_the_glob_over_the_protocol(
    private_url: str, prefix: str, fake_llm: FakeLLM
) -> None:
    make_agents(private_url, f"{prefix}-support-1", f"{prefix}-support-2", f"{prefix}-sales-1")

    sent = cli(private_url, "send", "--all", f"{prefix}-support-*", "ping all", "-o", "json")

    assert sent.exit_code == 0, sent.output
    report = json.loads(sent.stdout)
    assert report["summary"] == {"pattern": f"{prefix}-support-*", "agents": 2, "replied": 2, "failed": 0}
    assert {r["agent"]: r["reply"] for r in report["results"]} == {
        f"{prefix}-support-1": fake_llm.reply_to("ping all"),
        f"{prefix}-support-2": fake_llm.reply_to("ping all"),
    }
    assert "[1/2]" in sent.stderr and "[2/2]" in sent.stderr  # progress, one line per agent as it replies
    assert not user_messages(private_url, f"{prefix}-sales-1")


def test_send_all_refuses_every_tool_an_agent_asks_for_unless_approve_tools(
    private_url: str, prefix: str, tmp_path: Path
) -> None:
    make_agents(private_url, f"{prefix}-a", f"{prefix}-b")
    target = tmp_path / "made-by-an-agent"

    refused = cli(private_url, "send", "--all", f"{prefix}-*", f"{RUN_PREFIX}touch {target}")

    assert refused.exit_code == 0, refused.output
    assert not target.exists()
    for name in (f"{prefix}-a", f"{prefix}-b"):
        assert f"{name}: note: refused: the agent asked to run Bash(" in refused.stderr
    assert "Sent to 2 agents" in refused.stdout and "--approve-tools" in refused.stderr

    approved = cli(private_url, "send", "--all", f"{prefix}-a", f"{RUN_PREFIX}touch {target}", "--approve-tools")

    assert approved.exit_code == 0, approved.output
    assert target.exists()


def test_send_all_with_no_match_says_how_many_agents_there_are(private_url: str, prefix: str) -> None:
    nothing = cli(private_url, "send", "--all", f"{prefix}-nobody-*", "hi")

    assert nothing.exit_code == 1
    assert f"no agent name on {private_url} matches '{prefix}-nobody-*'" in nothing.stderr


# ---------------------------------------------------------------------------------------------- every command

# Each command's simplest form; {agent}, {doomed}, {adoptee}, {conversation}, {fleet}, {prefix}, {tmp} are filled in.
SIMPLEST_FORMS = {
    "apply": ["apply", "-f", "{fleet}", "--no-lock"],
    "cancel-messages": ["cancel-messages", "{agent}"],
    "compact-messages": ["compact-messages", "{agent}"],
    "create conversation": ["create", "conversation", "{agent}"],
    "delete agent": ["delete", "agent", "{doomed}", "--force"],
    "delete conversation": ["delete", "conversation", "{conversation}"],
    "describe agent": ["describe", "agent", "{agent}"],
    "describe conversation": ["describe", "conversation", "{conversation}"],
    "dev-server status": ["dev-server", "status", "--app-server"],
    "export": ["export", "{agent}", "-o", "{tmp}/exported.yaml"],
    "force-unlock": ["force-unlock", "{prefix}-lock"],
    "get agents": ["get", "agents"],
    "get archives": ["get", "archives"],
    "get blocks": ["get", "blocks"],
    "get conversations": ["get", "conversations", "{agent}"],
    "get folders": ["get", "folders"],
    "get mcp-servers": ["get", "mcp-servers"],
    "get messages": ["get", "messages", "{agent}"],
    "get models": ["get", "models"],
    "get providers": ["get", "providers"],
    "get tools": ["get", "tools"],
    "health": ["health"],
    "import": ["import", "{adoptee}", "-f", "{fleet}"],
    "plan": ["plan", "-f", "{fleet}"],
    "plugins": ["plugins"],
    "recompile": ["recompile", "{agent}"],
    "report memory": ["report", "memory", "{agent}"],
    "reset-messages": ["reset-messages", "{agent}"],
    "send": ["send", "{agent}", "hello"],
    "validate": ["validate", "-f", "{fleet}"],
}
# Commands that never talk to LETTA_BASE_URL's server and would start or stop the dev servers themselves.
NOT_SERVER_COMMANDS = {"dev-server up", "dev-server down"}
# Steps of a GitHub Actions job: run as the action runs them, by the tests at the end of this file.
ACTION_COMMANDS = {"github plan", "github apply", "github drift"}


def leaf_commands(command: click.Command, context: click.Context, path: tuple[str, ...] = ()) -> Iterator[str]:
    if not isinstance(command, click.Group):
        yield " ".join(path)
        return
    for name in command.list_commands(context):
        sub = command.get_command(context, name)
        assert sub is not None
        yield from leaf_commands(sub, click.Context(sub, parent=context), (*path, name))


def test_every_command_has_a_simplest_form_here() -> None:
    commands = set(leaf_commands(main, click.Context(main)))

    assert commands - NOT_SERVER_COMMANDS - ACTION_COMMANDS == set(SIMPLEST_FORMS)


@pytest.fixture(scope="module")
def walk(private_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the forms name: an agent with a memory file and a conversation, one to delete, one to adopt, a fleet."""
    tmp = tmp_path_factory.mktemp("walk")
    prefix = f"walk-{uuid.uuid4().hex[:6]}"
    with AppServerClient(private_url) as client:
        agent = client.create_agent({"name": f"{prefix}-agent", "model": MODEL})
        client.write_memory_file(agent["id"], "persona.md", "---\nname: persona\ndescription: who\n---\nI help.")
        conversation = client.create_conversation(agent["id"], "walk")
        for name in ("doomed", "adoptee"):
            client.create_agent({"name": f"{prefix}-{name}", "model": MODEL})
    fleet = tmp / "fleet.yaml"
    fleet.write_text(
        f"fleet: {prefix}\nagents:\n  - name: {prefix}-declared\n    llm_config:\n      model: {MODEL}\n"
        "    system_prompt:\n      value: You help.\n"
    )
    return {
        "agent": f"{prefix}-agent",
        "doomed": f"{prefix}-doomed",
        "adoptee": f"{prefix}-adoptee",
        "conversation": str(conversation["id"]),
        "fleet": str(fleet),
        "prefix": prefix,
        "tmp": str(tmp),
    }


@pytest.mark.parametrize("command", sorted(SIMPLEST_FORMS))
def test_each_command_works_on_the_app_server_or_says_in_one_line_what_it_lacks(
    private_url: str, walk: dict[str, str], command: str
) -> None:
    args = [part.format(**walk) for part in SIMPLEST_FORMS[command]]

    result = cli(private_url, *args)  # an exception would fail the test here (catch_exceptions=False)

    assert "Traceback" not in result.output
    if result.exit_code != 0:
        said = result.stderr.strip().splitlines()
        # force-unlock works there: with no apply running, there is no lock of that name to release.
        expected = "no lock named" if command == "force-unlock" else "App Server"
        assert len(said) == 1 and expected in said[0], result.output
        assert "not REST paths" not in said[0]


def test_get_agents_and_describe_agent_show_the_memory_files_as_blocks(private_url: str, walk: dict[str, str]) -> None:
    listed = {a["name"]: a for a in json.loads(cli(private_url, "get", "agents", "-o", "json").stdout)}
    described = json.loads(cli(private_url, "describe", "agent", walk["agent"], "-o", "json").stdout)

    assert listed[walk["agent"]]["model"] == MODEL and listed[walk["agent"]]["blocks"] == ["persona"]
    assert [(b["label"], b["value"]) for b in described["blocks"]] == [("persona", "I help.")]
    assert described["context_window"] and described["conversations"] >= 1


def test_report_memory_weighs_the_memory_files_against_the_context_window(
    private_url: str, walk: dict[str, str]
) -> None:
    reported = cli(private_url, "report", "memory", walk["agent"], "-o", "json")

    assert reported.exit_code == 0, reported.output
    [record] = json.loads(reported.stdout)["agents"]
    assert record["context_window"] == 128000
    assert [(b["label"], b["characters"]) for b in record["blocks"]] == [("persona", len("I help."))]
    assert record["memory_characters"] > len("I help.")


def test_the_read_commands_show_mfs_v1_files_by_their_label_on_0_32_18(app_server_v1_layout_url: str) -> None:
    url = app_server_v1_layout_url
    with AppServerClient(url) as client:
        agent = client.create_agent({"name": f"surf-v1-{uuid.uuid4().hex[:6]}", "model": MODEL})
        client.write_memory_file(agent["id"], file_path("persona", V1), file_text("persona", "who", "I help.", V1))
        try:
            listed = {a["name"]: a for a in json.loads(cli(url, "get", "agents", "-o", "json").stdout)}
            described = json.loads(cli(url, "describe", "agent", agent["name"], "-o", "json").stdout)
            [reported] = json.loads(cli(url, "report", "memory", agent["name"], "-o", "json").stdout)["agents"]
        finally:
            client.delete_agent(agent["id"])

    assert listed[agent["name"]]["blocks"] == ["persona"]  # `system/persona.md`, as on 0.34.12 `persona.md`
    assert [(b["label"], b["value"]) for b in described["blocks"]] == [("persona", "I help.")]
    assert [(b["label"], b["characters"]) for b in reported["blocks"]] == [("persona", len("I help."))]


def test_health_names_the_app_server_and_counts_its_agents(private_url: str, walk: dict[str, str]) -> None:
    healthy = cli(private_url, "health", "-o", "json")

    assert healthy.exit_code == 0, healthy.output
    record = json.loads(healthy.stdout)
    assert record["status"] == "ok" and record["version"].startswith("App Server 0.34.12")
    assert record["counts"]["agents"] >= 3


# ---------------------------------------------------------------------------------------------- the GitHub Action


def test_the_action_plans_applies_and_checks_drift_against_the_app_server(runner: Runner, private_url: str) -> None:
    name = f"gh-{uuid.uuid4().hex[:6]}"
    (runner.workspace / "fleet.yaml").write_text(
        f"agents:\n  - name: {name}\n    llm_config:\n      model: {MODEL}\n    system_prompt:\n      value: Hi.\n"
    )

    planned = runner.run("plan", "pull_request", **plan_inputs(private_url))
    [comment] = runner.github.comments_on(PR_NUMBER)
    runner.github.add_merged_pull(MERGE_SHA, PR_NUMBER)
    applied = runner.run("apply", "push", **plan_inputs(private_url))
    drift = runner.run("drift", "schedule", **plan_inputs(private_url))

    assert planned.returncode == 0, planned.log
    assert "Letta App Server 0.34.12" in comment["body"]
    assert "**Plan: 1 to create" in comment["body"]
    assert applied.returncode == 0, applied.log  # under the App Server's apply lock
    assert drift.returncode == 0, drift.log  # the scheduled check finds the server as the file says


# ---------------------------------------------------------------------------------------------- the pre-commit hook


def test_the_pre_commit_hook_validates_a_lettactl_file_with_app_server_concerns_without_a_server(
    tmp_path: Path,
) -> None:
    [hook] = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "agents:\n  - name: support\n    llm_config:\n      model: openai-compatible/my-model\n"
        "    embedding: openai/text-embedding-3-small\n    include_base_tools: true\n"
        "    system_prompt:\n      value: You help.\n"
        "    memory_blocks:\n      - name: persona\n        value: I help.\n        limit: 20000\n"
        "    reasoning: true\n"
        "    conversations:\n      - summary: Ticket 1\n        isolated_blocks: [persona]\n"
    )
    entry = [str(Path(sys.executable).with_name(hook["entry"].split()[0])), *hook["entry"].split()[1:]]

    # The hook has no server to talk to: an App Server URL that nothing answers changes nothing.
    checked = subprocess.run(
        [*entry, str(fleet)],
        capture_output=True,
        text=True,
        env={"LETTA_BASE_URL": "ws://127.0.0.1:9", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "valid (1 agent" in checked.stdout
