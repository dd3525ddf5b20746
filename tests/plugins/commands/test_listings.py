"""Listing commands against a mocked Letta API (respx): what a server that refuses a kind answers, and that no
credential of a provider or an MCP server reaches any output."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from tests.plugins.commands.mocked_letta import run

# What hosted Letta answers to the folders API since 2026-07-17.
FOLDERS_REFUSED = {"detail": "The folders API is no longer available. Migrate to the Letta Agent SDK."}


@pytest.mark.parametrize("output", ["table", "json", "yaml"])
def test_get_folders_on_a_server_that_refuses_them_says_so_in_one_line(letta, output):
    letta.get("/v1/folders/").respond(400, json=FOLDERS_REFUSED)
    result = run("get", "folders", "-o", output)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the server at http://letta.test does not offer folders")
    assert "answered 400" in lines[0] and "no longer available" in lines[0] and "2026-07-17" in lines[0]
    assert "Traceback" not in result.output + result.stderr


def test_get_folders_json_on_a_refusing_server_still_prints_a_json_error(letta):
    letta.get("/v1/folders/").respond(404, json={"detail": "Not Found"})
    result = run("get", "folders", "-o", "json")
    assert result.exit_code == 1
    assert "does not offer folders" in json.loads(result.stdout)["error"]["message"]


def test_a_server_error_on_folders_is_not_called_a_missing_feature(letta):
    letta.get("/v1/folders/").respond(500, json={"detail": "database is down"})
    result = run("get", "folders")
    assert result.exit_code == 1
    assert "does not offer" not in result.stderr and "500" in result.stderr


PROVIDER_KEY = "sk-provider-SECRET-123"
MCP_TOKEN = "mcp-token-SECRET-456"


def mock_credentials(letta):
    letta.get("/v1/providers/").mock(
        side_effect=[
            httpx.Response(
                200,
                json=[
                    {
                        "id": "provider-1",
                        "name": "my-openai",
                        "provider_type": "openai",
                        "provider_category": "byok",
                        "api_key": PROVIDER_KEY,
                        "access_key": PROVIDER_KEY,
                        "api_key_enc": PROVIDER_KEY,
                        "base_url": f"https://user:{PROVIDER_KEY}@llm.example/v1?key={PROVIDER_KEY}",
                    }
                ],
            ),
            httpx.Response(200, json=[]),  # an empty page ends the list
        ]
    )
    letta.get("/v1/mcp-servers/").respond(
        json=[
            {
                "id": "mcp-1",
                "server_name": "firecrawl",
                "mcp_server_type": "streamable_http",
                "server_url": f"https://mcp.example/?token={MCP_TOKEN}",
                "auth_header": "Authorization",
                "auth_token": f"Bearer {MCP_TOKEN}",
                "custom_headers": {"X-Key": MCP_TOKEN},
            },
            {
                "id": "mcp-2",
                "server_name": "local",
                "mcp_server_type": "stdio",
                "command": "npx",
                "env": {"K": MCP_TOKEN},
            },
        ]
    )


@pytest.mark.parametrize("output", ["table", "json", "yaml"])
def test_providers_and_mcp_servers_are_listed_without_their_credentials(letta, output):
    mock_credentials(letta)
    providers = run("get", "providers", "-o", output)
    servers = run("get", "mcp-servers", "-o", output)
    assert providers.exit_code == 0 and servers.exit_code == 0, providers.stderr + servers.stderr
    assert "my-openai" in providers.stdout and "https://llm.example/v1" in providers.stdout
    assert "firecrawl" in servers.stdout and "https://mcp.example/" in servers.stdout and "npx" in servers.stdout
    everything = providers.output + providers.stderr + servers.output + servers.stderr
    assert "SECRET" not in everything
    if output == "yaml":
        assert yaml.safe_load(servers.stdout)[0]["name"] == "firecrawl"
