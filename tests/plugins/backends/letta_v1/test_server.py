"""What the client learns about its server: the project it sends as Letta's SDK does, and the version it reads
once, which decides whether the server makes isolated conversation blocks."""

from __future__ import annotations

import pytest
import respx

from lettafleet.core.letta.server import ServerInfo
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.server import makes_isolated_blocks

BASE = "https://letta.test"


@respx.mock
def test_the_project_is_sent_as_the_x_project_headers():
    route = respx.get(f"{BASE}/v1/agents/").respond(json=[])
    with LettaClient(BASE, project="support", project_id="proj-123") as client:
        client.get("/v1/agents/")
    headers = route.calls.last.request.headers
    assert headers["X-Project"] == "support" and headers["X-Project-Id"] == "proj-123"


@respx.mock
def test_no_project_header_is_sent_without_a_project():
    route = respx.get(f"{BASE}/v1/agents/").respond(json=[])
    with LettaClient(BASE) as client:
        client.get("/v1/agents/")
    assert "X-Project" not in route.calls.last.request.headers


@respx.mock
def test_the_version_is_read_once_per_client():
    health = respx.get(f"{BASE}/v1/health/").respond(json={"version": "0.16.8", "status": "ok"})
    with LettaClient(BASE, project="support") as client:
        first, second = client.server_info(), client.server_info()
    assert health.call_count == 1 and first is second
    assert first.describe() == "https://letta.test (Letta 0.16.8, project support)"


@respx.mock
def test_a_server_without_a_health_endpoint_has_an_unknown_version():
    respx.get(f"{BASE}/v1/health/").respond(404, json={"detail": "Not Found"})
    with LettaClient(BASE) as client:
        info = client.server_info()
    assert info.version is None and info.describe() == "https://letta.test (version unknown)"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.16.8", True), ("0.16.4", True), ("0.16.3", False), ("0.15.1", False), ("1.12.1", False), (None, None)],
)
def test_only_self_hosted_0_16_4_and_later_make_isolated_blocks(version, expected):
    assert makes_isolated_blocks(ServerInfo("https://letta.test", version)) is expected
