"""The App Server client as core's engine holds it (a `Connection`): the server a plan names, the counts and the
masking core asks of every backend. The App Server's handlers reach the protocol client through `app_of`."""

from __future__ import annotations

from typing import Any, Self

from lettafleet.core import Connection, LettaError, ServerInfo
from lettafleet.core.letta.pacing import Pacer
from lettafleet.plugins.backends.app_server.client import AppServerClient


class AppServerConnection:
    """One App Server client for a command: core's `Connection`. It speaks no REST, so a request by path (what a
    V1 handler would send) fails with a LettaError that says so; the App Server handlers use `app`."""

    def __init__(self, app: AppServerClient) -> None:
        self.app = app
        self.base_url = app.base_url
        self.stats = app.stats
        self.pacer = Pacer()
        self._info: ServerInfo | None = None

    @property
    def plan_hash_key(self) -> bytes:
        return b""  # the upgrade's token is not kept after the handshake; plans of a local server hash plainly

    def server_info(self) -> ServerInfo:
        """`Letta App Server 0.34.12 (local backend, protocol 1)`, from `app_server_info`, asked once."""
        if self._info is None:
            said = self.app.server_info()
            facts = f"{said.get('backend')} backend, protocol {said.get('protocol_version')}"
            version = f"App Server {said.get('letta_code_version')} ({facts})"
            self._info = ServerInfo(self.base_url, version)
        return self._info

    def hide(self, *values: str) -> None:
        self.app.masker.add(*values)

    def mask(self, text: str) -> str:
        return self.app.masker(text)

    def get(self, path: str, **params: Any) -> Any:
        raise self._no_rest("GET", path)

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        raise self._no_rest("POST", path)

    def patch(self, path: str, json: Any = None, **params: Any) -> Any:
        raise self._no_rest("PATCH", path)

    def delete(self, path: str, **params: Any) -> Any:
        raise self._no_rest("DELETE", path)

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        raise self._no_rest("GET", path)

    def _no_rest(self, method: str, path: str) -> LettaError:
        return LettaError(
            f"{method} {path}: the Letta App Server at {self.base_url} has no V1 REST API (it speaks Protocol V2); "
            "run this against a V1 server (--base-url http://...), docs/app-server.md lists what works on an App Server"
        )

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def app_of(connection: Connection) -> AppServerClient:
    """The protocol client behind `connection`; core routes App Server kinds only to this backend's connections."""
    if not isinstance(connection, AppServerConnection):
        raise LettaError(f"{connection.base_url} is not an App Server: its handlers cannot talk to it")
    return connection.app
