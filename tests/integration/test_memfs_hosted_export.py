"""`export` of a V1 agent whose memory is git-backed (the tag `git-memory-enabled`), through the stand-in for hosted
Letta's git memory in front of the real dev server: its blocks come back under the labels the fleet gave them, its
other files as the `memory:` section, and planning the export says "No changes"."""

from __future__ import annotations

from pathlib import Path

import yaml

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.hosted_git_memory import HostedGitMemoryStandIn
from tests.integration.hosted_memfs_fleet import (
    assert_no_changes,
    hosted,
    names,
    ok,
    run,
    write_fleet,
)

pytest_plugins = ["tests.fakes.llm_server"]
__all__ = ["hosted", "names"]  # fixtures, shared with the hosted done-when tests


def test_a_git_memory_agent_exports_its_blocks_by_their_labels_and_its_files_as_the_section(
    hosted: HostedGitMemoryStandIn,
    client: LettaClient,
    names: tuple[str, str],
    tmp_path: Path,
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
