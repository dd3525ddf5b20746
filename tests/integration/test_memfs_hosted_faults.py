"""Git faults on hosted Letta's git-backed memory, through the stand-in (tests/fakes/hosted_git_memory.py, a fault
proxy serving git itself) in front of the real dev server: a push refused or cut off, a clone cut off, the
stand-in killed, all while an apply flips an agent from blocks to git-backed memory. Each fails that agent's apply
loudly (no traceback, no key in any form), loses nothing, and the next apply converges to "No changes"."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import Result

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import Faults, Hold, Refusal
from tests.fakes.hosted_git_memory import HostedGitMemoryStandIn
from tests.integration.hosted_memfs_fleet import (
    FILES,
    HANDBOOK,
    KEY,
    agent_named,
    apply_in_background,
    assert_no_changes,
    blocks_of,
    ok,
    run,
    write_fleet,
)

pytest_plugins = ["tests.integration.hosted_memfs_fleet"]

KEY_FORMS = (KEY, base64.b64encode(f"letta:{KEY}".encode()).decode(), base64.b64encode(KEY.encode()).decode())
BLOCK_FILE = "system/handbook.md"


def git_route(agent_id: str, service: str) -> str:
    return rf"^/v1/git/{agent_id}/state\.git/{service}$"


PUSH_FAILED = "The server failed (HTTP 500): run the apply again once it answers"
NO_ANSWER = "The connection broke before the server answered: run the apply again"
# What strikes the struck agent's git requests, and what its apply then says (each HTTP status's words, 401 and 403
# among them, are tests/plugins/backends/letta_v1/test_git_memory.py's: the same path as the 500 here).
FAULTS: dict[str, tuple[Callable[[str], Faults], str]] = {
    "push refused 500": (
        lambda agent: Faults(refuse=1.0, refusals=(Refusal(500),), only=git_route(agent, "git-receive-pack")),
        PUSH_FAILED,
    ),
    "connection dropped during a push": (
        lambda agent: Faults(drop=1.0, only=git_route(agent, "git-receive-pack")),
        NO_ANSWER,
    ),
    "connection dropped during a clone": (
        lambda agent: Faults(drop=1.0, only=git_route(agent, "git-upload-pack")),
        NO_ANSWER,
    ),
}


def assert_loud_and_clean(result: Result) -> str:
    """Failed, without a traceback, and without the key in any form."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for form in (*KEY_FORMS, quote(KEY, safe="")):
        assert form not in result.output
    return result.output


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "failed" in line or "error" in line.lower()]


def assert_converged(hosted: HostedGitMemoryStandIn, client: LettaClient, fleet: Path, *agents: str) -> None:
    """Every file in each agent's repository once, every block once with its value, and a plan of no changes."""
    for name in agents:
        agent = agent_named(client, name)
        assert set(hosted.files_at_head(agent["id"])) == FILES | {BLOCK_FILE}
        labels = [block["label"] for block in client.get(f"/v1/agents/{agent['id']}/core-memory/blocks")]
        assert len(labels) == len(set(labels)), labels
        assert blocks_of(client, agent["id"])["system/handbook"] == HANDBOOK
    assert_no_changes(hosted, fleet)


def handbook_kept(hosted: HostedGitMemoryStandIn, client: LettaClient, agent_id: str) -> bool:
    """The block's value is still somewhere: a block (under either label) or the repository."""
    values = blocks_of(client, agent_id)
    in_repository = HANDBOOK in hosted.files_at_head(agent_id).get(BLOCK_FILE, "")
    return HANDBOOK in (values.get("handbook"), values.get("system/handbook")) or in_repository


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_git_fault_during_a_flip_fails_that_agent_loudly_loses_nothing_and_the_next_apply_converges(
    fault, hosted, client, names, tmp_path
):
    struck, spared = names
    ok(run(hosted, "apply", "--no-lock", "-f", str(write_fleet(tmp_path, [(struck, "blocks"), (spared, "blocks")]))))
    struck_id = agent_named(client, struck)["id"]
    memfs = write_fleet(tmp_path, [(struck, "memfs"), (spared, "memfs")], "memfs.yaml")

    faults, advice = FAULTS[fault]
    hosted.faults = faults(struck_id)
    broken = run(hosted, "apply", "--no-lock", "-f", str(memfs))
    hosted.faults = Faults()

    output = assert_loud_and_clean(broken)
    said = failed_lines(output)
    assert said and all(spared not in line for line in said), output
    assert any(struck in line for line in said) and advice in output, output
    assert not [line for line in output.splitlines() if line.startswith(("fatal:", "send-pack:"))], output
    assert hosted.counts.refused or hosted.counts.dropped  # the fault did strike
    assert handbook_kept(hosted, client, struck_id)
    assert set(hosted.files_at_head(agent_named(client, spared)["id"])) == FILES | {BLOCK_FILE}

    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))
    assert_converged(hosted, client, memfs, struck, spared)


def test_the_hosted_server_killed_during_a_flip_fails_the_apply_loudly_and_the_next_apply_converges(
    hosted, client, names, tmp_path
):
    struck, _ = names
    ok(run(hosted, "apply", "--no-lock", "-f", str(write_fleet(tmp_path, [(struck, "blocks")]))))
    struck_id = agent_named(client, struck)["id"]
    memfs = write_fleet(tmp_path, [(struck, "memfs")], "memfs.yaml")
    # The server dies while the flip's first push is on its way: it never lands.
    hosted.faults = Faults(hold=Hold("POST", git_route(struck_id, "git-receive-pack"), then="drop"))
    applying = apply_in_background(hosted.url, memfs)
    try:
        hosted.wait_until_held()
        hosted.die()
    finally:
        hosted.release()
        output, _ = applying.communicate(timeout=300)

    assert applying.returncode == 1, output
    assert "Traceback" not in output and not [form for form in KEY_FORMS if form in output]
    assert struck in output and NO_ANSWER in output  # the push the death cut off
    hosted.revive()
    assert handbook_kept(hosted, client, struck_id)

    ok(run(hosted, "apply", "--no-lock", "-f", str(memfs)))
    assert_converged(hosted, client, memfs, struck)
