"""Backends: what a Letta server speaks, picked by the scheme of its URL from the backends plugins register, and
what each can hold of a fleet (its capability table), checked at the fleet file's lines before any connection.

Core never asks which backend it talks to; it asks the table whether the backend can hold a kind or a key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from lettafleet.core.engine.diagnostics import Path
from lettafleet.core.engine.model import Resource
from lettafleet.core.letta.connection import Connection
from lettafleet.core.letta.pacing import DEFAULT_PATIENCE

if TYPE_CHECKING:
    from lettafleet.core.engine.handlers import ResourceHandler
    from lettafleet.core.engine.live import PlanReads
    from lettafleet.core.engine.locking import LockStore


class BackendError(Exception):
    """No backend for a server's URL, or a backend that cannot do what a command asks (yet). The message says
    what to do."""


@dataclass(frozen=True)
class ServerSettings:
    """How to reach a server, as the command line gave it; a backend's `connect` turns it into its client."""

    base_url: str
    allow_insecure_http: bool = False
    project: str | None = None
    project_id: str | None = None
    rate_limit_patience: float = DEFAULT_PATIENCE


@dataclass(frozen=True)
class Lacks:
    """Something of a fleet a backend has no counterpart for: refused at its line before anything is written.
    `when_set`: only resources whose attribute of that name is set (tools defined from source, not tools named)."""

    reason: str
    what_to_do: str
    when_set: str | None = None

    def refuses(self, resource: Resource) -> bool:
        return self.when_set is None or resource.attributes.get(self.when_set) is not None


@dataclass(frozen=True)
class NoEffect:
    """A key a backend accepts and ignores, so that a file written for another still applies: a note at its line."""

    note: str
    hint: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What a backend holds of a fleet. Everything not listed is supported. `lacks_kinds`: by resource kind (the
    kinds' plugins name them); `lacks_keys` and `no_effect_keys`: by key path, dotted as in the file, through lists
    (`agents.embedding`, `agents.tools.source_code`). `no_effect_kinds`: resources of a kind the backend accepts and
    has nothing to do for (a note at each one's line; its handler there plans none)."""

    lacks_kinds: Mapping[str, Lacks] = field(default_factory=dict)
    lacks_keys: Mapping[str, Lacks] = field(default_factory=dict)
    no_effect_keys: Mapping[str, NoEffect] = field(default_factory=dict)
    no_effect_kinds: Mapping[str, NoEffect] = field(default_factory=dict)

    @property
    def holds_everything(self) -> bool:
        """Whether nothing a fleet declares could be refused or noted: then no check need come first."""
        return not (self.lacks_kinds or self.lacks_keys or self.no_effect_keys or self.no_effect_kinds)


@dataclass(frozen=True)
class ConversationRecompile:
    """The recompile of one history: done, failed (`error`, the server's answer) or left as it was (`skipped`)."""

    conversation_id: str
    error: str = ""
    skipped: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def done(self) -> bool:
        return not self.error and not self.skipped


class Recompiler(Protocol):
    """How a backend rebuilds the running conversations of an agent whose prompt or memory an apply changed (a
    conversation keeps what it started with): one read of every conversation, each carrying its `agent_id`, and
    the recompile of one agent's (`conversations` None: the recompile reads them itself)."""

    def every_conversation(self, connection: Connection) -> list[dict[str, Any]]: ...

    def recompile(
        self, connection: Connection, agent_id: str, conversations: Sequence[Mapping[str, Any]] | None
    ) -> list[ConversationRecompile]: ...


@dataclass(frozen=True)
class Backend:
    """One way of talking to Letta servers, registered by a plugin (`lettafleet_backends`): its name as messages
    give it, the URL schemes it claims, how to open its client from the settings, its capability table, how it
    recompiles conversations after an apply, where it keeps the apply lock, how plans read its server, and the
    handlers it brings. `connect` may raise `BackendError` for a backend whose commands are not there yet.

    `handlers`: None, the backend is planned with the handlers the kinds' plugins register (`lettafleet_kinds`:
    V1 REST's); a mapping, with its own handler for each kind it names and no other: a kind it does not name is
    refused at its line, like a kind it lacks. Core routes each kind to the backend's handler, so no handler
    ever sees another backend's client."""

    name: str
    schemes: tuple[str, ...]
    connect: Callable[[ServerSettings], Connection]
    capabilities: Capabilities = field(default_factory=Capabilities)
    recompiler: Recompiler | None = None  # None: its conversations need no recompile
    locks: Callable[[Connection], LockStore] | None = None  # where it keeps apply locks; None: it cannot
    plan_reads: PlanReads | None = None  # how plans read its server at scale; None: each list as the client gives it
    handlers: Mapping[str, ResourceHandler] | None = None

    def __str__(self) -> str:
        return self.name

    def lacks(self, kind: str) -> Lacks | None:
        """Why this backend cannot hold resources of `kind` (its table's reason, or no handler of its own for
        it), or None when it can."""
        lacking = self.capabilities.lacks_kinds.get(kind)
        if lacking is None and self.handlers is not None and kind not in self.handlers:
            return Lacks(
                f"has no handler for {kind} resources in lettafleet yet",
                "remove the entry, or plan it on a server another backend speaks",
            )
        return lacking

    @property
    def holds_everything(self) -> bool:
        """Whether nothing a fleet declares could be refused or noted: then no check need come first."""
        return self.handlers is None and self.capabilities.holds_everything


def backend_for(backends: Mapping[str, Backend], base_url: str) -> Backend:
    """The backend that claims the scheme of `base_url`; an unknown scheme says which ones there are."""
    scheme = urlsplit(base_url).scheme.lower() if "://" in base_url else ""
    backend = backends.get(scheme)
    if backend is None:
        known = ", ".join(f"{name}://" for name in sorted(backends)) or "none: install a backend plugin"
        given = f"scheme {scheme}://" if scheme else "no scheme"
        raise BackendError(
            f"no backend speaks the server URL's {given} (known: {known}): give --base-url (or LETTA_BASE_URL) "
            "as such a URL, e.g. http://localhost:8283"
        )
    return backend


def key_paths(data: Any, dotted: str) -> Iterator[Path]:
    """The paths in `data` where the dotted key path is written, walking through lists (`agents.embedding` gives
    `("agents", 3, "embedding")` for the fourth agent that has one)."""
    yield from _walk(data, tuple(dotted.split(".")), ())


def _walk(data: Any, keys: tuple[str, ...], at: Path) -> Iterator[Path]:
    if isinstance(data, list):
        for index, item in enumerate(data):
            yield from _walk(item, keys, (*at, index))
        return
    if not keys or not isinstance(data, Mapping) or keys[0] not in data:
        return
    if len(keys) == 1:
        yield (*at, keys[0])
        return
    yield from _walk(data[keys[0]], keys[1:], (*at, keys[0]))
