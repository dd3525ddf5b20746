"""lettactl's `apply --reproject-skills` (#408) on a V1 server (hosted Letta): for each agent whose `memory:` is
`mode: memfs`, every `skills/<name>/SKILL.md` of its git-backed memory deleted (one push: the server's sync
detaches the skills' blocks) and written back as it was (one push: the sync makes fresh blocks), each push waited
for until the agent's blocks show it, then the agent recompiled, so that a running agent renders its skills'
current text. Hosted Letta re-renders `system/` files on a plain push, not a skill's (lettactl's README).

A reprojection is an action, not a thing the server keeps: it is planned each time the flag is given (`~ skill
projection skills`, naming the skills), and nothing is undone when it is not. The first push holds each skill aside
(`skills/<name>/SKILL.md.reprojecting`, a file hosted makes no block of) in the same commit that deletes it, so an
apply killed between the pushes loses no skill, the agent's own included: the next plan finishes it, flag or not.
Backends with nothing to re-project say so (`Capabilities.no_effect_kinds`): the App Server reads skills from the
agent's memory at every turn."""

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
from lettafleet.plugins.resources import memfs_v1
from lettafleet.plugins.resources.agents import agent_address, declared_agents, live_agents
from lettafleet.plugins.resources.memfs import MEMORY_FILE, mode_address
from lettafleet.plugins.resources.memfs_expansion import MEMFS, SKILL_FILE, declared_files
from lettafleet.plugins.resources.memfs_v1 import GIT_MEMORY_MODULE, GitMemoryClient, git_memory_on

SKILL_PROJECTION = "skill_projection"
OPTION = "reproject_skills"  # the flag's value in `Fleet.options`
NAME = "skills"  # the one reprojection under an agent
SYNC_TIMEOUT = 60.0  # seconds the server may take to detach or make the skills' blocks after a push
REPOSITORY_READ = "memfs v1"  # the memory files handler's read of an agent's repository, shared: one clone a plan
HELD_ASIDE = ".reprojecting"  # `skills/<name>/SKILL.md` + this: a skill between a reprojection's two pushes


def is_skill_file(path: str) -> bool:
    """`skills/<name>/SKILL.md`: the file hosted Letta keeps as the block `skills/<name>`."""
    parts = PurePosixPath(path).parts
    return len(parts) == 3 and parts[0] == NAME and parts[2] == SKILL_FILE


def skill_label(path: str) -> str:
    return str(PurePosixPath(path).parent)


def held_aside(files: Mapping[str, str]) -> dict[str, str]:
    """The skills a reprojection deleted and has not written back yet: skill file -> its text, from the copies it
    held aside."""
    return {
        path.removesuffix(HELD_ASIDE): text
        for path, text in files.items()
        if path.endswith(HELD_ASIDE) and is_skill_file(path.removesuffix(HELD_ASIDE))
    }


class SkillProjectionHandler(ResourceHandler):
    """`--reproject-skills` on a V1 server with git-backed memory, through the V1 git memory client."""

    def __init__(self, git_memory: Callable[[Connection], GitMemoryClient] | None = None) -> None:
        self.git_memory = git_memory  # None: the V1 backend's own, found when asked

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        """One reprojection per agent whose section says `mode: memfs`, after its files are written: with the flag,
        of its skills; without it, of those a reprojection stopped part way left held aside (if any). Only the flag
        gives it a line (where a backend with nothing to re-project notes it)."""
        flagged = bool(fleet.options.get(OPTION))
        for agent in declared_agents(fleet):
            if (agent.data.get("memory") or {}).get("mode") != MEMFS:
                continue
            files = declared_files(fleet, agent)
            declared = sorted(f.path for f in files if is_skill_file(f.path))
            yield Resource(
                address_of(SKILL_PROJECTION, NAME, agent.address),
                SKILL_PROJECTION,
                NAME,
                {"reprojects": declared if flagged else []},
                parent=agent.address,
                depends_on=(
                    mode_address(agent.address),
                    *(address_of(MEMORY_FILE, f.path, agent.address) for f in files),
                ),
                source=(*agent.at, "memory", "mode") if flagged else (),
                state={"agent": agent.name, "flagged": flagged, "declared": declared},
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
            state = {**projection.state, "agent_id": agent_id, "skills": skills, "held": sorted(held_aside(found))}
            yield replace(projection, attributes={"reprojects": []}, state=state)

    def _repository(self, reader: LiveReader, agent_id: str) -> dict[str, str]:
        found: dict[str, str] = reader.derived(
            (REPOSITORY_READ, agent_id), lambda: self._git(reader.client).read(agent_id)
        )
        return found

    def _git(self, connection: Connection) -> GitMemoryClient:
        return (self.git_memory or memfs_v1.installed_git_memory)(connection)  # the memory files handler's own

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """A reprojection where the flag is given; none for a new agent (its skills are fresh), and none undone when
        the flag is not given (the record keeps the entry of the last one: there is nothing to remove)."""
        if desired is None or live is None:
            model = desired or live
            assert model is not None
            return compare(model, model)
        held = live.state.get("held", [])
        if not desired.state.get("flagged"):
            return _finish_change(desired, live, held) if held else compare(desired, desired)
        skills = sorted({*live.state["skills"], *held, *desired.attributes["reprojects"]})
        if not skills:
            return replace(compare(desired, desired), detail="no skill to re-project")
        wanted = replace(desired, attributes={"reprojects": skills})
        said = (
            f"detach and re-add {', '.join(skills)} (two pushes, each waited for until the agent's blocks show it), "
            "then recompile the agent"
        )
        return replace(compare(wanted, live), detail=(_STOPPED if held else "") + said)

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        """Re-project the agent's skills (with the flag), or write back those a reprojection stopped part way held
        aside (a skill the fleet declares is its memory file's, written before); then recompile the agent."""
        agent_id = str(change.state.get("agent_id") or session.id_of(str(change.parent)))
        git = self._git(session.client)
        files = git.read(agent_id)
        held = held_aside(files)
        skills = {path: text for path, text in files.items() if is_skill_file(path)}
        if change.state.get("flagged") and (skills or held):
            _reproject(git, session.client, agent_id, {**held, **skills}, held)
        elif held:
            _write_back(git, session.client, agent_id, {p: t for p, t in held.items() if p not in skills}, held)
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


_STOPPED = "a reprojection stopped part way (its skills deleted, not yet written back) is finished: "


def _finish_change(desired: Resource, live: Resource, held: Sequence[str]) -> Change:
    """The reprojection a stopped one left owed: its skills written back, the fleet's by their memory files."""
    declared = set(desired.state.get("declared") or ())
    own = [path for path in held if path not in declared]
    said = _STOPPED + (f"write back {', '.join(f'{p} (the agent' + chr(39) + 's own)' for p in own)}" if own else "")
    theirs = [path for path in held if path in declared]
    said += ("; " if own and theirs else "") + (f"{', '.join(theirs)} by its memory file" if theirs else "")
    wanted = replace(desired, attributes={"reprojects": list(held)})
    return replace(compare(wanted, live), detail=said + ", then recompile the agent")


def _reproject(
    git: GitMemoryClient, client: Connection, agent_id: str, skills: Mapping[str, str], held: Mapping[str, str]
) -> None:
    """Delete the skills' files, each held aside in the same commit, wait until their blocks are detached, write
    them back as they were and wait until fresh blocks hold them. They are written back even when the detach was
    not seen, and a kill between the pushes leaves them held aside for the next apply: no skill is lost."""
    names = ", ".join(skill_label(path) for path in sorted(skills))
    aside = {path + HELD_ASIDE: text for path, text in skills.items() if path not in held}
    git.write(agent_id, aside, sorted(skills), f"lettafleet: reproject skills: detach {names}")
    try:
        _wait_for_blocks(client, agent_id, {skill_label(path): None for path in skills})
    finally:
        _write_back(git, client, agent_id, skills, skills)


def _write_back(
    git: GitMemoryClient, client: Connection, agent_id: str, skills: Mapping[str, str], held: Iterable[str]
) -> None:
    """Write the skills back and drop the copies of `held` held aside (one commit); wait until blocks hold them."""
    names = ", ".join(skill_label(path) for path in sorted(skills)) or "none (the fleet's written already)"
    deletes = sorted(path + HELD_ASIDE for path in held)
    git.write(agent_id, skills, deletes, f"lettafleet: reproject skills: re-add {names}")
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
