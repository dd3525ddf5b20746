"""What a plan of agents with memory files costs a real App Server: a no-change plan reads each declared file
once (`read_memory_file`, a file read) and lists no agent's memory (`list_memory` runs git on the server,
about 90 ms of its CPU an agent); files read one by one parse as the server's own listing parses them."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lettafleet.plugins.backends.app_server import agents as agents_module
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError, Connection
from lettafleet.plugins.backends.app_server.memory_reads import parsed_memory_file
from tests.integration.test_app_server_memfs import applied_v2
from tests.integration.test_app_server_plan_apply import (
    agent_yaml,
    app_server,  # noqa: F401 (a fixture: the dev App Server with the LLM stand-in connected)
    blocks_yaml,
    cli,
    fleet_file,
    suffix,  # noqa: F401 (a fixture: a unique suffix, its agents deleted afterwards)
)

pytest_plugins = ["tests.fakes.llm_server"]


@pytest.fixture
def frames(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The requests every App Server client of this process sends from now on, by type."""
    sent: Counter[str] = Counter()
    request = Connection.request

    def counted(self: Connection, frame_type: str, fields: Mapping[str, Any], **kwargs: Any) -> Any:
        sent[frame_type] += 1
        return request(self, frame_type, fields, **kwargs)

    monkeypatch.setattr(Connection, "request", counted)
    return sent


def test_a_no_change_plan_reads_each_declared_file_once_and_lists_no_agents_memory(
    app_server: str,  # noqa: F811
    suffix: str,  # noqa: F811
    tmp_path: Path,
    frames: Counter[str],
) -> None:
    agents = [f"as-reads-{index}-{suffix}" for index in range(4)]
    blocks = blocks_yaml(("persona", "I help.", True), ("policies", "Refunds: 30 days.", False))
    fleet = fleet_file(tmp_path, f"as-{suffix}", *(agent_yaml(name, extra=blocks) for name in agents))
    applied = cli(app_server, "apply", "-f", str(fleet), "--no-lock")
    assert applied.exit_code == 0, applied.output
    frames.clear()

    planned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")

    assert planned.exit_code == 0, planned.output
    assert "No changes." in planned.output
    assert frames["list_memory"] == 0
    assert frames["read_memory_file"] == 2 * len(agents)  # one read per declared file
    assert frames["secret_list"] == len(agents)  # each agent's record, once
    assert frames["app_server_info"] == 1  # the plan's header and the memory layout share one answer
    assert sum(frames.values()) <= 3 * len(agents) + 2 + frames["agent_list"] + frames["list_models"]


def test_an_agents_files_are_read_as_soon_as_its_record_is_not_after_every_record(
    app_server: str,  # noqa: F811
    suffix: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agents = [f"as-ahead-{index}-{suffix}" for index in range(3)]
    blocks = blocks_yaml(("persona", "I help.", True))
    shared = "shared_blocks:\n  - name: policy\n    description: the policy\n    value: Be kind.\n"
    extra = blocks + "    shared_blocks: [policy]\n"
    fleet = fleet_file(tmp_path, f"as-{suffix}", *(agent_yaml(name, extra=extra) for name in agents))
    fleet.write_text(fleet.read_text().replace("agents:\n", shared + "agents:\n", 1))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    sent: list[tuple[str, str]] = []
    request = Connection.request

    def in_order(self: Connection, frame_type: str, fields: Mapping[str, Any], **kwargs: Any) -> Any:
        sent.append((frame_type, str(fields.get("agent_id"))))
        return request(self, frame_type, fields, **kwargs)

    monkeypatch.setattr(Connection, "request", in_order)
    monkeypatch.setattr(agents_module, "RECORD_READS", 1)  # one agent at a time: the order shows what waits

    planned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")

    assert planned.exit_code == 0, planned.output
    per_agent = [(kind, agent) for kind, agent in sent if kind in ("secret_list", "read_memory_file")]
    first = per_agent[0][1]
    # The first agent's record, then its own file and its copy of the shared block, before the next agent's record.
    assert per_agent[:3] == [("secret_list", first), ("read_memory_file", first), ("read_memory_file", first)]
    assert len(per_agent) == 3 * len(agents)


def test_a_no_change_plan_reads_each_agents_copy_of_a_shared_block_alone(
    app_server: str,  # noqa: F811
    suffix: str,  # noqa: F811
    tmp_path: Path,
    frames: Counter[str],
) -> None:
    agents = [f"as-copies-{index}-{suffix}" for index in range(3)]
    shared = "shared_blocks:\n  - name: policy\n    description: the policy\n    value: Be kind.\n"
    fleet = fleet_file(
        tmp_path, f"as-{suffix}", *(agent_yaml(name, extra="    shared_blocks: [policy]\n") for name in agents)
    )
    fleet.write_text(fleet.read_text().replace("agents:\n", shared + "agents:\n", 1))
    applied = cli(app_server, "apply", "-f", str(fleet), "--no-lock")
    assert applied.exit_code == 0, applied.output
    frames.clear()

    planned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")

    assert planned.exit_code == 0, planned.output
    assert frames["list_memory"] == 0
    assert frames["read_memory_file"] == len(agents)  # each agent's own copy, once


def test_a_recorded_file_the_agent_deleted_is_planned_again_from_the_agents_listing(
    app_server: str,  # noqa: F811
    app_server_client: AppServerClient,
    suffix: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    name = f"as-gone-{suffix}"
    fleet = fleet_file(tmp_path, f"as-{suffix}", agent_yaml(name, extra=blocks_yaml(("policies", "Be kind.", False))))
    assert cli(app_server, "apply", "-f", str(fleet), "--no-lock").exit_code == 0
    agent = next(a for a in app_server_client.list_agents() if a["name"] == name)
    app_server_client.delete_memory_file(agent["id"], "policies.md")

    planned = cli(app_server, "plan", "-f", str(fleet))

    assert "+ block policies" in planned.output and "Plan: 1 to create, 0 to update" in planned.output, planned.output


# Memory files as a user or an agent may leave them: each must read back as `list_memory` gives it.
FILES = {
    "plain.md": "---\nname: plain\ndescription: the plain one\n---\nA value.",
    "spaced.md": "---\nname: spaced\ndescription:   padded  \n---\n\n  Value with blank lines around.  \n\n",
    "quoted.md": '---\nname: quoted\ndescription: "in quotes": and a colon\n---\nValue: with a colon.',
    "crlf.md": "---\r\nname: crlf\r\ndescription: written on Windows\r\n---\r\nLine one.\r\nLine two.\r\n",
    "dashes.md": "---\nname: dashes\ndescription: d\n---\n---\nA value that starts with a rule.\n---",
    "unicode.md": "---\nname: unicode\ndescription: café, déjà\n---\n\u00a0Non-breaking edges\u00a0",
}


def test_a_file_read_alone_parses_as_the_servers_listing_parses_it(
    app_server_client: AppServerClient,
) -> None:
    agent = app_server_client.create_agent({"name": f"as-parse-{uuid.uuid4().hex[:8]}", "model": "none/none"})
    try:
        written = []
        for path, text in FILES.items():
            try:
                app_server_client.write_memory_file(agent["id"], path, text)
                written.append(path)
            except AppServerError:
                continue  # refused by the server's own frontmatter check: no agent can have it either
        listed = {entry["relative_path"]: entry for entry in app_server_client.list_memory(agent["id"])}

        assert len(written) >= 4, written
        for path in written:
            parsed = parsed_memory_file(app_server_client.read_memory_file(agent["id"], path))
            assert parsed == (listed[path]["description"], listed[path]["content"]), path
    finally:
        app_server_client.delete_agent(agent["id"])


def test_a_no_change_plan_of_a_memory_section_reads_its_files_and_the_root_index_and_lists_no_memory(
    app_server: str,  # noqa: F811
    app_server_client: AppServerClient,
    suffix: str,  # noqa: F811
    tmp_path: Path,
    frames: Counter[str],
) -> None:
    """The layout comes from the root index, the folders' indexes from the files declared: no listing (which would
    cost the server some 150 ms an agent)."""
    fleet, _ = applied_v2(app_server, app_server_client, tmp_path, f"as-memfs-{suffix}")
    frames.clear()

    planned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")

    assert planned.exit_code == 0, planned.output
    assert frames["list_memory"] == 0
    declared = 7  # policies, tone, the template's index and escalation, the skill's two files, refunds
    # and the root index, for the layout; the block refunds comes from, read by its kind and by the memory section
    assert frames["read_memory_file"] == declared + 1 + 2
