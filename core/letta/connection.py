"""What core asks of a backend's client, whatever protocol it speaks (`Connection`), the requests it counts, the
errors every backend raises (a failure talking to a Letta server, the server's refusal of one request), and the
rule every client applies before it sends a credential."""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

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


# Each scheme that carries a credential unencrypted, with the one that would encrypt it.
_ENCRYPTED_SCHEME = {"http": "https", "ws": "wss"}


def refuse_credential_in_the_clear(url: str, credential: str, allow_insecure: bool) -> None:
    """Stop before `credential` travels unencrypted (http://, ws://) to a host that is not this machine: the one
    rule every client of lettafleet's, whatever its protocol, applies before it sends a key."""
    parts = urlsplit(url)
    encrypted = _ENCRYPTED_SCHEME.get(parts.scheme)
    if encrypted is None or allow_insecure or _is_loopback(parts.hostname):
        return
    raise LettaError(
        f"refusing to send {credential} over plain {parts.scheme} to {parts.hostname}: anyone on the way can read "
        f"it. Use {'an' if encrypted == 'https' else 'a'} {encrypted}:// URL, or, on a network you trust, pass "
        "--allow-insecure-http (env LETTA_ALLOW_INSECURE_HTTP=1)."
    )


def _is_loopback(host: str | None) -> bool:
    """This machine: localhost, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
