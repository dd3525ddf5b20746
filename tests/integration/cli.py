"""Running lettafleet's command line against a server, as the integration tests do: in process, with the server's
URL in the environment, and any exception raised rather than turned into an exit code."""

from __future__ import annotations

from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main


def cli(base_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LETTA_BASE_URL": base_url}, catch_exceptions=False)


def ok(result: Result) -> str:
    """The command's standard output, once it has exited 0 (else its output and errors, as the failure)."""
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout
