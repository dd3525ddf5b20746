"""Reading the live server while planning: list calls shared between plugins, each sent once per plan."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lettafleet.core.letta.client import LettaClient
from lettafleet.core.letta.ownership import Owner


class LiveReader:
    """Memoized reads for one plan. Two plugins asking for the same collection cost one paginated read.
    `owner` is the fleet being planned, whose marks tell its resources from anyone else's."""

    def __init__(self, client: LettaClient, concurrency: int = 4, *, owner: Owner | None = None) -> None:
        self.client = client
        self.owner = owner or Owner()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lettafleet-read")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def prefetch(self, *collections: tuple[str, dict[str, Any]]) -> None:
        """Start reading these collections in the background, together; a later `list_all` of one of them
        waits for its result instead of sending the request again."""
        for path, params in collections:
            self._pool.submit(self.list_all, path, **params)

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._once(
            ("list", path, _frozen(params)), lambda: self.client.list_all(path, **params)
        )
        return rows

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
