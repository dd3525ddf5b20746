"""Reading the live server while planning: list calls shared between plugins, each sent once per plan, and, on a
server holding many more agents than the fleet, narrowed to the fleet's agents (`AgentScope`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lettafleet.core.letta.connection import Connection
from lettafleet.core.letta.ownership import Owner
from lettafleet.core.letta.reads import (
    AGENTS,
    AGENTS_PATH,
    CONVERSATIONS_PATH,
    AgentScope,
    Read,
    compared,
    oldest_first,
    reads_every_agent,
    whole,
)


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
    ) -> None:
        self.client = client
        self.owner = owner or Owner()
        self.scope = scope
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
        if self.scope is not None and whole((path, params), AGENTS_PATH):
            return self._narrowly(self.scope.agent_reads(params), params)
        if self.scope is not None and whole((path, params), CONVERSATIONS_PATH):
            agents = self.list_all(AGENTS[0], **AGENTS[1])
            return self._narrowly([(path, {**params, "agent_id": agent["id"]}) for agent in agents], params)
        return self._read(path, params)

    def _read(self, path: str, params: dict[str, Any], *, short_page_ends: bool = False) -> list[dict[str, Any]]:
        """One list, its agents kept as a plan compares them (core/letta/reads.py `compared`)."""
        trim = compared if path == AGENTS_PATH else None
        return self.client.list_all(path, short_page_ends=short_page_ends, trim=trim, **params)

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


def _frozen(params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((key, tuple(value) if isinstance(value, list) else value) for key, value in params.items()))


class EarlyReads:
    """A plan's reader whose first reads start before the fleet file is parsed, so parsing overlaps the server's
    work: the count of the server's agents and, when the plan will read every agent whatever the file declares
    (`agents_at_most`, an upper bound of its agents), every agent. Threads that never hold a process open: a file
    that turns out invalid exits at once."""

    def __init__(self, client: Connection, agents_at_most: int) -> None:
        self.reader = LiveReader(client)
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
            self.every_agent = reads_every_agent(self.reader.client, agents_at_most)
        except Exception:  # the client closed under it (the file was invalid): nothing to read for
            self.every_agent = True
        finally:
            self._decided.set()
        if self.every_agent:
            # Whatever goes wrong here, the plan reads it again and reports what the server says; a file found
            # invalid closes the client under this read.
            with contextlib.suppress(Exception):
                self.reader.list_all(AGENTS[0], **AGENTS[1])
