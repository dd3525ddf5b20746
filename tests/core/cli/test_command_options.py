"""Options every server command shares: an API key is not sent over plain http to another host unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx
from click.testing import CliRunner

from lettafleet.core.cli.app import main

REMOTE = "http://letta.example:8283"
FLEET = "agents:\n  - name: a\n    llm_config: {model: letta/letta-free}\n    system_prompt: {value: hi}\n"


def run(*args: str, **env: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": REMOTE, **env}, catch_exceptions=False)


@pytest.mark.parametrize("command", [["plan", "-f", "FLEET"], ["apply", "-f", "FLEET"], ["get", "agents"]])
def test_an_api_key_over_plain_http_to_another_host_is_refused_before_any_request(command, tmp_path: Path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    with respx.mock(assert_all_called=False) as letta:
        route = letta.route(host="letta.example").respond(json=[])
        result = run(*[str(fleet) if part == "FLEET" else part for part in command], LETTA_API_KEY="sk-live-abcdef")

    assert result.exit_code == 1
    assert "refusing to send LETTA_API_KEY over plain http to letta.example" in result.stderr
    assert "--allow-insecure-http" in result.stderr and "LETTA_ALLOW_INSECURE_HTTP" in result.stderr
    assert "sk-live" not in result.output + result.stderr and "Traceback" not in result.stderr
    assert not route.called


@pytest.mark.parametrize("allow", [["--allow-insecure-http"], []])
def test_plain_http_is_used_when_the_user_allows_it(allow):
    env = {"LETTA_API_KEY": "sk-live-abcdef"} | ({} if allow else {"LETTA_ALLOW_INSECURE_HTTP": "1"})
    with respx.mock as letta:
        route = letta.get(f"{REMOTE}/v1/agents/").respond(json=[])
        result = run("get", "agents", *allow, **env)

    assert result.exit_code == 0, result.stderr
    assert route.calls.last.request.headers["Authorization"] == "Bearer sk-live-abcdef"


def test_a_password_in_the_base_url_never_shows():
    with respx.mock as letta:
        letta.get("https://letta.example/v1/agents/").respond(json=[])
        result = run("get", "agents", LETTA_BASE_URL="https://admin:hunter2-pw@letta.example", LETTA_API_KEY="")

    assert result.exit_code == 0, result.stderr
    assert "No agents on https://letta.example." in result.output and "hunter2" not in result.output
