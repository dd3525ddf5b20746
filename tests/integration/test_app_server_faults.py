"""apply on the App Server under faults, through our own WebSocket proxy in front of the real dev App Server: at
every write kind the App Server handlers make, a refused request, a connection cut after the write landed, a
request never answered and a server killed mid-apply each end in a clear error (no traceback, secrets masked) and
a non-zero exit, and the next apply through a clean connection converges: no duplicate agent, no lost memory
value, a record that matches the server, and a plan of "No changes" after it."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server import backend
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.resources.memfs import fingerprinted
from tests.fakes.ws_fault_proxy import ACTIONS, WsFault, running_ws_fault_proxy
from tests.integration import test_app_server_plan_apply as plan_apply

pytest_plugins = ["tests.fakes.llm_server"]

MODEL = "openai-compatible/fake-echo-model"
TIMEOUT_S = 10.0  # each request's, in these tests: a swallowed request fails after it

app_server = plan_apply.app_server  # the dev App Server with the LLM stand-in connected
suffix = plan_apply.suffix  # unique names, and their agents deleted after each test


@contextmanager
def short_timeout() -> Iterator[None]:
    """Every App Server request of the command line waits TIMEOUT_S at most, so a swallowed one fails soon."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backend, "AppServerClient", functools.partial(AppServerClient, timeout=TIMEOUT_S))
        yield


@dataclass(frozen=True)
class Fleet:
    """What one agent (and, when `second`, another one) declares: the values a converged server must hold."""

    suffix: str
    secret: str
    description: str = "helps"
    policies: str = "Refunds: 30 days."
    handbook: str = "Be kind."
    scratch: bool = True
    notes: bool = False
    second: bool = False
    guide: str | None = None  # a `memory:` section (mode memfs) with the file guide.md of this text, when given
    tips: bool = False  # and the file tips.md

    @property
    def name(self) -> str:
        return f"flt-{self.suffix}"

    def write(self, path: Path) -> Path:
        path.write_text(
            f"fleet: flt-{self.suffix}\n"
            "shared_blocks:\n  - name: handbook\n    description: the handbook\n"
            f"    value: {json.dumps(self.handbook)}\n    agent_owned: false\n"
            "agents:\n"
            + self._agent(self.name, blocks=True)
            + (self._agent(f"flt-2-{self.suffix}") if self.second else "")
        )
        return path

    def _agent(self, name: str, *, blocks: bool = False) -> str:
        text = (
            f"  - name: {name}\n    description: {self.description}\n"
            f"    llm_config:\n      model: {MODEL}\n      context_window: 16000\n"
            f"    system_prompt:\n      value: You are {name}.\n"
        )
        if not blocks:
            return text
        memory = [("persona", "I help.", True), ("policies", self.policies, False)]
        memory += [("scratch", "Notes.", True)] * self.scratch + [("notes", "Later.", True)] * self.notes
        return (
            text
            + "    memory_blocks:\n"
            + "".join(
                f"      - name: {label}\n        description: the {label}\n        value: {json.dumps(value)}\n"
                f"        agent_owned: {str(owned).lower()}\n"
                for label, value, owned in memory
            )
            + "    shared_blocks: [handbook]\n    secrets:\n      api_token: {from_env: FLT_API_TOKEN}\n"
            + self._memory_section()
        )

    def _memory_section(self) -> str:
        if self.guide is None:
            return ""
        return "    memory:\n      mode: memfs\n      files:\n" + "".join(
            f"        - to: {path}\n          value: {json.dumps(text)}\n" for path, text in self.memfs_files().items()
        )

    def memfs_files(self) -> dict[str, str]:
        """The files the `memory:` section declares, by path, with their whole text (v2 frontmatter included)."""
        if self.guide is None:
            return {}
        bodies = {"guide.md": self.guide} | ({"tips.md": "Listen first."} if self.tips else {})
        return {
            path: f"---\nname: {path[:-3]}\ndescription: the {path[:-3]}\n---\n{body}\n"
            for path, body in bodies.items()
        }

    def files(self) -> dict[str, str]:
        """The memory files the agent must hold, by path, with their values."""
        declared = {"persona.md": "I help.", "policies.md": self.policies, "handbook.md": self.handbook}
        return (
            declared
            | ({"scratch.md": "Notes."} if self.scratch else {})
            | ({"notes.md": "Later."} if self.notes else {})
        )


@dataclass(frozen=True)
class WriteKind:
    """One write the App Server handlers make: the fleet before, the change that makes the write, the fault's
    request (type and a piece of its JSON) and the apply's options."""

    before: dict[str, Any] | None
    after: dict[str, Any]
    request_type: str
    contains: str = ""
    options: tuple[str, ...] = ()


NEW_SECRET = "sk-rotated-"  # + a per-test token: the new value of the agent's secret
WRITE_KINDS = {
    "agent-create": WriteKind(None, {}, "agent_create"),
    "agent-update": WriteKind({}, {"description": "now billing"}, "agent_update"),
    "file-write": WriteKind({}, {"policies": "Refunds: 14 days."}, "write_memory_file", "policies.md"),
    "file-delete": WriteKind({}, {"scratch": False}, "delete_memory_file", "scratch.md", ("--prune",)),
    "shared-copy-write": WriteKind({}, {"handbook": "Be kinder."}, "write_memory_file", "handbook.md"),
    "secret-apply": WriteKind({}, {"secret": NEW_SECRET}, "secret_apply", NEW_SECRET),
    # The record once the new file is made (the intent written before names it without its path).
    "record-write": WriteKind({}, {"notes": True}, "secret_apply", "notes.md"),
    "prune-agent-delete": WriteKind({"second": True}, {}, "agent_delete", "", ("--prune",)),
    # A `memory:` section's files: one changed, one taken out (the record lists it), and the record once one is made.
    "memfs-write": WriteKind({"guide": "Greet."}, {"guide": "Greet warmly."}, "write_memory_file", "guide.md"),
    "memfs-delete": WriteKind(
        {"guide": "Greet.", "tips": True}, {"guide": "Greet.", "tips": False}, "delete_memory_file", "tips.md"
    ),
    "memfs-record-write": WriteKind({"guide": "Greet."}, {"guide": "Greet.", "tips": True}, "secret_apply", "tips.md#"),
}


def cli(url: str, secret: str, *args: str) -> Result:
    env = {"LETTA_BASE_URL": url, "FLT_API_TOKEN": secret}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def converged(client: AppServerClient, fleet: Fleet, url: str, path: Path) -> None:
    """The server holds what `fleet` declares, once each, and its record names what is there."""
    agents = [a for a in client.list_agents() if str(a.get("name", "")).endswith(fleet.suffix)]
    assert sorted(str(a["name"]) for a in agents) == [fleet.name] + [f"flt-2-{fleet.suffix}"] * fleet.second
    agent = next(a for a in agents if a["name"] == fleet.name)
    assert agent["description"] == fleet.description
    files = {str(e["relative_path"]): e.get("content") for e in client.list_memory(agent["id"])}
    assert {path: files.get(path) for path in fleet.files()} == fleet.files()
    assert fleet.scratch or "scratch.md" not in files
    secrets = client.secret_values(agent["id"])
    assert secrets["API_TOKEN"] == fleet.secret
    recorded = {entry["address"]: entry.get("id") for entry in json.loads(secrets["LETTAFLEET_RECORD"])[
        "lettafleet_applied"]}  # fmt: skip
    assert {address for address in recorded if address.startswith("block.")} == {
        f"block.{path.removesuffix('.md')}" for path in fleet.files() if path != "handbook.md"
    }
    memfs = fleet.memfs_files()
    texts = {path: client.read_memory_file(agent["id"], path) for path in memfs}  # list_memory gives no frontmatter
    assert texts == memfs and ("tips.md" in memfs) == ("tips.md" in files)
    assert {address: recorded[address] for address in recorded if address.startswith("memory_file")} == {
        f'memory_file["{path}"]': fingerprinted(path, text) for path, text in memfs.items()
    }
    replanned = cli(url, fleet.secret, "plan", "-f", str(path), "--detailed-exitcode")
    assert replanned.exit_code == 0 and "No changes." in replanned.output, replanned.output


# Which faults strike which writes. A dropped answer (the write landed, unheard) at every kind: what the next plan
# makes of a landed write is each kind's own. A refusal and a dead server (the write never landed) at one kind of
# each request type, and the record's: the client's path is the request type's. A swallowed answer leaves the
# client where a dropped one does (unanswered), only later (it waits out the timeout): at the kinds whose landing
# the plan must tell apart.
NOT_LANDED = ("agent-create", "agent-update", "file-write", "memfs-delete", "secret-apply", "record-write")
NOT_LANDED += ("prune-agent-delete",)
SWALLOWED = ("agent-create", "memfs-write", "record-write")
MATRIX = [
    *((kind, "drop") for kind in WRITE_KINDS),
    *((kind, action) for action in ("refuse", "die") for kind in NOT_LANDED),
    *((kind, "swallow") for kind in SWALLOWED),
]
assert {action for _, action in MATRIX} == set(ACTIONS) - {"hold"}  # a held request is the kill tests' moment


@pytest.mark.parametrize(("kind", "action"), MATRIX)
def test_a_fault_at_each_write_ends_in_a_clear_error_and_the_next_apply_converges(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path, kind: str, action: str
) -> None:
    write = WRITE_KINDS[kind]
    secret = f"sk-first-{uuid.uuid4().hex}"
    after = {**write.after, "secret": f"{NEW_SECRET}{uuid.uuid4().hex}"} if "secret" in write.after else write.after
    fleet = Fleet(suffix, secret, **(write.before or {}))
    if write.before is not None:
        applied = cli(app_server, secret, "apply", "-f", str(fleet.write(tmp_path / "fleet.yaml")), "--no-lock")
        assert applied.exit_code == 0, applied.output
    target = Fleet(suffix, **{"secret": secret, **after})
    path = target.write(tmp_path / "fleet.yaml")
    # The server's error may quote what it was sent: the refusal names the secret's new value, to be masked.
    fault = WsFault(write.request_type, action, contains=write.contains, error=f"failed near {target.secret}")

    with running_ws_fault_proxy(app_server, fault) as proxy, short_timeout():
        faulted = cli(proxy.url, target.secret, "apply", "-f", str(path), "--no-lock", *write.options)
        struck = proxy.struck.is_set()

    assert struck, f"the apply sent no {write.request_type} containing {write.contains!r}"
    assert faulted.exit_code != 0, faulted.output
    assert "Traceback" not in faulted.output and target.secret not in faulted.output, faulted.output
    # A refused or unanswered request is named; a cut connection fails the requests still to come, named too.
    named = write.request_type if action in ("refuse", "swallow") else "the App Server did not answer"
    assert named in faulted.output, faulted.output

    again = cli(app_server, target.secret, "apply", "-f", str(path), "--no-lock", *write.options)

    assert again.exit_code == 0, again.output
    converged(app_server_client, target, app_server, path)


@pytest.mark.parametrize("every", [False, True], ids=["once, then read again", "every time"])
def test_a_memory_file_read_left_unanswered_never_plans_a_write_over_the_agents_edit(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path, every: bool
) -> None:
    """A read that times out is no answer: taken for "no such file", the plan would create the file, and the apply
    would write over what the agent keeps there. The first read of an agent's files rides along with its record;
    the file's handler reads it again when that one failed, and a plan whose reads all go unanswered stops."""
    fleet = Fleet(suffix, f"sk-first-{uuid.uuid4().hex}", guide="Greet.")
    path = fleet.write(tmp_path / "fleet.yaml")
    assert cli(app_server, fleet.secret, "apply", "-f", str(path), "--no-lock").exit_code == 0
    (agent,) = app_server_client.agents_named(fleet.name)
    edited = fleet.memfs_files()["guide.md"] + "The agent learned: greet by name.\n"
    app_server_client.write_memory_file(agent["id"], "guide.md", edited)

    fault = WsFault("read_memory_file", "swallow", contains="guide.md", every=every)
    with running_ws_fault_proxy(app_server, fault) as proxy, short_timeout():
        planned = cli(proxy.url, fleet.secret, "plan", "-f", str(path))
        assert proxy.struck.is_set()

    if every:
        assert planned.exit_code == 1 and "read_memory_file" in planned.output, planned.output
        assert 'memory file "guide.md"' not in planned.output, planned.output
    else:
        assert planned.exit_code == 0, planned.output
        assert f"agent {fleet.name} edited guide.md since lettafleet wrote it" in planned.output, planned.output
        assert '+ memory file "guide.md"' not in planned.output and '~ memory file "guide.md"' not in planned.output
    assert "Traceback" not in planned.output
    assert app_server_client.read_memory_file(agent["id"], "guide.md") == edited
