"""Moving a fleet off V1, as docs/app-server.md ("Moving off V1") tells it, between the two real dev servers:
agents made on V1 (blocks, a shared block, tags, a secret, a conversation, a tool from source) are exported for
the App Server, applied there, checked over the protocol, and plan "No changes"; what cannot move is said at its
line."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.integration.test_app_server_plan_apply import MODEL, app_server, by_name

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server"]  # the dev App Server with the LLM stand-in connected, shared with the plan/apply tests

SECRET_VALUE = "move-secret-value-5b2e"
POLICIES = "Refunds: 30 days.\nExchanges: 60 days.\nAsk for the order number.\nSay when you do not know."


@pytest.fixture
def names(client: LettaClient, app_server_client: AppServerClient) -> Iterator[dict[str, str]]:
    """Unique names; what carries them is deleted from both servers afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {
        "suffix": suffix,
        "support": f"move-support-{suffix}",
        "billing": f"move-billing-{suffix}",
        "persona": f"persona_{suffix}",
        "policies": f"policies_{suffix}",
        "rules": f"rules_{suffix}",
        "tool": f"lookup_{suffix}",
        "secret": f"MOVE_KEY_{suffix.upper()}",
    }
    yield chosen
    for name in (chosen["support"], chosen["billing"]):
        for agent in client.list_all("/v1/agents/", name=name):
            client.delete(f"/v1/agents/{agent['id']}")
    for tool in client.get("/v1/tools/", name=chosen["tool"]):
        client.delete(f"/v1/tools/{tool['id']}")
    for label in (chosen["persona"], chosen["policies"], chosen["rules"]):
        for block in client.list_all("/v1/blocks/", label=label):
            client.delete(f"/v1/blocks/{block['id']}")
    for agent in by_name(app_server_client, suffix).values():
        app_server_client.delete_agent(agent["id"])


def cli(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": url, **(env or {})}, catch_exceptions=False)


def v1_fleet(folder: Path, names: dict[str, str]) -> Path:
    """Two agents on V1: one with blocks, a shared block, tags, a secret and a conversation; one with a tool from
    source."""
    (folder / "tools").mkdir(parents=True)
    (folder / "tools" / f"{names['tool']}.py").write_text(
        f'def {names["tool"]}(order_id: str) -> str:\n    """Look up an order.\n\n    Args:\n'
        '        order_id: The order\'s id.\n    """\n    return order_id\n'
    )
    path = folder / "fleet.yaml"
    path.write_text(
        f"""fleet: move-{names["suffix"]}
shared_blocks:
  - name: {names["rules"]}
    description: the house rules
    value: Be kind.
agents:
  - name: {names["support"]}
    description: Answers customers
    llm_config: {{model: letta/letta-free, context_window: 16000}}
    embedding: letta/letta-free
    system_prompt: {{value: You help the shop's customers.}}
    tags: [team-a, moving]
    memory_blocks:
      - name: {names["persona"]}
        description: who I am
        value: I answer tickets.
      - name: {names["policies"]}
        description: the shop's policies
        value: {yaml.safe_dump(POLICIES, default_style='"').strip()}
    shared_blocks: [{names["rules"]}]
    secrets:
      {names["secret"]}: {{value: {SECRET_VALUE}}}
    conversations:
      - summary: onboarding
  - name: {names["billing"]}
    llm_config: {{model: letta/letta-free, context_window: 16000}}
    embedding: letta/letta-free
    system_prompt: {{value: You answer billing questions.}}
    tools: [{names["tool"]}]
"""
    )
    return path


def test_a_v1_fleet_moves_to_the_app_server_as_documented(
    letta_server: str, app_server: str, app_server_client: AppServerClient, names: dict[str, str], tmp_path: Path
) -> None:
    suffix, support, billing = names["suffix"], names["support"], names["billing"]
    applied = cli(letta_server, "apply", "-f", str(v1_fleet(tmp_path / "v1", names)))
    assert applied.exit_code == 0, applied.output

    # Exported as it is, the file is refused by a plan against the App Server at each line that cannot move.
    raw = tmp_path / "raw" / "fleet.yaml"
    assert cli(letta_server, "export", f"move-*-{suffix}", "-o", str(raw)).exit_code == 0
    refused = cli(app_server, "plan", "-f", str(raw))
    assert refused.exit_code == 1
    tool_line = _line_of(raw, f"- {names['tool']}")
    assert re.search(
        rf"{re.escape(str(raw))}:{tool_line}:\d+: .*Letta App Server backend cannot define tools", refused.output
    )
    assert "nothing was changed" in refused.output
    assert not by_name(app_server_client, suffix)

    # Step 1: export for the App Server. What it cannot hold is left out, each entry said.
    moved = tmp_path / "moved" / "fleet.yaml"
    exported = cli(letta_server, "export", f"move-*-{suffix}", "-o", str(moved), "--for", app_server)
    assert exported.exit_code == 0, exported.output
    assert (
        f"note: left out agent {billing}: tools: {names['tool']}: the Letta App Server backend cannot define tools from"
        in exported.stderr
    )
    assert f"note: left out agent {billing}: embedding: has no effect on the Letta App Server" in exported.stderr
    assert f"note: messages are not part of a fleet file: they stay on {letta_server}" in exported.stderr
    text = moved.read_text()
    assert names["tool"] not in text and "embedding" not in text and SECRET_VALUE not in text
    assert not (moved.parent / "tools").exists()  # the tool's source stays behind with it
    # Secrets (by name) and conversations carry: the App Server has both.
    document = yaml.safe_load(text)
    entry = next(agent for agent in document["agents"] if agent["name"] == support)
    assert entry["secrets"] == {names["secret"]: {"from_env": names["secret"], "preserve_existing": True}}
    assert entry["conversations"] == [{"summary": "onboarding"}]
    assert f"note: left out agent {support}: secrets" not in exported.stderr
    assert f"note: left out agent {support}: conversations" not in exported.stderr

    # Step 2: the plan says which model handles the App Server offers, at the line of each agent's model.
    planned = cli(app_server, "plan", "-f", str(moved))
    assert planned.exit_code == 1
    assert f"model handle 'letta/letta-free' is not offered by {app_server} (use one of: " in planned.output
    assert MODEL in planned.output

    # Step 3: name one, apply (the secret's value from its environment variable), plan again: No changes.
    moved.write_text(text.replace("model: letta/letta-free", f"model: {MODEL}"))
    secret_env = {names["secret"]: SECRET_VALUE}
    applied = cli(app_server, "apply", "-f", str(moved), "--no-lock", env=secret_env)
    assert applied.exit_code == 0, applied.output
    replanned = cli(app_server, "plan", "-f", str(moved), "--detailed-exitcode", env=secret_env)
    assert replanned.exit_code == 0, replanned.output
    assert "No changes." in replanned.output

    # What carried, as the App Server holds it.
    live = by_name(app_server_client, suffix)
    assert sorted(live) == sorted([support, billing])
    agent = app_server_client.retrieve_agent(live[support]["id"])
    assert agent["system"] == "You help the shop's customers." and agent["description"] == "Answers customers"
    assert agent["model"] == MODEL and agent["model_settings"]["context_window_limit"] == 16000
    assert {"team-a", "moving", f"lettafleet-fleet:move-{suffix}"} <= set(agent["tags"])
    files = {str(entry["relative_path"]): entry for entry in app_server_client.list_memory(agent["id"])}
    assert files[f"{names['persona']}.md"]["content"] == "I answer tickets."
    assert files[f"{names['persona']}.md"]["description"] == "who I am"
    assert files[f"{names['policies']}.md"]["content"] == POLICIES
    assert files[f"{names['rules']}.md"]["content"] == "Be kind."  # the shared block, as the agent's own copy
    assert app_server_client.secret_values(agent["id"])[names["secret"]] == SECRET_VALUE
    summaries = [c.get("summary") for c in app_server_client.list_conversations(agent["id"])]
    assert summaries.count("onboarding") == 1


def _line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)
