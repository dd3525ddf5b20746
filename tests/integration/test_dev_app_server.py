"""`lettafleet dev-server up|status|down --app-server` install and run a real Letta App Server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.plugins.devserver.supervisor import is_same_process


def test_up_status_and_down_of_an_app_server_in_its_own_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A home of this test's own: `down` here must never stop the server other tests share.
    monkeypatch.setenv("LETTAFLEET_DEV_HOME", str(tmp_path / "dev-server"))
    runner = CliRunner()

    started = runner.invoke(main, ["dev-server", "up", "--app-server", "--port", "0", "--json"])
    assert started.exit_code == 0, started.output
    try:
        reported = json.loads(runner.invoke(main, ["dev-server", "status", "--app-server", "--json"]).stdout)
        assert reported["running"] is True
        assert reported["base_url"].startswith("ws://127.0.0.1:")
        info = httpx.get(reported["base_url"].replace("ws://", "http://") + "/app-server-info", timeout=10).json()
        assert (info["letta_code_version"], info["protocol_version"], info["backend"]) == ("0.34.12", 1, "local")
    finally:
        stopped = runner.invoke(main, ["dev-server", "down", "--app-server"])

    assert stopped.exit_code == 0, stopped.output
    assert f"pid {reported['pid']}" in stopped.output
    assert not is_same_process(reported["pid"], None)
    after = json.loads(runner.invoke(main, ["dev-server", "status", "--app-server", "--json"]).stdout)
    assert after["running"] is False and after["base_url"] is None


def test_the_shared_app_server_reports_version_and_protocol(app_server_url: str) -> None:
    info = httpx.get(app_server_url.replace("ws://", "http://") + "/app-server-info", timeout=10).json()

    assert info["letta_code_version"] == "0.34.12"
    assert info["protocol_version"] == 1
