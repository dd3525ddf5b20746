"""The V1 backend's apply locks (core/engine/locking.py): each a Letta identity whose `identifier_key` is
`lettafleet-lock:<lock id>`, which the server refuses to make twice (409), its properties the lock's record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lettafleet.core import Connection, LettaAPIError, LockRecord

KEY_PREFIX = "lettafleet-lock:"
IDENTITIES = "/v1/identities/"
PROPERTY_TYPE = "string"


class IdentityLocks:
    """Locks kept as Letta identities on the server `connection` talks to."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def create(self, lock_id: str, name: str, properties: Mapping[str, str]) -> LockRecord | None:
        body = {
            "identifier_key": KEY_PREFIX + lock_id,
            "name": name,
            "identity_type": "other",
            "properties": _properties(properties),
        }
        try:
            return _record(self.connection.post(IDENTITIES, json=body))
        except LettaAPIError as error:
            if error.status == 409:  # the server holds an identity with this key: the lock is taken
                return None
            raise

    def find(self, lock_id: str) -> LockRecord | None:
        found = self.connection.get(IDENTITIES, identifier_key=KEY_PREFIX + lock_id)
        return _record(found[0]) if found else None

    def every(self) -> list[LockRecord]:
        return [
            _record(identity)
            for identity in self.connection.list_all(IDENTITIES)
            if str(identity.get("identifier_key", "")).startswith(KEY_PREFIX)
        ]

    def update(self, server_id: str, properties: Mapping[str, str]) -> None:
        self.connection.patch(f"{IDENTITIES}{server_id}", json={"properties": _properties(properties)})

    def remove(self, server_id: str) -> None:
        self.connection.delete(f"{IDENTITIES}{server_id}")


def _record(identity: Mapping[str, Any]) -> LockRecord:
    properties = {str(p.get("key")): str(p.get("value")) for p in identity.get("properties") or () if p.get("value")}
    lock_id = str(identity.get("identifier_key", "")).removeprefix(KEY_PREFIX)
    return LockRecord(lock_id, identity["id"], properties)


def _properties(properties: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value, "type": PROPERTY_TYPE} for key, value in properties.items()]
