"""lettactl's `apply --reproject-skills`: on hosted Letta (through the stand-in for its git-backed memory, in front
of the real dev server) each skill's SKILL.md is detached and re-added, its block made anew with the same text, then
the agent recompiled; planned each time the flag is given, never otherwise. On the App Server it plans nothing and
says why, and a skill's new text reaches the agent's next turn without it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.turns import run_turn
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import Hold
from tests.fakes.hosted_git_memory import HostedGitMemoryStandIn
from tests.fakes.llm_server import FakeLLM
from tests.integration.hosted_memfs_fleet import (
    agent_named,
    assert_no_changes,
    blocks_of,
    hosted,
    killed_at,
    names,
    ok,
    push_as_the_agent,
    run,
    write_fleet,
)
from tests.integration.test_app_server_memfs import applied, memfs_fleet
from tests.integration.test_app_server_plan_apply import app_server, cli, suffix

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "hosted", "names", "suffix"]  # fixtures, shared with the tests they come from

SKILL_TEXT = "Pick urgent, soon or whenever.\n"
OWN_SKILL = "---\nname: notes\ndescription: keep notes\n---\nWrite down what the customer asked.\n"


def wait_for_block(client: LettaClient, agent_id: str, label: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while label not in blocks_of(client, agent_id):
        assert time.monotonic() < deadline, f"no block {label} after {seconds:g} s"
        time.sleep(0.2)


def applied_memfs_agent(
    hosted: HostedGitMemoryStandIn, client: LettaClient, name: str, tmp_path: Path
) -> tuple[Path, str]:
    """The fleet of one agent `name` with git-backed memory (a skill declared), applied; and the agent's id."""
    fleet = write_fleet(tmp_path, [(name, "memfs")])
    ok(run(hosted, "apply", "-f", str(fleet), "--no-lock"))
    return fleet, str(agent_named(client, name)["id"])


def block_ids(client: LettaClient, agent_id: str) -> dict[str, tuple[str, str]]:
    return {b["label"]: (b["id"], b["value"]) for b in client.get(f"/v1/agents/{agent_id}/core-memory/blocks")}


def test_reproject_skills_makes_each_skill_block_anew_with_its_text_and_touches_nothing_else(
    hosted: HostedGitMemoryStandIn, client: LettaClient, names: tuple[str, str], tmp_path: Path
) -> None:
    fleet, agent_id = applied_memfs_agent(hosted, client, names[1], tmp_path)
    before = block_ids(client, agent_id)
    assert before["skills/triage"][1] == SKILL_TEXT

    planned = ok(run(hosted, "plan", "-f", str(fleet), "--reproject-skills"))
    assert "~ skill projection skills: detach and re-add skills/triage/SKILL.md (two pushes" in planned
    assert_no_changes(hosted, fleet)  # without the flag: nothing to do

    pushes = hosted.seen["push"]
    ok(run(hosted, "apply", "-f", str(fleet), "--reproject-skills", "--no-lock"))
    assert hosted.seen["push"] == pushes + 2  # the skills deleted, then written back
    after = block_ids(client, agent_id)
    assert after["skills/triage"][0] != before["skills/triage"][0]  # detached, and made anew
    assert after["skills/triage"][1] == SKILL_TEXT
    assert {label: ids for label, ids in after.items() if label != "skills/triage"} == {
        label: ids for label, ids in before.items() if label != "skills/triage"
    }
    files = hosted.files_at_head(agent_id)
    assert files["skills/triage/SKILL.md"].endswith(SKILL_TEXT) and "skills/triage/triage.sh" in files
    assert_no_changes(hosted, fleet)


def test_reproject_skills_killed_between_its_pushes_is_planned_and_finished_by_the_next_apply_keeping_the_agents_own(
    hosted: HostedGitMemoryStandIn, client: LettaClient, names: tuple[str, str], tmp_path: Path
) -> None:
    fleet, agent_id = applied_memfs_agent(hosted, client, names[1], tmp_path)
    push_as_the_agent(hosted, agent_id, "skills/notes/SKILL.md", OWN_SKILL, tmp_path / "agents-clone")
    wait_for_block(client, agent_id, "skills/notes")
    assert_no_changes(hosted, fleet)  # the agent's own skill is its business

    # Killed once the skills are deleted (the first push) and before they are written back (the second).
    push = rf"^/v1/git/{agent_id}/state\.git/git-receive-pack$"
    killed_at(hosted, Hold("POST", push, nth=2, then="drop"), fleet, "--reproject-skills")
    files = hosted.files_at_head(agent_id)
    assert "skills/triage/SKILL.md" not in files and "skills/notes/SKILL.md" not in files

    planned = ok(run(hosted, "plan", "-f", str(fleet)))  # without the flag: what is owed is planned all the same
    assert '+ memory file "skills/triage/SKILL.md"' in planned, planned
    assert "write back skills/notes/SKILL.md (the agent's own)" in planned, planned

    ok(run(hosted, "apply", "-f", str(fleet), "--no-lock"))

    files = hosted.files_at_head(agent_id)
    assert files["skills/triage/SKILL.md"].endswith(SKILL_TEXT) and files["skills/notes/SKILL.md"] == OWN_SKILL
    assert not [path for path in files if path.startswith("skills/") and not path.endswith(("SKILL.md", ".sh"))]
    blocks = blocks_of(client, agent_id)
    assert blocks["skills/triage"] == SKILL_TEXT
    assert blocks["skills/notes"] == "Write down what the customer asked.\n"
    assert_no_changes(hosted, fleet)


def test_on_the_app_server_reproject_skills_plans_nothing_says_why_and_a_skills_new_text_reaches_the_next_turn(
    app_server: str, app_server_client: AppServerClient, fake_llm: FakeLLM, suffix: str, tmp_path: Path
) -> None:
    name = f"memfs-reproject-{suffix}"
    fleet = memfs_fleet(tmp_path, name, "v2")
    fleet.write_text(fleet.read_text().replace("context_window: 16000", "context_window: 64000"))
    applied(app_server, fleet)

    reprojected = cli(app_server, "apply", "-f", str(fleet), "--no-lock", "--reproject-skills")
    assert reprojected.exit_code == 0, reprojected.output
    assert "No changes." in reprojected.output
    assert (
        "fleet.yaml:13:7: note: skill projection has no effect on the Letta App Server backend: Letta Code reads "
        "each agent's skills/*/SKILL.md from its memory at every turn"
    ) in reprojected.stderr

    # Why there is nothing to do: a skill's new text, written by a plain apply, is in the agent's very next turn.
    skill = tmp_path / "skills" / "triage" / "SKILL.md"
    skill.write_text(skill.read_text().replace("sort tickets", f"sort tickets by urgency {suffix}"))
    applied(app_server, fleet)
    (agent,) = app_server_client.agents_named(name)
    # The server's one provider is shared with whoever else tests on it: ask it to use this session's LLM now.
    app_server_client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
    asked = len(fake_llm.chat_requests())
    list(run_turn(app_server_client, str(agent["id"]), "default", f"hello {suffix}", approve_tools=False))
    requests = [json.dumps(request.body) for request in fake_llm.chat_requests()[asked:]]
    assert any(f"sort tickets by urgency {suffix}" in body for body in requests), requests[:1]
