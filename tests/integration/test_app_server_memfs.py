"""lettactl's `memory:` section (`mode: memfs`) against the real dev App Servers (0.34.12, v2 layout; 0.32.18, v1):
files from values, from files, a template folder, skills and a block apply; a second plan has no changes; a
changed file is an update; the agent's own edit is drift and left alone; a line taken out deletes only its file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path, PurePosixPath

from lettafleet.core import Recorded, read_record
from lettafleet.plugins.backends.app_server.agents import RECORD_SECRET, write_app_record
from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.llm_server import FakeLLM
from tests.fakes.ws_fault_proxy import WsFault, running_ws_fault_proxy
from tests.integration.test_app_server_plan_apply import MODEL, app_server, cli, suffix

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["app_server", "suffix"]  # fixtures, shared with the plan/apply tests

HANDBOOK = (
    "# Handbook\nRead every ticket twice.\n## Refunds\nWithin 30 days, with the receipt.\n## Shipping\nTwo days.\n"
)


def frontmatter(name: str, description: str, layout: str) -> str:
    """What the layout wants atop a memory file in system/: v2 a name and a description, v1 a description."""
    return f"---\n{f'name: {name}' + chr(10) if layout == 'v2' else ''}description: {description}\n---\n"


def memfs_fleet(
    tmp_path: Path, name: str, layout: str, *, policies: str | None = "No refunds for {{TEAM}}.", tone: bool = True
) -> Path:
    """A fleet of one agent whose memory is declared with every source: a value with template_vars, a file, a
    template folder, a skill and a section of one of its blocks."""
    (tmp_path / "memory" / "system").mkdir(parents=True, exist_ok=True)
    (tmp_path / "skills" / "triage").mkdir(parents=True, exist_ok=True)
    (tmp_path / "texts").mkdir(exist_ok=True)
    if layout == "v2":  # v2 wants an index in every folder (v1 none, and no frontmatter-less file in system/)
        (tmp_path / "memory" / "system" / "MEMORY.md").write_text("# System\n- escalation.md\n")
    (tmp_path / "memory" / "system" / "escalation.md").write_text(
        frontmatter("escalation", "when to escalate", layout) + "Escalate when money is involved.\n"
    )
    (tmp_path / "memory" / "README.md").write_text("not shipped\n")
    (tmp_path / "skills" / "triage" / "SKILL.md").write_text(
        "---\nname: triage\ndescription: sort tickets\n---\nPick urgent, soon or whenever.\n"
    )
    (tmp_path / "skills" / "triage" / "triage.sh").write_text("#!/bin/sh\necho triaged\n")
    (tmp_path / "texts" / "tone.md").write_text(frontmatter("tone", "how we write", layout) + "Short sentences.\n")
    policy_text = frontmatter("policies", "the policies", layout) + str(policies) + "\n"
    policy_entry = (
        f"        - to: system/policies.md\n          value: {json.dumps(policy_text)}\n"
        "          template_vars: {TEAM: billing}\n"
    )
    tone_entry = "        - to: system/tone.md\n          from_file: texts/tone.md\n"
    entries = (policy_entry if policies is not None else "") + (tone_entry if tone else "")
    files = f"      files:\n{entries}" if entries else "      files: []\n"
    fleet = f"""\
fleet: memfs-{name}
agents:
  - name: {name}
    system_prompt: {{value: You answer tickets.}}
    llm_config: {{model: {MODEL}, context_window: 16000}}
    memory_blocks:
      - name: handbook
        description: the handbook
        agent_owned: true
        limit: 4000
        value: {json.dumps(HANDBOOK)}
    memory:
      mode: memfs
      template_dir: memory
{files}      skills:
        - from_dir: skills/triage
      from_blocks:
        - {{block: handbook, to: system/refunds.md, extract_section: Refunds}}
"""
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet)
    return path


def texts(client: AppServerClient, agent_id: str, *paths: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for path in paths:
        try:
            found[path] = client.read_memory_file(agent_id, path)
        except Exception:
            found[path] = None
    return found


def read_record_of(client: AppServerClient, agent_id: str) -> list[Recorded]:
    """The agent's record as its `LETTAFLEET_RECORD` secret holds it."""
    return list(read_record({"metadata": json.loads(client.secret_values(agent_id)[RECORD_SECRET])}) or ())


def applied(url: str, fleet: Path) -> str:
    result = cli(url, "apply", "-f", str(fleet), "--no-lock")
    assert result.exit_code == 0, result.output
    return result.output


def replans_no_changes(url: str, fleet: Path) -> None:
    result = cli(url, "plan", "-f", str(fleet), "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes." in result.output


def run_memfs_lifecycle(url: str, client: AppServerClient, name: str, layout: str, tmp_path: Path) -> None:
    fleet = memfs_fleet(tmp_path, name, layout)
    planned = cli(url, "plan", "-f", str(fleet))
    assert planned.exit_code == 0, planned.output
    assert '+ memory file "system/policies.md"' in planned.output
    assert '+ memory file "system/refunds.md": from memory block handbook' in planned.output
    applied(url, fleet)
    agent_id = str(client.agents_named(name)[0]["id"])
    files = texts(
        client, agent_id, "system/policies.md", "system/tone.md", "system/escalation.md", "skills/triage/triage.sh"
    )
    assert files["system/policies.md"] == frontmatter("policies", "the policies", layout) + "No refunds for billing.\n"
    assert str(files["system/tone.md"]).endswith("Short sentences.\n")
    assert str(files["system/escalation.md"]).endswith("Escalate when money is involved.\n")
    assert files["skills/triage/triage.sh"] == "#!/bin/sh\necho triaged\n"
    assert texts(client, agent_id, "README.md")["README.md"] is None  # the template's own README stays out
    refunds = str(texts(client, agent_id, "system/refunds.md")["system/refunds.md"])
    assert refunds.endswith("\n---\nWithin 30 days, with the receipt.\n")
    replans_no_changes(url, fleet)

    # A changed file is an update showing the differing line; apply writes it.
    fleet = memfs_fleet(tmp_path, name, layout, policies="Refunds within 30 days for {{TEAM}}.")
    planned = cli(url, "plan", "-f", str(fleet))
    assert '~ memory file "system/policies.md"' in planned.output
    assert "- No refunds for billing." in planned.output and "+ Refunds within 30 days for billing." in planned.output
    applied(url, fleet)
    assert str(texts(client, agent_id, "system/policies.md")["system/policies.md"]).endswith("30 days for billing.\n")
    replans_no_changes(url, fleet)

    # The agent's own edit is drift, shown and left alone by apply.
    edited = str(texts(client, agent_id, "system/tone.md")["system/tone.md"]) + "The agent added this.\n"
    client.write_memory_file(agent_id, "system/tone.md", edited, message="the agent's own edit")
    client.write_memory_file(agent_id, "skills/own/SKILL.md", "---\nname: own\ndescription: mine\n---\nMine.\n")
    drift = cli(url, "plan", "-f", str(fleet), "-o", "json")
    tone = next(c for c in json.loads(drift.stdout)["changes"] if c["address"].endswith('["system/tone.md"]'))
    assert tone["action"] == "no-op" and f"agent {name} edited system/tone.md" in tone["drift"]
    applied(url, fleet)
    assert texts(client, agent_id, "system/tone.md")["system/tone.md"] == edited

    # A line taken out deletes that file only where lettafleet wrote it as it is: the agent's edit waits for
    # --prune, the agent's own file is not touched.
    fleet = memfs_fleet(tmp_path, name, layout, policies=None, tone=False)
    planned = cli(url, "plan", "-f", str(fleet), "-o", "json")
    assert planned.exit_code == 0, planned.output
    changes = {
        c["address"]: (c["action"], c.get("held"))
        for c in json.loads(planned.stdout)["changes"]
        if c["action"] != "no-op"
    }
    assert changes == {
        f'agent.{name}.memory_file["system/policies.md"]': ("delete", None),
        f'agent.{name}.memory_file["system/tone.md"]': ("delete", "prune"),  # the agent edited it
    }, planned.stdout
    applied(url, fleet)
    after = texts(
        client, agent_id, "system/policies.md", "system/tone.md", "skills/own/SKILL.md", "system/escalation.md"
    )
    assert after["system/policies.md"] is None
    assert after["system/tone.md"] == edited and after["skills/own/SKILL.md"] is not None
    assert after["system/escalation.md"] is not None


def test_a_memfs_memory_section_applies_updates_keeps_agent_edits_and_removes_only_its_files_v2(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    run_memfs_lifecycle(app_server, app_server_client, f"memfs-v2-{suffix}", "v2", tmp_path)


def test_a_memfs_memory_section_follows_the_v1_layout_of_an_agent_made_by_0_32(
    app_server_v1_layout_url: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    url, name = app_server_v1_layout_url, f"memfs-v1-{uuid.uuid4().hex[:8]}"
    with AppServerClient(url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
        try:
            run_memfs_lifecycle(url, client, name, "v1", tmp_path)
        finally:
            for agent in client.agents_named(name):
                client.delete_agent(agent["id"])


def test_a_file_the_agents_layout_refuses_stops_the_plan_at_its_line_before_any_write(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"memfs-bad-{suffix}"
    fleet = memfs_fleet(tmp_path, name, "v2")
    fleet.write_text(
        fleet.read_text().replace("          from_file: texts/tone.md\n", "          value: no frontmatter\n")
    )
    planned = cli(app_server, "plan", "-f", str(fleet))
    assert planned.exit_code == 1
    assert "fleet.yaml:19:11: system/tone.md: the v2 layout wants frontmatter with name and description" in (
        planned.output
    )
    assert app_server_client.agents_named(name) == []


def small_fleet(tmp_path: Path, name: str, *, identity: str, overwrite: bool = False) -> Path:
    """An agent with an index, a preserved identity, notes, and a file to prune."""

    def entry(path: str, body: str) -> str:
        text = frontmatter(PurePosixPath(path).stem, f"the {PurePosixPath(path).stem}", "v2") + body + "\n"
        return f"        - to: {path}\n          value: {json.dumps(text)}\n"

    path = tmp_path / "small.yaml"
    path.write_text(
        f"agents:\n  - name: {name}\n    system_prompt: {{value: You help.}}\n"
        f"    llm_config: {{model: {MODEL}, context_window: 16000}}\n"
        "    memory:\n      mode: memfs\n      preserve_existing_paths: [system/identity.md]\n"
        f"      prune_paths: [system/retired.md]\n      overwrite_agent_edits: {str(overwrite).lower()}\n"
        "      files:\n"
        f"        - to: system/MEMORY.md\n          value: {json.dumps('# System' + chr(10))}\n"
        + entry("system/identity.md", identity)
        + entry("system/notes.md", "Notes from the fleet.")
    )
    return path


def test_preserved_files_are_seeded_once_prune_paths_delete_and_overwrite_agent_edits_writes_over_an_edit(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    client, name = app_server_client, f"memfs-keys-{suffix}"
    fleet = small_fleet(tmp_path, name, identity="I am the fleet's.")
    applied(app_server, fleet)
    agent_id = str(client.agents_named(name)[0]["id"])
    retired = frontmatter("retired", "old", "v2") + "From before lettafleet.\n"
    client.write_memory_file(agent_id, "system/retired.md", retired, message="a file lettactl once pushed")
    planned = cli(app_server, "plan", "-f", str(fleet))
    assert '- memory file "system/retired.md": prune_paths names it' in planned.output
    applied(app_server, fleet)
    assert texts(client, agent_id, "system/retired.md")["system/retired.md"] is None

    # A preserved file is the agent's once it exists: its edit is no drift, a new text in the file no update.
    own = frontmatter("identity", "the identity", "v2") + "I am the agent's own.\n"
    client.write_memory_file(agent_id, "system/identity.md", own, message="the agent's own edit")
    replans_no_changes(app_server, small_fleet(tmp_path, name, identity="A new text in the file."))

    # overwrite_agent_edits: true writes the file's text over the agent's edit, the plan saying so.
    notes = str(texts(client, agent_id, "system/notes.md")["system/notes.md"])
    client.write_memory_file(agent_id, "system/notes.md", notes + "The agent's line.\n", message="the agent's edit")
    fleet = small_fleet(tmp_path, name, identity="I am the fleet's.", overwrite=True)
    planned = cli(app_server, "plan", "-f", str(fleet))
    assert f"drift: agent {name} edited system/notes.md since lettafleet wrote it; apply overwrites it" in (
        planned.output
    )
    applied(app_server, fleet)
    assert texts(client, agent_id, "system/notes.md")["system/notes.md"] == notes
    assert texts(client, agent_id, "system/identity.md")["system/identity.md"] == own
    replans_no_changes(app_server, fleet)


def applied_v2(url: str, client: AppServerClient, tmp_path: Path, name: str) -> tuple[Path, str]:
    """`memfs_fleet` applied to a new v2 agent: the fleet file and the agent's id."""
    fleet = memfs_fleet(tmp_path, name, "v2")
    applied(url, fleet)
    return fleet, str(client.agents_named(name)[0]["id"])


def edited_by_the_agent(client: AppServerClient, agent_id: str, path: str, line: str) -> str:
    """The agent adds `line` to its file `path`: what the file holds then."""
    edited = str(texts(client, agent_id, path)[path]) + line
    client.write_memory_file(agent_id, path, edited, message="the agent's own edit")
    return edited


def test_flipping_to_blocks_removes_only_the_sections_files_keeping_every_block_and_back_writes_them_again(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    client, name = app_server_client, f"memfs-flip-{suffix}"
    memfs, agent_id = applied_v2(app_server, client, tmp_path, name)
    handbook = edited_by_the_agent(client, agent_id, "handbook.md", "The agent's own line.\n")

    blocks = tmp_path / "blocks.yaml"
    blocks.write_text(memfs.read_text().replace("      mode: memfs\n", "      mode: blocks\n"))
    planned = cli(app_server, "plan", "-f", str(blocks), "-o", "json")
    assert planned.exit_code == 0, planned.output
    changes = {c["address"]: c["action"] for c in json.loads(planned.stdout)["changes"] if c["action"] != "no-op"}
    section = ["system/MEMORY.md", "system/escalation.md", "system/policies.md", "system/tone.md", "system/refunds.md"]
    section += ["skills/triage/SKILL.md", "skills/triage/triage.sh"]
    assert changes == {f'agent.{name}.memory_file["{path}"]': "delete" for path in section}, changes
    applied(app_server, blocks)
    assert all(found is None for found in texts(client, agent_id, *section).values())
    assert texts(client, agent_id, "handbook.md")["handbook.md"] == handbook  # no flip loses a block's value
    replans_no_changes(app_server, blocks)

    applied(app_server, memfs)  # and back: the files again, the section from the block as the agent has it now
    assert str(texts(client, agent_id, "system/policies.md")["system/policies.md"]).endswith(
        "No refunds for billing.\n"
    )
    assert texts(client, agent_id, "handbook.md")["handbook.md"] == handbook
    replans_no_changes(app_server, memfs)


def test_a_block_file_the_agents_layout_refuses_stops_the_plan_at_its_to_before_any_write(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    """`from_blocks` writes the block with the frontmatter its layout wants: at an index's path (v2: no
    frontmatter) the server would refuse the commit, and keep it staged, blocking every later write."""
    name = f"memfs-index-{suffix}"
    head = (
        f"agents:\n  - name: {name}\n    system_prompt: {{value: You help.}}\n"
        f"    llm_config: {{model: {MODEL}, context_window: 16000}}\n"
        "    memory_blocks:\n      - {name: handbook, description: the handbook, agent_owned: true, limit: 4000,"
        f" value: {json.dumps(HANDBOOK)}}}\n"
        "    memory:\n      mode: memfs\n"
        f"      files: [{{to: notes.md, value: {json.dumps(frontmatter('notes', 'the notes', 'v2') + 'x')}}}]\n"
    )
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(head)
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    fleet.write_text(head + "      from_blocks:\n        - {block: handbook, to: guide/MEMORY.md}\n")
    planned = cli(app_server, "plan", "-f", str(fleet))
    assert planned.exit_code == 1, planned.output
    assert "fleet.yaml:11:29: guide/MEMORY.md: an index (MEMORY.md) has no frontmatter" in planned.output
    (agent,) = app_server_client.agents_named(name)
    assert "guide/MEMORY.md" not in {e["relative_path"] for e in app_server_client.list_memory(agent["id"])}


def test_verify_fails_the_apply_loudly_until_the_smoke_prompt_gets_a_reply_then_is_checked_no_more(
    app_server: str, app_server_client: AppServerClient, fake_llm: FakeLLM, suffix: str, tmp_path: Path
) -> None:
    name = f"memfs-verify-{suffix}"
    fleet = memfs_fleet(tmp_path, name, "v2")
    prompt = f"smoke check {suffix}"
    verify = f"      verify:\n        require_core_memory_empty: true\n        smoke_prompt: {prompt}\n"
    fleet.write_text(fleet.read_text() + verify)

    def smoke_prompts_asked() -> int:
        return sum(prompt in request.last_user_text for request in fake_llm.chat_requests())

    planned = cli(app_server, "plan", "-f", str(fleet))
    assert planned.exit_code == 0, planned.output
    assert "memory.verify (require_core_memory_empty, smoke_prompt) checked once the section's files are written" in (
        planned.output
    )
    # A 16,000-token window is too small for Letta Code's prompt with these files: the server refuses the turn, so
    # the check fails this agent's apply, naming why, with every file written.
    failed = cli(app_server, "apply", "-f", str(fleet), "--no-lock")
    assert failed.exit_code == 1, failed.output
    assert f"agent.{name}: memory.verify failed after its memory files were written: smoke_prompt got no reply" in (
        failed.output
    )
    assert "context window" in failed.output and "Traceback" not in failed.output
    assert "+ memory mode verify" in cli(app_server, "plan", "-f", str(fleet)).output  # not passed: made again

    fleet.write_text(fleet.read_text().replace("context_window: 16000", "context_window: 64000"))
    asked_before = smoke_prompts_asked()
    applied(app_server, fleet)
    assert smoke_prompts_asked() == asked_before + 1  # through the agent to its model, once
    # Passed once, the check is in the agent's record: the next plan has nothing left to do, and no turn is made.
    replans_no_changes(app_server, fleet)
    applied(app_server, fleet)
    assert smoke_prompts_asked() == asked_before + 1


def removals(url: str, fleet: Path, *flags: str) -> dict[str, tuple[str, str | None]]:
    """What a plan of `fleet` removes or holds, by file path: (action, why it is held)."""
    planned = cli(url, "plan", "-f", str(fleet), "-o", "json", *flags)
    assert planned.exit_code == 0, planned.output
    return {
        c["address"].split('memory_file["')[1].rstrip('"]'): (c["action"], c.get("held"))
        for c in json.loads(planned.stdout)["changes"]
        if c["kind"] == "memory_file" and c["action"] != "no-op"
    }


SECTION_FILES = [
    "system/policies.md",
    "system/escalation.md",
    "system/refunds.md",
    "skills/triage/SKILL.md",
    "skills/triage/triage.sh",
]


def without_memory_section(fleet: Path) -> Path:
    text = fleet.read_text()
    fleet.write_text(text[: text.index("    memory:\n")])
    return fleet


def test_a_section_taken_out_holds_the_index_with_the_agents_edit_and_deletes_it_after_the_edit_with_prune(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    client, name = app_server_client, f"memfs-out-{suffix}"
    fleet, agent_id = applied_v2(app_server, client, tmp_path, name)
    edited = edited_by_the_agent(client, agent_id, "system/tone.md", "The agent added this.\n")

    # The index stays with the edit it indexes: held for --prune too, not deleted from under it.
    without_memory_section(fleet)
    planned = removals(app_server, fleet)
    assert planned == {
        **{path: ("delete", None) for path in SECTION_FILES},
        "system/tone.md": ("delete", "prune"),
        "system/MEMORY.md": ("delete", "prune"),
    }, planned
    text = cli(app_server, "plan", "-f", str(fleet)).output
    assert "the index of system/tone.md, deleted after it" in text
    applied(app_server, fleet)
    assert all(found is None for found in texts(client, agent_id, *SECTION_FILES).values())
    assert texts(client, agent_id, "system/tone.md")["system/tone.md"] == edited
    assert texts(client, agent_id, "system/MEMORY.md")["system/MEMORY.md"] is not None
    assert texts(client, agent_id, "handbook.md")["handbook.md"] is not None  # a block's file is the agent's
    assert removals(app_server, fleet) == {path: ("delete", "prune") for path in ("system/tone.md", "system/MEMORY.md")}

    # --prune deletes both, the edit first: the server refuses an index taken from under a file. While the edit's
    # delete is refused, the index's is not even sent (it waits for it); the next apply deletes both.
    refused = WsFault("delete_memory_file", "refuse", contains='"system/tone.md"')
    with running_ws_fault_proxy(app_server, refused) as proxy:
        result = cli(proxy.url, "apply", "-f", str(fleet), "--no-lock", "--prune")
        assert result.exit_code == 1, result.output
        assert proxy.received["delete_memory_file"] == 1, result.output
    assert texts(client, agent_id, "system/tone.md")["system/tone.md"] == edited
    assert texts(client, agent_id, "system/MEMORY.md")["system/MEMORY.md"] is not None
    result = cli(app_server, "apply", "-f", str(fleet), "--no-lock", "--prune")
    assert result.exit_code == 0, result.output
    assert texts(client, agent_id, "system/tone.md", "system/MEMORY.md") == {
        "system/tone.md": None,
        "system/MEMORY.md": None,
    }
    assert removals(app_server, fleet, "--prune") == {}


def test_an_index_is_kept_while_a_file_of_the_agents_own_stays_in_its_folder_and_deleted_once_it_is_gone(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    client, name = app_server_client, f"memfs-own-{suffix}"
    fleet, agent_id = applied_v2(app_server, client, tmp_path, name)
    own = frontmatter("diary", "the agent's own", "v2") + "Mine.\n"
    client.write_memory_file(agent_id, "system/diary.md", own, message="the agent's own file")

    without_memory_section(fleet)
    planned = removals(app_server, fleet, "--prune")
    assert planned == {
        **{path: ("delete", None) for path in [*SECTION_FILES, "system/tone.md"]},
        "system/MEMORY.md": ("delete", "index in use"),
    }, planned
    text = cli(app_server, "plan", "-f", str(fleet)).output
    assert "kept while system/diary.md stays in its folder" in text
    result = cli(app_server, "apply", "-f", str(fleet), "--no-lock", "--prune")
    assert result.exit_code == 0, result.output
    assert texts(client, agent_id, "system/tone.md")["system/tone.md"] is None
    assert texts(client, agent_id, "system/diary.md", "system/MEMORY.md")["system/diary.md"] == own
    assert texts(client, agent_id, "system/MEMORY.md")["system/MEMORY.md"] is not None

    # Once the agent's file is gone, the index the record lists is lettafleet's to delete.
    client.delete_memory_file(agent_id, "system/diary.md", message="the agent lets it go")
    assert removals(app_server, fleet) == {"system/MEMORY.md": ("delete", None)}
    applied(app_server, fleet)
    assert texts(client, agent_id, "system/MEMORY.md")["system/MEMORY.md"] is None
    replans_no_changes(app_server, fleet)


def test_a_record_edited_on_the_server_to_name_paths_out_of_the_memory_never_gets_them_read_or_deleted(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    """The record lives on the server: an entry naming `..`, an absolute path or the repository's own `.git` (which
    the App Server writes and deletes when asked), or another file than its address names, is no file of the
    fleet's: never read, never deleted, even with --prune."""
    client, name = app_server_client, f"memfs-rec-{suffix}"
    fleet, agent_id = applied_v2(app_server, client, tmp_path, name)
    without_memory_section(fleet)  # the section's files are the record's to remove, as the entries below claim
    inside_git = "---\nname: x\ndescription: x\n---\nin .git\n"
    client.write_memory_file(agent_id, ".git/x.md", inside_git, message="a file inside the repository's .git")
    record = [entry for entry in read_record_of(client, agent_id) if entry.kind not in ("memory_file", "block")]
    hostile = ["../../outside.md", "/tmp/absolute.md", ".git/x.md", ".git/config"]
    record += [Recorded(f'memory_file["{path}"]', "memory_file", f"{path}#0123456789abcdef") for path in hostile]
    record += [  # entries whose address names another file than their id: one of the section's, say
        Recorded('memory_file["gone.md"]', "memory_file", "system/tone.md#0123456789abcdef"),
        Recorded('block["gone"]', "block", "system/escalation.md"),
        Recorded('shared_block_attachment["gone"]', "shared_block_attachment", "system/policies.md#0f"),
    ]
    write_app_record(client, agent_id, record)

    planned = cli(app_server, "plan", "-f", str(fleet), "-o", "json", "--prune")
    assert planned.exit_code == 0, planned.output
    assert not [c for c in json.loads(planned.stdout)["changes"] if c["action"] == "delete"], planned.stdout
    result = cli(app_server, "apply", "-f", str(fleet), "--no-lock", "--prune")
    assert result.exit_code == 0, result.output
    section = ("system/tone.md", "system/escalation.md", "system/policies.md")
    assert all(texts(client, agent_id, *section).values())
    assert texts(client, agent_id, ".git/x.md")[".git/x.md"] == inside_git
    assert "[core]" in str(texts(client, agent_id, ".git/config")[".git/config"])
