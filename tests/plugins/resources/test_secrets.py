"""Secrets in a fleet file, offline: lettactl's shape, names upper-cased, agents over fleet-wide values, and no
environment needed to validate (pre-commit has no secrets)."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.planning import desired_resources
from lettafleet.core.engine.validation import load_fleet

FLEET = """
global-secrets:
  company: {{value: Acme}}
  ORDERS_API_KEY: {{from_env: FLEET_ORDERS_KEY}}
agents:
  - name: support
    llm_config: {{model: letta/letta-free}}
    system_prompt: {{value: You help.}}
    secrets:
{secrets}
  - name: quiet
    llm_config: {{model: letta/letta-free}}
    system_prompt: {{value: You help.}}
"""


def secrets_of(path, manager) -> dict[str, dict]:
    return {
        resource.parent: dict(resource.attributes)
        for resource in desired_resources(load_fleet(path, manager), manager)
        if resource.kind == "secret_set"
    }


def test_names_are_upper_cased_and_an_agent_overrides_the_fleet_wide_value(write_fleet, manager, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "from-the-environment")
    path = write_fleet(FLEET.format(secrets="      company: {value: Acme Support}"))

    found = secrets_of(path, manager)

    assert found["agent.support"] == {"COMPANY": "Acme Support", "ORDERS_API_KEY": "from-the-environment"}
    assert found["agent.quiet"] == {"COMPANY": "Acme", "ORDERS_API_KEY": "from-the-environment"}


def test_every_value_is_sensitive(write_fleet, manager, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "x")
    path = write_fleet(FLEET.format(secrets="      token: {value: t}"))

    [resource] = [r for r in desired_resources(load_fleet(path, manager), manager) if r.parent == "agent.support"]

    assert resource.sensitive == {"COMPANY", "ORDERS_API_KEY", "TOKEN"}


def test_validate_needs_no_environment(write_fleet, manager, monkeypatch):
    monkeypatch.delenv("FLEET_ORDERS_KEY", raising=False)
    path = write_fleet(FLEET.format(secrets="      token: {from_env: NOT_SET_ANYWHERE}"))

    assert load_fleet(path, manager)


def test_two_names_that_differ_in_case_are_refused(write_fleet, manager):
    path = write_fleet(FLEET.format(secrets="      token: {value: a}\n      TOKEN: {value: b}"))

    with pytest.raises(FleetError) as raised:
        load_fleet(path, manager)

    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert error.startswith(f"{path}:10:7: secret 'TOKEN' is 'token' again")


def test_from_env_and_value_together_are_refused(write_fleet, manager):
    path = write_fleet(FLEET.format(secrets="      token: {value: a, from_env: B}"))

    with pytest.raises(FleetError) as raised:
        load_fleet(path, manager)

    assert all("give either `from_env` or `value`, not both" in str(d) for d in raised.value.diagnostics)
