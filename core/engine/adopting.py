"""Adoption: agents that lettafleet did not create, marked as lettafleet's the way it marks what it creates, so
that plans treat them (and what they hold) as its own. Every handler says which writes mark its kinds
(`ResourceHandler.adopt`); this module gathers them, and makes them unless it is a dry run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lettafleet.core.engine.live import LiveReader
    from lettafleet.core.engine.plugin_manager import FleetPlugins
    from lettafleet.core.letta.connection import Connection


@dataclass(frozen=True)
class Adoption:
    """One step of adopting an agent: `body` PATCHed to `path` marks `what` as lettafleet's (or, on a backend that
    speaks no REST, `write` called with the command's connection does). Without either, it is a note: `what` is
    left as it is, and `why` says why."""

    what: str
    path: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""
    write: Callable[[Connection], object] | None = None

    @property
    def marks(self) -> bool:
        return self.path is not None or self.write is not None

    def line(self) -> str:
        """How the step is shown to a user."""
        return f"mark {self.what} as lettafleet's" if self.marks else f"leave {self.what} alone: {self.why}"


def adoptions(manager: FleetPlugins, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> list[Adoption]:
    """Every handler's steps for these live agents (rows of the `AGENTS` read), in handler order."""
    return [step for handler, _kinds in manager.handlers() for agent in agents for step in handler.adopt(reader, agent)]


def mark_adopted(client: Connection, steps: Sequence[Adoption]) -> None:
    """Make the marking writes, one by one (a failure stops here; marking again later is harmless)."""
    for step in steps:
        if step.write is not None:
            step.write(client)
        elif step.path is not None:
            client.patch(step.path, json=dict(step.body))
