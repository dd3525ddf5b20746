"""`export` and `import` against the real dev App Servers: a fleet applied, exported, plans "No changes" with the
values the server holds (0.34.12's v2 memory layout and 0.32.18's v1); an agent made by hand is imported."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from lettafleet.core import Recorded
from lettafleet.plugins.backends.app_server.agents import write_app_record
from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.llm_server import FakeLLM
from tests.integration.test_app_server_plan_apply import (
    MODEL,
    agent_yaml,
    app_server,
    blocks_yaml,
    by_name,
    cli,
    fleet_file,
    suffix,
)

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "suffix"]  # fixtures, shared with the plan/apply tests

LONG = "Refunds: 30 days.\nExchanges: 60 days.\nAsk for the order number.\nSay when you do not know."


def test_an_exported_app_server_fleet_holds_the_servers_values_and_plans_no_changes(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names = [f"as-exp-{role}-{suffix}" for role in ("triage", "billing")]
    blocks = blocks_yaml(("persona", "I route tickets.", True), ("policies", LONG, False))
    blocks += "    compaction_settings:\n      mode: sliding_window\n"
    fleet = fleet_file(tmp_path, f"as-exp-{suffix}", *(agent_yaml(name, extra=blocks) for name in names))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    agent = by_name(app_server_client, suffix)[names[0]]
    app_server_client.write_memory_file(
        agent["id"], "persona.md", "---\nname: persona\ndescription: the persona\n---\nThe agent wrote this."
    )

    out = tmp_path / "exported" / "fleet.yaml"
    exported = cli(app_server, "export", f"as-exp-*-{suffix}", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert "Exported 2 agents" in exported.output

    document = yaml.safe_load(out.read_text())
    assert document["fleet"] == f"as-exp-{suffix}"
    entry = next(agent for agent in document["agents"] if agent["name"] == names[0])
    assert entry["description"] == "helps" and entry["system_prompt"] == {"value": f"You are {names[0]}."}
    assert entry["llm_config"] == {"model": MODEL, "context_window": 16000}
    assert entry["tags"] == ["team-a"]  # neither lettafleet's marks nor the server's git-memory-enabled
    assert entry["compaction_settings"] == {"mode": "sliding_window"}
    blocks_by_name = {block["name"]: block for block in entry["memory_blocks"]}
    assert sorted(blocks_by_name) == ["persona", "policies"]  # the MEMORY.md index is no block
    assert blocks_by_name["persona"]["value"] == "The agent wrote this."  # what the server holds, not the file
    assert (out.parent / blocks_by_name["policies"]["from_file"]).read_text() == LONG
    assert "LETTAFLEET_RECORD" not in out.read_text()

    assert cli(app_server, "validate", str(out)).exit_code == 0
    replanned = cli(app_server, "plan", "-f", str(out), "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output
    assert "No changes." in replanned.output


def test_an_agent_made_by_0_32_exports_its_v1_memory_files_as_blocks(
    app_server_v1_layout_url: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    url, suffix = app_server_v1_layout_url, uuid.uuid4().hex[:8]
    name = f"as-exp-v1-{suffix}"
    fleet = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, extra=blocks_yaml(("policies", "Be kind.", False))))
    with AppServerClient(url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
        try:
            assert cli(url, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
            out = tmp_path / "exported.yaml"
            exported = cli(url, "export", name, "-o", str(out))
            assert exported.exit_code == 0, exported.output
            (entry,) = yaml.safe_load(out.read_text())["agents"]
            assert entry["memory_blocks"] == [{"name": "policies", "description": "the policies", "value": "Be kind."}]
            replanned = cli(url, "plan", "-f", str(out), "--detailed-exitcode")
            assert replanned.exit_code == 0, replanned.output
        finally:
            for agent in by_name(client, suffix).values():
                client.delete_agent(agent["id"])


def test_import_on_the_app_server_marks_an_agent_made_by_hand_and_the_file_plans_no_changes(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    ours, by_hand = f"as-imp-ours-{suffix}", f"as-imp-hand-{suffix}"
    fleet = fleet_file(tmp_path, f"as-imp-{suffix}", agent_yaml(ours))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    made = app_server_client.create_agent(
        {
            "name": by_hand,
            "model": MODEL,
            "description": "made by hand",
            "system": "You were made by hand.",
            "tags": ["handmade"],
            "memory_blocks": [{"label": "notes", "value": "Hand notes.", "description": "the notes"}],
        }
    )

    imported = cli(app_server, "import", by_hand, "-f", str(fleet))
    assert imported.exit_code == 0, imported.output
    assert f"mark agent {by_hand} ({made['id']}) as lettafleet's" in imported.output

    tags = app_server_client.retrieve_agent(made["id"])["tags"]
    assert {"handmade", "managed_by:lettafleet", f"lettafleet-fleet:as-imp-{suffix}", "git-memory-enabled"} <= set(tags)
    assert "notes.md" in app_server_client.secret_values(made["id"])["LETTAFLEET_RECORD"]  # the file is the fleet's
    entry = next(agent for agent in yaml.safe_load(fleet.read_text())["agents"] if agent["name"] == by_hand)
    assert entry["memory_blocks"] == [{"name": "notes", "description": "the notes", "value": "Hand notes."}]
    replanned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output


def test_a_file_the_agents_record_lists_as_another_kinds_is_not_exported_as_a_memory_block(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-exp-copy-{suffix}"
    fleet = fleet_file(tmp_path, f"as-exp-{suffix}", agent_yaml(name, extra=blocks_yaml(("persona", "Me.", True))))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    agent = by_name(app_server_client, suffix)[name]
    # A shared block's copy, as the App Server's shared blocks handler writes and records it.
    app_server_client.write_memory_file(agent["id"], "team.md", "---\nname: team\ndescription: the team\n---\nUs.")
    record = [
        Recorded("block.persona", "block", "persona.md"),
        Recorded("shared_block_attachment.team", "shared_block_attachment", "team.md#0f1e2d"),
    ]
    write_app_record(app_server_client, agent["id"], record)

    exported = cli(app_server, "export", name)
    assert exported.exit_code == 0, exported.output
    (entry,) = yaml.safe_load(exported.stdout)["agents"]
    assert [block["name"] for block in entry["memory_blocks"]] == ["persona"]


def test_an_export_keeps_declared_conversations_so_applying_it_archives_none_and_runtime_ones_need_the_flag(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"as-exp-conv-{suffix}"
    conversations = (
        "    conversations:\n      - summary: onboarding\n      - summary: escalations\n        protect: true\n"
    )
    fleet = fleet_file(tmp_path, f"as-exp-{suffix}", agent_yaml(name, extra=conversations))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    agent = by_name(app_server_client, suffix)[name]
    app_server_client.create_conversation(agent["id"], "a customer's chat")  # made at runtime

    out = tmp_path / "exported" / "fleet.yaml"
    assert cli(app_server, "export", name, "-o", str(out)).exit_code == 0
    (entry,) = yaml.safe_load(out.read_text())["agents"]
    assert sorted(entry["conversations"], key=lambda c: c["summary"]) == [
        {"summary": "escalations", "protect": True},
        {"summary": "onboarding"},
    ]
    replanned = cli(app_server, "plan", "-f", str(out), "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output
    assert cli(app_server, "apply", "-f", str(out), "--no-lock", "--prune").exit_code == 0
    live = app_server_client.list_conversations(agent["id"])
    assert not [c["summary"] for c in live if c.get("archived")]  # an export missing them would archive them

    with_runtime = cli(app_server, "export", name, "--conversations")
    assert with_runtime.exit_code == 0, with_runtime.output
    (entry,) = yaml.safe_load(with_runtime.stdout)["agents"]
    assert {"summary": "a customer's chat"} in entry["conversations"]


def test_an_export_gives_shared_block_copies_as_one_shared_block_and_secrets_by_name(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names = [f"as-exp-sh-{role}-{suffix}" for role in ("triage", "billing")]
    secret = f"EXP_KEY_{suffix.upper()}"
    attach = "    shared_blocks: [rules]\n"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        f"fleet: as-exp-{suffix}\nshared_blocks:\n  - name: rules\n    description: the rules\n    value: Be kind.\n"
        "    agent_owned: false\nagents:\n"
        + agent_yaml(names[0], extra=attach + f"    secrets:\n      {secret}: {{value: exp-secret-9d2f}}\n")
        + agent_yaml(names[1], extra=attach)
    )
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    billing = by_name(app_server_client, suffix)[names[1]]  # exported first (by name): its copy is edited
    app_server_client.write_memory_file(
        billing["id"], "rules.md", "---\nname: rules\ndescription: the rules\n---\nMine."
    )

    exported = cli(app_server, "export", f"as-exp-sh-*-{suffix}")
    assert exported.exit_code == 0, exported.output
    document = yaml.safe_load(exported.stdout)
    assert document["shared_blocks"] == [{"name": "rules", "description": "the rules", "value": "Be kind."}]
    entries = {entry["name"]: entry for entry in document["agents"]}
    for name in names:
        assert entries[name]["shared_blocks"] == ["rules"] and "memory_blocks" not in entries[name]
    assert entries[names[0]]["secrets"] == {secret: {"from_env": secret, "preserve_existing": True}}
    assert "exp-secret-9d2f" not in exported.output
    out = tmp_path / "exported.yaml"
    out.write_text(exported.stdout)
    # The edited copy stays what it is, drift shown once (agent_owned: true); the other agent's copy is no change.
    replanned = cli(app_server, "plan", "-f", str(out))
    assert replanned.exit_code == 0, replanned.output
    assert f"agent {names[1]} edited its copy (rules.md)" in replanned.output and "kept" in replanned.output
    assert names[0] not in replanned.output
