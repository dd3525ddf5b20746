"""The apply lock on the real dev App Server: racing takers, an apply refused while another holds the lock, an
expired lock taken over, force-unlock, and a lost lock noticed by its holder's renewal."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core import LettaAPIError
from lettafleet.core.cli.app import main
from lettafleet.core.engine.locking import find_lock, held_lock
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.fleet_connection import AppServerConnection
from lettafleet.plugins.backends.app_server.locks import LOCK_TAG, NAME_PREFIX, AppServerLocks
from tests.integration import test_app_server_plan_apply as plan_apply
from tests.integration.test_app_server_plan_apply import agent_yaml, by_name, fleet_file
from tests.integration.test_apply_lock import race_for_the_lock

pytest_plugins = ["tests.fakes.llm_server"]

app_server = plan_apply.app_server  # the dev App Server with the LLM stand-in connected
suffix = plan_apply.suffix  # a suffix unique to one test, its agents deleted afterwards


def cli(url: str, *args: str, input: str = "") -> Result:
    return CliRunner().invoke(main, list(args), input=input, env={"LETTA_BASE_URL": url}, catch_exceptions=False)


def locks_of(url: str) -> AppServerLocks:
    return AppServerLocks(AppServerConnection(AppServerClient(url)))


@pytest.fixture
def lock_id(app_server_client: AppServerClient) -> Iterator[str]:
    """A lock id unique to one test; its lock agents are deleted afterwards."""
    chosen = f"lettafleet-test-{uuid.uuid4().hex[:8]}"
    yield chosen
    remove_lock_agents(app_server_client, chosen)


def remove_lock_agents(client: AppServerClient, lock_id: str) -> None:
    for agent in client.list_agents(tags=[LOCK_TAG]):
        if agent.get("name") == NAME_PREFIX + lock_id:
            client.delete_agent(agent["id"])


def test_of_eight_racing_takers_exactly_one_gets_the_app_server_lock(
    app_server_url: str, app_server_client: AppServerClient, lock_id: str
) -> None:
    # The first round also races to make the lock's agent; the later ones race on generations in its memory.
    for _round in range(3):
        assert race_for_the_lock(lambda: locks_of(app_server_url), lock_id, takers=8) == (1, 7)
        assert find_lock(locks_of(app_server_url), lock_id) is None  # the winner released it
    made = [a for a in app_server_client.list_agents(tags=[LOCK_TAG]) if a.get("name") == NAME_PREFIX + lock_id]
    assert len(made) == 1  # the takers agreed on one lock agent and the others deleted theirs


def test_an_apply_is_refused_while_another_holds_the_lock_and_the_lock_agent_stays_out_of_plans(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = fleet_file(tmp_path, f"{suffix}-lk", agent_yaml(f"lk-a-{suffix}"))
    lock_id = f"fleet:{suffix}-lk"
    try:
        with held_lock(locks_of(app_server), lock_id) as lock:
            refused = cli(app_server, "apply", "-f", str(fleet))
            assert refused.exit_code == 1
            assert "the fleet is locked: another apply is running" in refused.output
            assert lock.held.holder in refused.output and f"force-unlock {lock_id}" in refused.output
            assert by_name(app_server_client, suffix) == {}
            listed = json.loads(cli(app_server, "get", "agents", "-o", "json").stdout)
            assert not [agent for agent in listed if agent["name"].startswith("lettafleet-lock:")]

        applied = cli(app_server, "apply", "-f", str(fleet))
        assert applied.exit_code == 0, applied.output
        assert list(by_name(app_server_client, suffix)) == [f"lk-a-{suffix}"]
        assert find_lock(locks_of(app_server), lock_id) is None  # released when the apply ended
        again = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")
        assert again.exit_code == 0 and "lettafleet-lock" not in again.output
    finally:
        remove_lock_agents(app_server_client, lock_id)


def test_an_expired_lock_of_a_killed_apply_is_taken_over_by_the_next_apply(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = fleet_file(tmp_path, f"{suffix}-lk", agent_yaml(f"lk-a-{suffix}"))
    lock_id = f"fleet:{suffix}-lk"
    store = locks_of(app_server)
    try:
        # What a killed apply leaves: a lock nobody renews, aged past its expiry instead of waiting 2 minutes.
        past = datetime.now(UTC) - timedelta(seconds=1)
        stale = store.create(lock_id, "killed", {"holder": "ci@gone pid 1", "expires_at": past.isoformat()})
        assert stale is not None

        applied = cli(app_server, "apply", "-f", str(fleet))

        assert applied.exit_code == 0, applied.output
        assert list(by_name(app_server_client, suffix)) == [f"lk-a-{suffix}"]
        assert find_lock(store, lock_id) is None
        with pytest.raises(LettaAPIError) as gone:  # the killed apply's lock is over: it can no longer renew
            store.update(stale.server_id, {"expires_at": datetime.now(UTC).isoformat()})
        assert gone.value.status == 404
    finally:
        remove_lock_agents(app_server_client, lock_id)


def test_force_unlock_releases_the_lock_shown_and_its_holder_finds_it_lost(
    app_server: str, app_server_client: AppServerClient, lock_id: str
) -> None:
    store = locks_of(app_server)
    lost: list[str] = []
    with held_lock(store, lock_id, on_lost=lost.append) as lock:
        declined = cli(app_server, "force-unlock", lock_id, input="n\n")
        assert declined.exit_code == 1 and lock.held.holder in declined.output
        assert find_lock(store, lock_id) is not None

        confirmed = cli(app_server, "force-unlock", lock_id, input="y\n")
        assert confirmed.exit_code == 0 and f"Released the lock {lock_id!r}" in confirmed.output
        assert find_lock(store, lock_id) is None

        with pytest.raises(LettaAPIError) as gone:  # what the holder's next renewal meets: apply stops
            store.update(lock.held.server_id, {"expires_at": datetime.now(UTC).isoformat()})
        assert gone.value.status == 404

        again = locks_of(app_server).create(lock_id, "next", {"holder": "next"})
        assert again is not None  # taken again at once, and the old holder's release leaves it alone
    assert find_lock(store, lock_id) is not None
    unknown = cli(app_server, "force-unlock", "no-such-lock", "--force")
    assert unknown.exit_code == 1 and "no lock named 'no-such-lock'" in unknown.output
