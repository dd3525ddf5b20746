"""MCP servers, mcp_tools and BYOK providers against a real Letta 0.16.8: apply registers them, a second plan says
"No changes", a changed token is an update, `prune_missing_providers` deletes a provider the file dropped, and no
auth token or API key appears in any output. Letta 0.16.8 refuses MCP URLs on private addresses, so the server
declared here is one Letta cannot reach: it registers it, and lists no tools for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.integration.cli import planned_changes

TOKEN, OTHER_TOKEN, API_KEY = "mcp-token-Zq81", "mcp-token-Yw27", "sk-provider-Kx55"


@pytest.fixture
def names(client: LettaClient) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    chosen = {"agent": f"mcp-{suffix}", "server": f"search-{suffix}", "provider": f"byok-{suffix}"}
    yield chosen
    for agent in client.list_all("/v1/agents/", name=chosen["agent"]):
        client.delete(f"/v1/agents/{agent['id']}")
    for server in client.get("/v1/mcp-servers/"):
        if server["server_name"] == chosen["server"]:
            client.delete(f"/v1/mcp-servers/{server['id']}")
    for provider in client.get("/v1/providers/", name=chosen["provider"]):
        client.delete(f"/v1/providers/{provider['id']}")


def cli(letta_server: str, token: str, *args: str) -> Result:
    env = {"LETTA_BASE_URL": letta_server, "SEARCH_TOKEN": token, "PROVIDER_KEY": API_KEY}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    for secret in (TOKEN, OTHER_TOKEN, API_KEY):
        assert secret not in result.output
    return result


def write_fleet(folder: Path, names: dict[str, str], *, provider: bool) -> Path:
    providers = (
        "providers:\n"
        f"  - name: {names['provider']}\n"
        "    provider_type: openai\n"
        "    api_key: {from_env: PROVIDER_KEY}\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        if provider
        else ""
    )
    path = folder / "fleet.yaml"
    path.write_text(
        "prune_missing_providers: true\n" + providers + "mcp_servers:\n"
        f"  - name: {names['server']}\n"
        "    type: streamable_http\n"
        "    server_url: https://mcp.example.com/mcp\n"
        "    auth_header: Authorization\n"
        "    auth_token: Bearer ${SEARCH_TOKEN}\n"
        "agents:\n"
        f"  - name: {names['agent']}\n"
        "    llm_config: {model: letta/letta-free}\n"
        "    embedding: letta/letta-free\n"
        "    system_prompt: {value: You help.}\n"
        f"    mcp_tools: [{{server: {names['server']}, tools: all}}]\n"
    )
    return path


def changes(letta_server: str, token: str, fleet: Path) -> dict[str, str]:
    return planned_changes(cli(letta_server, token, "plan", "-f", str(fleet), "-o", "json"))


def test_mcp_server_and_provider_apply_then_no_changes_then_prune(
    letta_server: str, client: LettaClient, names: dict[str, str], tmp_path: Path
) -> None:
    fleet = write_fleet(tmp_path, names, provider=True)
    applied = cli(letta_server, TOKEN, "apply", "-f", str(fleet))
    assert applied.exit_code == 0, applied.output

    [server] = [s for s in client.get("/v1/mcp-servers/") if s["server_name"] == names["server"]]
    assert server["auth_token"] == f"Bearer {TOKEN}"
    [provider] = client.get("/v1/providers/", name=names["provider"])
    assert provider["provider_category"] == "byok"
    assert changes(letta_server, TOKEN, fleet) == {}

    assert changes(letta_server, OTHER_TOKEN, fleet) == {f"mcp_server.{names['server']}": "update"}
    text = cli(letta_server, OTHER_TOKEN, "plan", "-f", str(fleet))
    assert "(sensitive)" in text.output

    fleet = write_fleet(tmp_path, names, provider=False)
    assert changes(letta_server, TOKEN, fleet) == {f"provider.{names['provider']}": "delete"}
    pruned = cli(letta_server, TOKEN, "apply", "-f", str(fleet))
    assert pruned.exit_code == 0, pruned.output
    assert client.get("/v1/providers/", name=names["provider"]) == []
    assert changes(letta_server, TOKEN, fleet) == {}


def test_stdio_mcp_server_is_refused_at_its_line(letta_server: str, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "mcp_servers:\n"
        "  - name: local\n"
        "    type: stdio\n"
        "    command: npx\n"
        "agents:\n"
        "  - name: stdio-refused\n"
        "    llm_config: {model: letta/letta-free}\n"
        "    system_prompt: {value: You help.}\n"
    )
    result = cli(letta_server, TOKEN, "plan", "-f", str(fleet))
    assert result.exit_code != 0
    assert "fleet.yaml:3:" in result.output and "stdio" in result.output
