"""Reading the live server while planning: list calls shared between plugins, each sent once per plan, and, on a
server holding many more agents than the fleet, narrowed to the fleet's agents (`AgentScope`), as the backend's
`PlanReads` says how."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from lettafleet.core.letta.connection import Connection
from lettafleet.core.letta.ownership import Owner

# A collection to list: (path, query parameters), e.g. ("/v1/agents/", {"order": "asc"}); a `limit` among them is
# the page size.
Read = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class AgentScope:
    """The agents a plan reads instead of every agent on the server: those with the names the fleet declares
    (whoever made them: duplicates and other fleets' agents of those names are still seen), and those carrying the
    fleet's ownership tag, whatever their name (the agents a named fleet made and no longer declares)."""

    names: frozenset[str]
    tag: str | None = None


class PlanReads(Protocol):
    """How a backend's plans read its server (`Backend.plan_reads`): one list as a plan keeps it, the reads that
    replace a whole collection's under a scope, whether a plan reads every agent, and that read."""

    every_agent: Read  # read early, while the file is parsed, when the plan reads every agent

    def read(self, connection: Connection, read: Read, *, short_page_ends: bool) -> list[dict[str, Any]]:
        """Every item of the collection, each as a plan keeps it. `short_page_ends`: a short first page is all."""
        ...

    def narrowed(self, read: Read, scope: AgentScope, reader: LiveReader) -> list[Read] | None:
        """The narrow reads that replace `read` under `scope` (None: `read` is not narrowed)."""
        ...

    def reads_every_agent(self, connection: Connection, agents_at_most: int) -> bool:
        """Whether a plan of at most `agents_at_most` agents reads every agent rather than its scope's."""
        ...


class PlainReads:
    """Reads for a backend that says nothing of them: each list as its client gives it, never narrowed."""

    every_agent: Read = ("", {})

    def read(self, connection: Connection, read: Read, *, short_page_ends: bool) -> list[dict[str, Any]]:
        return connection.list_all(read[0], **read[1])

    def narrowed(self, read: Read, scope: AgentScope, reader: LiveReader) -> list[Read] | None:
        return None

    def reads_every_agent(self, connection: Connection, agents_at_most: int) -> bool:
        return True


class LiveReader:
    """Memoized reads for one plan. Two plugins asking for the same collection cost one paginated read.
    `owner` is the fleet being planned, whose marks tell its resources from anyone else's. With a `scope`, a read
    of every agent (or every conversation) reads only the scope's agents (or their conversations): the plan then
    costs what the fleet declares, not what the server holds."""

    def __init__(
        self,
        client: Connection,
        concurrency: int = 4,
        *,
        owner: Owner | None = None,
        scope: AgentScope | None = None,
        reads: PlanReads | None = None,
    ) -> None:
        self.client = client
        self.owner = owner or Owner()
        self.scope = scope
        self.reads: PlanReads = reads or PlainReads()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lettafleet-read")
        # The narrow reads a scoped read fans out to: a pool of their own, as a scoped read may run on `_pool`.
        self._narrow = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lettafleet-narrow")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._narrow.shutdown(wait=True)

    def prefetch(self, *collections: tuple[str, dict[str, Any]]) -> None:
        """Start reading these collections in the background, together; a later `list_all` of one of them
        waits for its result instead of sending the request again."""
        for path, params in collections:
            self._pool.submit(self.list_all, path, **params)

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._once(("list", path, _frozen(params)), lambda: self._listed(path, params))
        return rows

    def list_everything(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a collection whatever the scope: for the questions only the whole server answers (does
        an agent outside the fleet hold what a removal deletes?), asked only when there is such a removal."""
        if self.scope is None:
            return self.list_all(path, **params)
        rows: list[dict[str, Any]] = self._once(("everything", path, _frozen(params)), lambda: self._read(path, params))
        return rows

    def _listed(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        narrow = None if self.scope is None else self.reads.narrowed((path, params), self.scope, self)
        return self._read(path, params) if narrow is None else self._narrowly(narrow, params)

    def _read(self, path: str, params: dict[str, Any], *, short_page_ends: bool = False) -> list[dict[str, Any]]:
        """One list, each item kept as a plan compares it (the backend's `PlanReads.read`)."""
        return self.reads.read(self.client, (path, params), short_page_ends=short_page_ends)

    def _narrowly(self, reads: list[Read], params: dict[str, Any]) -> list[dict[str, Any]]:
        """The items of several narrow reads, sent together, each item once, in the order `params` asks for."""
        pages = self._narrow.map(lambda read: self._read(read[0], read[1], short_page_ends=True), reads)
        return oldest_first([item for page in pages for item in page], params)

    def derived(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """A value computed from reads (live agents grouped by name, say), computed once per plan however many
        handlers ask for it. Treat it as read-only: every handler gets the same one."""
        return self._once(("derived", *key), compute)

    def get(self, path: str, **params: Any) -> Any:
        return self._once(("get", path, _frozen(params)), lambda: self.client.get(path, **params))

    def _once(self, key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = read()
            return self._cache[key]


def oldest_first(items: list[dict[str, Any]], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Items gathered by several reads, each once, in the order `params` asks (Letta's: created_at, then id)."""
    unique = {item["id"]: item for item in items}
    ordered = sorted(unique.values(), key=lambda item: (str(item.get("created_at") or ""), item["id"]))
    return ordered[::-1] if params.get("order") == "desc" else ordered


def _frozen(params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((key, tuple(value) if isinstance(value, list) else value) for key, value in params.items()))


class EarlyReads:
    """A plan's reader whose first reads start before the fleet file is parsed, so parsing overlaps the server's
    work: the count of the server's agents and, when the plan will read every agent whatever the file declares
    (`agents_at_most`, an upper bound of its agents), every agent. Threads that never hold a process open: a file
    that turns out invalid exits at once."""

    def __init__(self, client: Connection, agents_at_most: int, reads: PlanReads | None = None) -> None:
        self.reader = LiveReader(client, reads=reads)
        self.every_agent = True
        self._decided = threading.Event()
        threading.Thread(target=self._start, args=(agents_at_most,), name="lettafleet-early", daemon=True).start()

    def scoped(self, owner: Owner, names: frozenset[str]) -> LiveReader:
        """The reader for the parsed fleet: `owner`'s, reading only the agents of `names` and those carrying its
        ownership tag, unless it reads every agent."""
        self._decided.wait()
        self.reader.owner = owner
        if not self.every_agent:
            self.reader.scope = AgentScope(names, owner.tag)
        return self.reader

    def _start(self, agents_at_most: int) -> None:
        try:
            self.every_agent = self.reader.reads.reads_every_agent(self.reader.client, agents_at_most)
        except Exception:  # the client closed under it (the file was invalid): nothing to read for
            self.every_agent = True
        finally:
            self._decided.set()
        path, params = self.reader.reads.every_agent
        if self.every_agent and path:
            # Whatever goes wrong here, the plan reads it again and reports what the server says; a file found
            # invalid closes the client under this read.
            with contextlib.suppress(Exception):
                self.reader.list_all(path, **params)
