"""The fleet lock on the command line: taken around `apply` (waiting with a message), released by `force-unlock`."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import rich_click as click

from lettafleet.core.cli.interrupts import Stopping
from lettafleet.core.cli.options import make_client, reports_errors, server_options
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.locking import (
    FleetLock,
    HeldLock,
    all_locks,
    default_lock_id,
    find_lock,
    held_lock,
    lock_store,
    remove_lock,
)
from lettafleet.core.engine.plugin_manager import FleetPlugins, get_plugin_manager

RELEASE_AT_ONCE_SECONDS = 3.0  # how long a second Ctrl-C waits for the lock's release before exiting anyway


@contextmanager
def apply_lock(
    base_url: str, fleet: Fleet, lock_id: str | None, timeout: float, stopping: Stopping, manager: FleetPlugins
) -> Iterator[FleetLock]:
    """Hold the fleet's lock while inside; losing it stops the apply. The lock has its own client, so its
    requests are not counted as the fleet's and its release never queues behind the apply's requests."""
    chosen = lock_id or default_lock_id(fleet.path, fleet.name)
    seen: set[str] = set()

    def waiting(held: HeldLock) -> None:
        if held.server_id not in seen:  # once per holder, not once per look
            seen.add(held.server_id)
            click.echo(f"Waiting up to {timeout:g} s for the lock. {held.describe()}.", err=True)

    def lost(why: str) -> None:
        stopping.stop(f"Stopping: {why}. Another apply may be running now.")

    def left_behind(message: str) -> None:
        click.echo(f"warning: {message}", err=True)

    with make_client(base_url, manager) as client:
        store = lock_store(manager.backend_for(base_url), client)
        with held_lock(
            store, chosen, timeout=timeout, on_wait=waiting, on_lost=lost, on_left_behind=left_behind
        ) as lock:
            yield lock


def release_at_once(lock: FleetLock | None) -> None:
    """Release the lock on the way out of a second Ctrl-C, giving the server a few seconds at most."""
    if lock is None:
        return
    releasing = threading.Thread(target=lock.release, daemon=True)
    releasing.start()
    releasing.join(RELEASE_AT_ONCE_SECONDS)


@click.command("force-unlock")
@click.argument("lock_id")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@server_options
@reports_errors
def force_unlock(lock_id: str, base_url: str, force: bool) -> None:
    """Release a fleet's apply lock by hand, e.g. one left by a killed apply (it would expire by itself).

    LOCK_ID is the name an apply's lock error shows (by default `fleet:NAME` for a fleet with a `fleet:` name,
    else the fleet file's path in its repository).
    Only the lock shown is released: one taken after it stays. Never release the lock of an apply that runs.
    """
    manager = get_plugin_manager()
    with make_client(base_url, manager) as client:
        store = lock_store(manager.backend_for(base_url), client)
        held = find_lock(store, lock_id)
        if held is None:
            others = ", ".join(repr(lock.lock_id) for lock in all_locks(store)) or "none"
            click.echo(f"error: no lock named {lock_id!r} on {client.base_url} (locks there: {others}).", err=True)
            sys.exit(1)
        click.echo(f"{held.describe()}.")
        if not force:
            click.confirm("Release it? An apply that still runs would then run unprotected", abort=True)
        if remove_lock(store, held):
            click.echo(f"Released the lock {lock_id!r}.")
        else:
            click.echo(f"The lock {lock_id!r} was already gone: nothing to release.")
