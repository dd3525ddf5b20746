"""Options a plugin adds to `plan` and `apply` (`lettafleet_plan_options`): listed in their help, parsed with
their own options, and their values handed to the plugins as `Fleet.options`."""

from __future__ import annotations

import pytest
import respx
import rich_click as click
from click.testing import CliRunner

from lettafleet.core import PlanOption, Problem, hookimpl
from lettafleet.core.cli import app
from lettafleet.core.cli import fleet as fleet_commands
from lettafleet.core.engine.plugin_manager import get_plugin_manager

FLEET = "agents:\n  - {name: a, llm_config: {model: m}, system_prompt: {value: hi}}\n"


class Careful:
    """A throwaway plugin: `--careful` on plan and apply, which its check reads back from the fleet."""

    @hookimpl
    def lettafleet_plan_options(self):
        return [PlanOption(click.Option(["--careful"], is_flag=True, help="Be careful."))]

    @hookimpl
    def lettafleet_check(self, fleet):
        return [Problem((), f"careful is {fleet.options['careful']}", "")] if "careful" in fleet.options else []


@pytest.fixture
def careful(monkeypatch):
    """The CLI with the throwaway plugin loaded; plan's and apply's options as they were afterwards."""
    with_careful = lambda: get_plugin_manager(extra_plugins=[Careful()])  # noqa: E731
    monkeypatch.setattr(app, "get_plugin_manager", with_careful)
    monkeypatch.setattr(fleet_commands, "get_plugin_manager", with_careful)
    monkeypatch.setattr(app.main, "_plugins_joined", False)
    for command in (app.plan, app.apply):
        monkeypatch.setattr(command, "params", list(command.params))


@respx.mock
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_plugins_option_is_parsed_by_plan_and_apply_and_reaches_the_plugins(careful, command, tmp_path):
    respx.route().respond(json=[])
    (tmp_path / "fleet.yaml").write_text(FLEET)

    helped = CliRunner().invoke(app.main, [command, "--help"])
    given = CliRunner().invoke(app.main, [command, "-f", str(tmp_path / "fleet.yaml"), "--careful"])

    assert "--careful" in helped.output and "Be careful." in helped.output
    assert given.exit_code == 1
    assert f"{tmp_path / 'fleet.yaml'}:1:1: careful is True" in given.stderr


class Quiet:
    """A throwaway plugin: `--quiet-plan` empties the plan (`reshapes`) and refuses to go with --scope (`refuses`)."""

    @hookimpl
    def lettafleet_plan_options(self):
        def refuses(params):
            return "--quiet-plan cannot go with --scope" if params["quiet_plan"] and params["scope"] else None

        def reshapes(plan, params):
            return plan.with_changes([]) if params["quiet_plan"] else plan

        option = click.Option(["--quiet-plan"], is_flag=True, help="Plan nothing.")
        return [PlanOption(option, refuses=refuses, reshapes=reshapes)]


@pytest.fixture
def quiet(monkeypatch):
    """The CLI with the throwaway plugin loaded; plan's and apply's options as they were afterwards."""
    with_quiet = lambda: get_plugin_manager(extra_plugins=[Quiet()])  # noqa: E731
    monkeypatch.setattr(app, "get_plugin_manager", with_quiet)
    monkeypatch.setattr(fleet_commands, "get_plugin_manager", with_quiet)
    monkeypatch.setattr(app.main, "_plugins_joined", False)
    for command in (app.plan, app.apply):
        monkeypatch.setattr(command, "params", list(command.params))


@respx.mock
def test_a_plugins_option_shapes_the_plan_that_plan_shows(quiet, tmp_path):
    respx.route(path__regex=r"/v1/models/.*").respond(json=[{"handle": "m"}])
    respx.route().respond(json=[])
    (tmp_path / "fleet.yaml").write_text(FLEET)
    fleet = str(tmp_path / "fleet.yaml")

    planned = CliRunner().invoke(app.main, ["plan", "-f", fleet])
    reshaped = CliRunner().invoke(app.main, ["plan", "-f", fleet, "--quiet-plan"])

    assert "[+] a (CREATE)" in planned.stdout, planned.output
    assert "No changes" in reshaped.stdout and "[+] a" not in reshaped.stdout, reshaped.output


@respx.mock
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_combination_a_plugins_option_refuses_is_a_usage_error_before_the_server_is_asked(quiet, command, tmp_path):
    route = respx.route().respond(json=[])
    (tmp_path / "fleet.yaml").write_text(FLEET)

    given = CliRunner().invoke(app.main, [command, "-f", str(tmp_path / "fleet.yaml"), "--quiet-plan", "--scope", "x"])

    assert given.exit_code == 1
    assert "--quiet-plan cannot go with --scope" in given.output
    assert not route.called
