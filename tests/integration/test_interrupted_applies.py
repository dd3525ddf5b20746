"""Applies killed (SIGKILL) or stopped (Ctrl-C) at one exact request, held at the fault proxy in front of the real
dev server, at every phase: a create, a record, a rename, a prune, a recompile. The next plan shows what is left
(`--detailed-exitcode` 2), the next apply finishes it, nothing is deleted that the file still declares, and a
line dropped later removes exactly what it made."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lettafleet.core.engine.locking import default_lock_id, find_lock
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.locks import IdentityLocks
from tests.fakes.fault_proxy import FaultProxy, Faults, Hold
from tests.integration.cli import cli, ok

LETTAFLEET = str(Path(sys.executable).with_name("lettafleet"))
RECORD_PATCH = dict(method="PATCH", path=r"^/v1/agents/[^/]+/?$", body="lettafleet_applied")


@dataclass(frozen=True)
class Shape:
    """One agent as a fleet file declares it: its block, its conversations, its prompt and `moved:` entries."""

    block: str = "notes"
    extra_block: str | None = None
    conversations: tuple[str, ...] = ("Ticket 1",)
    prompt: str = "You help."
    moved: tuple[tuple[str, str], ...] = ()


@dataclass
class Agent:
    """One unique agent name, its fleet file, and how to look at what the server holds for it."""

    name: str
    path: Path
    client: LettaClient

    def write(self, shape: Shape) -> Path:
        blocks = [shape.block, *([shape.extra_block] if shape.extra_block else [])]
        lines = [
            "agents:",
            f"  - name: {self.name}",
            "    llm_config: {model: letta/letta-free, context_window: 16000}",
            "    embedding: letta/letta-free",
            f"    system_prompt: {{value: {shape.prompt}}}",
            "    memory_blocks:",
            *(f"      - {{name: {label}, limit: 500, value: seeded}}" for label in blocks),
            "    conversations:" + ("" if shape.conversations else " []"),
            *(f'      - summary: "{summary}"' for summary in shape.conversations),
        ]
        if shape.moved:
            lines.append("moved:")
            for source, target in shape.moved:
                lines += [f"  - from: '{self.at(source)}'", f"    to: '{self.at(target)}'"]
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.path

    def at(self, own: str) -> str:
        return f"agent.{self.name}.{own}" if own else f"agent.{self.name}"

    def live(self) -> dict[str, Any]:
        [agent] = self.client.list_all("/v1/agents/", name=self.name)
        return agent

    def conversations(self) -> dict[str, str]:
        """Summary -> id of the agent's conversations."""
        listed = self.client.list_all("/v1/conversations/", agent_id=self.live()["id"])
        return {conversation["summary"]: conversation["id"] for conversation in listed}

    def blocks(self) -> dict[str, str]:
        return {block["label"]: block["id"] for block in self.live()["blocks"]}

    def record(self) -> list[dict[str, Any]]:
        return list((self.live().get("metadata") or {}).get("lettafleet_applied") or [])


@pytest.fixture
def agent(client: LettaClient, tmp_path: Path) -> Iterator[Agent]:
    made = Agent(f"cut-{uuid.uuid4().hex[:8]}", tmp_path / "fleet.yaml", client)
    yield made
    for found in client.list_all("/v1/agents/", name=made.name):
        blocks = [block["id"] for block in found.get("blocks") or []]
        client.delete(f"/v1/agents/{found['id']}")
        for block_id in blocks:
            client.delete(f"/v1/blocks/{block_id}")


def start_apply(base_url: str, path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [LETTAFLEET, "apply", "-f", str(path), "--no-lock", "--parallelism", "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LETTA_BASE_URL": base_url, "PYTHONUNBUFFERED": "1"},
    )


def killed_at(proxy: FaultProxy, hold: Hold, path: Path, *args: str) -> None:
    """Apply `path` through the proxy, SIGKILL it while `hold` waits at the proxy, then let the request go on."""
    proxy.killed_while_held(hold, lambda: start_apply(proxy.url, path, *args))


def interrupted_at(proxy: FaultProxy, hold: Hold, path: Path) -> tuple[int, str, str]:
    """Apply `path` through the proxy and press Ctrl-C while `hold` waits; release it once the apply took the
    Ctrl-C. Returns its exit code, output and errors."""
    proxy.faults = Faults(hold=hold)
    applying = start_apply(proxy.url, path)
    assert applying.stderr is not None
    try:
        proxy.wait_until_held()
        applying.send_signal(signal.SIGINT)
        while "Interrupted: no new change starts" not in (line := applying.stderr.readline()):
            assert line, "the apply ended before it took the Ctrl-C"
    finally:
        proxy.release()
    code = applying.wait(120)
    out, err = applying.communicate()
    proxy.faults = Faults()
    return code, out, err


def detailed_exitcode(base_url: str, path: Path, *args: str) -> int:
    return cli(base_url, "plan", "-f", str(path), "--detailed-exitcode", *args).exit_code


def changes(base_url: str, path: Path) -> dict[str, dict[str, Any]]:
    plan = json.loads(ok(cli(base_url, "plan", "-f", str(path), "-o", "json")))
    return {change["address"]: change for change in plan["changes"] if change["action"] != "no-op"}


@dataclass(frozen=True)
class Phase:
    """Where an apply is cut: the file applied first (None: nothing), the file whose apply is cut, the request
    held, and what becomes of it once the apply is dead."""

    name: str
    before: Shape | None
    after: Shape
    hold: dict[str, Any]
    args: tuple[str, ...] = field(default=())


MOVES = (("block.notes", "block.journal"), ('conversation["Ticket 1"]', 'conversation["Ticket 1 (billing)"]'))
RENAMED = Shape(block="journal", conversations=("Ticket 1 (billing)",), moved=MOVES)

PHASES = [
    # A new agent's conversation is created as the apply dies; the record is never written.
    Phase("create", None, Shape(), dict(method="POST", path=r"^/v1/conversations/?$", then="forward")),
    # Everything landed; the record of a new agent is lost on its way.
    Phase("record of a new agent", None, Shape(), dict(**RECORD_PATCH, then="drop")),
    # An existing agent gets a second conversation; its record after it is lost (the first PATCH is its intent).
    Phase(
        "record of an existing agent",
        Shape(),
        Shape(conversations=("Ticket 1", "Ticket 2")),
        dict(**RECORD_PATCH, nth=2, then="drop"),
    ),
    # The renames landed; the record naming the new addresses is lost.
    Phase("record after renames", Shape(), RENAMED, dict(**RECORD_PATCH, then="drop")),
    # The apply dies while the conversation's rename is on its way; the rename lands after.
    Phase(
        "rename",
        Shape(),
        RENAMED,
        dict(method="PATCH", path=r"^/v1/conversations/[^/]+/?$", then="forward"),
    ),
    # A pruned block is deleted as the apply dies.
    Phase(
        "prune",
        Shape(extra_block="scratch"),
        Shape(),
        dict(method="DELETE", path=r"^/v1/blocks/[^/]+/?$", then="forward"),
        ("--prune",),
    ),
    # The system prompt changed; the recompile of the agent's conversation never reaches the server.
    Phase(
        "recompile",
        Shape(),
        Shape(prompt="You help briefly."),
        dict(method="POST", path=r"^/v1/conversations/[^/]+/recompile$", then="drop"),
    ),
]


def finished_and_checked(letta_server: str, agent: Agent, phase: Phase) -> None:
    """After the cut: the next apply finishes, then the plan is empty, and what the file declares is there once,
    each recorded once by its id."""
    applied = cli(letta_server, "apply", "-f", str(agent.path), *phase.args)
    assert applied.exit_code == 0, applied.output
    assert detailed_exitcode(letta_server, agent.path, *phase.args) == 0
    assert sorted(agent.conversations()) == sorted(phase.after.conversations)
    blocks = agent.blocks()
    assert phase.after.block in blocks and (phase.after.extra_block is None) == ("scratch" not in blocks)
    record = agent.record()
    ids = [entry.get("id") for entry in record if entry.get("id")]
    assert len(ids) == len(set(ids)), record  # one entry per id: never an old address beside the new one
    declared = {f"block.{phase.after.block}", *(_conversation(s) for s in phase.after.conversations)}
    assert declared <= {entry["address"] for entry in record}, record


def applied_before(letta_server: str, agent: Agent, phase: Phase) -> dict[str, str]:
    """Apply the phase's first file, if any; the conversations it made, by summary."""
    if phase.before is None:
        return {}
    ok(cli(letta_server, "apply", "-f", str(agent.write(phase.before))))
    return agent.conversations()


def _conversation(summary: str) -> str:
    return f'conversation["{summary}"]' if " " in summary else f"conversation.{summary}"


@pytest.mark.parametrize("phase", PHASES, ids=[phase.name for phase in PHASES])
def test_an_apply_killed_at_any_phase_is_finished_by_the_next_apply_which_loses_nothing(
    letta_server: str, agent: Agent, fault_proxy: FaultProxy, phase: Phase
) -> None:
    kept = applied_before(letta_server, agent, phase)

    killed_at(fault_proxy, Hold(**phase.hold), agent.write(phase.after), *phase.args)

    left = changes(letta_server, agent.path)
    if phase.name != "prune":  # a delete that landed leaves nothing to do
        assert agent.at("") in left, f"the plan does not show what the killed apply left: {left}"
        assert detailed_exitcode(letta_server, agent.path, *phase.args) == 2
    assert not [a for a, c in left.items() if c["action"] == "delete" and "conversation" in a], left
    finished_and_checked(letta_server, agent, phase)
    # Nothing the file declares was made anew: a kept conversation keeps its id, under its new summary if moved.
    renamed = dict(zip(("Ticket 1",), phase.after.conversations, strict=False)) if phase.after.moved else {}
    for summary, conversation_id in kept.items():
        if summary in phase.after.conversations or summary in renamed:
            assert agent.conversations()[renamed.get(summary, summary)] == conversation_id
    # What the killed apply made is recorded: dropping its line removes it.
    fewer = Shape(block=phase.after.block, conversations=phase.after.conversations[:-1], prompt=phase.after.prompt)
    gone = phase.after.conversations[-1]
    removal = changes(letta_server, agent.write(fewer)).get(agent.at(_conversation(gone)))
    assert removal is not None and removal["action"] == "delete", "the conversation the killed apply made is lost"
    ok(cli(letta_server, "apply", "-f", str(agent.path)))
    assert gone not in agent.conversations()


CTRL_C_PHASES = [phase for phase in PHASES if phase.name in ("create", "record of a new agent", "recompile")]


@pytest.mark.parametrize("phase", CTRL_C_PHASES, ids=[phase.name for phase in CTRL_C_PHASES])
def test_ctrl_c_while_the_last_request_is_in_flight_exits_130_and_says_what_is_left(
    letta_server: str, agent: Agent, fault_proxy: FaultProxy, phase: Phase
) -> None:
    applied_before(letta_server, agent, phase)
    forwarded = Hold(**{**phase.hold, "then": "forward"})  # it lands: nothing is left but what the stop skipped

    code, out, err = interrupted_at(fault_proxy, forwarded, agent.write(phase.after))

    assert code == 130, out + err
    assert "Apply interrupted" in out and "Apply complete" not in out, out
    assert "Traceback" not in err
    assert detailed_exitcode(letta_server, agent.path) == 0  # in flight, it finished, and its record was written
    finished_and_checked(letta_server, agent, phase)


def test_a_recompile_whose_answer_is_lost_is_owed_and_the_next_apply_does_it(
    letta_server: str, agent: Agent, fault_proxy: FaultProxy
) -> None:
    ok(cli(letta_server, "apply", "-f", str(agent.write(Shape()))))
    recompile = r"^/v1/conversations/[^/]+/recompile$"
    fault_proxy.faults = Faults(hold=Hold("POST", recompile, then="lose-answer"))
    releasing = threading.Thread(target=lambda: (fault_proxy.wait_until_held(), fault_proxy.release()))
    releasing.start()

    broken = cli(fault_proxy.url, "apply", "-f", str(agent.write(Shape(prompt="You help briefly."))))
    releasing.join(60)

    assert broken.exit_code == 1, broken.output
    assert "conversations not recompiled" in broken.output
    assert "Run apply again: it recompiles them" in broken.output
    owed = changes(letta_server, agent.path)[agent.at("")]
    assert owed["before"]["recompile"].startswith("owed") and owed["after"]["recompile"] == "done"
    fault_proxy.faults = Faults()
    before = fault_proxy.counts.forwarded_to[("POST", "conversations")]
    ok(cli(fault_proxy.url, "apply", "-f", str(agent.path)))
    assert fault_proxy.counts.forwarded_to[("POST", "conversations")] == before + 1  # the recompile, once
    assert detailed_exitcode(letta_server, agent.path) == 0


def test_ctrl_c_stops_github_apply_as_it_stops_apply_and_the_fleets_after_it_are_not_applied(
    letta_server: str, client: LettaClient, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    first = Agent(f"cut-{uuid.uuid4().hex[:8]}", tmp_path / "a.yaml", client)
    second = Agent(f"cut-{uuid.uuid4().hex[:8]}", tmp_path / "b.yaml", client)
    first.write(Shape())
    second.write(Shape())
    (tmp_path / "event.json").write_text('{"after": "0123456789abcdef"}')
    env = {
        **os.environ,
        "LETTA_BASE_URL": fault_proxy.url,
        "PYTHONUNBUFFERED": "1",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REPOSITORY": "acme/fleet",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_SHA": "0123456789abcdef",
    }
    env.pop("GITHUB_TOKEN", None)
    fault_proxy.faults = Faults(hold=Hold("POST", r"^/v1/conversations/?$"))
    arguments = ["github", "apply", "-f", "a.yaml", "-f", "b.yaml", "--no-comment", "--apply-unreviewed-changes"]
    applying = subprocess.Popen(
        [LETTAFLEET, *arguments, "--parallelism", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        fault_proxy.wait_until_held()
        applying.send_signal(signal.SIGINT)
        assert applying.stderr is not None
        while "Interrupted: no new change starts" not in (line := applying.stderr.readline()):
            assert line, "github apply ended before it took the Ctrl-C"
    finally:
        fault_proxy.release()
    code = applying.wait(120)
    out, err = applying.communicate()
    try:
        assert code == 130, out + err
        assert "Apply interrupted" in out and "Traceback" not in err
        assert "b.yaml: not applied: Ctrl-C stopped the job first" in out + err
        assert not client.list_all("/v1/agents/", name=second.name)
        assert find_lock(IdentityLocks(client), default_lock_id(first.path)) is None
        assert detailed_exitcode(letta_server, first.path) == 0  # what was in flight landed, and is recorded
    finally:
        for agent in (first, second):
            for found in client.list_all("/v1/agents/", name=agent.name):
                client.delete(f"/v1/agents/{found['id']}")
