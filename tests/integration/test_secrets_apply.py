"""Secrets against a real Letta server: set from the environment, never shown, updated without dropping the
secrets someone set by hand, and a missing variable caught before any write."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient

FIRST_VALUE = f"first-{uuid.uuid4().hex}"
SECOND_VALUE = f"second-{uuid.uuid4().hex}"
PLAIN_VALUE = f"plain-{uuid.uuid4().hex}"


@pytest.fixture
def agent_name(client: LettaClient) -> Iterator[str]:
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    yield name
    for agent in client.list_all("/v1/agents/", name=name):
        client.delete(f"/v1/agents/{agent['id']}")


def cli(letta_server: str, *args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": letta_server, **env}, catch_exceptions=False)


def write_fleet(folder: Path, agent: str, extra: str = "") -> Path:
    path = folder / "fleet.yaml"
    path.write_text(
        f"""global-secrets:
  REGION: {{value: {PLAIN_VALUE}}}
agents:
  - name: {agent}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
    secrets:
      orders_api_key: {{from_env: TEST_ORDERS_KEY}}
{extra}"""
    )
    return path


def secrets_on_server(client: LettaClient, agent: str) -> dict[str, str]:
    [found] = client.list_all("/v1/agents/", name=agent, include=["agent.secrets"])
    return {secret["key"]: secret["value"] for secret in found["secrets"]}


def test_secrets_reach_the_server_and_no_value_is_ever_shown(letta_server, client, agent_name, tmp_path):
    fleet = write_fleet(tmp_path, agent_name)
    outputs = [
        cli(letta_server, "plan", "-f", str(fleet), *options, TEST_ORDERS_KEY=FIRST_VALUE)
        for options in ([], ["-o", "json"], ["-o", "markdown"], ["-v"])
    ]

    outputs.append(cli(letta_server, "apply", "-f", str(fleet), "-v", TEST_ORDERS_KEY=FIRST_VALUE))
    outputs.append(cli(letta_server, "apply", "-f", str(fleet), "-o", "json", TEST_ORDERS_KEY=FIRST_VALUE))

    assert all(result.exit_code == 0 for result in outputs), [result.output for result in outputs]
    assert secrets_on_server(client, agent_name) == {"REGION": PLAIN_VALUE, "ORDERS_API_KEY": FIRST_VALUE}
    shown = "".join(result.output + result.stderr for result in outputs)
    assert FIRST_VALUE not in shown and PLAIN_VALUE not in shown
    assert json.loads(outputs[-1].stdout)["has_changes"] is False  # the second apply: nothing left to change


def test_a_changed_secret_is_updated_and_secrets_set_by_hand_stay(letta_server, client, agent_name, tmp_path):
    fleet = write_fleet(tmp_path, agent_name)
    assert cli(letta_server, "apply", "-f", str(fleet), TEST_ORDERS_KEY=FIRST_VALUE).exit_code == 0
    [agent] = client.list_all("/v1/agents/", name=agent_name)
    client.patch(
        f"/v1/agents/{agent['id']}", json={"secrets": {**secrets_on_server(client, agent_name), "BY_HAND": "x"}}
    )

    plan = cli(letta_server, "plan", "-f", str(fleet), TEST_ORDERS_KEY=SECOND_VALUE)
    applied = cli(letta_server, "apply", "-f", str(fleet), TEST_ORDERS_KEY=SECOND_VALUE)

    assert (
        "    ~ secret ORDERS_API_KEY\n        value:\n          - (sensitive)\n          + (sensitive)\n" in plan.output
    )
    assert "BY_HAND" not in plan.output and "REGION" not in plan.output  # unchanged: not listed
    assert applied.exit_code == 0, applied.output
    assert secrets_on_server(client, agent_name) == {
        "REGION": PLAIN_VALUE,
        "ORDERS_API_KEY": SECOND_VALUE,
        "BY_HAND": "x",
    }
    assert (
        cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode", TEST_ORDERS_KEY=SECOND_VALUE).exit_code == 0
    )


def test_a_missing_variable_stops_the_plan_unless_the_servers_value_may_stay(
    letta_server, client, agent_name, tmp_path
):
    fleet = write_fleet(
        tmp_path, agent_name, extra="      legacy_token: {from_env: TEST_LEGACY, preserve_existing: true}\n"
    )

    missing = cli(letta_server, "apply", "-f", str(fleet))
    nothing_to_keep = cli(letta_server, "apply", "-f", str(fleet), TEST_ORDERS_KEY=FIRST_VALUE)

    assert missing.exit_code == 1
    assert f"{fleet}:9:7: secret ORDERS_API_KEY: environment variable TEST_ORDERS_KEY is not set" in missing.stderr
    assert nothing_to_keep.exit_code == 1
    assert (
        f"{fleet}:10:7: secret LEGACY_TOKEN: environment variable TEST_LEGACY is not set and the server has no "
        "value to keep" in nothing_to_keep.stderr
    )
    assert client.list_all("/v1/agents/", name=agent_name) == []  # nothing was written

    first = cli(letta_server, "apply", "-f", str(fleet), TEST_ORDERS_KEY=FIRST_VALUE, TEST_LEGACY="legacy-1")
    kept = cli(letta_server, "apply", "-f", str(fleet), TEST_ORDERS_KEY=SECOND_VALUE)  # TEST_LEGACY unset

    assert first.exit_code == 0, first.output
    assert kept.exit_code == 0, kept.output
    assert secrets_on_server(client, agent_name) == {
        "REGION": PLAIN_VALUE,
        "ORDERS_API_KEY": SECOND_VALUE,
        "LEGACY_TOKEN": "legacy-1",
    }
