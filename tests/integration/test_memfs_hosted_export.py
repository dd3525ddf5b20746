"""`export` of a V1 agent whose memory is git-backed (the tag `git-memory-enabled`), through the stand-in for hosted
Letta's git memory in front of the real dev server: its blocks come back under the labels the fleet gave them, its
other files as the `memory:` section, and planning the export says "No changes"."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from lettafleet.core import Exported, LiveReader
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.resources.memfs_v1 import V1MemfsHandler
from lettafleet.plugins.resources.memfs_v1_export import exported_v1_memory_sections
from tests.fakes.hosted_git_memory import HostedGitMemoryStandIn
from tests.integration.test_memfs_hosted_done_when import (
    assert_no_changes,
    hosted,
    names,
    ok,
    run,
    write_fleet,
)

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["hosted", "names"]  # fixtures, shared with the hosted done-when tests


@pytest.fixture
def memory_export_hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The V1 memory files handler's `export`, as plugins/resources/memfs_v1.py is to give it (a one-line method
    calling `exported_v1_memory_sections`; that file is another change's while this one is made)."""

    def export(self: V1MemfsHandler, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        return exported_v1_memory_sections(reader, agents, self.git_memory)

    if "export" not in vars(V1MemfsHandler):
        monkeypatch.setattr(V1MemfsHandler, "export", export)


def test_a_git_memory_agent_exports_its_blocks_by_their_labels_and_its_files_as_the_section(
    hosted: HostedGitMemoryStandIn,
    client: LettaClient,
    names: tuple[str, str],
    tmp_path: Path,
    memory_export_hooked: None,
) -> None:
    _, name = names
    ok(run(hosted, "apply", "-f", str(write_fleet(tmp_path / "declared", [(name, "memfs")])), "--no-lock"))

    out = tmp_path / "exported" / "fleet.yaml"
    ok(run(hosted, "export", name, "-o", str(out)))
    (entry,) = yaml.safe_load(out.read_text())["agents"]
    assert [block["name"] for block in entry["memory_blocks"]] == ["handbook"]  # not system/handbook, no skill
    memory = entry["memory"]
    assert memory["mode"] == "memfs"
    template = out.parent / memory["template_dir"]
    assert (template / "system" / "policies.md").read_text().endswith("No refunds for billing.\n")
    assert (template / "system" / "refunds.md").read_text().endswith("Within 30 days, with the receipt.\n")
    assert not (template / "system" / "handbook.md").exists()
    (skill,) = memory["skills"]
    assert (out.parent / skill["from_dir"] / "triage.sh").read_text() == "#!/bin/sh\necho triaged\n"

    assert_no_changes(hosted, out)
