"""The fleet, fixtures and helpers of the `memory:` tests through the stand-in for hosted Letta's git-backed memory
(tests/fakes/hosted_git_memory.py): two agents with a block each, flipped between blocks and git-backed memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.fault_proxy import Hold
from tests.fakes.hosted_git_memory import HostedGitMemoryStandIn, running_hosted_git_memory

KEY = "sk-let-donewhen-51f0"
HANDBOOK = "# Handbook\nRead every ticket twice.\n## Refunds\nWithin 30 days, with the receipt.\n"


@pytest.fixture
def hosted(letta_server: str) -> Iterator[HostedGitMemoryStandIn]:
    with running_hosted_git_memory(letta_server, KEY, sync_delay=1.0) as stand_in:
        yield stand_in


@pytest.fixture
def names(client: LettaClient) -> Iterator[tuple[str, str]]:
    """Two unique agent names; their agents and blocks are deleted afterwards (straight on the dev server)."""
    tail = uuid.uuid4().hex[:8]
    made = (f"memv1-old-{tail}", f"memv1-new-{tail}")
    yield made
    for name in made:
        for agent in client.list_all("/v1/agents/", name=name):
            blocks = client.get(f"/v1/agents/{agent['id']}/core-memory/blocks")
            client.delete(f"/v1/agents/{agent['id']}")
            for block in blocks:
                client.delete(f"/v1/blocks/{block['id']}")


def run(hosted: HostedGitMemoryStandIn, *args: str) -> Result:
    env = {"LETTA_BASE_URL": hosted.url, "LETTA_API_KEY": KEY}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert KEY not in result.output and "Traceback" not in result.output
    return result.output


def agent_entry(name: str, mode: str) -> str:
    memory = f"    memory:\n      mode: {mode}\n"
    if mode == "memfs":
        memory += (
            "      template_dir: memory\n"
            "      files:\n"
            "        - to: system/policies.md\n"
            '          value: "---\\ndescription: the policies\\n---\\nNo refunds for {{TEAM}}.\\n"\n'
            "          template_vars: {TEAM: billing}\n"
            "        - {to: system/tone.md, from_file: texts/tone.md}\n"
            "      skills:\n        - from_dir: skills/triage\n"
            "      from_blocks:\n        - {block: handbook, to: system/refunds.md, extract_section: Refunds}\n"
        )
    return (
        f"  - name: {name}\n    system_prompt: {{value: You answer tickets.}}\n"
        "    llm_config: {model: letta/letta-free, context_window: 16000}\n    tools: []\n    tags: [support]\n"
        f"    memory_blocks:\n      - {{name: handbook, value: {json.dumps(HANDBOOK)}, agent_owned: true, "
        "limit: 4000}\n" + memory
    )


def write_fleet(tmp_path: Path, agents: list[tuple[str, str]], named: str = "fleet.yaml") -> Path:
    (tmp_path / "memory" / "system").mkdir(parents=True, exist_ok=True)
    (tmp_path / "skills" / "triage").mkdir(parents=True, exist_ok=True)
    (tmp_path / "texts").mkdir(exist_ok=True)
    (tmp_path / "memory" / "system" / "escalation.md").write_text(
        "---\ndescription: when to escalate\n---\nEscalate when money is involved.\n"
    )
    (tmp_path / "skills" / "triage" / "SKILL.md").write_text(
        "---\nname: triage\ndescription: sort tickets\n---\nPick urgent, soon or whenever.\n"
    )
    (tmp_path / "skills" / "triage" / "triage.sh").write_text("#!/bin/sh\necho triaged\n")
    (tmp_path / "texts" / "tone.md").write_text("---\ndescription: how we write\n---\nShort sentences.\n")
    path = tmp_path / named
    path.write_text("agents:\n" + "".join(agent_entry(name, mode) for name, mode in agents))
    return path


def agent_named(client: LettaClient, name: str) -> dict:
    (agent,) = [a for a in client.list_all("/v1/agents/", name=name) if a["name"] == name]
    return client.get(f"/v1/agents/{agent['id']}", include=["agent.tags", "agent.blocks"])


def blocks_of(client: LettaClient, agent_id: str) -> dict[str, str]:
    return {b["label"]: b["value"] for b in client.get(f"/v1/agents/{agent_id}/core-memory/blocks")}


def plan_json(hosted: HostedGitMemoryStandIn, fleet: Path) -> dict[str, dict]:
    changes = json.loads(ok(run(hosted, "plan", "-f", str(fleet), "-o", "json")))["changes"]
    return {change["address"]: change for change in changes if change["action"] != "no-op"}


def assert_no_changes(hosted: HostedGitMemoryStandIn, fleet: Path) -> None:
    assert "No changes" in ok(run(hosted, "plan", "-f", str(fleet))), plan_json(hosted, fleet)


def push_as_the_agent(hosted: HostedGitMemoryStandIn, agent_id: str, path: str, text: str, into: Path) -> None:
    """The agent's own edit: a clone, a commit and a push with git, the key in a header."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/nonexistent",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {KEY}",
    }
    subprocess.run(["git", "clone", "-q", hosted.git_url(agent_id), str(into)], env=env, check=True, timeout=60)
    (into / path).parent.mkdir(parents=True, exist_ok=True)
    (into / path).write_text(text)
    for args in (["add", "-A"], ["-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "mine"], ["push"]):
        subprocess.run(["git", *args], cwd=into, env=env, check=True, timeout=60, capture_output=True)


MODE = 'agent.{}.memory_mode["git-backed memory"]'
TONE = 'agent.{}.memory_file["system/tone.md"]'
DEAD_MODEL = (  # a provider nobody answers at: the agent cannot reply
    "    llm_config: {model: gone, model_endpoint_type: openai, model_endpoint: 'http://127.0.0.1:9/v1', "
    "context_window: 16000}\n"
)
FILES = {
    "system/policies.md",
    "system/tone.md",
    "system/escalation.md",
    "system/refunds.md",
    "skills/triage/SKILL.md",
    "skills/triage/triage.sh",
}


def apply_in_background(url: str, fleet: Path, *options: str) -> subprocess.Popen[str]:
    """`lettafleet apply` of the fleet (with `options`) against `url`, as its own process group (a test kills it with
    the git commands it runs, or the server under it)."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("lettafleet")), "apply", "-f", str(fleet), "--no-lock", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LETTA_BASE_URL": url, "LETTA_API_KEY": KEY},
        start_new_session=True,
    )


def killed_at(hosted: HostedGitMemoryStandIn, hold: Hold, fleet: Path, *options: str) -> None:
    """SIGKILL an apply of `fleet` (with `options`; and the git commands it runs) while `hold` is at the stand-in;
    the held request then goes on as `hold.then` says."""
    hosted.killed_while_held(hold, lambda: apply_in_background(hosted.url, fleet, *options))
