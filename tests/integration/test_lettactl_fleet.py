"""A lettactl-style fleet that uses every key lettafleet supports, against a real Letta 0.16.8 (models and
embeddings from the stand-in LLM): it applies, plans "No changes", a changed value of each updatable key is
planned and applied as an update, `first_message` is sent once (on creation only), and taking out everything but
one agent removes it all (`prune: true`) and plans "No changes" again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.llm_server import FakeLLM
from tests.integration.cli import ok, planned_changes

pytest_plugins = ["tests.fakes.llm_server"]

TOKEN, API_KEY = "mcp-token-Lk40", "sk-provider-Vh73"


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    """Unique names for everything the fleet makes; whatever is left of it is deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    chosen = {key: f"{key}-{suffix}" for key in ("fleet", "first", "second", "shared", "folder", "handbook")}
    chosen |= {"archive": f"notes-{suffix}", "server": f"search-{suffix}", "provider": f"byok-{suffix}"}
    chosen |= {"tool": f"lookup_{suffix}", "message": f"hello {suffix}"}
    yield chosen
    for agent in (name for key in ("first", "second") for name in [chosen[key]]):
        for found in client.list_all("/v1/agents/", name=agent):
            client.delete(f"/v1/agents/{found['id']}")
    for block in client.list_all("/v1/blocks/", label=chosen["shared"]):
        client.delete(f"/v1/blocks/{block['id']}")
    for tool in client.list_all("/v1/tools/", name=chosen["tool"]):
        client.delete(f"/v1/tools/{tool['id']}")
    for key in ("folder", "handbook"):
        for folder in client.list_all("/v1/folders/", name=chosen[key]):
            client.delete(f"/v1/folders/{folder['id']}")
    for archive in client.list_all("/v1/archives/", name=chosen["archive"]):
        client.delete(f"/v1/archives/{archive['id']}")
    for server in client.get("/v1/mcp-servers/"):
        if server["server_name"] == chosen["server"]:
            client.delete(f"/v1/mcp-servers/{server['id']}")
    for provider in client.get("/v1/providers/", name=chosen["provider"]):
        client.delete(f"/v1/providers/{provider['id']}")


def cli(letta_server: str, *args: str) -> Result:
    env = {"LETTA_BASE_URL": letta_server, "SEARCH_TOKEN": TOKEN, "PROVIDER_KEY": API_KEY, "ORDERS_KEY": "ord-Pq19"}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    for secret in (TOKEN, API_KEY, "ord-Pq19"):
        assert secret not in result.output
    return result


def changes(letta_server: str, fleet: Path) -> dict[str, str]:
    return planned_changes(cli(letta_server, "plan", "-f", str(fleet), "-o", "json"))


def apply(letta_server: str, fleet: Path) -> None:
    ok(cli(letta_server, "apply", "-f", str(fleet)))


def write_sources(root: Path, names: dict[str, str], version: int) -> None:
    """The files the fleet names, under its `root_path` (src/); `version` changes each one's content."""
    (root / "files").mkdir(parents=True, exist_ok=True)
    (root / "prompts").mkdir(exist_ok=True)
    (root / "prompts" / "first.md").write_text(f"You answer tickets (v{version}).\n")
    (root / "facts.md").write_text(f"Open 9 to {4 + version}.\n")
    (root / "files" / "faq.md").write_text(f"FAQ v{version}\n")
    (root / "files" / "handbook.md").write_text("Handbook\n")
    (root / "lookup.py").write_text(
        f"def {names['tool']}(order: str) -> str:\n"
        f'    """Look an order up (v{version}).\n\n    Args:\n        order: the order number.\n    """\n'
        f"    return order * {version}\n"
    )


def full_fleet(names: dict[str, str], fake: FakeLLM, version: int) -> str:
    """Every key lettafleet supports, as a lettactl user writes them; `version` changes each updatable value."""
    n = names
    return f"""\
fleet: {n["fleet"]}
prune: true
root_path: src
global-secrets:
  COMPANY: {{value: "Acme v{version}"}}
mcp_servers:
  - name: {n["server"]}
    type: streamable_http
    server_url: https://mcp.example.com/mcp{version}
    auth_header: Authorization
    auth_token: "Bearer ${{SEARCH_TOKEN}}"
providers:
  - name: {n["provider"]}
    provider_type: openai
    api_key: {{from_env: PROVIDER_KEY}}
    base_url: http://127.0.0.1:{8 + version}/v1
shared_blocks:
  - {{name: {n["shared"]}, description: Policies, limit: 1000, agent_owned: false, value: "Be kind v{version}."}}
shared_folders:
  - {{name: {n["handbook"]}, files: [files/handbook.md]}}
agents:
  - name: {n["first"]}
    description: "First agent v{version}"
    system_prompt: {{from_file: prompts/first.md}}
    llm_config:
      model: {fake.llm_config()["model"]}
      model_endpoint_type: openai
      model_endpoint: {fake.base_url}
      context_window: {30000 + version * 1000}
    embedding_config:
{"".join(f"      {key}: {value}{chr(10)}" for key, value in fake.embedding_config().items())}\
    tags: ["team:support", "v{version}"]
    include_base_tools: true
    include_base_tool_rules: true
    reasoning: false
    first_message: "{n["message"]}"
    compaction_settings: {{mode: sliding_window, sliding_window_percentage: 0.{version}}}
    memory: {{mode: blocks}}
    memory_blocks:
      - {{name: notes, description: Notes, limit: 1000, agent_owned: true, value: "Nothing yet."}}
      - {{name: facts, description: Facts, limit: 1000, agent_owned: false, from_file: facts.md}}
    shared_blocks: [{n["shared"]}]
    tools: [web_search, {{name: {n["tool"]}, from_file: lookup.py}}]
    secrets:
      orders_key: {{from_env: ORDERS_KEY}}
      REGION: {{value: "eu-{version}"}}
    conversations:
      - {{summary: "Ticket 1", isolated_blocks: [notes]}}
    folders:
      - {{name: {n["folder"]}, files: [files/faq.md]}}
    shared_folders: [{n["handbook"]}]
    archives:
      - {{name: {n["archive"]}, description: "Call notes v{version}"}}
  - name: {n["second"]}
    description: Second agent
    system_prompt: {{value: You help.}}
    llm_config: {{model: letta/letta-free, context_window: 16000}}
    embedding: letta/letta-free
    tags: [team:sales]
    shared_blocks: [{n["shared"]}]
    tools: []
    conversations:
      - {{summary: "Ticket 2"}}
"""


def one_agent_left(names: dict[str, str], fake: FakeLLM) -> str:
    return (
        f"fleet: {names['fleet']}\nprune: true\nagents:\n  - name: {names['first']}\n"
        "    system_prompt: {value: You answer tickets.}\n    tools: []\n" + fake.fleet_yaml()
    )


def first_messages(fake: FakeLLM, text: str) -> int:
    """How many model calls answered the fleet's first message (one per time Letta was sent it)."""
    return len({id(r) for r in fake.chat_requests() if r.last_user_text == text})


def test_every_lettactl_key_applies_updates_and_removes(
    letta_server: str, client: LettaClient, names: dict[str, str], fake_llm: FakeLLM, tmp_path: Path
) -> None:
    fleet = tmp_path / "fleet.yaml"
    write_sources(tmp_path / "src", names, 1)
    fleet.write_text(full_fleet(names, fake_llm, 1))
    apply(letta_server, fleet)
    assert changes(letta_server, fleet) == {}
    assert first_messages(fake_llm, names["message"]) == 1

    write_sources(tmp_path / "src", names, 2)
    fleet.write_text(full_fleet(names, fake_llm, 2))
    planned = changes(letta_server, fleet)
    first = f"agent.{names['first']}"
    expected = {
        first: "update",
        f"{first}.block.facts": "update",
        f"shared_block.{names['shared']}": "update",
        f"tool.{names['tool']}": "update",
        f"{first}.secret.COMPANY": "update",
        f"{first}.secret.REGION": "update",
        f"agent.{names['second']}.secret.COMPANY": "update",
        f'folder.{names["folder"]}.file["faq.md"]': "update",
        f"archive.{names['archive']}": "update",
        f"mcp_server.{names['server']}": "update",
        f"provider.{names['provider']}": "update",
    }
    assert planned == expected
    apply(letta_server, fleet)
    assert changes(letta_server, fleet) == {}
    assert first_messages(fake_llm, names["message"]) == 1, "first_message is sent on creation only"

    fleet.write_text(one_agent_left(names, fake_llm))
    apply(letta_server, fleet)
    assert changes(letta_server, fleet) == {}
    assert client.list_all("/v1/agents/", name=names["second"]) == []
    assert client.list_all("/v1/folders/", name=names["folder"]) == []
    assert client.list_all("/v1/archives/", name=names["archive"]) == []
    assert client.list_all("/v1/tools/", name=names["tool"]) == []
