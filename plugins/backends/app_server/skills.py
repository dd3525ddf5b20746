"""`--reproject-skills` on the App Server: nothing to re-project. Letta Code finds an agent's skills in its memory
folder (`~/.letta/agents/<id>/memory/skills/*/SKILL.md`) each time it builds a turn (a watcher drops its cache when
a file there changes) and sends them with the turn; no skill is a block to detach and re-add, and a written
`SKILL.md` is what the next turn sees. The flag is accepted, with a note, so that a lettactl pipeline still runs."""

from __future__ import annotations

from collections.abc import Iterable

from lettafleet.core import Fleet, NoEffect, Resource, ResourceHandler

NOTHING_TO_REPROJECT = NoEffect(
    "Letta Code reads each agent's skills/*/SKILL.md from its memory at every turn, so a skill's new text is what "
    "the next turn sees; no skill is a block to detach and re-add",
    "the flag is accepted and does nothing here",
)


class NoSkillProjection(ResourceHandler):
    """The reprojection kind on the App Server: it plans nothing (the backend's note says why)."""

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        return ()
