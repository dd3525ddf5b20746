"""`apply --manifest FILE` on the real dev server: the id of every resource, checked over the REST API, what the
apply did to each, also when it failed partway or was interrupted, and never a secret's value."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import FaultProxy, Faults
from tests.integration.cli import cli
from tests.integration.test_apply_lock import Fleet, make_fleet, read_until_created  # noqa: F401  (a fixture)

SECRET_VALUE = "manifest-secret-value-" + uuid.uuid4().hex


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def server_agents(client: LettaClient, prefix: str) -> dict[str, str]:
    """Name -> id of the fleet's agents, read over the REST API."""
    return {a["name"]: a["id"] for a in client.list_all("/v1/agents/") if a["name"].startswith(prefix)}


def test_a_manifest_names_every_agent_and_block_by_its_server_id_and_holds_no_secret(
    make_fleet: Callable[[int], Fleet],  # noqa: F811  (the fixture imported above)
    client: LettaClient,
    tmp_path: Path,
) -> None:
    fleet = make_fleet(3)
    text = fleet.path.read_text(encoding="utf-8")
    fleet.path.write_text(text + "    secrets: {API_TOKEN: {from_env: MANIFEST_TOKEN}}\n", encoding="utf-8")
    os.environ["MANIFEST_TOKEN"] = SECRET_VALUE
    try:
        target = tmp_path / "out" / "applied.json"
        target.parent.mkdir()
        applied = cli(fleet.base_url, "apply", "-f", str(fleet.path), "--manifest", str(target))
        assert applied.exit_code == 0, applied.output + applied.stderr
        document = manifest_of(target)
        assert SECRET_VALUE not in target.read_text(encoding="utf-8")
        assert document["format_version"] == 1 and document["status"] == "complete"
        assert document["agents"] == server_agents(client, fleet.prefix)
        [shared] = client.list_all("/v1/blocks/", label=fleet.shared)
        by_address = {entry["address"]: entry for entry in document["resources"]}
        assert by_address[f"shared_block.{fleet.shared}"]["id"] == shared["id"]
        assert {entry["status"] for entry in document["resources"]} == {"applied"}
        assert not list(target.parent.glob(".*.tmp"))  # written through a temporary file, which is gone

        again = cli(fleet.base_url, "apply", "-f", str(fleet.path), "--manifest")
        assert again.exit_code == 0, again.output + again.stderr
        unchanged = manifest_of(fleet.path.with_suffix(".manifest.json"))
        assert unchanged["agents"] == document["agents"]
        assert {entry["status"] for entry in unchanged["resources"]} == {"unchanged"}
    finally:
        del os.environ["MANIFEST_TOKEN"]


def test_an_apply_that_fails_partway_writes_what_it_did_marked_failed(
    make_fleet: Callable[[int], Fleet],  # noqa: F811
    client: LettaClient,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    fleet = make_fleet(6)
    fault_proxy.faults = Faults(seed=5, fail=0.3, fail_statuses=(500,))
    target = tmp_path / "manifest.json"
    broken = cli(fault_proxy.url, "apply", "-f", str(fleet.path), "--manifest", str(target), "--no-lock")
    assert broken.exit_code == 1
    document = manifest_of(target)
    assert document["status"] == "failed"
    statuses = {entry["address"]: entry["status"] for entry in document["resources"]}
    assert "failed" in statuses.values() and "applied" in statuses.values()
    on_server = server_agents(client, fleet.prefix)
    for entry in document["resources"]:
        if entry["kind"] == "agent" and entry["status"] == "applied":
            assert on_server[entry["name"]] == entry["id"]


def test_an_interrupted_apply_writes_what_it_did_so_far_marked_interrupted(
    make_fleet: Callable[[int], Fleet],  # noqa: F811
    client: LettaClient,
    tmp_path: Path,
) -> None:
    fleet = make_fleet(20)
    target = tmp_path / "manifest.json"
    applying = fleet.start("--parallelism", "1", "--manifest", str(target))
    read_until_created(applying, 3)
    applying.send_signal(signal.SIGINT)
    assert applying.wait(60) == 130
    applying.communicate()

    document = manifest_of(target)
    assert document["status"] == "interrupted"
    on_server = server_agents(client, fleet.prefix)
    agents = [entry for entry in document["resources"] if entry["kind"] == "agent"]
    applied = {entry["name"]: entry["id"] for entry in agents if entry["status"] == "applied"}
    assert len(applied) >= 3 and applied == {name: on_server[name] for name in applied}
    left = [entry for entry in agents if entry["status"] == "not attempted"]
    assert left and all(entry["id"] is None and entry["name"] not in on_server for entry in left)
    assert document["agents"] == on_server
