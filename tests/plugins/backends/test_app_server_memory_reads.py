"""Memory files read one by one parse as the App Server's listing parses them, or are left to the listing."""

from __future__ import annotations

import pytest

from lettafleet.plugins.backends.app_server.memory_reads import parsed_memory_file


@pytest.mark.parametrize(
    "text",
    [
        "---\nname: listed\ndescription:\n  - one\n  - two\n---\nValue.",
        "---\nname: folded\ndescription: >\n  across\n  lines\n---\nValue.",
        "---\nname: literal\ndescription: |-\n  kept\n---\nValue.",
    ],
)
def test_frontmatter_with_lists_or_block_scalars_is_left_to_the_servers_listing(text: str) -> None:
    assert parsed_memory_file(text) is None


def test_a_file_without_frontmatter_is_all_content_untrimmed_as_the_server_gives_it() -> None:
    assert parsed_memory_file("  just text\n") == (None, "  just text\n")


def test_frontmatter_values_and_the_body_are_trimmed_as_javascript_trims_them() -> None:
    text = "\ufeff---\r\nname: n\r\ndescription: \u00a0d\u3000\r\n---\r\n\ufeff body \u2028"
    assert parsed_memory_file(text) == ("d", "body")
