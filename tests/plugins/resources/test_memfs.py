"""lettactl's `memory:` section: every key validates, every bad form stops at its line with what to do, and the
section expands into the files the agent should have (as lettactl's memfs-reconciler/plan.ts builds them)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lettafleet.core import Action, LettaError, Resource
from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.planning import desired_resources
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.resources.agents import declared_agents
from lettafleet.plugins.resources.memfs import (
    MEMORY_FILE,
    MemoryFileHandler,
    fingerprinted,
    indexes_in_use,
    live_file,
    recorded_path,
)
from lettafleet.plugins.resources.memfs_expansion import (
    declared_files,
    extracted_section,
    rendered,
    skill_files,
    skill_name,
    template_files,
)
from tests.fakes.letta_api import FakeLetta

FIXTURE = Path(__file__).parents[2] / "fixtures" / "memfs"

HEAD = """\
agents:
  - name: support
    system_prompt: {value: You help.}
    llm_config: {model: letta/letta-free, context_window: 16000}
    tools: []
"""


@pytest.fixture
def memfs_fleet(tmp_path: Path) -> Path:
    """A copy of the fixture fleet that uses every key of the section, with its folders."""
    shutil.copytree(FIXTURE, tmp_path / "memfs")
    return tmp_path / "memfs" / "fleet.yaml"


def errors_of(write_fleet, manager, memory: str, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(FleetError) as caught:
        load_fleet(write_fleet(HEAD + memory, files=files), manager)
    return [f"{d.line}:{d.column}: {d.message} ({d.hint})" for d in caught.value.diagnostics]


def test_the_fixture_using_every_key_of_the_section_validates_with_notes_where_lettafleet_reads_otherwise(
    memfs_fleet, manager
):
    fleet = load_fleet(memfs_fleet, manager)
    notes = [f"{note.line}:{note.column}: {note.message.removeprefix('note: ')}" for note in fleet.notes]
    assert any(note.startswith("26:7: bare_repo") for note in notes)
    assert any(note.startswith("31:7: prune_missing_skills has no effect") for note in notes)
    assert any(note.startswith("75:7: with mode: blocks the section declares no memory file") for note in notes)
    assert any(note.startswith("78:11: system/persona.md is block persona's own file") for note in notes)


def test_the_fixture_expands_into_the_files_lettactl_would_push(memfs_fleet, manager):
    fleet = load_fleet(memfs_fleet, manager)
    memfs_agent, blocks_agent = list(declared_agents(fleet))
    files = {declared.path: declared for declared in declared_files(fleet, memfs_agent)}
    assert sorted(files) == [
        ".gitkeep",
        "skills/notes-writer/SKILL.md",
        "skills/ticket-triage/SKILL.md",
        "skills/ticket-triage/reference/urgency.md",
        "skills/ticket-triage/triage.sh",
        "system/MEMORY.md",
        "system/escalation.md",
        "system/handbook-copy.md",
        "system/identity.md",
        "system/on-call.md",
        "system/refunds.md",
        "system/tone.md",
    ]  # no README.md at the template's root, no dotfile or .txt, nothing from node_modules
    assert files["system/on-call.md"].text.endswith("Ada is on call this week.\n")
    assert "Write as the support desk does" in str(files["system/tone.md"].text)
    assert "sign as The Support Desk." in str(files["system/tone.md"].text)
    assert (files["system/refunds.md"].block, files["system/refunds.md"].section) == ("handbook", "Refunds")
    assert files["system/refunds.md"].text is None  # the block's value is the server's
    assert declared_files(fleet, blocks_agent) == []


def test_the_fixture_declares_memory_files_under_their_agent_with_preserved_paths_marked(memfs_fleet, manager):
    resources = {r.address: r for r in desired_resources(load_fleet(memfs_fleet, manager), manager)}
    identity = resources['agent.support-desk.memory_file["system/identity.md"]']
    escalation = resources['agent.support-desk.memory_file["system/escalation.md"]']
    assert identity.parent == "agent.support-desk"
    assert identity.state["preserve"] and not escalation.state["preserve"]
    assert escalation.depends_on == (  # the index first, and (V1) the agent's switch to git-backed memory
        'agent.support-desk.memory_file["system/MEMORY.md"]',
        'agent.support-desk.memory_mode["git-backed memory"]',
    )
    assert resources['agent.support-desk.memory_mode["git-backed memory"]'].attributes == {"mode": "memfs"}
    assert escalation.state["prune_paths"] == ["system/retired.md"]


@pytest.mark.parametrize(
    ("memory", "where", "says", "hint"),
    [
        ("files: [{to: /etc/a.md, value: x}]", "8:16", "must be a path inside the agent's memory", "fix the path"),
        ("files: [{to: ../a.md, value: x}]", "8:16", "must be a path inside the agent's memory", "fix the path"),
        ("files: [{to: system/a.txt, value: x}]", "8:16", "must end in .md", "fix the path"),
        ("files: [{to: a.md, from_file: ../../x.md}]", "8:26", "leaves the fleet file's directory", "keep"),
        ("files: [{to: a.md, from_file: /etc/hostname}]", "8:26", "must be relative to the fleet file", "write"),
        ("files: [{to: a.md, from_file: gone.md}]", "8:26", "from_file not found: gone.md", "create the file"),
        ("files: [{to: a.md, value: x, template_vars: {lower: y}}]", "8:52", "does not match ^[A-Z0-9_]+$", ""),
        (
            "files: [{to: a.md, value: x, from_file: y.md}]",
            "8:36",
            "give either `from_file` or `value`, not both",
            "remove one",
        ),
        ("template_dir: nowhere", "8:7", "template_dir not found: nowhere", "create the file"),
        ("template_dir: ../..", "8:7", "template_dir leaves the fleet file's directory", "keep"),
        ("skills: [{from_dir: skills/Bad_Name}]", "8:17", "skill name 'Bad_Name' must be lowercase", "`name:`"),
        ("skills: [{from_dir: empty-skill}]", "8:17", "has no SKILL.md in empty-skill", "add one"),
        ("from_blocks: [{block: b, to: ../x.md}]", "8:32", "must be a path inside the agent's memory", "fix"),
        ("prune_paths: [../x.md]", "8:21", "prune_paths entry '../x.md' must be a path inside", "fix the path"),
        (
            "preserve_existing_paths: [a.md, a.md]",
            "8:39",
            "preserve_existing_paths entry 'a.md' is listed twice",
            "fix",
        ),
        ("preserve_existing_paths: [/x.md]", "8:33", "preserve_existing_paths entry '/x.md' must be", "fix"),
        ("capability_index_file: MEMORY.md", "8:7", "capability_index_file needs template_dir", "set template_dir"),
        ("bare_repo: manual", "8:7", "bare_repo 'manual' is not one of auto", "use one of"),
        ("verify: {smoke_prompt: ''}", "8:16", "smoke_prompt must not be empty", "give it a value"),
        ("unknown_key: 1", "8:7", "unknown_key", ""),
    ],
)
def test_each_bad_form_is_refused_at_its_line_with_a_hint(write_fleet, manager, memory, where, says, hint):
    files = {"skills/Bad_Name/SKILL.md": "s", "empty-skill/README.md": "r", "y.md": "y"}
    keep = "" if memory.startswith("files:") else "      files: [{to: keep.md, value: k}]\n"
    errors = errors_of(write_fleet, manager, f"    memory:\n      mode: memfs\n      {memory}\n{keep}", files)
    found = [error for error in errors if says in error]
    assert found, errors
    assert found[0].startswith(f"{where}:"), found
    assert hint in found[0]


def test_two_sources_writing_one_path_are_refused_at_the_later_line_naming_the_first(write_fleet, manager):
    memory = (
        "    memory:\n      mode: memfs\n      template_dir: tpl\n"
        "      files:\n        - {to: system/a.md, value: mine}\n"
    )
    (error,) = errors_of(write_fleet, manager, memory, files={"tpl/system/a.md": "theirs"})
    assert error.startswith("10:11: system/a.md is written twice in the agent's memory: here and by template_dir")
    assert "(line 8)" in error


def test_a_memory_file_at_a_memory_blocks_path_is_refused_at_its_line(write_fleet, manager):
    memory = (
        "    memory_blocks:\n      - {name: persona, value: hi, agent_owned: true, limit: 100}\n"
        "    memory:\n      mode: memfs\n      files: [{to: system/persona.md, value: other}]\n"
    )
    (error,) = errors_of(write_fleet, manager, memory)
    assert error.startswith("10:15: system/persona.md is where memory block persona lives under MemFS")
    assert "take block persona out of memory_blocks" in error


def test_memfs_mode_without_any_file_source_is_refused_at_its_mode(write_fleet, manager):
    (error,) = errors_of(write_fleet, manager, "    memory: {mode: memfs}\n")
    assert error.startswith("6:14: memory mode 'memfs' declares no file")


def test_a_template_folder_that_is_a_link_leading_out_is_refused_and_links_inside_are_skipped(
    write_fleet, manager, tmp_path
):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.md").write_text("not yours")
    path = write_fleet(HEAD + "    memory:\n      mode: memfs\n      template_dir: tpl\n", files={"tpl/a.md": "a"})
    os.symlink(outside / "secret.md", tmp_path / "tpl" / "link.md")
    fleet = load_fleet(path, manager)
    assert [d.path for d in declared_files(fleet, next(declared_agents(fleet)))] == ["a.md"]
    os.symlink(outside, tmp_path / "out")
    (error,) = errors_of(write_fleet, manager, "    memory:\n      mode: memfs\n      template_dir: out\n")
    assert error.startswith("8:7: template_dir leaves the fleet file's directory: out")


def test_template_vars_replace_every_occurrence_one_variable_after_another():
    assert rendered("{{A}} and {{A}}, {{B}}", {"A": "{{B}}", "B": "b"}) == "b and b, b"
    assert rendered("{{ A }} stays", {"A": "x"}) == "{{ A }} stays"


def test_a_section_ends_at_the_next_heading_of_its_level_or_above_and_is_trimmed():
    text = "# Top\nintro\n## Refunds\n\nWithin 30 days.\n### Receipts\nKeep them.\n## Shipping\nTwo days.\n"
    assert extracted_section(text, "Refunds") == "Within 30 days.\n### Receipts\nKeep them.\n"
    assert extracted_section(text, "Shipping") == "Two days.\n"
    assert extracted_section(text, "Returns") is None
    assert extracted_section("#Refunds\nno space\n", "Refunds") is None


def test_template_and_skill_folders_keep_what_lettactl_keeps():
    paths = ["README.md", "a.md", "sub/README.md", ".gitkeep", "sub/.keep", ".hidden.md", ".d/x.md", "n.txt"]
    assert template_files(paths) == ["a.md", "sub/README.md", ".gitkeep", "sub/.keep"]
    skill = ["SKILL.md", "run.sh", "node_modules/x.js", "dist/a.md", ".env", "ref/a.md", "sub/.git/config"]
    assert skill_files(skill) == ["SKILL.md", "run.sh", "ref/a.md"]
    assert skill_name({"from_dir": "skills/app-api/"}) == "app-api"
    assert skill_name({"from_dir": "skills/x", "name": "named"}) == "named"


class FakeGitMemory:
    """The V1 git memory client as agreed with plugins/backends/letta_v1 (GitMemory), answering `available` as
    the self-hosted 0.16.8 server does, or as a server with git memory."""

    def __init__(self, reason: str | None):
        self.reason = reason
        self.asked: list[str] = []

    def available(self, agent_id: str) -> str | None:
        self.asked.append(agent_id)
        return self.reason

    def served(self) -> str | None:
        self.asked.append("(the server)")
        return self.reason

    def read(self, agent_id: str) -> dict[str, str]:
        raise AssertionError("planning a refused fleet reads no repository")

    def write(self, agent_id, writes, deletes, message) -> None:
        raise AssertionError("nothing is written")

    def wait_synced(self, agent_id, files, timeout) -> None:
        raise AssertionError("nothing is written")


V1_MEMFS = HEAD + "    memory:\n      mode: memfs\n      files: [{to: system/policies.md, value: No refunds.}]\n"
NO_GIT = 'HTTP 501: {"detail":"git HTTP requires memfs service (LETTA_MEMFS_SERVICE_URL not configured)"}'


def test_a_v1_server_without_git_memory_stops_the_plan_at_the_memory_mode_line_before_any_write(fleet, monkeypatch):
    git = FakeGitMemory(NO_GIT)
    monkeypatch.setattr("lettafleet.plugins.resources.memfs_v1.installed_git_memory", lambda connection: git)
    with pytest.raises(FleetError) as caught:
        fleet.plan(V1_MEMFS)
    (error,) = caught.value.diagnostics
    assert (error.line, error.column) == (7, 7)
    assert "memory mode 'memfs' needs git-backed memory: http://" in error.message
    assert "does not serve it: HTTP 501" in error.message
    assert "LETTA_MEMFS_SERVICE_URL not configured" in error.message
    assert "hosted Letta or an App Server" in error.hint
    assert git.asked and fleet.letta.writes == []


def test_a_v1_server_with_git_memory_plans_the_files_under_their_agent(fleet, monkeypatch):
    monkeypatch.setattr(
        "lettafleet.plugins.resources.memfs_v1.installed_git_memory", lambda connection: FakeGitMemory(None)
    )
    plan = fleet.plan(V1_MEMFS)
    assert fleet.actions(plan)['agent.support.memory_file["system/policies.md"]'] == "create"


class FakeRepositories(FakeGitMemory):
    """The git memory client with a repository per agent, kept in memory: what was pushed is what is read, and
    every push and wait is counted."""

    def __init__(self, letta: FakeLetta) -> None:
        super().__init__(None)
        self.letta = letta
        self.files: dict[str, dict[str, str]] = {}
        self.pushes: list[tuple[str, dict[str, str], list[str]]] = []
        self.waited: list[tuple[str, dict[str, str]]] = []

    def read(self, agent_id: str) -> dict[str, str]:
        """The repository; made from the agent's blocks when it is first read with the tag on, as hosted does."""
        agent = self.letta.agents[agent_id]
        if agent_id not in self.files and "git-memory-enabled" in agent["tags"]:
            blocks = [self.letta.blocks[block_id] for block_id in agent["block_ids"]]
            self.files[agent_id] = {f"{block['label']}.md": block["value"] for block in blocks}
        return dict(self.files.get(agent_id, {}))

    def write(self, agent_id, writes, deletes, message) -> None:
        self.pushes.append((agent_id, dict(writes), list(deletes)))
        repository = self.files.setdefault(agent_id, {})
        repository.update(writes)
        for path in deletes:
            repository.pop(path, None)

    def wait_synced(self, agent_id, files, timeout) -> None:
        self.waited.append((agent_id, dict(files)))


def v1_fleet(*entries: str) -> str:
    return (
        HEAD
        + "    memory_blocks:\n"
        + '      - {name: handbook, value: "# H\\n## Refunds\\n30 days.\\n", agent_owned: true, limit: 900}\n'
        + "    memory:\n      mode: memfs\n"
        + "      from_blocks: [{block: handbook, to: notes/refunds.md, extract_section: Refunds}]\n"
        + ("      files:\n" + "".join(entries) if entries else "")
    )


POLICIES = "        - {to: system/policies.md, value: No refunds.}\n"
TONE = "        - {to: notes/tone.md, value: Short sentences.}\n"


def test_on_a_v1_server_the_files_are_pushed_waited_for_recorded_and_an_agent_edit_is_drift(fleet, monkeypatch):
    git = FakeRepositories(fleet.letta)
    monkeypatch.setattr("lettafleet.plugins.resources.memfs_v1.installed_git_memory", lambda connection: git)
    report = fleet.apply(fleet.plan(v1_fleet(POLICIES, TONE)))
    assert all(status == "applied" for status, _ in fleet.results(report).values()), fleet.results(report)
    (agent_id,) = git.files
    assert git.files[agent_id] == {
        "system/handbook.md": "# H\n## Refunds\n30 days.\n",  # the block, moved under system/ by the flip
        "system/policies.md": "No refunds.",
        "notes/tone.md": "Short sentences.",
        "notes/refunds.md": "30 days.\n",
    }
    assert [path for _, files in git.waited for path in files] == ["system/policies.md"]  # only system/ syncs
    assert not fleet.plan(v1_fleet(POLICIES, TONE)).has_changes

    git.files[agent_id]["notes/tone.md"] = "The agent's own words."
    plan = fleet.plan(v1_fleet(POLICIES.replace("No refunds.", "Refunds in 30 days."), TONE))
    changes = {change.name: change for change in plan.changes if change.kind == "memory_file"}
    assert changes["system/policies.md"].action.value == "update"
    assert "edited notes/tone.md since lettafleet wrote it" in str(changes["notes/tone.md"].drift)
    fleet.apply(plan)
    assert git.files[agent_id]["notes/tone.md"] == "The agent's own words."

    plan = fleet.plan(v1_fleet(TONE))  # policies taken out: deleted; the edited tone stays declared
    assert {c.name: c.action.value for c in plan.changes if c.kind == "memory_file" and c.changes_something} == {
        "system/policies.md": "delete"
    }
    fleet.apply(plan)
    assert "system/policies.md" not in git.files[agent_id] and "notes/tone.md" in git.files[agent_id]


class RefusingRepositories(FakeRepositories):
    """The in-memory repositories, while `refusing` is set: every push refused, nothing of it kept."""

    refusing = False

    def write(self, agent_id, writes, deletes, message) -> None:
        if self.refusing:
            self.pushes.append((agent_id, {}, []))
            raise LettaError("pushing agent's memory failed: HTTP 500. Run the apply again once it answers")
        super().write(agent_id, writes, deletes, message)


def test_on_a_v1_server_an_agents_files_are_one_push_and_a_refused_push_records_none_of_them(fleet, monkeypatch):
    git = RefusingRepositories(fleet.letta)
    monkeypatch.setattr("lettafleet.plugins.resources.memfs_v1.installed_git_memory", lambda connection: git)
    fleet.apply(fleet.plan(v1_fleet(POLICIES, TONE)))
    assert [sorted(writes) for _, writes, _ in git.pushes] == [
        ["notes/refunds.md", "notes/tone.md", "system/policies.md"]
    ]

    git.refusing = True
    changed = v1_fleet(POLICIES.replace("No refunds.", "Refunds in 30 days."), TONE.replace("Short", "Shorter"))
    results = fleet.results(fleet.apply(fleet.plan(changed)))
    failed = {address: said for address, (status, said) in results.items() if status == "failed"}
    assert len(git.pushes) == 2 and len(failed) == 2  # one push for both files, refused: both fail, saying why
    assert all("HTTP 500" in said for said in failed.values())

    git.refusing = False
    again = fleet.plan(changed)  # nothing recorded of the refused push: planned as updates, not as the agent's edits
    updates = {c.name for c in again.changes if c.kind == "memory_file" and c.changes_something}
    assert updates == {"system/policies.md", "notes/tone.md"} and not [c for c in again.changes if c.drift]
    fleet.apply(again)
    assert len(git.pushes) == 3 and not fleet.plan(changed).has_changes


@pytest.mark.parametrize(
    ("memory", "says"),
    [
        ("files: [{to: .git/config.md, value: x}]", "to '.git/config.md' must not be inside .git"),
        ("files: [{to: system/.GIT/a.md, value: x}]", "to 'system/.GIT/a.md' must not be inside .git"),
        ("from_blocks: [{block: b, to: .git/b.md}]", "to '.git/b.md' must not be inside .git"),
        ("prune_paths: [.git/config]", "prune_paths entry '.git/config' must not be inside .git"),
        ("prune_paths: [.git]", "prune_paths entry '.git' must not be inside .git"),
        ("preserve_existing_paths: [.git/HEAD]", "preserve_existing_paths entry '.git/HEAD' must not be inside"),
        ("files: [{to: ./system/a.md, value: x}]", "to './system/a.md' must be written plainly"),
        ("files: [{to: system//a.md, value: x}]", "to 'system//a.md' must be written plainly"),
        ("prune_paths: [system/a.md/]", "prune_paths entry 'system/a.md/' must be written plainly"),
        ("prune_paths: ['system/./a.md']", "prune_paths entry 'system/./a.md' must be written plainly"),
        ("prune_paths: ['.']", "prune_paths entry '.' must be written plainly"),
        ("prune_paths: [MEMORY.md]", "prune_paths entry 'MEMORY.md' is an index of the agent's memory"),
        ("prune_paths: [notes/MEMORY.md]", "prune_paths entry 'notes/MEMORY.md' is an index"),
        ('files: [{to: "a\\nb.md", value: x}]', "must not hold a control character"),
        ('prune_paths: ["a\\tb.md"]', "must not hold a control character"),
    ],
)
def test_a_memory_path_into_the_repository_itself_or_not_written_plainly_is_refused_at_its_line(
    write_fleet, manager, memory, says
):
    """The App Server writes and deletes any path inside the memory folder, its .git included (a prune_paths
    entry `.git/config` would break the agent's repository), and reads `./a.md` as `a.md` (two entries, one file)."""
    keep = "" if memory.startswith("files:") else "      files: [{to: keep.md, value: k}]\n"
    errors = errors_of(write_fleet, manager, f"    memory:\n      mode: memfs\n      {memory}\n{keep}")
    assert any(says in error and error.startswith("8:") for error in errors), errors


def test_a_template_file_whose_name_holds_a_control_character_is_refused_at_template_dir(write_fleet, manager):
    memory = "    memory:\n      mode: memfs\n      template_dir: tpl\n"
    (error,) = errors_of(write_fleet, manager, memory, files={"tpl/a\nb.md": "x", "tpl/ok.md": "y"})
    assert error.startswith("8:7: ") and "must not hold a control character" in error, error


def test_a_file_waits_for_the_index_of_its_own_folder_and_each_index_for_the_one_above(write_fleet, manager):
    """v2 wants an index in every folder on the way: `a/b/c.md` is written after `a/b/MEMORY.md`, itself after
    `a/MEMORY.md` (the server refuses a file whose folder has no index yet)."""
    entries = "".join(f"        - {{to: {path}, value: x}}\n" for path in ("a/b/c.md", "a/b/MEMORY.md", "a/MEMORY.md"))
    path = write_fleet(HEAD + "    memory:\n      mode: memfs\n      files:\n" + entries)
    resources = {r.name: r for r in desired_resources(load_fleet(path, manager), manager) if r.kind == "memory_file"}
    mode = 'agent.support.memory_mode["git-backed memory"]'  # every file also waits for the switch to memfs
    assert resources["a/b/c.md"].depends_on == ('agent.support.memory_file["a/b/MEMORY.md"]', mode)
    assert resources["a/b/MEMORY.md"].depends_on == ('agent.support.memory_file["a/MEMORY.md"]', mode)
    assert resources["a/MEMORY.md"].depends_on == (mode,)


def _declared_file(text: str) -> Resource:
    state = {"agent": "support", "preserve": False, "overwrite_agent_edits": False, "prune_paths": []}
    address = 'agent.support.memory_file["guide.md"]'
    return Resource(address, MEMORY_FILE, "guide.md", {"text": text}, parent="agent.support", state=state)


def test_a_file_holding_what_the_fleet_declares_is_no_agent_edit_and_the_record_catches_up():
    """A write whose answer was lost landed, and the record still names the text before it: the file holds what the
    fleet declares, so it is no edit (the record takes its fingerprint), and the next change to it applies."""
    handler = MemoryFileHandler()
    landed = live_file(
        _declared_file("Greet warmly."), "Greet warmly.", fingerprinted("guide.md", "Greet."), None, "a1"
    )
    assert not landed.state["edited"] and landed.id == fingerprinted("guide.md", "Greet warmly.")
    assert handler.diff(_declared_file("Greet warmly."), landed).action is Action.NO_OP
    changed = handler.diff(_declared_file("Greet by name."), landed)
    assert changed.action is Action.UPDATE and not changed.drift
    edited = live_file(_declared_file("Greet."), "Greet loudly.", fingerprinted("guide.md", "Greet."), None, "a1")
    assert edited.state["edited"] and handler.diff(_declared_file("Greet."), edited).drift  # a real edit stays one


def test_template_vars_that_would_grow_a_file_past_a_mebibyte_are_refused_at_their_line_before_it_is_built(
    write_fleet, manager
):
    """Each variable is replaced in the text the ones before it made: a few lines of variables, each naming the next
    many times, grow a file exponentially (eight such ran validate out of 2 GB of memory)."""
    bomb = {f"V{i}": f"{{{{V{i + 1}}}}}" * 50 for i in range(3)}  # 37 MB once rendered
    entry = {"to": "a.md", "value": "{{V0}}" * 50, "template_vars": bomb}
    (error,) = errors_of(write_fleet, manager, f"    memory:\n      mode: memfs\n      files: [{json.dumps(entry)}]\n")
    assert error.startswith("8:343: ") and "more than 1000000 characters" in error, error


def _removal(path: str, *, edited: bool = False, pruned: bool = False) -> Resource:
    address = f'agent.support.memory_file["{path}"]'
    state = {"agent": "support", "edited": edited, **({"pruned": True} if pruned else {})}
    return Resource(address, MEMORY_FILE, path, {"text": "x"}, parent="agent.support", id=path, state=state)


def _fates(removals: list[Resource], staying: set[str]) -> dict[str, tuple[str | None, str]]:
    """What the plan makes of each removal: (why it is held, its reason's text)."""
    changes = [MemoryFileHandler().diff(None, found) for found in indexes_in_use(removals, staying)]
    return {change.name: (change.held, change.drift or change.detail) for change in changes}


def test_an_index_is_kept_while_other_files_stay_in_its_folder_and_held_with_edits_that_wait_for_prune():
    """Every way a file stays beside an index taken out of the file: the agent's own, a declared one (new or not),
    an edit held for --prune, an index below that stays; files going (taken out, pruned) keep nothing."""
    going = [_removal("system/MEMORY.md"), _removal("system/a.md"), _removal("system/old.md", pruned=True)]
    assert _fates(going, {"system/MEMORY.md", "system/a.md", "system/old.md"})["system/MEMORY.md"][0] is None
    for staying in ({"system/own.md"}, {"system/declared-new.md"}):  # the agent's own file; a declared one
        fates = _fates(going, {"system/MEMORY.md", "system/a.md", *staying})
        assert fates["system/MEMORY.md"] == ("index in use", _kept(*staying)), fates
        assert fates["system/a.md"][0] is None  # what is taken out still goes
    held = [_removal("system/MEMORY.md"), _removal("system/a.md", edited=True)]
    fates = _fates(held, {"system/MEMORY.md", "system/a.md"})
    assert fates["system/MEMORY.md"] == ("prune", "the index of system/a.md, deleted after it")
    # Nested: the deeper index is decided first, and a parent index keeps to the fate of what stays below it.
    nested = [_removal("s/MEMORY.md"), _removal("s/t/MEMORY.md"), _removal("s/t/x.md", edited=True)]
    fates = _fates(nested, {"s/MEMORY.md", "s/t/MEMORY.md", "s/t/x.md"})
    assert fates["s/t/MEMORY.md"][0] == "prune" and fates["s/MEMORY.md"] == (
        "prune",
        "the index of s/t/MEMORY.md, s/t/x.md, deleted after them",
    )
    fates = _fates(nested, {"s/MEMORY.md", "s/t/MEMORY.md", "s/t/x.md", "s/t/own.md"})
    assert fates["s/t/MEMORY.md"][0] == "index in use" and fates["s/MEMORY.md"][0] == "index in use"


def _kept(*paths: str) -> str:
    return (
        f"kept while {', '.join(paths)} stays in its folder (the agent's layout wants an index beside every file); "
        "the plan deletes it once that is gone"
    )


def test_every_removal_waits_for_nothing_but_comes_before_its_folders_index():
    """A removal names its folder's index among what it depends on, so the index's removal runs after it."""
    change = MemoryFileHandler().diff(None, _removal("s/t/x.md"))
    assert change.depends_on == ('agent.support.memory_file["s/t/MEMORY.md"]',)
    assert MemoryFileHandler().diff(None, _removal("s/t/MEMORY.md")).depends_on == (
        'agent.support.memory_file["s/MEMORY.md"]',
    )
    assert MemoryFileHandler().diff(None, _removal("top.md")).depends_on == ()


@pytest.mark.parametrize(
    "path",
    ["../../outside.md", "/etc/passwd", ".git/config", ".GIT/hooks/pre-commit", "a//b.md", "./a.md", "a\nb.md", ""],
)
def test_a_record_entry_naming_a_path_out_of_the_memory_names_no_file(path):
    """A record edited on the server never leads a plan to read or delete outside the agent's memory files."""
    placeholder = Resource(f'agent.a.memory_file["{path}"]', MEMORY_FILE, path, {}, parent="agent.a", id=f"{path}#0f")
    assert recorded_path(placeholder) is None


def test_a_record_entry_whose_id_names_another_path_than_its_address_names_no_file():
    id_elsewhere = Resource('agent.a.memory_file["a.md"]', MEMORY_FILE, "a.md", {}, parent="agent.a", id="b.md#0f")
    assert recorded_path(id_elsewhere) is None
    plain = Resource('agent.a.memory_file["s/a.md"]', MEMORY_FILE, "s/a.md", {}, parent="agent.a", id="s/a.md#0f")
    assert recorded_path(plain) == "s/a.md"
