"""plan and apply options on the real dev App Server, as on V1: saved plans, `--target`, `--scope`, `--prune` with
`protect: true`, `fleet:` names, `moved:`, `--detailed-exitcode`, JSON and Markdown, and a killed apply."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lettafleet.core.engine.locking import find_lock
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.fleet_connection import AppServerConnection
from lettafleet.plugins.backends.app_server.locks import LOCK_TAG, NAME_PREFIX, AppServerLocks
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


def locks_of(url: str) -> AppServerLocks:
    return AppServerLocks(AppServerConnection(AppServerClient(url)))


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


class Applying:
    """`lettafleet apply` of a fleet file as a process against the App Server, read line by line."""

    def __init__(self, url: str, fleet: Path) -> None:
        self.environment = {**os.environ, "LETTA_BASE_URL": url, "PYTHONUNBUFFERED": "1"}
        self.fleet = fleet
        self.process = subprocess.Popen(
            [LETTAFLEET, "apply", "-f", str(fleet), "--parallelism", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment,
        )

    def until_first_agent_created(self) -> None:
        """Read until the first `agent.NAME: created`: the first agent_create has answered."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if re.fullmatch(r"agent\.k\d-\w+: created", line.strip()):
                return
        raise AssertionError("the apply ended before it created an agent")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LETTAFLEET, *args], capture_output=True, text=True, timeout=600, env=self.environment)

    def converges(self, client: AppServerClient, names: list[str]) -> None:
        """The next apply makes what is missing, each agent once, and a plan after it has nothing to do."""
        resumed = self.run("apply", "-f", str(self.fleet))
        assert resumed.returncode == 0, resumed.stderr
        assert agents_made(client, names) == Counter(names)
        assert self.run("plan", "-f", str(self.fleet), "--detailed-exitcode").returncode == 0


def four_agents_applying(url: str, suffix: str, tmp_path: Path) -> tuple[list[str], Applying]:
    """An apply of four agents, one at a time, read up to its first agent created."""
    names = [f"k{index}-{suffix}" for index in range(4)]
    applying = Applying(url, write_fleet(tmp_path, suffix, *(agent_yaml(name) for name in names)))
    applying.until_first_agent_created()
    return names, applying


def agents_made(client: AppServerClient, names: list[str]) -> Counter[str]:
    return Counter(str(agent["name"]) for agent in client.list_agents() if agent["name"] in names)


def test_an_apply_killed_after_its_first_agent_was_created_converges_without_duplicates(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names, applying = four_agents_applying(app_server, suffix, tmp_path)
    applying.process.kill()
    applying.process.wait(30)
    assert 1 <= sum(agents_made(app_server_client, names).values()) < 4

    refused = applying.run("apply", "-f", str(applying.fleet))  # the killed apply's lock is still there
    assert refused.returncode == 1 and f"pid {applying.process.pid}" in refused.stderr
    assert applying.run("force-unlock", f"fleet:opt-{suffix}", "--force").returncode == 0
    applying.converges(app_server_client, names)


def test_ctrl_c_after_the_first_agent_was_created_stops_releases_the_lock_and_the_next_apply_converges(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names, applying = four_agents_applying(app_server, suffix, tmp_path)
    applying.process.send_signal(signal.SIGINT)
    code = applying.process.wait(120)
    out, err = applying.process.communicate()

    assert code == 130, err
    assert "Apply interrupted:" in out and "Run `lettafleet apply` again to finish" in out
    assert "Traceback" not in err
    assert find_lock(locks_of(app_server), f"fleet:opt-{suffix}") is None  # released on the way out
    applying.converges(app_server_client, names)
