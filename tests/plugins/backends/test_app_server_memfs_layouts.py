"""What the App Server's MemFS layouts accept, as lettafleet checks it before any write (found on the real 0.34.12,
v2, and 0.32.18, v1: tests/integration/test_app_server_memfs.py), and the text a block's file becomes."""

from __future__ import annotations

from lettafleet.plugins.backends.app_server.memfs import from_block_text, layout_problem

FRONT = "---\nname: policies\ndescription: the policies\n---\nNo refunds.\n"


def test_v2_wants_frontmatter_with_a_name_and_a_description_and_an_index_in_the_folder():
    paths = {"system/MEMORY.md", "system/policies.md"}
    assert layout_problem("system/policies.md", FRONT, "v2", paths) is None
    assert "wants frontmatter with name and description" in str(layout_problem("system/p.md", "plain", "v2", paths))
    only_description = "---\ndescription: d\n---\nx"
    assert "wants frontmatter with name" in str(layout_problem("a.md", only_description, "v2", set()))
    assert "wants an index, system/MEMORY.md" in str(layout_problem("system/policies.md", FRONT, "v2", set()))
    assert "has no frontmatter" in str(layout_problem("system/MEMORY.md", FRONT, "v2", paths))
    assert layout_problem("system/MEMORY.md", "# System\n", "v2", paths) is None


def test_skills_and_files_that_are_not_markdown_are_the_agents_as_they_are_in_both_layouts():
    for layout in ("v1", "v2"):
        assert layout_problem("skills/triage/ref/notes.md", "plain", layout, set()) is None
        assert layout_problem("skills/triage/run.sh", "#!/bin/sh", layout, set()) is None
        assert layout_problem(".gitkeep", "", layout, set()) is None


def test_v1_wants_a_description_in_system_and_reference_only():
    assert layout_problem("system/policies.md", "---\ndescription: d\n---\nx", "v1", set()) is None
    assert "description in system/" in str(layout_problem("system/policies.md", "plain", "v1", set()))
    assert layout_problem("notes/plain.md", "plain", "v1", set()) is None


def test_a_blocks_file_carries_the_frontmatter_its_layout_wants_and_a_missing_section_is_none():
    block = ("v2", "the handbook", "# Handbook\n## Refunds\n30 days.\n## Shipping\nTwo days.\n")
    assert from_block_text("system/refunds.md", "handbook", "Refunds", block) == (
        "---\nname: refunds\ndescription: the handbook\n---\n30 days.\n"
    )
    assert from_block_text("system/x.md", "handbook", "Returns", block) is None
    v1 = ("v1", None, "text")
    assert from_block_text("system/copy.md", "persona", None, v1) == "---\ndescription: Memory block persona\n---\ntext"
    assert from_block_text("notes/copy.md", "persona", None, v1) == "text"


# Each case below was refused by the real App Server (0.34.12 v2, 0.32.18 v1) at write_memory_file; a refused
# write stays staged in the agent's memory and blocks every later write to it, so the plan must refuse it first.
FRONT_V1 = "---\ndescription: d\n---\nx\n"


def test_v2_wants_an_index_in_every_folder_on_the_way_not_only_the_top_one():
    paths = {"deep/MEMORY.md", "deep/sub/x.md"}
    assert "deep/sub/MEMORY.md" in str(layout_problem("deep/sub/x.md", FRONT, "v2", paths))
    assert "deep/MEMORY.md" in str(layout_problem("deep/sub/MEMORY.md", "# sub\n", "v2", {"deep/sub/MEMORY.md"}))
    assert layout_problem("deep/sub/x.md", FRONT, "v2", paths | {"deep/sub/MEMORY.md"}) is None


def test_v2_frontmatter_has_exactly_a_name_and_a_description_neither_empty():
    extra = "---\nname: x\ndescription: d\ntags: t\n---\nbody\n"
    assert "unknown frontmatter key 'tags'" in str(layout_problem("a.md", extra, "v2", set()))
    twice = "---\nname: x\nname: y\ndescription: d\n---\n"
    assert "'name' twice" in str(layout_problem("a.md", twice, "v2", set()))
    empty = "---\nname: ''\ndescription: d\n---\n"
    assert "'name' must not be empty" in str(layout_problem("a.md", empty, "v2", set()))
    assert "must not be empty" in str(layout_problem("a.md", "---\nname: x\ndescription:\n---\n", "v2", set()))


def test_frontmatter_opens_with_a_bare_dashes_line_no_bom_no_crlf_and_closes():
    for layout, path, front in (("v2", "a.md", FRONT), ("v1", "system/a.md", FRONT_V1)):
        for text in (front.replace("\n", "\r\n"), "\ufeff" + front, ""):
            assert "must start with a line '---'" in str(layout_problem(path, text, layout, set())), (layout, text)
        assert "never closed" in str(layout_problem(path, front.replace("\n---\n", "\n", 1)[:-1], layout, set()))


def test_v2_holds_at_most_20000_characters_a_markdown_file():
    big = FRONT + "x" * 20_000
    assert "over the 20000 characters" in str(layout_problem("big.md", big, "v2", set()))
    assert layout_problem("skills/a/SKILL.md", big, "v2", set()) is None


def test_a_markdown_file_directly_under_skills_is_refused_in_both_layouts():
    for layout in ("v1", "v2"):
        assert "skills/<name>/SKILL.md" in str(layout_problem("skills/flat.md", "x", layout, set()))


def test_v1_checks_reference_as_system_and_allows_only_description_and_limit():
    assert "reference/" in str(layout_problem("reference/r.md", "plain", "v1", set()))
    assert layout_problem("reference/r.md", FRONT_V1, "v1", set()) is None
    assert layout_problem("system/lim.md", "---\ndescription: d\nlimit: 5\n---\nx\n", "v1", set()) is None
    assert "read_only" in str(
        layout_problem("system/ro.md", "---\ndescription: d\nread_only: true\n---\n", "v1", set())
    )
    assert "unknown frontmatter key 'tags'" in str(
        layout_problem("system/e.md", "---\ndescription: d\ntags: t\n---\n", "v1", set())
    )
    assert "'description' must not be empty" in str(
        layout_problem("system/e.md", "---\ndescription:\n---\n", "v1", set())
    )
    assert layout_problem("system/deep/x.md", FRONT_V1, "v1", set()) is None
    assert layout_problem("notes/plain.md", "plain", "v1", set()) is None


def test_a_root_index_in_a_v1_agent_is_refused_it_would_turn_its_memory_into_the_v2_layout():
    """0.32.18 accepts the write, and from then on Letta Code (and lettafleet) read the agent's memory as v2."""
    assert "v2 layout" in str(layout_problem("MEMORY.md", "# Memory\n", "v1", set()))
    assert layout_problem("notes/MEMORY.md", "# Notes\n", "v1", set()) is None
