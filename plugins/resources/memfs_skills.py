"""lettactl's `apply --reproject-skills` (#408) on a V1 server (hosted Letta): for each agent whose `memory:` is
`mode: memfs`, every `skills/<name>/SKILL.md` of its git-backed memory deleted (one push: the server's sync
detaches the skills' blocks) and written back as it was (one push: the sync makes fresh blocks), each push waited
for until the agent's blocks show it, then the agent recompiled, so that a running agent renders its skills'
current text. Hosted Letta re-renders `system/` files on a plain push, not a skill's (lettactl's README).

A reprojection is an action, not a thing the server keeps: it is planned each time the flag is given (`~ skill
projection skills`, naming the skills), and nothing is undone when it is not. Backends with nothing to re-project say so
(`Capabilities.no_effect_kinds`): the App Server reads skills from the agent's memory at every turn."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

import rich_click as click

from lettafleet.core import (
    Action,
    Ambiguity,
    ApplyError,
    ApplySession,
    Change,
    Connection,
    Fleet,
    LiveReader,
    Plan,
    PlanOption,
    Resource,
    ResourceHandler,
    ResourceKind,
    address_of,
    compare,
    hookimpl,
)
from lettafleet.plugins.backends.letta_v1.conversations import LEGACY_HISTORY, recompile_conversation
from lettafleet.plugins.resources.agents import agent_address, declared_agents, live_agents
from lettafleet.plugins.resources.memfs import MEMORY_FILE, mode_address
from lettafleet.plugins.resources.memfs_expansion import MEMFS, SKILL_FILE, declared_files
from lettafleet.plugins.resources.memfs_v1 import (
    GIT_MEMORY_MODULE,
    GitMemoryClient,
    git_memory_on,
    installed_git_memory,
)

SKILL_PROJECTION = "skill_projection"
OPTION = "reproject_skills"  # the flag's value in `Fleet.options`
NAME = "skills"  # the one reprojection under an agent
SYNC_TIMEOUT = 60.0  # seconds the server may take to detach or make the skills' blocks after a push
REPOSITORY_READ = "memfs v1"  # the memory files handler's read of an agent's repository, shared: one clone a plan


def is_skill_file(path: str) -> bool:
    """`skills/<name>/SKILL.md`: the file hosted Letta keeps as the block `skills/<name>`."""
    parts = PurePosixPath(path).parts
    return len(parts) == 3 and parts[0] == NAME and parts[2] == SKILL_FILE


def skill_label(path: str) -> str:
    return str(PurePosixPath(path).parent)


class SkillProjectionHandler(ResourceHandler):
    """`--reproject-skills` on a V1 server with git-backed memory, through the V1 git memory client."""

    def __init__(self, git_memory: Callable[[Connection], GitMemoryClient] | None = None) -> None:
        self.git_memory = git_memory  # None: the V1 backend's own, found when asked

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        """With the flag, one reprojection per agent whose section says `mode: memfs`, after its files are written."""
        if not fleet.options.get(OPTION):
            return
        for agent in declared_agents(fleet):
            if (agent.data.get("memory") or {}).get("mode") != MEMFS:
                continue
            files = declared_files(fleet, agent)
            yield Resource(
                address_of(SKILL_PROJECTION, NAME, agent.address),
                SKILL_PROJECTION,
                NAME,
                {"reprojects": sorted(f.path for f in files if is_skill_file(f.path))},
                parent=agent.address,
                depends_on=(
                    mode_address(agent.address),
                    *(address_of(MEMORY_FILE, f.path, agent.address) for f in files),
                ),
                source=(*agent.at, "memory", "mode"),
                state={"agent": agent.name},
            )

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        """For each agent there already, the skills its repository holds now (none while its memory is blocks): what
        the apply re-projects, with the skills this apply writes. A new agent's skills are made fresh."""
        agents = {agent_address(name): agent for name, agent in live_agents(reader).items()}
        for projection in desired:
            agent = agents.get(str(projection.parent))
            if agent is None:
                continue
            agent_id = str(agent["id"])
            found = self._repository(reader, agent_id) if git_memory_on(agent) else {}
            skills = sorted(path for path in found if is_skill_file(path))
            state = {**projection.state, "agent_id": agent_id}
            yield replace(projection, attributes={"reprojects": []}, state={**state, "skills": skills})

    def _repository(self, reader: LiveReader, agent_id: str) -> dict[str, str]:
        found: dict[str, str] = reader.derived(
            (REPOSITORY_READ, agent_id), lambda: self._git(reader.client).read(agent_id)
        )
        return found

    def _git(self, connection: Connection) -> GitMemoryClient:
        return (self.git_memory or installed_git_memory)(connection)

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """A reprojection where the flag is given; none for a new agent (its skills are fresh), and none undone when
        the flag is not given (the record keeps the entry of the last one: there is nothing to remove)."""
        if desired is None or live is None:
            model = desired or live
            assert model is not None
            return compare(model, model)
        skills = sorted({*live.state["skills"], *desired.attributes["reprojects"]})
        if not skills:
            return replace(compare(desired, desired), detail="no skill to re-project")
        wanted = replace(desired, attributes={"reprojects": skills})
        said = (
            f"detach and re-add {', '.join(skills)} (two pushes, each waited for until the agent's blocks show it), "
            "then recompile the agent"
        )
        return replace(compare(wanted, live), detail=said)

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        agent_id = str(change.state.get("agent_id") or session.id_of(str(change.parent)))
        git = self._git(session.client)
        skills = {path: text for path, text in git.read(agent_id).items() if is_skill_file(path)}
        if skills:
            _reproject(git, session.client, agent_id, skills)
        recompiled = recompile_conversation(session.client, agent_id, {"id": LEGACY_HISTORY})
        if recompiled.error:
            raise ApplyError(
                f"{change.address}: the skills were re-projected, but the agent's recompile failed: "
                f"{recompiled.error}. Run the apply with --reproject-skills again"
            )
        return None

    def recompiles(self, change: Change, plan: Plan) -> Iterable[str]:
        """Its conversations see the fresh skill blocks only once recompiled (`--skip-recompile` leaves them)."""
        return [str(change.parent)] if change.action is Action.UPDATE and change.parent else []


def _reproject(git: GitMemoryClient, client: Connection, agent_id: str, skills: Mapping[str, str]) -> None:
    """Delete the skills' files, wait until their blocks are detached, write them back as they were and wait until
    fresh blocks hold them. They are written back even when the detach was not seen: no skill is left deleted."""
    names = ", ".join(skill_label(path) for path in sorted(skills))
    git.write(agent_id, {}, sorted(skills), f"lettafleet: reproject skills: detach {names}")
    try:
        _wait_for_blocks(client, agent_id, {skill_label(path): None for path in skills})
    finally:
        git.write(agent_id, skills, [], f"lettafleet: reproject skills: re-add {names}")
    _wait_for_blocks(client, agent_id, {skill_label(path): text for path, text in skills.items()})


def _wait_for_blocks(client: Connection, agent_id: str, expected: Mapping[str, str | None]) -> None:
    """Return once each block label in `expected` is gone (None) or attached holding the file's text (its value,
    as the server reads a file: after the front matter), asking again until SYNC_TIMEOUT; then say which is not."""
    # Imported when an apply needs it: the client it lives beside loads an HTTP library validate must not load.
    memory_file_value: Callable[[str], str] = importlib.import_module(GIT_MEMORY_MODULE).memory_file_value
    deadline, pause = time.monotonic() + SYNC_TIMEOUT, 0.2
    while True:
        blocks = {b.get("label"): b.get("value") for b in client.get(f"/v1/agents/{agent_id}/core-memory/blocks")}
        behind = [
            label
            for label, text in sorted(expected.items())
            if (label in blocks if text is None else blocks.get(label) != memory_file_value(text))
        ]
        if not behind:
            return
        if time.monotonic() >= deadline:
            raise ApplyError(
                f"agent {agent_id}: within {SYNC_TIMEOUT:g} s the server's blocks did not follow the push for "
                f"{', '.join(behind)}; the skills' files are in its repository as they were. Run the apply with "
                "--reproject-skills again once the server has caught up"
            )
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)


@hookimpl
def lettafleet_plan_options() -> Iterable[PlanOption]:
    option = click.Option(
        ["--reproject-skills", OPTION],
        is_flag=True,
        help="lettactl's flag, for agents whose memory: says mode: memfs: delete and re-add each skills/*/SKILL.md "
        "of their git-backed memory (two pushes, each waited for), then recompile the agent, so that hosted Letta "
        "renders the skills' current text. Planned each time it is given. Has no effect on the App Server.",
    )
    return [PlanOption(option)]


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [
        ResourceKind(
            SKILL_PROJECTION,
            "skill projections",
            "the re-projection of an agent's skills (`--reproject-skills`)",
            handler=SkillProjectionHandler(),
        )
    ]
