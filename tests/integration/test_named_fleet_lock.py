"""Two copies of one named fleet's file in two folders (not git checkouts), applied at once against the real
server: the lock is the fleet name's, so exactly one writes and no agent or shared block is made twice."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lettafleet.core.engine.locking import find_lock
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.locks import IDENTITIES, KEY_PREFIX, IdentityLocks

LETTAFLEET = str(Path(sys.executable).with_name("lettafleet"))
SIZE = 12


class NamedFleet:
    """One named fleet of SIZE agents sharing one block, its file copied into two folders."""

    def __init__(self, tmp_path: Path, base_url: str, client: LettaClient) -> None:
        self.prefix = f"nl{uuid.uuid4().hex[:8]}"
        self.name, self.shared = f"fleet-{self.prefix}", f"policies_{self.prefix}"
        self.base_url, self.client = base_url, client
        lines = [f"fleet: {self.name}", "shared_blocks:", f"  - {{name: {self.shared}, value: be kind}}", "agents:"]
        for index in range(SIZE):
            lines += [
                f"  - name: {self.prefix}-{index:02d}",
                "    llm_config: {model: letta/letta-free, context_window: 32000}",
                "    embedding: letta/letta-free",
                "    system_prompt: {value: You help.}",
                "    memory_blocks: [{name: notes, value: none yet}]",
                f"    shared_blocks: [{self.shared}]",
            ]
        self.paths = []
        for folder in ("laptop", "elsewhere/copy"):
            (tmp_path / folder).mkdir(parents=True)
            self.paths.append(tmp_path / folder / "fleet.yaml")
            self.paths[-1].write_text("\n".join(lines) + "\n", encoding="utf-8")

    def apply(self, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LETTAFLEET, "apply", "-f", str(path), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "LETTA_BASE_URL": self.base_url},
        )

    def agents(self) -> Counter[str]:
        return Counter(a["name"] for a in self.client.list_all("/v1/agents/") if a["name"].startswith(self.prefix))

    def remove(self) -> None:
        doomed = [
            f"/v1/agents/{a['id']}" for a in self.client.list_all("/v1/agents/") if a["name"].startswith(self.prefix)
        ]
        doomed += [f"/v1/blocks/{block['id']}" for block in self.client.list_all("/v1/blocks/", label=self.shared)]
        lock = find_lock(IdentityLocks(self.client), f"fleet:{self.name}")
        doomed += [f"{IDENTITIES}{lock.server_id}"] if lock else []
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.client.delete, doomed))


@pytest.fixture
def fleet(letta_server: str, client: LettaClient, tmp_path: Path) -> Iterator[NamedFleet]:
    made = NamedFleet(tmp_path, letta_server, client)
    yield made
    made.remove()


@pytest.mark.parametrize(
    ("options", "codes"),
    [((), [0, 1]), (("--lock-timeout", "3m"), [0, 0])],
    ids=["the-second-stops-at-once", "the-second-waits-then-finds-nothing-to-do"],
)
def test_two_copies_of_a_named_fleet_applied_at_once_from_two_folders_make_each_agent_once(
    fleet: NamedFleet, options: tuple[str, ...], codes: list[int]
) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda path: fleet.apply(path, *options), fleet.paths))

    assert sorted(result.returncode for result in results) == codes, [r.stderr for r in results]
    assert fleet.agents() == Counter({f"{fleet.prefix}-{index:02d}": 1 for index in range(SIZE)})
    assert len(fleet.client.list_all("/v1/blocks/", label=fleet.shared)) == 1
    if codes == [0, 1]:
        [refused] = [result for result in results if result.returncode == 1]
        assert f"Lock 'fleet:{fleet.name}' is held by" in refused.stderr
        assert f"lettafleet force-unlock fleet:{fleet.name}" in refused.stderr
    else:
        assert any("No changes." in result.stdout for result in results)
    assert fleet.client.get(IDENTITIES, identifier_key=f"{KEY_PREFIX}fleet:{fleet.name}") == []  # released
    for path in fleet.paths:  # either copy now plans nothing
        planned = subprocess.run(
            [LETTAFLEET, "plan", "-f", str(path), "--detailed-exitcode"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LETTA_BASE_URL": fleet.base_url},
        )
        assert planned.returncode == 0, planned.stdout + planned.stderr
