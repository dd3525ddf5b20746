"""No secret in any output, whatever form the real server echoes it in: its errors repeat a refused request as a
Python repr, which escapes quotes and backslashes differently from JSON and from the value itself."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.tampering_proxy import TamperingProxy, refuse_with_echo

TOKEN = uuid.uuid4().hex[:8]
SECRETS = {
    "TEST_TRICKY": f'p"a\\ss-wörd&x=1 y+z/{TOKEN}',  # quote, backslash, non-ASCII, URL-special characters
    "TEST_LONG": ("L" + uuid.uuid4().hex) * 46,  # 1,518 characters: more than an error message shows
    "TEST_TWO": "q7",
    "TEST_THREE": "k9z",
}


def shown_forms(secret: str) -> set[str]:
    """The ways a server or a renderer may write `secret`, and (for a long one) its first twelve characters."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        repr(secret).replace("\\", "\\\\")[1:-1],  # a repr inside JSON
        quote(secret, safe=""),
        quote_plus(secret),
    }
    return forms | ({secret[:12]} if len(secret) > 12 else set())


def leaked(text: str) -> list[str]:
    return [form for secret in SECRETS.values() for form in shown_forms(secret) if form in text]


@pytest.fixture
def agent_name(client: LettaClient) -> Iterator[str]:
    name = f"secrets-out-{uuid.uuid4().hex[:8]}"
    yield name
    for agent in client.list_all("/v1/agents/", name=name):
        client.delete(f"/v1/agents/{agent['id']}")


@pytest.fixture
def echoing_server(letta_server: str) -> Iterator[str]:
    """The real server, behind a proxy that makes every agent write with secrets invalid, so the server's 422
    repeats each secret."""
    with TamperingProxy(letta_server, refuse_with_echo) as proxy:
        yield proxy.base_url


def cli(base_url: str, *args: str, secrets: dict[str, str] = SECRETS) -> Result:
    env = {"LETTA_BASE_URL": base_url, **secrets}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def write_fleet(folder: Path, agent: str) -> Path:
    path = folder / "fleet.yaml"
    declared = "".join(f"      {name.lower()}: {{from_env: {name}}}\n" for name in SECRETS)
    path.write_text(
        f"""agents:
  - name: {agent}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
    secrets:
{declared}"""
    )
    return path


def test_a_server_error_that_repeats_the_secrets_shows_none_of_them(echoing_server, agent_name, tmp_path):
    fleet = write_fleet(tmp_path, agent_name)

    runs = [
        cli(echoing_server, "apply", "-f", str(fleet), *options)
        for options in ([], ["-o", "json"], ["-o", "markdown"], ["-v"])
    ]

    for run in runs:
        shown = run.stdout + run.stderr
        assert run.exit_code == 1, shown
        assert "answered 422" in shown  # the server's refusal, which repeated every secret, is reported
        assert leaked(shown) == []
        assert "Traceback" not in shown


def test_an_update_refused_with_the_secrets_repeated_shows_none_of_them(
    letta_server, echoing_server, agent_name, tmp_path
):
    fleet = write_fleet(tmp_path, agent_name)
    assert cli(letta_server, "apply", "-f", str(fleet)).exit_code == 0
    changed = {name: value + "-2" for name, value in SECRETS.items()}

    run = cli(echoing_server, "apply", "-f", str(fleet), "-v", secrets=changed)

    shown = run.stdout + run.stderr
    assert run.exit_code == 1 and "PATCH" in shown and "answered 422" in shown, shown
    assert [form for secret in changed.values() for form in shown_forms(secret) if form in shown] == []


def test_a_saved_plan_holds_no_secret_and_only_its_owner_can_read_it(letta_server, agent_name, tmp_path):
    fleet = write_fleet(tmp_path, agent_name)
    saved = tmp_path / "plan.json"
    saved.write_text("an older plan, readable by all\n")
    saved.chmod(0o644)

    run = cli(letta_server, "plan", "-f", str(fleet), "--out", str(saved))

    assert run.exit_code == 0, run.output
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["has_changes"] is True
    assert leaked(saved.read_text()) == [] and leaked(run.output) == []


def test_a_user_and_password_in_the_url_show_nowhere(letta_server, agent_name, tmp_path):
    fleet = write_fleet(tmp_path, agent_name)
    with_credentials = letta_server.replace("http://", "http://fleet-admin:pa%40ss-w0rd@")

    runs = [
        cli(with_credentials, "plan", "-f", str(fleet), *options)
        for options in ([], ["-o", "json"], ["-o", "markdown"])
    ]

    assert all(run.exit_code == 0 for run in runs), [run.output for run in runs]
    assert json.loads(runs[1].stdout)["server"] == letta_server
    assert f"against `{letta_server}`" in runs[2].stdout
    shown = "".join(run.stdout + run.stderr for run in runs)
    assert "fleet-admin" not in shown and "w0rd" not in shown and "pa%40ss" not in shown
