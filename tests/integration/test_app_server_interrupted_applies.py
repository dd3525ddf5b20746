"""An apply on the App Server killed (SIGKILL of its process group) at the exact request of a rename (`moved:`)
or a removal (`--prune`), or at the record write that follows it, held at our WebSocket proxy in front of the
real dev App Server: the next plan shows what is left, the next apply finishes it, and then nothing the file
declares was made twice, nothing was lost, and the agent's record lists each thing once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.ws_fault_proxy import WsFault, running_ws_fault_proxy
from tests.integration import test_app_server_plan_apply as plan_apply

pytest_plugins = ["tests.fakes.llm_server"]

MODEL = "openai-compatible/fake-echo-model"
LETTAFLEET = str(Path(sys.executable).with_name("lettafleet"))
RECORD_WRITE = ("secret_apply", "LETTAFLEET_RECORD")
BLOCK_VALUES = {"persona": "I help.", "scratch": "Notes.", "notes": "Notes."}  # a rename keeps the value

app_server = plan_apply.app_server  # the dev App Server with the LLM stand-in connected
suffix = plan_apply.suffix  # unique names, and their agents deleted after each test


@dataclass(frozen=True)
class Fleet:
    """One agent with two blocks, two conversations and two `memory:` files, and a second agent: what each
    phase's fleet file declares."""

    suffix: str
    name: str = "kl"
    blocks: tuple[str, ...] = ("persona", "scratch")
    conversations: tuple[str, ...] = ("Ticket 1", "Ticket 2")
    files: tuple[str, ...] = ("guide.md", "tips.md")
    second: bool = True
    moved: str = ""  # the `moved:` entry, from and to

    @property
    def agent(self) -> str:
        return f"{self.name}-{self.suffix}"

    @property
    def agents(self) -> list[str]:
        return [self.agent] + [f"kl2-{self.suffix}"] * self.second

    def write(self, path: Path) -> Path:
        moved = f"moved:\n  - from: '{self.moved[0]}'\n    to: '{self.moved[1]}'\n" if self.moved else ""
        agents = [self._agent(self.agent, full=True)] + [self._agent(f"kl2-{self.suffix}")] * self.second
        path.write_text(f"fleet: kl-{self.suffix}\n{moved}agents:\n" + "".join(agents))
        return path

    def _agent(self, name: str, *, full: bool = False) -> str:
        text = (
            f"  - name: {name}\n    description: helps\n"
            f"    llm_config:\n      model: {MODEL}\n      context_window: 128000\n"
            "    system_prompt:\n      value: You help.\n"
        )
        if not full:
            return text
        return (
            text
            + "    memory_blocks:\n"
            + "".join(
                f"      - name: {label}\n        description: the block\n        value: {BLOCK_VALUES[label]}\n"
                "        agent_owned: false\n"
                for label in self.blocks
            )
            + "    conversations:\n"
            + "".join(f"      - summary: {json.dumps(summary)}\n" for summary in self.conversations)
            + "    memory:\n      mode: memfs\n      files:\n"
            + "".join(
                f"        - to: {path}\n          value: {json.dumps(self.file_text(path))}\n" for path in self.files
            )
        )

    @staticmethod
    def file_text(path: str) -> str:
        return f"---\nname: {path[:-3]}\ndescription: the {path[:-3]}\n---\nRead {path}.\n"


@dataclass(frozen=True)
class Phase:
    """A rename or a removal: the fleet after it, the request that makes it (type and a piece of its JSON), the
    apply's options, and the part of the next plan that shows it still owed."""

    after: dict[str, Any]
    request: tuple[str, str]
    options: tuple[str, ...] = ()


PHASES = {
    "agent-rename": Phase(
        {"name": "kl-new", "moved": ("agent.kl-{s}", "agent.kl-new-{s}")}, ("agent_update", '"kl-new-')
    ),
    "conversation-move": Phase(
        {
            "conversations": ("Ticket 1 (billing)", "Ticket 2"),
            "moved": ('agent.kl-{s}.conversation["Ticket 1"]', 'agent.kl-{s}.conversation["Ticket 1 (billing)"]'),
        },
        ("conversation_update", "Ticket 1 (billing)"),
    ),
    "block-rename": Phase(
        {"blocks": ("persona", "notes"), "moved": ("agent.kl-{s}.block.scratch", "agent.kl-{s}.block.notes")},
        ("write_memory_file", "notes.md"),
    ),
    # The App Server has no move: the new label's file is written, then the old one deleted; killed between.
    "block-rename-old-file-delete": Phase(
        {"blocks": ("persona", "notes"), "moved": ("agent.kl-{s}.block.scratch", "agent.kl-{s}.block.notes")},
        ("delete_memory_file", "scratch.md"),
    ),
    "agent-prune": Phase({"second": False}, ("agent_delete", ""), ("--prune",)),
    "block-prune": Phase({"blocks": ("persona",)}, ("delete_memory_file", "scratch.md"), ("--prune",)),
    "conversation-archive": Phase(
        {"conversations": ("Ticket 1",)}, ("conversation_update", '"archived"'), ("--prune",)
    ),
    "memory-file-prune": Phase({"files": ("guide.md",)}, ("delete_memory_file", "tips.md"), ("--prune",)),
}


def fleet_after(phase: Phase, suffix: str) -> Fleet:
    after = dict(phase.after)
    if "moved" in after:
        after["moved"] = tuple(address.format(s=suffix) for address in after["moved"])
    return Fleet(suffix, **after)


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LETTA_BASE_URL": url}
    return subprocess.run([LETTAFLEET, *args], capture_output=True, text=True, timeout=600, env=environment)


def killed_at(url: str, fault: WsFault, fleet: Path, options: tuple[str, ...]) -> None:
    """Run `apply` through a proxy that holds the fault's request, and SIGKILL its process group once it is held."""
    with running_ws_fault_proxy(url, fault) as proxy:
        environment = {**os.environ, "LETTA_BASE_URL": proxy.url}
        command = [LETTAFLEET, "apply", "-f", str(fleet), "--no-lock", "--parallelism", "1", *options]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, start_new_session=True
        )
        try:
            held = proxy.struck.wait(180)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate(timeout=60)
        assert held, f"the apply never sent {fault.request_type} containing {fault.contains!r}:\n{out}\n{err}"


def snapshot(client: AppServerClient, fleet: Fleet) -> dict[str, Any]:
    """What a rename must keep: the agents' ids, and each conversation's id and messages, by summary."""
    agents = {str(a["name"]): a for a in client.list_agents() if str(a["name"]).endswith(fleet.suffix)}
    agent = agents[fleet.agent]
    conversations = {
        str(c.get("summary")): (c["id"], message_ids(client, c["id"]))
        for c in client.list_conversations(agent["id"])
        if not c.get("archived")
    }
    return {"agent": agent["id"], "conversations": conversations}


def talk_in_each_conversation(url: str, client: AppServerClient, fleet: Fleet) -> None:
    """One turn in each of the agent's conversations (the LLM stand-in answers): a move must keep messages."""
    (agent,) = client.agents_named(fleet.agent)
    for conversation in client.list_conversations(agent["id"]):
        sent = run(url, "send", fleet.agent, "hello", "--conversation-id", conversation["id"])
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert message_ids(client, conversation["id"]), "the turn left no message"


def message_ids(client: AppServerClient, conversation_id: str) -> list[str]:
    page = client.list_messages(conversation_id)
    return [str(m.get("id")) for m in page.get("messages") or ()]


def record_of(client: AppServerClient, agent_id: str) -> list[dict[str, Any]]:
    return list(json.loads(client.secret_values(agent_id)["LETTAFLEET_RECORD"])["lettafleet_applied"])


def converged(client: AppServerClient, fleet: Fleet) -> dict[str, Any]:
    """The server holds what `fleet` declares, each once, and the agent's record lists each thing once."""
    agents = [a for a in client.list_agents() if str(a["name"]).endswith(fleet.suffix)]
    assert Counter(str(a["name"]) for a in agents) == Counter(fleet.agents)
    (agent,) = (a for a in agents if a["name"] == fleet.agent)
    live = [c for c in client.list_conversations(agent["id"]) if not c.get("archived")]
    assert Counter(str(c.get("summary")) for c in live) == Counter(fleet.conversations)
    paths = {str(entry["relative_path"]) for entry in client.list_memory(agent["id"])}
    wanted = {f"{label}.md" for label in fleet.blocks} | set(fleet.files)
    gone = {"scratch.md", "tips.md"} - wanted  # what the phase renamed away or removed
    assert wanted <= paths and not gone & paths, paths
    assert {path: client.read_memory_file(agent["id"], path) for path in fleet.files} == {
        path: fleet.file_text(path) for path in fleet.files
    }
    record = record_of(client, agent["id"])
    addresses = Counter(str(entry["address"]) for entry in record)
    assert all(count == 1 for count in addresses.values()), record
    assert {a for a in addresses if a.startswith(("block.", "conversation", "memory_file"))} == (
        {f"block.{label}" for label in fleet.blocks}
        | {f"conversation[{json.dumps(summary)}]" for summary in fleet.conversations}
        | {f'memory_file["{path}"]' for path in fleet.files}
    ), record
    return snapshot(client, fleet)


# Each phase at its write; and at the record write after it where a rename is two writes (a record that names
# neither, or both). A single write's record kill is the V1 suite's class (tests/integration/test_interrupted_
# applies.py), the record's own write the fault matrix's (test_app_server_faults.py, record-write).
KILLS = [(phase, "the write") for phase in PHASES] + [("block-rename", "its record")]


@pytest.mark.parametrize(("phase", "at"), KILLS)
def test_an_apply_killed_at_a_rename_or_removal_is_finished_by_the_next_apply_with_nothing_lost_or_doubled(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path, phase: str, at: str
) -> None:
    step = PHASES[phase]
    path = Fleet(suffix).write(tmp_path / "fleet.yaml")
    made = run(app_server, "apply", "-f", str(path), "--no-lock")
    assert made.returncode == 0, made.stdout + made.stderr
    if phase.startswith("conversation"):
        talk_in_each_conversation(app_server, app_server_client, Fleet(suffix))
    before = snapshot(app_server_client, Fleet(suffix))
    target = fleet_after(step, suffix)
    target.write(path)
    request_type, contains = step.request
    fault = WsFault(request_type, "hold", contains=contains)
    if at == "its record":
        fault = WsFault(RECORD_WRITE[0], "hold", contains=RECORD_WRITE[1], after=step.request)
    killed_at(app_server, fault, path, step.options)

    planned = run(app_server, "plan", "-f", str(path), *step.options)
    assert planned.returncode == 0 and "Traceback" not in planned.stderr, planned.stdout + planned.stderr
    resumed = run(app_server, "apply", "-f", str(path), "--no-lock", *step.options)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    replanned = run(app_server, "plan", "-f", str(path), "--detailed-exitcode", *step.options)
    assert replanned.returncode == 0 and "No changes." in replanned.stdout, replanned.stdout + replanned.stderr

    after = converged(app_server_client, target)
    assert after["agent"] == before["agent"]  # the agent kept its id, renamed or not
    kept = {summary: before["conversations"][summary] for summary in ("Ticket 1", "Ticket 2")}
    if phase == "conversation-move":
        kept["Ticket 1 (billing)"] = kept.pop("Ticket 1")
    assert {summary: after["conversations"][summary] for summary in target.conversations} == {
        summary: kept[summary] for summary in target.conversations
    }
