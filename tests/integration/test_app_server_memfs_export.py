"""`export` of an App Server agent whose memory is git-backed files: the `memory:` section comes back out (files in
folders beside the fleet file), and planning the export against the same server says "No changes" (0.34.12's v2
layout and 0.32.18's v1)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml

from lettafleet.core import Recorded
from lettafleet.plugins.backends.app_server.agents import RECORD_SECRET, write_app_record
from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.llm_server import FakeLLM
from tests.integration.test_app_server_memfs import applied, memfs_fleet, read_record_of
from tests.integration.test_app_server_plan_apply import MODEL, app_server, cli, suffix

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "suffix"]  # fixtures, shared with the plan/apply tests


def exported_memory(url: str, name: str, out: Path) -> dict[str, object]:
    """Export the agent to `out` and return its `memory:` section."""
    exported = cli(url, "export", name, "-o", str(out))
    assert exported.exit_code == 0, exported.output
    (entry,) = yaml.safe_load(out.read_text())["agents"]
    memory: dict[str, object] = entry["memory"]
    assert "memory_blocks" in entry and [block["name"] for block in entry["memory_blocks"]] == ["handbook"]
    return memory


def plans_no_changes(url: str, fleet: Path) -> None:
    replanned = cli(url, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert replanned.exit_code == 0, replanned.output
    assert "No changes." in replanned.output


def run_round_trip(url: str, client: AppServerClient, name: str, layout: str, tmp_path: Path) -> None:
    applied(url, memfs_fleet(tmp_path / "declared", name, layout))
    agent_id = str(client.agents_named(name)[0]["id"])
    own = "---\nname: own\ndescription: the agent's own\n---\nKept by the agent.\n"
    client.write_memory_file(agent_id, "skills/own/SKILL.md", own, message="the agent's own skill")

    out = tmp_path / "exported" / "fleet.yaml"
    memory = exported_memory(url, name, out)
    assert memory["mode"] == "memfs"
    template = out.parent / str(memory["template_dir"])
    assert (template / "system" / "policies.md").read_text().endswith("No refunds for billing.\n")
    assert (template / "system" / "refunds.md").read_text().endswith("Within 30 days, with the receipt.\n")
    assert not (template / "handbook.md").exists() and not (template / "system" / "handbook.md").exists()
    skills = {skill["name"]: out.parent / skill["from_dir"] for skill in memory["skills"]}  # type: ignore[attr-defined]
    assert sorted(skills) == ["own", "triage"]
    assert (skills["triage"] / "triage.sh").read_text() == "#!/bin/sh\necho triaged\n"
    assert (skills["own"] / "SKILL.md").read_text() == own  # the agent's own files are its memory too
    assert "value" not in yaml.safe_dump(memory)  # texts are files, not inline values

    assert cli(url, "validate", str(out)).exit_code == 0
    plans_no_changes(url, out)
    # The export declares what the agent has; what it removes stays the record's: taking out a file an apply
    # wrote deletes it, taking out the agent's own skill leaves it alone.
    (template / "system" / "policies.md").unlink()
    (skills["own"] / "SKILL.md").unlink()
    own_entry = f"        - name: own\n          from_dir: {skills['own'].relative_to(out.parent)}\n"
    assert own_entry in out.read_text()
    out.write_text(out.read_text().replace(own_entry, ""))
    planned = cli(url, "plan", "-f", str(out), "-o", "json")
    assert planned.exit_code == 0, planned.output
    changes = {c["address"]: c["action"] for c in json.loads(planned.stdout)["changes"] if c["action"] != "no-op"}
    assert changes == {f'agent.{name}.memory_file["system/policies.md"]': "delete"}, changes


def test_an_exported_memfs_agent_gives_its_memory_section_back_and_plans_no_changes_v2(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    run_round_trip(app_server, app_server_client, f"memfs-exp-{suffix}", "v2", tmp_path)


def test_an_exported_memfs_agent_of_the_v1_layout_plans_no_changes(
    app_server_v1_layout_url: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    url, name = app_server_v1_layout_url, f"memfs-exp-v1-{uuid.uuid4().hex[:8]}"
    with AppServerClient(url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
        try:
            run_round_trip(url, client, name, "v1", tmp_path)
        finally:
            for agent in client.agents_named(name):
                client.delete_agent(agent["id"])


def test_paths_from_a_record_edited_by_hand_are_left_out_with_a_note_never_read_or_written_outside(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"memfs-exp-hostile-{suffix}"
    applied(app_server, memfs_fleet(tmp_path / "declared", name, "v2"))
    agent_id = str(app_server_client.agents_named(name)[0]["id"])
    app_server_client.write_memory_file(agent_id, ".git/x.md", "---\nname: x\ndescription: x\n---\nin .git\n")
    hostile = ["../../outside.md", "/tmp/absolute.md", ".git/x.md", ".git/config"]
    record = read_record_of(app_server_client, agent_id)
    record += [Recorded(f'memory_file["{path}"]', "memory_file", f"{path}#0123456789abcdef") for path in hostile]
    write_app_record(app_server_client, agent_id, record)

    out = tmp_path / "exported" / "fleet.yaml"
    exported = cli(app_server, "export", name, "-o", str(out))
    assert exported.exit_code == 0, exported.output
    for path in hostile:
        assert f"note: agent {name}: left out memory file {path!r}: it must" in exported.stderr, exported.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "declared" not in p.parts]
    assert all(p.is_relative_to(out.parent) for p in written) and not (tmp_path / "outside.md").exists()
    assert not [p for p in written if "in .git" in p.read_text()]


def test_import_appends_an_agents_memory_files_as_its_section_and_records_them(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    ours, by_hand = f"memfs-imp-ours-{suffix}", f"memfs-imp-hand-{suffix}"
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        f"fleet: memfs-imp-{suffix}\nagents:\n  - name: {ours}\n    system_prompt: {{value: You help.}}\n"
        f"    llm_config: {{model: {MODEL}, context_window: 16000}}\n"
    )
    applied(app_server, fleet)
    made = app_server_client.create_agent({"name": by_hand, "model": MODEL, "system": "Made by hand."})
    skill = "---\nname: lookup\ndescription: look orders up\n---\nAsk for the order number.\n"
    app_server_client.write_memory_file(made["id"], "skills/lookup/SKILL.md", skill, message="by hand")

    imported = cli(app_server, "import", by_hand, "-f", str(fleet))
    assert imported.exit_code == 0, imported.output
    entry = next(agent for agent in yaml.safe_load(fleet.read_text())["agents"] if agent["name"] == by_hand)
    assert entry["memory"] == {"mode": "memfs", "skills": [{"name": "lookup", "from_dir": f"skills/{by_hand}/lookup"}]}
    assert (tmp_path / "skills" / by_hand / "lookup" / "SKILL.md").read_text() == skill
    assert "skills/lookup/SKILL.md#" in app_server_client.secret_values(made["id"])[RECORD_SECRET]
    plans_no_changes(app_server, fleet)
