"""plan and apply options on the real dev App Server, as on V1: saved plans, `--target`, `--scope`, `--prune` with
`protect: true`, `fleet:` names, `moved:`, `--detailed-exitcode`, JSON and Markdown, and a killed apply."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.locks import LOCK_TAG, NAME_PREFIX
from tests.integration import test_app_server_plan_apply as plan_apply
from tests.integration.test_app_server_plan_apply import agent_yaml, cli

pytest_plugins = ["tests.fakes.llm_server"]

app_server = plan_apply.app_server  # the dev App Server with the LLM stand-in connected
LETTAFLEET = str(Path(sys.executable).with_name("lettafleet"))


suffix = plan_apply.suffix  # a suffix unique to one test, its agents deleted afterwards


@pytest.fixture(autouse=True)
def no_lock_agents_left(app_server_client: AppServerClient, suffix: str) -> Iterator[None]:
    """The lock agents of the test's fleets go too."""
    yield
    for agent in app_server_client.list_agents(tags=[LOCK_TAG]):
        if suffix in str(agent.get("name")) and str(agent.get("name")).startswith(NAME_PREFIX):
            app_server_client.delete_agent(agent["id"])


def by_name(client: AppServerClient, suffix: str) -> dict[str, dict[str, Any]]:
    """The test's agents by name (not its fleets' lock agents)."""
    return {
        str(agent["name"]): agent
        for agent in client.list_agents()
        if str(agent["name"]).endswith(suffix) and not str(agent["name"]).startswith(NAME_PREFIX)
    }


def write_fleet(tmp_path: Path, suffix: str, *agents: str, extra: str = "", name: str = "opt") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"fleet: {name}-{suffix}\n{extra}agents:\n" + "".join(agents))
    return path


def test_a_saved_plan_applies_and_a_stale_one_is_refused(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = write_fleet(tmp_path, suffix, agent_yaml(f"a-{suffix}"))
    saved = tmp_path / "plan.json"
    assert cli(app_server, "plan", "-f", str(fleet), "--out", str(saved)).exit_code == 0

    applied = cli(app_server, "apply", "-f", str(fleet), "--plan", str(saved))
    assert applied.exit_code == 0, applied.output
    assert list(by_name(app_server_client, suffix)) == [f"a-{suffix}"]

    fleet.write_text(fleet.read_text().replace("description: helps", "description: helps more"))
    assert cli(app_server, "plan", "-f", str(fleet), "--out", str(saved)).exit_code == 0
    agent = by_name(app_server_client, suffix)[f"a-{suffix}"]
    app_server_client.update_agent(agent["id"], {"description": "changed by hand"})  # the server moves on
    stale = cli(app_server, "apply", "-f", str(fleet), "--plan", str(saved))
    assert stale.exit_code == 1 and "is not what apply would do now" in stale.output
    assert app_server_client.retrieve_agent(agent["id"])["description"] == "changed by hand"


def test_target_and_scope_apply_only_their_part_of_the_fleet(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = write_fleet(
        tmp_path,
        suffix,
        agent_yaml(f"a-{suffix}", tags="[team-a]"),
        agent_yaml(f"b-{suffix}", tags="[team-b]"),
        agent_yaml(f"c-{suffix}", tags="[team-c]"),
    )
    targeted = cli(app_server, "apply", "-f", str(fleet), "--target", f"agent.a-{suffix}")
    assert targeted.exit_code == 0, targeted.output
    assert sorted(by_name(app_server_client, suffix)) == [f"a-{suffix}"]

    scoped = cli(app_server, "apply", "-f", str(fleet), "--scope", "team-b")
    assert scoped.exit_code == 0, scoped.output
    assert sorted(by_name(app_server_client, suffix)) == [f"a-{suffix}", f"b-{suffix}"]


def test_prune_removes_what_the_file_dropped_but_never_a_protected_agent_or_another_fleets(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    keep, drop, guarded = f"keep-{suffix}", f"drop-{suffix}", f"guarded-{suffix}"
    protected = agent_yaml(guarded, extra="    protect: true\n")
    fleet = write_fleet(tmp_path, suffix, agent_yaml(keep), agent_yaml(drop), protected)
    other = write_fleet(tmp_path, suffix, agent_yaml(f"other-{suffix}"), name="other")
    for path in (fleet, other):
        assert cli(app_server, "apply", "-f", str(path)).exit_code == 0

    fleet.write_text(fleet.read_text().split("  - name: " + drop)[0])  # only `keep` is left
    planned = cli(app_server, "plan", "-f", str(fleet), "--prune")
    assert planned.exit_code == 0 and f"{drop} (DELETE)" in planned.output
    assert re.search(rf"{guarded} .*\n.*protected", planned.output), planned.output
    pruned = cli(app_server, "apply", "-f", str(fleet), "--prune")

    assert pruned.exit_code == 0, pruned.output
    assert sorted(by_name(app_server_client, suffix)) == sorted([keep, guarded, f"other-{suffix}"])


def test_a_moved_agent_keeps_its_id_under_its_new_name(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    old, new = f"old-{suffix}", f"new-{suffix}"
    fleet = write_fleet(tmp_path, suffix, agent_yaml(old))
    assert cli(app_server, "apply", "-f", str(fleet)).exit_code == 0
    made = by_name(app_server_client, suffix)[old]["id"]

    moved = f"moved:\n  - from: agent.{old}\n    to: agent.{new}\n"
    fleet = write_fleet(tmp_path, suffix, agent_yaml(new).replace(f"You are {new}", f"You are {old}"), extra=moved)
    applied = cli(app_server, "apply", "-f", str(fleet))

    assert applied.exit_code == 0, applied.output
    assert {name: agent["id"] for name, agent in by_name(app_server_client, suffix).items()} == {new: made}


def test_detailed_exitcode_json_and_markdown_name_the_app_server(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = write_fleet(tmp_path, suffix, agent_yaml(f"a-{suffix}"))
    server = re.compile(r"Letta App Server 0\.\d+\.\d+ \(local backend, protocol 1\)")

    changes = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert changes.exit_code == 2 and server.search(changes.output)
    document = json.loads(cli(app_server, "plan", "-f", str(fleet), "-o", "json").output)
    assert [(c["address"], c["action"]) for c in document["changes"]] == [(f"agent.a-{suffix}", "create")]
    assert document["server"] == app_server
    markdown = cli(app_server, "plan", "-f", str(fleet), "-o", "markdown").output
    assert f"a-{suffix}" in markdown and server.search(markdown)

    assert cli(app_server, "apply", "-f", str(fleet), "-o", "json").exit_code == 0
    assert cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


def test_an_apply_killed_after_its_first_agent_was_created_converges_without_duplicates(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names = [f"k{index}-{suffix}" for index in range(4)]
    fleet = write_fleet(tmp_path, suffix, *(agent_yaml(name) for name in names))
    environment = {**os.environ, "LETTA_BASE_URL": app_server, "PYTHONUNBUFFERED": "1"}
    killed = subprocess.Popen(
        [LETTAFLEET, "apply", "-f", str(fleet), "--parallelism", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert killed.stdout is not None
    for line in killed.stdout:  # the apply prints each result as it lands: the first agent_create has answered
        if re.fullmatch(r"agent\.k\d-\w+: created", line.strip()):
            break
    killed.kill()
    killed.wait(30)
    assert 1 <= len(by_name(app_server_client, suffix)) < 4

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LETTAFLEET, *args], capture_output=True, text=True, timeout=600, env=environment)

    refused = run("apply", "-f", str(fleet))  # the killed apply's lock is still there, naming it
    assert refused.returncode == 1 and f"pid {killed.pid}" in refused.stderr
    assert run("force-unlock", f"fleet:opt-{suffix}", "--force").returncode == 0
    resumed = run("apply", "-f", str(fleet))

    assert resumed.returncode == 0, resumed.stderr
    every = app_server_client.list_agents()
    assert Counter(
        a["name"] for a in every if a["name"].endswith(suffix) and a["name"] != f"{NAME_PREFIX}fleet:opt-{suffix}"
    ) == Counter(names)
    assert run("plan", "-f", str(fleet), "--detailed-exitcode").returncode == 0
