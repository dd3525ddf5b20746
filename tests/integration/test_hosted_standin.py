"""plan and apply through the stand-in for hosted Letta (tests/fakes/hosted_letta.py): a proxy in front of the
real 0.16.8 dev server that answers as hosted Letta differs from it. What passes here is proven against the
stand-in, not against hosted Letta itself (docs/hosted-letta.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.core.letta.connection import LettaAPIError
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.hosted_letta import HOSTED_VERSION, PAGE_CAP, HostedLettaStandIn, running_hosted_letta

FLEET = """\
agents:
  - name: {name}
    description: "Support agent on hosted Letta"
    llm_config:
      model: letta/letta-free
      context_window: 32000
    system_prompt:
      value: You help customers.
    embedding: letta/letta-free
    tags: [hosted, support]
    memory_blocks:
      - name: faq
        description: "Frequently asked questions"
        limit: 5000
        value: "Opening hours: 9 to 5."
      - name: customer_context
        description: "Per-customer context"
        limit: 2000
        value: ""
    conversations:
      - summary: "Ticket #101"
      - summary: "Ticket #102"{isolated}
"""


@pytest.fixture
def hosted(letta_server: str) -> Iterator[HostedLettaStandIn]:
    with running_hosted_letta(letta_server) as stand_in:
        yield stand_in


@pytest.fixture
def agent_name(client: LettaClient) -> Iterator[str]:
    """A unique agent name for one test; the agent and its blocks are deleted afterwards."""
    name = f"hosted-{uuid.uuid4().hex[:8]}"
    yield name
    for agent in client.list_all("/v1/agents/", name=name):
        client.delete(f"/v1/agents/{agent['id']}")
    for label in ("faq", "customer_context"):
        for block in client.list_all("/v1/blocks/", label=label):
            if (block.get("metadata") or {}).get("agent") == name:
                client.delete(f"/v1/blocks/{block['id']}")


def fleet_file(tmp_path: Path, name: str, *, isolated: bool = False) -> Path:
    path = tmp_path / "fleet.yaml"
    extra = "\n        isolated_blocks: [customer_context]" if isolated else ""
    path.write_text(FLEET.format(name=name, isolated=extra))
    return path


def cli(stand_in: HostedLettaStandIn, *args: str, project: bool = True) -> Result:
    env = {"LETTA_BASE_URL": stand_in.url, "LETTA_PROJECT": stand_in.project if project else ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_a_fleet_plans_applies_and_replans_to_no_changes_through_hosted_letta(hosted, client, agent_name, tmp_path):
    fleet = str(fleet_file(tmp_path, agent_name))
    planned = cli(hosted, "plan", "-f", fleet, "-o", "json")
    assert planned.exit_code == 0, planned.output + planned.stderr
    document = json.loads(planned.stdout)
    assert (document["server_version"], document["project"]) == (HOSTED_VERSION, hosted.project)

    applied = cli(hosted, "apply", "-f", fleet)
    assert applied.exit_code == 0, applied.output + applied.stderr
    assert f"(Letta {HOSTED_VERSION}, project {hosted.project})" in applied.stdout.splitlines()[0]

    again = cli(hosted, "plan", "-f", fleet, "--detailed-exitcode")
    assert again.exit_code == 0, again.output + again.stderr
    assert "No changes." in again.stdout
    [agent] = client.list_all("/v1/agents/", name=agent_name)
    assert sorted(agent["tags"]) == ["hosted", "support"]
    # The stand-in really capped the pages and really hid tags from reads that did not ask for them.
    assert hosted.counts.capped > 0 and hosted.seen["no project"] == 0


def test_an_agent_read_without_include_shows_no_tags_on_the_stand_in(hosted, client, agent_name, tmp_path):
    assert cli(hosted, "apply", "-f", str(fleet_file(tmp_path, agent_name))).exit_code == 0
    with LettaClient(hosted.url, project=hosted.project) as through:
        [bare] = through.list_all("/v1/agents/", name=agent_name)
        [asked] = through.list_all("/v1/agents/", name=agent_name, include=["agent.tags"])
    assert "tags" not in bare and sorted(asked["tags"]) == ["hosted", "support"]


def test_a_fleet_with_isolated_blocks_stops_at_plan_time_at_its_line_with_no_writes(hosted, agent_name, tmp_path):
    fleet = fleet_file(tmp_path, agent_name, isolated=True)
    line = next(n for n, text in enumerate(fleet.read_text().splitlines(), 1) if "isolated_blocks" in text)
    result = cli(hosted, "apply", "-f", str(fleet), "--no-lock")
    assert result.exit_code == 1
    assert f"{fleet}:{line}:" in result.stderr
    assert f"(Letta {HOSTED_VERSION}, project {hosted.project})" in result.stderr and "2026-04-23" in result.stderr
    writes = sum(count for method, count in hosted.counts.forwarded.items() if method != "GET")
    assert writes == 0


def test_without_a_project_the_server_refusal_is_a_clear_error(hosted, agent_name, tmp_path):
    result = cli(hosted, "plan", "-f", str(fleet_file(tmp_path, agent_name)), project=False)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "answered 400" in result.stderr and "X-Project" in result.stderr


def test_the_stand_in_caps_pages_refuses_folders_and_isolated_labels(hosted, client):
    with LettaClient(hosted.url, project=hosted.project) as through:
        assert len(through.get("/v1/agents/", limit=PAGE_CAP + 50)) <= PAGE_CAP
        for method, path, body in (
            ("GET", "/v1/folders/", None),
            ("POST", "/v1/conversations/", {"isolated_block_labels": ["faq"]}),
        ):
            with pytest.raises(LettaAPIError) as refused:
                through.request(method, path, json=body, params={"agent_id": "agent-x"})
            assert refused.value.status in (400, 422)


def test_against_the_real_server_the_header_names_letta_0_16_8_and_the_project(letta_server, agent_name, tmp_path):
    env = {"LETTA_BASE_URL": letta_server, "LETTA_PROJECT": "ignored-by-0.16.8"}
    result = CliRunner().invoke(main, ["plan", "-f", str(fleet_file(tmp_path, agent_name))], env=env)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.splitlines()[0].endswith("(Letta 0.16.8, project ignored-by-0.16.8)")
