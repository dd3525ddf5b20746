"""Two applies at once, a killed apply, force-unlock and Ctrl-C: `lettafleet apply` as processes on a real server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lettafleet.core.engine.locking import LockHeld, LockStore, default_lock_id, find_lock, held_lock
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.locks import IDENTITIES, KEY_PREFIX, IdentityLocks
from tests.fakes.fault_proxy import FaultProxy, Faults

LETTAFLEET = str(Path(sys.executable).with_name("lettafleet"))


class Fleet:
    """A generated fleet of `size` agents sharing one block, in its own folder, with everything it made."""

    def __init__(self, folder: Path, base_url: str, client: LettaClient, size: int) -> None:
        self.prefix = f"lk{uuid.uuid4().hex[:8]}"
        self.base_url, self.client = base_url, client
        self.shared = f"policies_{self.prefix}"
        self.path = folder / "fleet.yaml"
        self.lock_id = default_lock_id(self.path)  # outside any repository and the current folder: unique
        lines = ["shared_blocks:", f"  - {{name: {self.shared}, description: rules, limit: 1000, value: be kind}}"]
        lines.append("agents:")
        for index in range(size):
            lines += [
                f"  - name: {self.prefix}-{index:03d}",
                "    llm_config: {model: letta/letta-free, context_window: 32000}",
                "    embedding: letta/letta-free",
                "    system_prompt: {value: You help.}",
                f"    shared_blocks: [{self.shared}]",
            ]
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [LETTAFLEET, "apply", "-f", str(self.path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LETTA_BASE_URL": self.base_url, "PYTHONUNBUFFERED": "1"},
        )

    def run(self, *args: str, command: str = "apply", input: str = "") -> subprocess.CompletedProcess[str]:
        arguments = [command, "-f", str(self.path), *args] if command != "force-unlock" else [command, *args]
        return subprocess.run(
            [LETTAFLEET, *arguments],
            capture_output=True,
            text=True,
            input=input,
            timeout=300,
            env={**os.environ, "LETTA_BASE_URL": self.base_url},
        )

    def agents(self) -> Counter[str]:
        return Counter(a["name"] for a in self.client.list_all("/v1/agents/") if a["name"].startswith(self.prefix))

    def shared_copies(self) -> int:
        return len(self.client.list_all("/v1/blocks/", label=self.shared))

    def remove(self) -> None:
        doomed = [
            f"/v1/agents/{a['id']}" for a in self.client.list_all("/v1/agents/") if a["name"].startswith(self.prefix)
        ]
        doomed += [f"/v1/blocks/{block['id']}" for block in self.client.list_all("/v1/blocks/", label=self.shared)]
        doomed += [
            f"{IDENTITIES}{i['id']}" for i in self.client.get(IDENTITIES, identifier_key=KEY_PREFIX + self.lock_id)
        ]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.client.delete, doomed))


@pytest.fixture
def make_fleet(letta_server: str, client: LettaClient, tmp_path: Path) -> Iterator[Callable[[int], Fleet]]:
    made: list[Fleet] = []

    def make(size: int) -> Fleet:
        folder = tmp_path / f"fleet{len(made)}"
        folder.mkdir()
        made.append(Fleet(folder, letta_server, client, size))
        return made[-1]

    yield make
    for fleet in made:
        fleet.remove()


def wait_until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def race_for_the_lock(open_store: Callable[[], LockStore], lock_id: str, takers: int) -> tuple[int, int]:
    """`takers` threads, each with its own store (and client), try to take one lock at the same moment. A winner
    holds it until every taker has tried. Returns how many won and how many were refused."""
    start, attempted = threading.Barrier(takers), threading.Barrier(takers)
    won, refused = [], []

    def take() -> None:
        store = open_store()
        start.wait()
        try:
            with held_lock(store, lock_id, timeout=0):
                won.append(1)
                attempted.wait(300)
        except LockHeld:
            refused.append(1)
            attempted.wait(300)

    threads = [threading.Thread(target=take) for _ in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(400)
    return len(won), len(refused)


def read_until_created(process: subprocess.Popen[str], count: int) -> list[str]:
    """The apply's output lines up to its `count`-th `created` agent (it prints each result as it lands; an
    attachment under an agent, `agent.NAME.shared_block.X: created`, is not an agent)."""
    lines: list[str] = []
    assert process.stdout is not None
    while sum(1 for line in lines if re.fullmatch(r"agent\.[^.\s]+: created", line)) < count:
        line = process.stdout.readline()
        assert line, "the apply ended before creating enough agents"
        lines.append(line.rstrip("\n"))
    return lines


def test_of_many_racing_takers_exactly_one_gets_the_lock(letta_server: str, client: LettaClient) -> None:
    lock_id = f"lettafleet-test-race-{uuid.uuid4().hex[:8]}"
    for _round in range(3):
        assert race_for_the_lock(lambda: IdentityLocks(LettaClient(letta_server)), lock_id, takers=8) == (1, 7)
        assert find_lock(IdentityLocks(client), lock_id) is None  # the winner released it


def test_two_applies_started_together_create_each_agent_once_and_the_loser_says_who_holds_the_lock(
    make_fleet: Callable[[int], Fleet],
) -> None:
    fleet = make_fleet(20)

    first, second = fleet.start(), fleet.start()
    results = [(process.wait(300), *process.communicate()) for process in (first, second)]

    assert sorted(code for code, _, _ in results) == [0, 1]
    [(_, _, refused)] = [result for result in results if result[0] == 1]
    assert "the fleet is locked: another apply is running" in refused
    assert f"Lock {fleet.lock_id!r} is held by" in refused and " pid " in refused
    assert f"lettafleet force-unlock {fleet.lock_id}" in refused
    assert "Traceback" not in refused
    assert fleet.agents() == Counter({f"{fleet.prefix}-{index:03d}": 1 for index in range(20)})
    assert fleet.shared_copies() == 1
    assert find_lock(IdentityLocks(fleet.client), fleet.lock_id) is None


def test_an_apply_with_a_lock_timeout_waits_while_the_lock_is_held_then_applies(
    make_fleet: Callable[[int], Fleet],
) -> None:
    fleet = make_fleet(5)
    with LettaClient(fleet.base_url) as own, held_lock(IdentityLocks(own), fleet.lock_id) as lock:
        waiting = fleet.start("--lock-timeout", "2m")
        assert waiting.stderr is not None
        message = waiting.stderr.readline()
        assert message.startswith("Waiting up to 120 s for the lock.") and lock.held.holder in message
        assert waiting.poll() is None and fleet.agents() == Counter()  # it plans only once it has the lock

    assert waiting.wait(120) == 0
    assert set(fleet.agents().values()) == {1} and len(fleet.agents()) == 5
    assert fleet.shared_copies() == 1


def test_the_lock_of_a_killed_apply_blocks_until_it_expires_then_is_taken_over(
    make_fleet: Callable[[int], Fleet],
) -> None:
    fleet = make_fleet(10)
    killed = fleet.start("--parallelism", "1")
    read_until_created(killed, 2)
    killed.kill()
    killed.wait(30)
    stale = find_lock(IdentityLocks(fleet.client), fleet.lock_id)
    assert stale is not None and f"pid {killed.pid}" in stale.holder

    refused = fleet.run()
    assert refused.returncode == 1 and f"pid {killed.pid}" in refused.stderr

    # Nobody renews a killed apply's lock: two minutes later it has expired. Age it instead of waiting.
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    fleet.client.patch(f"{IDENTITIES}{stale.server_id}", json={"properties": [_string("expires_at", past)]})
    resumed = fleet.run()

    assert resumed.returncode == 0, resumed.stderr
    assert set(fleet.agents().values()) == {1} and len(fleet.agents()) == 10
    assert find_lock(IdentityLocks(fleet.client), fleet.lock_id) is None
    assert fleet.run("--detailed-exitcode", command="plan").returncode == 0


def test_force_unlock_asks_first_then_releases_exactly_the_lock_shown(make_fleet: Callable[[int], Fleet]) -> None:
    fleet = make_fleet(1)
    with LettaClient(fleet.base_url) as own, held_lock(IdentityLocks(own), fleet.lock_id) as lock:
        declined = fleet.run(fleet.lock_id, command="force-unlock", input="n\n")
        assert declined.returncode == 1
        assert lock.held.holder in declined.stdout
        assert find_lock(IdentityLocks(fleet.client), fleet.lock_id) is not None

        confirmed = fleet.run(fleet.lock_id, command="force-unlock", input="y\n")
        assert confirmed.returncode == 0 and f"Released the lock {fleet.lock_id!r}" in confirmed.stdout
        assert find_lock(IdentityLocks(fleet.client), fleet.lock_id) is None

        assert fleet.run().returncode == 0  # the fleet can be applied again at once

    unknown = fleet.run("no-such-lock", "--force", command="force-unlock")
    assert unknown.returncode == 1 and "no lock named 'no-such-lock'" in unknown.stderr


def test_ctrl_c_stops_starting_changes_reports_what_is_left_and_the_next_apply_converges(
    make_fleet: Callable[[int], Fleet],
) -> None:
    fleet = make_fleet(40)
    applying = fleet.start("--parallelism", "1")
    read_until_created(applying, 4)
    applying.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    code = applying.wait(60)
    out, err = applying.communicate()

    assert code == 130
    assert time.monotonic() - signalled < 10
    after_exit = len(fleet.agents())
    assert after_exit <= 4 + 1  # what landed before the signal, and the one change in flight
    assert "Apply interrupted:" in out and "Not attempted (" in out and "Applied (" in out
    assert "Run `lettafleet apply` again to finish: it picks up what is left." in out
    assert "Aborted" not in out + err and "Traceback" not in err
    assert find_lock(IdentityLocks(fleet.client), fleet.lock_id) is None

    finished = fleet.run()
    assert finished.returncode == 0, finished.stderr
    assert set(fleet.agents().values()) == {1} and len(fleet.agents()) == 40
    assert fleet.shared_copies() == 1
    replanned = fleet.run("--detailed-exitcode", command="plan")
    assert replanned.returncode == 0 and "No changes." in replanned.stdout


def test_a_second_ctrl_c_stops_at_once_and_still_releases_the_lock(
    make_fleet: Callable[[int], Fleet], fault_proxy: FaultProxy
) -> None:
    fleet = make_fleet(5)
    # Through a server that takes 4 s to create an agent, a change is surely in flight when Ctrl-C is pressed twice.
    fault_proxy.faults = Faults(slow_collection="agents", slow_seconds=4.0)
    fleet.base_url = fault_proxy.url
    applying = fleet.start("--parallelism", "1")
    assert applying.stderr is not None
    read_until_created(applying, 1)
    applying.send_signal(signal.SIGINT)
    while "Interrupted: no new change starts" not in (line := applying.stderr.readline()):
        assert line, "the apply ended before it took the first Ctrl-C"
    applying.send_signal(signal.SIGINT)  # as a person would: after seeing the first one taken
    signalled = time.monotonic()

    assert applying.wait(30) == 130
    assert time.monotonic() - signalled < 3  # not waiting for the 4 s create in flight
    _, err = applying.communicate()
    assert "Interrupted again: stopping at once." in err and "Traceback" not in err
    assert find_lock(IdentityLocks(fleet.client), fleet.lock_id) is None
    assert len(fleet.agents()) < 5
    assert "may land in the next seconds: wait a little before applying again" in err
    # As the message asks: the create abandoned in flight reaches the server (after the proxy's 4 s), then resume.
    deadline = time.monotonic() + 15
    while fault_proxy.counts.forwarded_to[("POST", "agents")] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    while len(fleet.agents()) < fault_proxy.counts.forwarded_to[("POST", "agents")] and time.monotonic() < deadline:
        time.sleep(0.2)
    fault_proxy.faults = Faults()
    assert fleet.run().returncode == 0
    assert set(fleet.agents().values()) == {1} and len(fleet.agents()) == 5


def _string(key: str, value: str) -> dict[str, str]:
    return {"key": key, "value": value, "type": "string"}
