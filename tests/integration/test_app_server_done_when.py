"""Issue 17's "Done when", end to end against the real dev App Server: the seed's fleet (minus isolated blocks) and
a lettactl-style fleet using every key the App Server has apply, re-plan "No changes", update (a changed shared
block reaches every attaching agent's file), remove with `--prune` (a hand-made agent and a runtime conversation
untouched) and round-trip through `export`; the seed with its isolated blocks stops at that line, nothing written.

Everything is checked over the protocol. No message is sent, so the LLM stand-in only has to be connected (its
model is then one `list_models` offers)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.integration.test_app_server_plan_apply import MODEL, app_server, by_name, cli, files_of, suffix

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "suffix"]  # fixtures, shared with the plan/apply tests

SEED = Path(__file__).parents[1] / "fixtures" / "seed"
SECRET_VALUE = "done-when-secret-7c1d"


def seed_fleet(folder: Path, suffix: str, *, isolated: bool) -> Path:
    """The seed's fleet in `folder` (its knowledge/ beside it) as it is, but for a fleet name, its agent named for
    this test, its model one the App Server offers, and (unless `isolated`) without its isolated blocks."""
    shutil.copytree(SEED, folder)
    text = (folder / "fleet.yaml").read_text()
    text = text.replace("name: support-agent", f"name: done-seed-{suffix}")
    text = re.sub(r"model: \S+", f"model: {MODEL}", text)
    if not isolated:
        text = re.sub(r"\n *isolated_blocks:.*", "", text)
    (folder / "fleet.yaml").write_text(f"fleet: done-seed-{suffix}\n{text}")
    return folder / "fleet.yaml"


def lettactl_fleet(path: Path, suffix: str, *, rules: str = "Be kind.", billing: bool = True) -> Path:
    """Two agents using every key the App Server has (and `embedding`, `include_base_tools`, which it notes)."""
    billing_agent = f"""
  - name: done-billing-{suffix}
    description: Answers billing questions
    system_prompt: {{value: You answer billing questions.}}
    llm_config: {{model: {MODEL}, context_window: 16000}}
    tags: [team-a, billing]
    memory_blocks:
      - name: persona
        description: who I am
        value: I answer billing questions.
    shared_blocks: [house_rules]
"""
    path.write_text(
        f"""fleet: done-{suffix}
shared_blocks:
  - name: house_rules
    description: the rules every agent follows
    value: {rules}
    agent_owned: false
    limit: 1000
agents:
  - name: done-triage-{suffix}
    description: Routes tickets
    system_prompt: {{value: You route tickets.}}
    llm_config: {{model: {MODEL}, context_window: 24000}}
    embedding: openai/text-embedding-3-small
    include_base_tools: true
    tags: [team-a, triage]
    protect: true
    compaction_settings: {{mode: sliding_window}}
    memory_blocks:
      - name: persona
        description: who I am
        value: I route tickets.
        agent_owned: true
        limit: 2000
      - name: routing
        description: where tickets go
        value: Billing questions go to billing.
        agent_owned: false
        limit: 500
    shared_blocks: [house_rules]
    conversations:
      - summary: onboarding
      - summary: escalations
        protect: true
    secrets:
      DONE_KEY_{suffix.upper()}: {{value: {SECRET_VALUE}}}
"""
        + (billing_agent if billing else "")
    )
    return path


def no_changes(url: str, fleet: Path) -> None:
    replanned = cli(url, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output
    assert "No changes." in replanned.output


def applied(url: str, fleet: Path, *options: str) -> str:
    result = cli(url, "apply", "-f", str(fleet), "--no-lock", *options)
    assert result.exit_code == 0, result.output
    return result.output


def conversations_by_summary(client: AppServerClient, agent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c.get("summary")): c for c in client.list_conversations(agent["id"])}


def round_trip(url: str, pattern: str, folder: Path) -> dict[str, Any]:
    """Export the agents matching `pattern`, check the file plans "No changes", and return its document."""
    out = folder / "fleet.yaml"
    exported = cli(url, "export", pattern, "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert cli(url, "validate", str(out)).exit_code == 0
    no_changes(url, out)
    document: dict[str, Any] = yaml.safe_load(out.read_text())
    return document


def made_by_hand(client: AppServerClient, suffix: str) -> dict[str, Any]:
    """An agent made over the protocol, not by lettafleet, whose name ends with the test's suffix."""
    return client.create_agent({"name": f"by-hand-{suffix}", "model": MODEL, "system": "Made by hand."})


def test_the_seed_fleet_without_isolated_blocks_applies_updates_prunes_and_round_trips(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = seed_fleet(tmp_path / "seed", suffix, isolated=False)
    name = f"done-seed-{suffix}"
    applied(app_server, fleet)
    agent = by_name(app_server_client, suffix)[name]
    files = files_of(app_server_client, agent)
    assert files["faq.md"]["content"] == (SEED / "knowledge" / "faq.md").read_text().rstrip("\n")
    assert files["faq.md"]["description"] == "Frequently asked questions"
    assert "customer_context.md" in files
    assert {"Ticket #101", "Ticket #102"} <= set(conversations_by_summary(app_server_client, agent))
    no_changes(app_server, fleet)

    # Update: a changed description reaches the agent.
    fleet.write_text(fleet.read_text().replace("Multi-conversation support agent", "Support, one ticket a chat"))
    applied(app_server, fleet)
    assert app_server_client.retrieve_agent(agent["id"])["description"] == "Support, one ticket a chat"
    no_changes(app_server, fleet)

    # Remove with --prune: a conversation and a block taken out; a hand-made agent and a runtime conversation stay.
    hand = made_by_hand(app_server_client, suffix)
    runtime = app_server_client.create_conversation(agent["id"], "a customer's chat")
    document = yaml.safe_load(fleet.read_text())
    document["agents"][0]["conversations"] = [{"summary": "Ticket #101"}]
    document["agents"][0]["memory_blocks"] = document["agents"][0]["memory_blocks"][:1]
    fleet.write_text(yaml.safe_dump(document, sort_keys=False))
    applied(app_server, fleet, "--prune")
    conversations = conversations_by_summary(app_server_client, agent)
    assert conversations["Ticket #102"]["archived"] is True  # the server has no delete
    assert conversations["Ticket #101"].get("archived") is not True
    assert conversations["a customer's chat"]["id"] == runtime["id"] and not conversations["a customer's chat"].get(
        "archived"
    )
    assert "customer_context.md" not in files_of(app_server_client, agent)
    assert app_server_client.retrieve_agent(hand["id"])["name"] == hand["name"]
    no_changes(app_server, fleet)

    exported = round_trip(app_server, name, tmp_path / "exported")
    (entry,) = exported["agents"]
    assert entry["conversations"] == [{"summary": "Ticket #101"}]  # the runtime one only with --conversations
    assert [block["name"] for block in entry["memory_blocks"]] == ["faq"]


def test_a_lettactl_style_fleet_with_every_app_server_key_applies_updates_prunes_and_round_trips(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = lettactl_fleet(tmp_path / "fleet.yaml", suffix)
    triage, billing = f"done-triage-{suffix}", f"done-billing-{suffix}"
    planned = cli(app_server, "plan", "-f", str(fleet))
    assert planned.exit_code == 0, planned.output
    assert f"{fleet}:13:5: note: embedding has no effect on the Letta App Server backend" in planned.output
    assert f"{fleet}:14:5: note: include_base_tools has no effect on the Letta App Server" in planned.output
    assert SECRET_VALUE not in planned.output
    applied(app_server, fleet)

    live = by_name(app_server_client, suffix)
    agent = app_server_client.retrieve_agent(live[triage]["id"])
    assert agent["description"] == "Routes tickets" and agent["system"] == "You route tickets."
    assert agent["model"] == MODEL and agent["model_settings"]["context_window_limit"] == 24000
    assert agent["compaction_settings"]["mode"] == "sliding_window"
    assert {"team-a", "triage", "managed_by:lettafleet", f"lettafleet-fleet:done-{suffix}"} <= set(agent["tags"])
    files = files_of(app_server_client, agent)
    assert files["persona.md"]["content"] == "I route tickets."
    assert files["routing.md"]["content"] == "Billing questions go to billing."
    assert app_server_client.secret_values(agent["id"])[f"DONE_KEY_{suffix.upper()}"] == SECRET_VALUE
    assert {"onboarding", "escalations"} <= set(conversations_by_summary(app_server_client, agent))
    for each in (triage, billing):
        assert files_of(app_server_client, live[each])["house_rules.md"]["content"] == "Be kind."
    no_changes(app_server, fleet)

    # Update: a changed shared block reaches every attaching agent's own file.
    lettactl_fleet(fleet, suffix, rules="Be kind. Be brief.")
    assert "2 updated" in applied(app_server, fleet)
    for each in (triage, billing):
        assert files_of(app_server_client, live[each])["house_rules.md"]["content"] == "Be kind. Be brief."
    no_changes(app_server, fleet)

    # Remove with --prune: the billing agent goes; a hand-made agent and a runtime conversation stay untouched.
    hand = made_by_hand(app_server_client, suffix)
    runtime = app_server_client.create_conversation(agent["id"], "a customer's chat")
    lettactl_fleet(fleet, suffix, rules="Be kind. Be brief.", billing=False)
    applied(app_server, fleet, "--prune")
    left = by_name(app_server_client, suffix)
    assert sorted(left) == sorted([triage, hand["name"]])
    assert left[hand["name"]]["id"] == hand["id"]
    chat = conversations_by_summary(app_server_client, agent)["a customer's chat"]
    assert chat["id"] == runtime["id"] and not chat.get("archived")
    no_changes(app_server, fleet)

    # Round trip: the exported file plans "No changes", with the shared block, conversations and secret by name.
    exported = round_trip(app_server, f"done-*-{suffix}", tmp_path / "exported")
    assert exported["fleet"] == f"done-{suffix}"
    assert exported["shared_blocks"] == [
        {"name": "house_rules", "description": "the rules every agent follows", "value": "Be kind. Be brief."}
    ]
    (entry,) = exported["agents"]
    assert entry["shared_blocks"] == ["house_rules"]
    assert sorted(block["name"] for block in entry["memory_blocks"]) == ["persona", "routing"]
    assert sorted(entry["conversations"], key=lambda c: c["summary"]) == [
        {"summary": "escalations", "protect": True},
        {"summary": "onboarding"},
    ]
    secret = f"DONE_KEY_{suffix.upper()}"
    assert entry["secrets"] == {secret: {"from_env": secret, "preserve_existing": True}}
    assert SECRET_VALUE not in (tmp_path / "exported" / "fleet.yaml").read_text()


def test_the_seed_fleet_with_isolated_blocks_stops_at_that_line_with_nothing_written(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = seed_fleet(tmp_path / "seed", suffix, isolated=True)
    line = next(n for n, text in enumerate(fleet.read_text().splitlines(), 1) if "isolated_blocks" in text)
    before = by_name(app_server_client, f"done-seed-{suffix}")  # other tests use the server at the same time

    result = cli(app_server, "apply", "-f", str(fleet), "--no-lock")

    assert result.exit_code == 1
    assert f"{fleet}:{line}:" in result.output and "isolated_blocks" in result.output, result.output
    assert "one agent per conversation" in result.output
    assert "nothing was changed" in result.output
    assert by_name(app_server_client, f"done-seed-{suffix}") == before == {}
