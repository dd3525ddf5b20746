"""`--reproject-skills` on a V1 server, without a server: planned per `mode: memfs` agent only with the flag, naming
the skills; an apply whose push the server never follows fails that change, saying which skill, with every skill
written back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lettafleet.core import Action, ApplyError, get_plugin_manager, load_fleet
from lettafleet.plugins.resources import memfs_skills
from lettafleet.plugins.resources.memfs_skills import SKILL_PROJECTION, SkillProjectionHandler

FLEET = """
agents:
  - name: support
    system_prompt: {value: You help.}
    llm_config: {model: letta/letta-free, context_window: 16000}
    memory:
      mode: memfs
      skills: [{from_dir: skills/triage}]
  - name: plain
    system_prompt: {value: You help.}
    llm_config: {model: letta/letta-free, context_window: 16000}
    memory: {mode: blocks}
"""
SKILL = "---\nname: triage\ndescription: sort\n---\nSort.\n"


class Git:
    """The V1 git memory client as the handler uses it, over a dict; it records every write."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files, self.writes = files, []

    def read(self, agent_id: str) -> dict[str, str]:
        return dict(self.files)

    def write(self, agent_id: str, writes: Mapping[str, str], deletes: Sequence[str], message: str) -> None:
        self.writes.append((dict(writes), list(deletes)))


class StuckServer:
    """A server whose blocks never follow a push: the skill's block stays attached."""

    def get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        return [{"label": "skills/triage", "value": "Sort.\n"}]


def projections(write_fleet: Callable[..., Path], reproject: bool) -> list[Any]:
    path = write_fleet(FLEET, files={"skills/triage/SKILL.md": SKILL})
    fleet = load_fleet(path, get_plugin_manager(), options={"reproject_skills": reproject})
    return list(SkillProjectionHandler().desired(fleet))


def test_the_flag_plans_one_reprojection_per_memfs_agent_and_none_without_it(write_fleet: Callable[..., Path]) -> None:
    (unflagged,) = projections(write_fleet, reproject=False)
    assert unflagged.attributes == {"reprojects": []} and unflagged.source == ()  # no line: no backend's note
    live = replace(unflagged, state={**unflagged.state, "skills": ["skills/triage/SKILL.md"], "held": []})
    assert SkillProjectionHandler().diff(unflagged, live).action is Action.NO_OP
    (projection,) = projections(write_fleet, reproject=True)
    assert projection.address == f"agent.support.{SKILL_PROJECTION}.skills"
    assert projection.attributes == {"reprojects": ["skills/triage/SKILL.md"]}


def test_a_reprojection_stopped_between_its_pushes_is_planned_without_the_flag_naming_the_agents_own_skills(
    write_fleet: Callable[..., Path],
) -> None:
    (desired,) = projections(write_fleet, reproject=False)
    held = ["skills/own/SKILL.md", "skills/triage/SKILL.md"]
    live = replace(desired, state={**desired.state, "skills": [], "held": held})
    change = SkillProjectionHandler().diff(desired, live)
    assert change.action is Action.UPDATE
    assert change.detail == (
        "a reprojection stopped part way (its skills deleted, not yet written back) is finished: write back "
        "skills/own/SKILL.md (the agent's own); skills/triage/SKILL.md by its memory file, then recompile the agent"
    )


def test_the_plan_names_the_skills_the_agent_has_and_a_new_agent_gets_none(write_fleet: Callable[..., Path]) -> None:
    (desired,) = projections(write_fleet, reproject=True)
    handler = SkillProjectionHandler()
    live = replace(desired, attributes={"reprojects": []}, state={**desired.state, "skills": ["skills/own/SKILL.md"]})
    change = handler.diff(desired, live)
    assert change.action is Action.UPDATE
    assert change.detail.startswith("detach and re-add skills/own/SKILL.md, skills/triage/SKILL.md (two pushes")
    assert handler.diff(desired, None).action is Action.NO_OP


def test_a_detach_the_server_never_follows_fails_the_change_with_every_skill_written_back(
    write_fleet: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memfs_skills, "SYNC_TIMEOUT", 0.3)
    git = Git({"skills/triage/SKILL.md": SKILL, "system/persona.md": "---\ndescription: me\n---\nMe.\n"})
    handler = SkillProjectionHandler(git_memory=lambda connection: git)  # type: ignore[arg-type,return-value]
    (desired,) = projections(write_fleet, reproject=True)
    live = replace(desired, attributes={"reprojects": []}, state={**desired.state, "agent_id": "agent-1", "skills": []})
    change = handler.diff(desired, live)

    class Session:
        client = StuckServer()

        def id_of(self, address: str) -> str:
            return "agent-1"

    with pytest.raises(ApplyError, match=r"did not follow the push for skills/triage; the skills' files are in its"):
        handler.apply(change, Session())  # type: ignore[arg-type]
    assert git.writes == [  # each skill held aside in the commit that deletes it, so that a kill loses none
        ({"skills/triage/SKILL.md.reprojecting": SKILL}, ["skills/triage/SKILL.md"]),
        ({"skills/triage/SKILL.md": SKILL}, ["skills/triage/SKILL.md.reprojecting"]),
    ]
