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


def test_v1_wants_a_description_in_system_only():
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
