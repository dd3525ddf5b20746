"""`memory:` with `mode: memfs` against the real self-hosted Letta 0.16.8 dev server, which has no git-backed memory
(it answers /v1/git with 501): `plan` and `apply` stop at the agent's `memory.mode` line with the server's answer,
before anything is written; `mode: blocks` plans as before."""

from __future__ import annotations

import uuid
from pathlib import Path

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.integration.cli import cli


def fleet_with_memory(tmp_path: Path, name: str, mode: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        f"agents:\n  - name: {name}\n    system_prompt: {{value: You help.}}\n"
        "    llm_config: {model: letta/letta-free, context_window: 16000}\n    tools: []\n"
        "    memory_blocks:\n      - {name: persona, value: I help., agent_owned: true, limit: 500}\n"
        f"    memory:\n      mode: {mode}\n      files: [{{to: system/policies.md, value: No refunds.}}]\n"
    )
    return path


def test_memfs_on_the_self_hosted_server_stops_at_the_mode_line_with_its_501_and_writes_nothing(
    letta_server: str, client: LettaClient, tmp_path: Path
) -> None:
    name = f"memfs-v1-{uuid.uuid4().hex[:8]}"
    fleet = fleet_with_memory(tmp_path, name, "memfs")
    for command in (["plan"], ["apply", "--no-lock"]):
        result = cli(letta_server, *command, "-f", str(fleet))
        assert result.exit_code == 1, result.output
        assert f"fleet.yaml:9:7: memory mode 'memfs' needs git-backed memory: {letta_server} has no git-backed" in (
            result.output
        )
        assert "it answered 501 (git HTTP requires memfs service (LETTA_MEMFS_SERVICE_URL not configured))" in (
            result.output
        )
        assert "or write `mode: blocks`" in result.output and "Traceback" not in result.output
    assert [a for a in client.list_all("/v1/agents/", name=name) if a.get("name") == name] == []

    planned = cli(letta_server, "plan", "-f", str(fleet_with_memory(tmp_path, name, "blocks")))
    assert planned.exit_code == 0, planned.output
    assert "memory file" not in planned.output
