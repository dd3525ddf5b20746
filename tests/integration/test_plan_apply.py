"""plan and apply against a real Letta server: what lands, what a second run does, and how failures converge."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique agent and shared-block names for one test; everything carrying them is deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {"agent": f"support-{suffix}", "other": f"other-{suffix}", "shared": f"policies_{suffix}"}
    yield chosen
    agents = [a for a in client.list_all("/v1/agents/") if a["name"] in (chosen["agent"], chosen["other"])]
    for agent in agents:
        client.delete(f"/v1/agents/{agent['id']}")
    for block in client.list_all("/v1/blocks/"):
        metadata = block.get("metadata") or {}
        if metadata.get("agent") in (chosen["agent"], chosen["other"]) or block.get("label") == chosen["shared"]:
            client.delete(f"/v1/blocks/{block['id']}")


def example_fleet(tmp_path: Path, agent_name: str) -> Path:
    (tmp_path / "knowledge").mkdir()
    (tmp_path / "knowledge" / "faq.md").write_text((EXAMPLES / "knowledge" / "faq.md").read_text())
    path = tmp_path / "fleet.yaml"
    path.write_text((EXAMPLES / "fleet.yaml").read_text().replace("support-agent", agent_name))
    return path


def cli(letta_server: str, *args: str):
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": letta_server}, catch_exceptions=False)


def agent_named(client: LettaClient, name: str) -> dict:
    [agent] = client.list_all("/v1/agents/", name=name)
    return agent


def test_apply_creates_exactly_the_declared_fleet_and_a_second_run_changes_nothing(
    letta_server, client, names, tmp_path
):
    fleet = example_fleet(tmp_path, names["agent"])
    first = cli(letta_server, "apply", "-f", str(fleet))
    assert first.exit_code == 0, first.output + first.stderr
    assert "Plan: 4 to create, 0 to update, 0 to delete; 2 new conversations." in first.output
    assert "Apply complete" in first.output

    agent = agent_named(client, names["agent"])
    blocks = {block["label"]: block for block in agent["blocks"]}
    assert set(blocks) == {"faq", "customer_context"}
    # Made inside the agent's create request, where Letta keeps no metadata: the record below names them by id.
    assert all(b["metadata"] == {} for b in blocks.values())
    conversations = {c["summary"]: c for c in client.list_all("/v1/conversations/", agent_id=agent["id"])}
    # The agent's record of what the apply made under it: every declared child, conversations by id.
    assert agent["metadata"]["managed_by"] == "lettafleet" and "fleet" not in agent["metadata"]
    assert {(entry["address"], entry.get("id")) for entry in agent["metadata"]["lettafleet_applied"]} == {
        ("block.faq", blocks["faq"]["id"]),
        ("block.customer_context", blocks["customer_context"]["id"]),
        ('conversation["Ticket #101"]', conversations["Ticket #101"]["id"]),
        ('conversation["Ticket #102"]', conversations["Ticket #102"]["id"]),
    }
    assert blocks["faq"]["value"] == (EXAMPLES / "knowledge" / "faq.md").read_text()
    assert blocks["faq"]["limit"] == 5000 and blocks["customer_context"]["limit"] == 2000
    assert agent["system"].startswith("You are a customer support agent.")
    conversations = {c["summary"]: c for c in client.list_all("/v1/conversations/", agent_id=agent["id"])}
    assert set(conversations) == {"Ticket #101", "Ticket #102"}
    assert conversations["Ticket #101"]["isolated_block_ids"] == []
    [copy_id] = conversations["Ticket #102"]["isolated_block_ids"]
    copy = client.get(f"/v1/blocks/{copy_id}")
    assert copy["label"] == "customer_context" and copy_id != blocks["customer_context"]["id"]

    second = cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert second.exit_code == 0, second.output + second.stderr
    assert "No changes. The server matches the fleet; 0 new conversations." in second.output

    manager = get_plugin_manager()
    with LettaClient(letta_server) as counting:
        plan = plan_fleet(load_fleet(fleet, manager), counting, manager)
        report = apply_plan(plan, counting, manager)
    assert report.results == ()
    assert counting.stats.writes == 0
    # models, embedding models, agents, conversations, and blocks (more pages on a server with many blocks)
    assert set(counting.stats.by_method) == {"GET"} and counting.stats.total <= 10


def test_plan_reports_changes_with_exit_code_2_and_json(letta_server, client, names, tmp_path):
    fleet = example_fleet(tmp_path, names["agent"])
    result = cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode", "-o", "json")
    assert result.exit_code == 2
    document = json.loads(result.output)
    assert document["format_version"] == "1.3" and document["has_changes"] is True
    changes = {change["address"]: change for change in document["changes"]}
    ticket = f'agent.{names["agent"]}.conversation["Ticket #102"]'
    assert changes[ticket]["action"] == "create"
    assert changes[f"{ticket}.isolated_block.customer_context"]["action"] == "create"
    assert changes[f"agent.{names['agent']}"]["after"]["model"] == "letta/letta-free"
    assert not client.list_all("/v1/agents/", name=names["agent"])  # plan wrote nothing


def test_reapply_after_a_system_prompt_change_keeps_every_conversation(letta_server, client, names, tmp_path):
    fleet = example_fleet(tmp_path, names["agent"])
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    agent = agent_named(client, names["agent"])
    before = {c["id"] for c in client.list_all("/v1/conversations/", agent_id=agent["id"])}

    fleet.write_text(fleet.read_text().replace("You are a customer support agent.", "You are a billing agent."))
    planned = cli(letta_server, "apply", "-f", str(fleet), "--dry-run")
    assert f"[~] {names['agent']} (UPDATE) - 2 conversations" in planned.output
    assert "+ You are a billing agent." in planned.output
    assert "Plan: 0 to create, 1 to update, 0 to delete; 0 new conversations." in planned.output
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0

    assert agent_named(client, names["agent"])["system"].startswith("You are a billing agent.")
    after = {c["id"] for c in client.list_all("/v1/conversations/", agent_id=agent["id"])}
    assert after == before


def test_agent_owned_blocks_keep_what_the_agent_wrote_and_synced_blocks_are_restored(
    letta_server, client, names, write_fleet
):
    fleet = write_fleet(f"""
        agents:
          - name: {names["agent"]}
            llm_config: {{model: letta/letta-free, context_window: 16000}}
            embedding: letta/letta-free
            system_prompt: {{value: You help.}}
            memory_blocks:
              - {{name: notes, limit: 500, value: "seed", agent_owned: true}}
              - {{name: rules, limit: 500, value: "be kind", agent_owned: false}}
    """)
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    blocks = {b["label"]: b for b in agent_named(client, names["agent"])["blocks"]}
    client.patch(f"/v1/blocks/{blocks['notes']['id']}", json={"value": "the agent wrote this"})
    client.patch(f"/v1/blocks/{blocks['rules']['id']}", json={"value": "be rude"})

    planned = cli(letta_server, "plan", "-f", str(fleet))
    assert "~ block rules" in planned.output and "+ be kind" in planned.output
    assert "notes" not in planned.output
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    assert client.get(f"/v1/blocks/{blocks['rules']['id']}")["value"] == "be kind"
    assert client.get(f"/v1/blocks/{blocks['notes']['id']}")["value"] == "the agent wrote this"


def test_a_shared_block_is_one_block_attached_to_every_agent_that_names_it(letta_server, client, names, write_fleet):
    agent = """
          - name: {name}
            llm_config: {{model: letta/letta-free, context_window: 16000}}
            embedding: letta/letta-free
            system_prompt: {{value: You help.}}
            shared_blocks: [{shared}]
    """
    fleet = write_fleet(
        f"""
        shared_blocks:
          - {{name: {names["shared"]}, limit: 1000, value: "Refunds within 30 days.", agent_owned: false}}
        agents:
    """
        + agent.format(name=names["agent"], shared=names["shared"])
        + agent.format(name=names["other"], shared=names["shared"])
    )
    result = cli(letta_server, "apply", "-f", str(fleet))
    assert result.exit_code == 0, result.output
    ids = [
        {b["label"]: b["id"] for b in agent_named(client, n)["blocks"]}[names["shared"]]
        for n in (names["agent"], names["other"])
    ]
    assert ids[0] == ids[1]
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


def test_apply_with_a_target_changes_only_that_part_of_the_fleet(letta_server, client, names, tmp_path):
    fleet = example_fleet(tmp_path, names["agent"])
    fleet.write_text(
        fleet.read_text() + fleet.read_text().split("agents:\n", 1)[1].replace(names["agent"], names["other"])
    )

    targeted = cli(letta_server, "apply", "-f", str(fleet), "--target", f"agent.{names['other']}")

    assert targeted.exit_code == 0, targeted.output
    assert "Targeted: 6 of the fleet's 12 resources" in targeted.stderr
    assert client.list_all("/v1/agents/", name=names["agent"]) == []
    assert len(agent_named(client, names["other"])["blocks"]) == 2
    rest = cli(letta_server, "plan", "-f", str(fleet))
    assert f"[+] {names['agent']} (CREATE)" in rest.output and names["other"] not in rest.output


def test_unknown_model_handles_are_reported_before_any_write(letta_server, client, names, write_fleet):
    fleet = write_fleet(f"""
        agents:
          - name: {names["agent"]}
            llm_config: {{model: google_ai/gemini-2.0-flash-lite, context_window: 32000}}
            embedding: openai/text-embedding-3-small
            system_prompt: {{value: You help.}}
    """)
    result = cli(letta_server, "apply", "-f", str(fleet))
    assert result.exit_code == 1
    assert f"{fleet}:3:18: model handle 'google_ai/gemini-2.0-flash-lite' is not offered by" in result.stderr
    assert "use one of: " in result.stderr and "letta/letta-free" in result.stderr
    assert "embedding handle 'openai/text-embedding-3-small'" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not client.list_all("/v1/agents/", name=names["agent"])


def test_a_failed_agent_does_not_stop_the_others_and_a_second_apply_converges(letta_server, client, names, write_fleet):
    template = """
        agents:
          - name: {good}
            llm_config: {{model: letta/letta-free, context_window: 16000}}
            embedding: letta/letta-free
            system_prompt: {{value: You help.}}
            conversations: [{{summary: one}}]
          - name: {bad}
            llm_config: {{model: some-model, model_endpoint_type: {endpoint_type},
                          model_endpoint: "http://127.0.0.1:9/v1", context_window: 16000}}
            embedding: letta/letta-free
            system_prompt: {{value: You help too.}}
            memory_blocks: [{{name: notes, limit: 100, value: hi}}]
            conversations: [{{summary: two}}]
    """
    fleet = write_fleet(template.format(good=names["agent"], bad=names["other"], endpoint_type="no-such-type"))
    failed = cli(letta_server, "apply", "-f", str(fleet))
    assert failed.exit_code == 1
    assert f"agent.{names['other']}: failed" in failed.output
    assert f"agent.{names['other']}.conversation.two: skipped" in failed.output
    assert "Apply failed:" in failed.output
    assert client.list_all("/v1/agents/", name=names["agent"])  # the independent agent was created

    fleet.write_text(fleet.read_text().replace("no-such-type", "openai"))
    fixed = cli(letta_server, "apply", "-f", str(fleet))
    assert fixed.exit_code == 0, fixed.output
    assert f"[+] {names['other']} (CREATE)" in fixed.output and names["agent"] not in fixed.output
    for name in (names["agent"], names["other"]):
        agent = agent_named(client, name)
        assert len(client.list_all("/v1/conversations/", agent_id=agent["id"])) == 1
    # The agent's block goes inside its create request: the refused create made none, and the next made one.
    assert [b["label"] for b in agent_named(client, names["other"])["blocks"]] == ["notes"]
    assert not [
        b
        for b in client.list_all("/v1/blocks/", label="notes")
        if (b.get("metadata") or {}).get("agent") == names["other"]
    ]
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


def test_a_block_made_for_an_agent_but_never_attached_is_reused(letta_server, client, names, write_fleet):
    text = f"""
        agents:
          - name: {names["agent"]}
            llm_config: {{model: letta/letta-free, context_window: 16000}}
            embedding: letta/letta-free
            system_prompt: {{value: You help.}}
    """
    fleet = write_fleet(text)
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    # As if an earlier apply had created the block and stopped before attaching it:
    orphan = client.post(
        "/v1/blocks/",
        json={
            "label": "notes",
            "value": "hi",
            "limit": 100,
            "metadata": {"managed_by": "lettafleet", "agent": names["agent"]},
        },
    )
    write_fleet(text.rstrip(" ") + "            memory_blocks: [{name: notes, limit: 100, value: hi}]\n")
    planned = cli(letta_server, "plan", "-f", str(fleet))
    assert "~ block notes" in planned.output and "attached" in planned.output
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    blocks = {b["label"]: b["id"] for b in agent_named(client, names["agent"])["blocks"]}
    assert blocks["notes"] == orphan["id"]
    assert [
        b
        for b in client.list_all("/v1/blocks/", label="notes")
        if (b.get("metadata") or {}).get("agent") == names["agent"]
    ] == [client.get(f"/v1/blocks/{orphan['id']}")]


def test_apply_with_a_saved_plan_applies_it_only_while_it_is_still_current(letta_server, client, names, tmp_path):
    fleet = example_fleet(tmp_path, names["agent"])
    saved = tmp_path / "plan.json"
    assert cli(letta_server, "plan", "-f", str(fleet), "--out", str(saved)).exit_code == 0
    applied = cli(letta_server, "apply", "-f", str(fleet), "--plan", str(saved))
    assert applied.exit_code == 0, applied.output + applied.stderr
    assert client.list_all("/v1/agents/", name=names["agent"])

    fleet.write_text(fleet.read_text().replace("You are a customer support agent.", "You are a billing agent."))
    assert cli(letta_server, "plan", "-f", str(fleet), "--out", str(saved)).exit_code == 0
    # Someone changes the server after the plan was reviewed:
    agent = agent_named(client, names["agent"])
    client.patch(f"/v1/agents/{agent['id']}", json={"description": "edited by hand"})
    refused = cli(letta_server, "apply", "-f", str(fleet), "--plan", str(saved))
    assert refused.exit_code == 1
    assert "is not what apply would do now" in refused.stderr and "Nothing was changed" in refused.stderr
    assert agent_named(client, names["agent"])["system"].startswith("You are a customer support agent.")
