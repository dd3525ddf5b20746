"""The apply lock's name and the --lock-timeout value, which need no server (the lock itself is proven against
the real one in tests/integration/test_apply_lock.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.core.cli.options import Duration
from lettafleet.core.engine.locking import FleetLock, LockHeld, acquire, default_lock_id
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.locks import IdentityLocks


def test_two_checkouts_of_one_repository_name_the_same_lock(tmp_path: Path) -> None:
    for checkout in ("laptop/work/repo", "ci/runner/_work/repo"):
        (tmp_path / checkout / ".git").mkdir(parents=True)
        (tmp_path / checkout / "fleets").mkdir()
    ids = {
        default_lock_id(tmp_path / checkout / "fleets" / "prod.yaml")
        for checkout in ("laptop/work/repo", "ci/runner/_work/repo")
    }
    assert ids == {"fleets/prod.yaml"}


def test_outside_a_repository_one_file_names_one_lock_wherever_apply_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fleets").mkdir()
    monkeypatch.chdir(tmp_path)
    from_its_folder = default_lock_id(Path("fleets/prod.yaml"))
    monkeypatch.chdir("/")
    from_elsewhere = default_lock_id(tmp_path / "fleets" / "prod.yaml")
    assert from_its_folder == from_elsewhere == (tmp_path / "fleets" / "prod.yaml").resolve().as_posix()


def test_a_named_fleet_names_its_lock_by_its_name_wherever_its_file_lies(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    ids = {
        default_lock_id(tmp_path / folder / "fleet.yaml", "prod")
        for folder in ("copy-a", "copy-b", "repo/fleets", "repo")
    }
    assert ids == {"fleet:prod"}


class IdentityServer:
    """Letta's identities, as far as the lock uses them: a create refused (409) when the key exists, a lookup by
    key. `lose_answers` creates land but their answers are lost (the connection drops after the server acted)."""

    def __init__(self, lose_answers: int = 0, fail_first: int = 0) -> None:
        self.identities: dict[str, dict[str, Any]] = {}
        self.lose_answers = lose_answers
        self.fail_first = fail_first
        self.creates = 0

    def create(self, request: httpx.Request) -> httpx.Response:
        self.creates += 1
        if self.fail_first:
            self.fail_first -= 1
            return httpx.Response(502, json={"detail": "bad gateway"})
        body = json.loads(request.content)
        if body["identifier_key"] in self.identities:
            return httpx.Response(409, json={"detail": "exists"})
        identity = {**body, "id": f"identity-{len(self.identities) + 1}"}
        self.identities[body["identifier_key"]] = identity
        if self.lose_answers:
            self.lose_answers -= 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json=identity)

    def look(self, request: httpx.Request) -> httpx.Response:
        key = request.url.params["identifier_key"]
        return httpx.Response(200, json=[self.identities[key]] if key in self.identities else [])


@pytest.fixture
def identities() -> Iterator[tuple[IdentityServer, LettaClient]]:
    server = IdentityServer()
    with respx.mock(base_url="http://letta.test") as mock, LettaClient("http://letta.test", retries=0) as client:
        mock.post("/v1/identities/").mock(side_effect=lambda request: server.create(request))
        mock.get("/v1/identities/").mock(side_effect=lambda request: server.look(request))
        mock.delete(url__regex=r"/v1/identities/.+").respond(200)
        yield server, client


def take(client: LettaClient) -> FleetLock:
    return acquire(IdentityLocks(client), "fleet.yaml", timeout=0, operation="apply", on_wait=print, on_lost=print)


def test_a_lock_whose_create_answer_was_lost_but_landed_is_recognised_as_ours(identities) -> None:
    server, client = identities
    server.lose_answers = 1

    lock = take(client)

    assert server.creates == 1  # not asked for twice: the look found it, with this run's token
    assert lock.held.server_id == "identity-1"
    lock.release()


def test_a_lock_create_that_failed_before_landing_is_asked_for_again(identities) -> None:
    server, client = identities
    server.fail_first = 2

    lock = take(client)

    assert server.creates == 3 and lock.held.server_id == "identity-1"
    lock.release()


def test_a_failed_create_finding_another_runs_lock_leaves_the_lock_to_it(identities) -> None:
    server, client = identities
    other = take(client)  # another run holds it
    server.fail_first = 1  # our create's answer is a 502: the look finds the lock, with the other run's token

    with pytest.raises(LockHeld):
        take(client)
    assert server.creates == 2  # not asked for again once the look showed the other run's lock
    other.release()


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("0s", 0), ("45", 45), ("90s", 90), ("5m", 300), ("1h30m", 5400)]
)
def test_lock_timeouts_are_written_like_terraform_durations(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


def test_a_misspelled_lock_timeout_is_a_clear_error_and_contacts_no_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["apply", "-f", str(tmp_path / "fleet.yaml"), "--lock-timeout", "5 minutes"],
        env={"LETTA_BASE_URL": "http://127.0.0.1:9"},
    )
    words = " ".join(result.output.replace("│", " ").split())  # the message as read, without its box
    assert result.exit_code == 1
    assert "'5 minutes' is not a duration: write it like 0s, 30s, 5m or 1h30m" in words
