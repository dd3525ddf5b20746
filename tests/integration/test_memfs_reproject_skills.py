"""lettactl's `apply --reproject-skills`: on hosted Letta (through the stand-in for its git-backed memory, in front
of the real dev server) each skill's SKILL.md is detached and re-added, its block made anew with the same text, then
the agent recompiled; planned each time the flag is given, never otherwise. On the App Server it plans nothing and
says why, and a skill's new text reaches the agent's next turn without it."""

from __future__ import annotations

import json
from pathlib import Path

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.turns import run_turn
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.hosted_git_memory import HostedGitMemoryStandIn
from tests.fakes.llm_server import FakeLLM
from tests.integration.hosted_memfs_fleet import (
    agent_named,
    assert_no_changes,
    hosted,
    names,
    ok,
    run,
    write_fleet,
)
from tests.integration.test_app_server_memfs import applied, memfs_fleet
from tests.integration.test_app_server_plan_apply import app_server, cli, suffix

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "hosted", "names", "suffix"]  # fixtures, shared with the tests they come from

SKILL_TEXT = "Pick urgent, soon or whenever.\n"


def block_ids(client: LettaClient, agent_id: str) -> dict[str, tuple[str, str]]:
    return {b["label"]: (b["id"], b["value"]) for b in client.get(f"/v1/agents/{agent_id}/core-memory/blocks")}


def test_reproject_skills_makes_each_skill_block_anew_with_its_text_and_touches_nothing_else(
    hosted: HostedGitMemoryStandIn, client: LettaClient, names: tuple[str, str], tmp_path: Path
) -> None:
    _, name = names
    fleet = write_fleet(tmp_path, [(name, "memfs")])
    ok(run(hosted, "apply", "-f", str(fleet), "--no-lock"))
    agent_id = str(agent_named(client, name)["id"])
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
