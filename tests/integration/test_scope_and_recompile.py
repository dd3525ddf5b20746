"""`apply --scope TAGS` and the recompile after an apply, against the real dev server: a conversation sees a
changed system prompt and block after apply, not with `--skip-recompile`; a scope applies only its agents."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]

AGENT = """\
  - name: {name}
    tags: [{tags}]
    system_prompt: {{value: {prompt}}}
{model}    memory_blocks:
      - {{name: customer, value: {customer}, agent_owned: false}}
    conversations:
      - summary: Ticket
"""


@pytest.fixture
def names(letta_server: str, client: LettaClient) -> Iterator[list[str]]:
    """Two unique agent names; the agents are deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    found = [f"scope-eu-{suffix}", f"scope-us-{suffix}"]
    yield found
    for name in found:
        for agent in client.list_all("/v1/agents/", name=name):
            client.delete(f"/v1/agents/{agent['id']}")


def write(path: Path, fake_llm: FakeLLM, agents: list[tuple[str, str, str, str]]) -> Path:
    text = "agents:\n" + "".join(
        AGENT.format(name=name, tags=tags, prompt=prompt, customer=customer, model=fake_llm.fleet_yaml())
        for name, tags, prompt, customer in agents
    )
    path.write_text(text)
    return path


def conversation_system(client: LettaClient, agent: str) -> str:
    """The system message the agent's `Ticket` conversation holds now."""
    [found] = client.list_all("/v1/agents/", name=agent)
    [conversation] = client.list_all("/v1/conversations/", agent_id=found["id"])
    messages = client.get(f"/v1/conversations/{conversation['id']}/messages", limit=5, order="asc")
    return next(json.dumps(m) for m in messages if m.get("message_type") == "system_message")


def test_apply_recompiles_the_conversations_of_an_agent_whose_prompt_and_block_changed(
    letta_server, client, names, fake_llm, tmp_path
):
    eu, _ = names
    fleet = tmp_path / "fleet.yaml"
    assert (
        cli(letta_server, "apply", "-f", str(write(fleet, fake_llm, [(eu, "eu", "PROMPT-ONE", "ACME")]))).exit_code == 0
    )
    assert "PROMPT-ONE" in conversation_system(client, eu)

    write(fleet, fake_llm, [(eu, "eu", "PROMPT-TWO", "GLOBEX")])
    result = cli(letta_server, "apply", "-f", str(fleet), "--skip-recompile")
    assert result.exit_code == 0, result.output
    assert "PROMPT-ONE" in conversation_system(client, eu)  # left as it was: the user opted out

    write(fleet, fake_llm, [(eu, "eu", "PROMPT-THREE", "INITECH")])
    result = cli(letta_server, "apply", "-f", str(fleet), "-o", "json")
    assert result.exit_code == 0, result.output
    seen = conversation_system(client, eu)
    assert "PROMPT-THREE" in seen and "INITECH" in seen and "PROMPT-ONE" not in seen
    recompiled = json.loads(result.stdout)["apply"]["recompiled"]
    assert recompiled == [{"address": f"agent.{eu}", "conversations": 1, "skipped": [], "ok": True, "message": ""}]


def test_apply_with_a_scope_changes_only_the_agents_carrying_every_tag(letta_server, client, names, fake_llm, tmp_path):
    eu, us = names
    fleet = write(tmp_path / "fleet.yaml", fake_llm, [(eu, "prod, eu", "P1", "A"), (us, "prod, us", "P1", "A")])

    result = cli(letta_server, "apply", "-f", str(fleet), "--scope", "prod,eu")
    assert result.exit_code == 0, result.output
    assert client.list_all("/v1/agents/", name=eu) and not client.list_all("/v1/agents/", name=us)
    assert "--scope" in result.stderr

    missing = cli(letta_server, "plan", "-f", str(fleet), "--scope", "prod,asia")
    assert missing.exit_code == 1
    assert "--scope prod,asia matches no agent" in missing.stderr and "Traceback" not in missing.output


def test_apply_leaves_a_conversation_with_an_isolated_copy_unrecompiled(
    letta_server, client, names, fake_llm, tmp_path
):
    # Letta 0.16.8 recompiles from the agent's blocks: its model would see the agent's value, not its own copy.
    eu, _ = names
    fleet = write(tmp_path / "fleet.yaml", fake_llm, [(eu, "eu", "PROMPT-ONE", "ACME")])
    fleet.write_text(fleet.read_text().replace("- summary: Ticket", "- {summary: Ticket, isolated_blocks: [customer]}"))
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    [agent] = client.list_all("/v1/agents/", name=eu)
    [conversation] = client.list_all("/v1/conversations/", agent_id=agent["id"])
    [copy] = conversation["isolated_block_ids"]
    client.patch(f"/v1/blocks/{copy}", json={"value": "COPY-OF-TICKET"})

    fleet.write_text(fleet.read_text().replace("PROMPT-ONE", "PROMPT-TWO").replace("ACME", "GLOBEX"))
    result = cli(letta_server, "apply", "-f", str(fleet), "-o", "json")
    assert result.exit_code == 0, result.output
    seen = conversation_system(client, eu)
    assert "GLOBEX" not in seen and "PROMPT-ONE" in seen  # the agent's new value never replaced its copy
    assert client.get(f"/v1/blocks/{copy}")["value"] == "COPY-OF-TICKET"
    [recompiled] = json.loads(result.stdout)["apply"]["recompiled"]
    assert recompiled["conversations"] == 0 and recompiled["skipped"] == [conversation["id"]]
