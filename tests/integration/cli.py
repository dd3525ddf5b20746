"""Running lettafleet's command line against a server, as the integration tests do: in process, with the server's
URL in the environment, and any exception raised rather than turned into an exit code."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main


def cli(base_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": base_url}, catch_exceptions=False)


def ok(result: Result) -> str:
    """The command's standard output, once it has exited 0 (else its output and errors, as the failure)."""
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def planned_changes(plan: Result) -> dict[str, str]:
    """Every change a `plan -o json` run shows but the no-ops, by address: its action."""
    changes = json.loads(ok(plan))["changes"]
    return {change["address"]: change["action"] for change in changes if change["action"] != "no-op"}
