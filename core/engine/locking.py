"""The apply lock: one apply per fleet and server at a time, recorded on the Letta server both runs talk to.

A lock is a record the backend keeps on the server under the lock's id (`LockStore`; the V1 backend's is a Letta
identity whose `identifier_key` is `lettafleet-lock:<lock id>`). The server refuses a second record with the same
id, so of two runs racing to take one lock exactly one wins. The record says who holds it and until when; the
holder renews it while it works, a taker that finds it expired deletes exactly that record (by its server id, so
never a fresh one) and tries again, and anyone may remove it by hand (`lettafleet force-unlock`). It holds no
secret: a user name, a host name, a process id and two times.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from lettafleet.core.engine.backends import Backend
from lettafleet.core.letta.connection import Connection, LettaAPIError, LettaConnectionError, LettaError

TTL = timedelta(minutes=2)  # a killed apply blocks others this long at most; clocks may disagree by less
RENEW_EVERY = 30.0  # seconds: several renewals fit in one TTL, so one slow answer does not lose the lock
POLL_EVERY = 2.0  # seconds between looks while waiting for a lock another run holds
CREATE_ATTEMPTS = 4  # creates whose answer was lost, each followed by a look, before giving up
UNKNOWN_OUTCOME = frozenset({500, 502, 504})  # answers after which a create may or may not have landed


class LockError(LettaError):
    """The lock could not be taken or kept; the message says who holds it and what to do."""


class LockHeld(LockError):
    def __init__(self, held: HeldLock) -> None:
        self.held = held
        super().__init__(
            f"the fleet is locked: another apply is running. {held.describe()}. Wait for it to finish and run "
            "apply again, or wait for the lock with --lock-timeout (e.g. 5m). If no apply is running (it was "
            f"killed), the lock expires by itself, or release it now: lettafleet force-unlock {held.lock_id}"
        )


@dataclass(frozen=True)
class LockRecord:
    """A lock as a backend keeps it: the lock's id, the record's id on the server, and what it says (holder,
    operation, started_at, expires_at, token), all strings."""

    lock_id: str
    server_id: str
    properties: Mapping[str, str]


class LockStore(Protocol):
    """Where a backend keeps lettafleet's locks on its server, bound to one connection (`Backend.locks`)."""

    def create(self, lock_id: str, name: str, properties: Mapping[str, str]) -> LockRecord | None:
        """The new record; None when the server holds one with this lock id already. Raises LettaConnectionError,
        or LettaAPIError with a status in UNKNOWN_OUTCOME, when the create may or may not have landed."""
        ...

    def find(self, lock_id: str) -> LockRecord | None: ...

    def every(self) -> list[LockRecord]: ...

    def update(self, server_id: str, properties: Mapping[str, str]) -> None:
        """Change these properties of the record; LettaAPIError with status 404 when it is gone."""
        ...

    def remove(self, server_id: str) -> None:
        """Delete the record; LettaAPIError with status 404 when it is gone already."""
        ...


def lock_store(backend: Backend, connection: Connection) -> LockStore:
    """Where `backend` keeps locks on the server `connection` (its client) talks to; LockError if it keeps none."""
    if backend.locks is None:
        raise LockError(
            f"the {backend} backend cannot hold the apply lock: run apply with --no-lock, and make sure no other "
            "apply of this fleet runs at the same time"
        )
    return backend.locks(connection)


@dataclass(frozen=True)
class HeldLock:
    """A lock as the server holds it: which one, its identity's id, who took it, since and until when."""

    lock_id: str
    server_id: str
    holder: str
    operation: str
    started_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_record(cls, record: LockRecord) -> HeldLock:
        properties = record.properties
        return cls(
            lock_id=record.lock_id,
            server_id=record.server_id,
            holder=str(properties.get("holder") or "unknown"),
            operation=str(properties.get("operation") or "apply"),
            started_at=_parsed_time(properties.get("started_at")),
            expires_at=_parsed_time(properties.get("expires_at")),
        )

    def expired(self, now: datetime) -> bool:
        # A lock without a readable expiry was not written by lettafleet's rules: never take it over silently.
        return self.expires_at is not None and self.expires_at <= now

    def describe(self) -> str:
        since = _shown_time(self.started_at)
        until = _shown_time(self.expires_at)
        return f"Lock {self.lock_id!r} is held by {self.holder} ({self.operation}) since {since}, expires {until}"


NAMED_FLEET_PREFIX = "fleet:"  # the lock of a fleet with a `fleet:` name: `fleet:NAME`


def default_lock_id(fleet_file: Path, fleet_name: str | None = None) -> str:
    """The lock a fleet file's apply takes. A fleet with a `fleet:` name takes that name's (`fleet:NAME`): its
    marks make one set of agents whatever folder or checkout the file lies in, so two copies of the file must
    never apply at once. Without a name, the file's path inside its git repository (two CI jobs or two laptops
    applying one repository's file share a lock although their checkouts sit in different folders); outside a
    repository, its absolute path (links resolved), so every run of one file on this machine shares one lock,
    wherever it was started from."""
    if fleet_name:
        return NAMED_FLEET_PREFIX + fleet_name
    path = fleet_file.resolve()
    for folder in path.parents:
        if (folder / ".git").exists():
            return path.relative_to(folder).as_posix()
    return path.as_posix()


def find_lock(store: LockStore, lock_id: str) -> HeldLock | None:
    found = store.find(lock_id)
    return HeldLock.from_record(found) if found else None


def all_locks(store: LockStore) -> list[HeldLock]:
    """Every lettafleet lock on the server."""
    return [HeldLock.from_record(record) for record in store.every()]


def remove_lock(store: LockStore, held: HeldLock) -> bool:
    """Delete exactly this lock (by server id); False if it was already gone."""
    try:
        store.remove(held.server_id)
    except LettaAPIError as error:
        if error.status == 404:
            return False
        raise
    return True


class FleetLock:
    """A lock this process holds: renewed in the background until released."""

    def __init__(self, store: LockStore, held: HeldLock, on_lost: Callable[[str], None]) -> None:
        self.store = store
        self.held = held
        self._on_lost = on_lost
        self._stop = threading.Event()
        self.expires_at = held.expires_at or _now()  # moved on by each renewal
        self._renewer = threading.Thread(target=self._renew_until_released, name="lettafleet-lock", daemon=True)
        self._renewer.start()

    def release(self) -> bool:
        """Stop renewing and delete the lock (if it is still ours: a lock taken over has another id). False when
        the server could not be asked (it is down): the lock then stays until it expires or is force-unlocked."""
        self._stop.set()
        try:
            remove_lock(self.store, self.held)
        except LettaError:
            return False
        return True

    def left_behind(self) -> str:
        """What to tell the user when `release` failed."""
        return (
            f"the lock {self.held.lock_id!r} could not be released (the server did not answer). It expires by "
            f"itself at {_shown_time(self.expires_at)} at the latest; once the server answers, release it now with "
            f"`lettafleet force-unlock {self.held.lock_id}`."
        )

    def _renew_until_released(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            new_expiry = _now() + TTL
            try:
                self.store.update(self.held.server_id, {"expires_at": new_expiry.isoformat()})
            except LettaAPIError as error:
                if error.status == 404:
                    self._lose("it was removed (by force-unlock, or taken over after it expired)")
                    return
            except LettaError:
                pass  # a slow or unreachable server: try again next round, while the lock is still valid
            else:
                self.expires_at = new_expiry
                continue
            if _now() >= self.expires_at:
                self._lose("it could not be renewed before it expired")
                return

    def _lose(self, why: str) -> None:
        if not self._stop.is_set():
            self._on_lost(f"the lock {self.held.lock_id!r} was lost: {why}")


@contextmanager
def held_lock(
    store: LockStore,
    lock_id: str,
    *,
    timeout: float = 0.0,
    operation: str = "apply",
    on_wait: Callable[[HeldLock], None] = lambda held: None,
    on_lost: Callable[[str], None] = lambda why: None,
    on_left_behind: Callable[[str], None] = lambda message: None,
) -> Iterator[FleetLock]:
    """Take the lock (waiting up to `timeout` seconds while another run holds it), hold it, release it."""
    lock = acquire(store, lock_id, timeout=timeout, operation=operation, on_wait=on_wait, on_lost=on_lost)
    try:
        yield lock
    finally:
        if not lock.release():
            on_left_behind(lock.left_behind())


def acquire(
    store: LockStore,
    lock_id: str,
    *,
    timeout: float,
    operation: str,
    on_wait: Callable[[HeldLock], None],
    on_lost: Callable[[str], None],
) -> FleetLock:
    deadline = time.monotonic() + timeout
    vanished = 0
    while True:
        taken = _try_create(store, lock_id, operation)
        if taken is not None:
            return FleetLock(store, taken, on_lost)
        current = find_lock(store, lock_id)
        if current is None:  # released between our create and our look: try again, a few times
            vanished += 1
            if vanished > 5:
                raise LockError(f"the lock {lock_id!r} could not be taken: the server refuses it but does not list it")
            continue
        if current.expired(_now()):
            remove_lock(store, current)  # exactly the expired one: a fresh lock has another id
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockHeld(current)
        on_wait(current)
        time.sleep(min(POLL_EVERY, remaining))


def _try_create(store: LockStore, lock_id: str, operation: str) -> HeldLock | None:
    """Create the lock's record; None when one with its id exists.

    A create whose answer was lost (the connection dropped, or a 500/502/504) may have landed. The lock carries a
    token of this run, so a look tells: found with our token, it is ours; not found, it is asked for again (the
    server refuses a duplicate, so asking twice is safe); found with another token, another run holds it."""
    token = secrets.token_hex(8)
    started = _now()
    properties = {
        "holder": f"{_user()}@{socket.gethostname()} pid {os.getpid()}",
        "operation": operation,
        "started_at": started.isoformat(),
        "expires_at": (started + TTL).isoformat(),
        "token": token,
    }
    name = f"lettafleet {operation} lock: {lock_id}"
    for _ in range(CREATE_ATTEMPTS):
        try:
            created = store.create(lock_id, name, properties)
            return None if created is None else HeldLock.from_record(created)
        except LettaAPIError as error:
            if error.status not in UNKNOWN_OUTCOME:
                raise _not_taken(lock_id, error) from None
        except LettaConnectionError:
            pass
        try:
            landed = store.find(lock_id)
        except LettaError as error:
            raise _not_taken(lock_id, error) from None
        if landed is not None:
            return HeldLock.from_record(landed) if landed.properties.get("token") == token else None
    raise _not_taken(lock_id, LettaError(f"the server did not answer {CREATE_ATTEMPTS} requests to create it"))


def _not_taken(lock_id: str, error: LettaError) -> LockError:
    return LockError(
        f"the apply lock {lock_id!r} could not be taken: {error}. Nothing was changed. Check that the server "
        "answers (`lettafleet plan`), then run apply again."
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return f"uid {os.getuid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _parsed_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _shown_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "(unknown)"
