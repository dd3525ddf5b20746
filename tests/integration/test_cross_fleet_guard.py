"""What one named fleet made, another fleet may not declare, on the real server: declaring another named fleet's
agent, tool (defined from source) or folder is an error at its line before any write, so the two fleets never
rewrite each other's resources back and forth. A tool another fleet made may still be named (used, not written)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.llm_server import FakeLLM
from tests.integration.cli import cli, ok

pytest_plugins = ["tests.fakes.llm_server"]


class TwoFleets:
    """Fleet `a` (named) and a second fleet, each with its own agent, in folders of their own."""

    def __init__(self, tmp_path: Path, base_url: str, client: LettaClient, fake: FakeLLM) -> None:
        self.suffix = uuid.uuid4().hex[:8]
        self.tool, self.folder = f"lookup_{self.suffix}", f"docs-{self.suffix}"
        self.tmp_path, self.base_url, self.client, self.fake = tmp_path, base_url, client, fake

    def write(self, fleet: str | None, agent: str, declares: str, answer: str) -> Path:
        """A fleet file of one agent declaring `declares` (tool, folder or agent) as fleet `a` made it, except
        for `answer` (the tool's return value, the folder file's text)."""
        folder = self.tmp_path / (fleet or "unnamed") / agent
        (folder / "tools").mkdir(parents=True, exist_ok=True)
        (folder / "tools" / f"{self.tool}.py").write_text(
            f'def {self.tool}(order_id: str) -> str:\n    """Look up an order.\n\n    Args:\n'
            f'        order_id: The order\'s id.\n    """\n    return "{answer}"\n'
        )
        (folder / "handbook.md").write_text(f"# Handbook\n\n{answer}\n")
        lines = [f"fleet: {fleet}"] if fleet else []
        lines += ["agents:", f"  - name: {agent}", "    system_prompt: {value: Hi.}", self.fake.fleet_yaml().rstrip()]
        if declares == "tool":
            lines.append(f"    tools: [{self.tool}]")
        if declares == "folder":
            lines += ["    folders:", f"      - name: {self.folder}", "        files: [handbook.md]"]
        path = folder / "fleet.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def tool_source(self) -> str:
        [tool] = self.client.get("/v1/tools/", name=self.tool)
        return str(tool["source_code"])

    def folder_text(self) -> str:
        [folder] = self.client.list_all("/v1/folders/", name=self.folder)
        rows = self.client.list_all(f"/v1/folders/{folder['id']}/files", include_content=True)
        return "".join(row["content"] for row in rows)

    def remove(self) -> None:
        for agent in self.client.list_all("/v1/agents/"):
            if agent["name"].endswith(self.suffix):
                self.client.delete(f"/v1/agents/{agent['id']}")
        for tool in self.client.get("/v1/tools/", name=self.tool):
            self.client.delete(f"/v1/tools/{tool['id']}")
        for folder in self.client.list_all("/v1/folders/", name=self.folder):
            self.client.delete(f"/v1/folders/{folder['id']}")


@pytest.fixture
def fleets(letta_server: str, client: LettaClient, tmp_path: Path, fake_llm: FakeLLM) -> Iterator[TwoFleets]:
    made = TwoFleets(tmp_path, letta_server, client, fake_llm)
    yield made
    made.remove()


@pytest.mark.parametrize("second", ["b", None], ids=["another-named-fleet", "a-fleet-without-a-name"])
@pytest.mark.parametrize("declares", ["tool", "folder", "agent"])
def test_declaring_what_another_named_fleet_made_is_an_error_at_its_line_before_any_write(
    fleets: TwoFleets, declares: str, second: str | None
) -> None:
    a_agent = f"a-{fleets.suffix}"
    ok(cli(fleets.base_url, "apply", "-f", str(fleets.write(f"a-{fleets.suffix}", a_agent, declares, "from a"))))
    before = {"tool": fleets.tool_source, "folder": fleets.folder_text}.get(declares, lambda: "")()
    second_name = f"{second}-{fleets.suffix}" if second else None
    b_agent = a_agent if declares == "agent" else f"b-{fleets.suffix}"
    path = fleets.write(second_name, b_agent, declares, "from b")
    line = {"tool": f"    tools: [{fleets.tool}]", "folder": f"      - name: {fleets.folder}"}
    expected_line = path.read_text().splitlines().index(line.get(declares, f"  - name: {b_agent}")) + 1
    noun, name = {"tool": ("tool", fleets.tool), "folder": ("folder", fleets.folder)}.get(declares, ("agent", a_agent))

    for command in ("plan", "apply"):
        refused = cli(fleets.base_url, command, "-f", str(path))

        assert refused.exit_code == 1
        assert f"{path}:{expected_line}:" in refused.stderr
        assert f"{noun} '{name}' on {fleets.base_url} belongs to fleet 'a-{fleets.suffix}', not to" in refused.stderr
    assert {"tool": fleets.tool_source, "folder": fleets.folder_text}.get(declares, lambda: "")() == before
    assert len(fleets.client.list_all("/v1/agents/", name=b_agent)) == (1 if declares == "agent" else 0)


def test_a_tool_another_named_fleet_made_may_be_named_without_its_source(fleets: TwoFleets) -> None:
    ok(cli(fleets.base_url, "apply", "-f", str(fleets.write(f"a-{fleets.suffix}", f"a-{fleets.suffix}", "tool", "a"))))
    before = fleets.tool_source()
    path = fleets.write(f"b-{fleets.suffix}", f"b-{fleets.suffix}", "tool", "b")
    (path.parent / "tools" / f"{fleets.tool}.py").unlink()  # `tools: [NAME]` now names the server's tool

    ok(cli(fleets.base_url, "apply", "-f", str(path)))

    assert fleets.tool_source() == before
    [agent] = fleets.client.list_all("/v1/agents/", name=f"b-{fleets.suffix}")
    assert fleets.tool in {tool["name"] for tool in agent["tools"]}
