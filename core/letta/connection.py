"""What core asks of a backend's client, whatever protocol it speaks (`Connection`), the requests it counts, and the
errors every backend raises: a failure talking to a Letta server, and the server's refusal of one request."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Protocol, Self

from lettafleet.core.letta.pacing import Pacer
from lettafleet.core.letta.server import ServerInfo


class LettaError(Exception):
    """Any failure talking to the server, with a message that says what to do."""


class LettaConnectionError(LettaError):
    """The server could not be reached, or did not answer."""


class LettaAPIError(LettaError):
    """The server answered a request with an error: `status` is an HTTP status, or the nearest one a backend
    without statuses maps its error to (404 for what is not there)."""

    def __init__(self, method: str, path: str, status: int, detail: str):
        self.method, self.path, self.status, self.detail = method, path, status, detail
        super().__init__(f"{method} {path} answered {status}: {detail}")


class RequestStats:
    """Requests sent, by method (retries included): what the benchmark and `-v` report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_method: Counter[str] = Counter()

    def count(self, method: str) -> None:
        with self._lock:
            self.by_method[method] += 1

    @property
    def total(self) -> int:
        return sum(self.by_method.values())

    @property
    def writes(self) -> int:
        return sum(count for method, count in self.by_method.items() if method not in ("GET", "HEAD"))


class Connection(Protocol):
    """A backend's open client as core's engine and commands use it: the server it talks to (public URL, what it
    says it is), requests addressed by path, every item of a collection, masking for what is printed, the pacer
    an apply paces its requests through, and the counts `-v` reports. A backend's `connect` returns one."""

    base_url: str
    stats: RequestStats
    pacer: Pacer

    @property
    def plan_hash_key(self) -> bytes: ...

    def server_info(self) -> ServerInfo: ...

    def hide(self, *values: str) -> None: ...

    def mask(self, text: str) -> str: ...

    def get(self, path: str, **params: Any) -> Any: ...

    def post(self, path: str, json: Any = None, **params: Any) -> Any: ...

    def patch(self, path: str, json: Any = None, **params: Any) -> Any: ...

    def delete(self, path: str, **params: Any) -> Any: ...

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
