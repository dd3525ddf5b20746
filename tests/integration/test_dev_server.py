"""The dev server that integration tests and the demo use is a real Letta 0.16.8."""

from __future__ import annotations

import json

import httpx
from click.testing import CliRunner

from lettafleet.core.cli.app import main


def test_health_endpoint_reports_letta_0_16_8(letta_server: str) -> None:
    response = httpx.get(f"{letta_server}/v1/health/", timeout=10)

    assert response.status_code == 200
    assert response.json() == {"version": "0.16.8", "status": "ok"}


def test_status_json_reports_the_running_server(letta_server: str) -> None:
    result = CliRunner().invoke(main, ["dev-server", "status", "--json"])

    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)
    assert reported["running"] is True
    assert reported["base_url"] == letta_server
    assert reported["version"] == "0.16.8"
    assert reported["configuration"]["LETTA_UVICORN_WORKERS"] == "2"
