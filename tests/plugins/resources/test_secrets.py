"""Secrets in a fleet file, offline: lettactl's shape, names upper-cased, agents over fleet-wide values, and no
environment needed to validate (pre-commit has no secrets). Then against a fake Letta (respx): a secret set is
planned and written whole, and no value is ever shown."""

from __future__ import annotations

import json
import threading

import pytest

from lettafleet.core.engine.applying import apply_plan
from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.planning import desired_resources
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.resources import secrets

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
    found: dict[str, dict] = {}
    for resource in desired_resources(load_fleet(path, manager), manager):
        if resource.kind == "secret":
            found.setdefault(resource.parent, {})[resource.name] = resource.attributes["value"]
    return found


def test_names_are_upper_cased_and_an_agent_overrides_the_fleet_wide_value(write_fleet, manager, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "from-the-environment")
    path = write_fleet(FLEET.format(secrets="      company: {value: Acme Support}"))

    found = secrets_of(path, manager)

    assert found["agent.support"] == {"COMPANY": "Acme Support", "ORDERS_API_KEY": "from-the-environment"}
    assert found["agent.quiet"] == {"COMPANY": "Acme", "ORDERS_API_KEY": "from-the-environment"}


def test_every_value_is_sensitive(write_fleet, manager, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "x")
    path = write_fleet(FLEET.format(secrets="      token: {value: t}"))

    secrets = [r for r in desired_resources(load_fleet(path, manager), manager) if r.parent == "agent.support"]

    assert {r.name for r in secrets} == {"COMPANY", "ORDERS_API_KEY", "TOKEN"}
    assert all(r.sensitive == {"value"} for r in secrets)


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


PLANNED = FLEET.format(secrets="      company: {value: Acme Support}")


def test_a_new_agent_gets_its_secrets_in_its_create_request(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")

    report = fleet.apply(fleet.plan(PLANNED))

    assert report.ok
    support = next(w for w in letta.writes_to("POST", "/v1/agents/") if w.body["name"] == "support")
    assert support.body["secrets"] == {"COMPANY": "Acme Support", "ORDERS_API_KEY": "sk-orders-1"}
    assert fleet.results(report)["agent.support.secret.COMPANY"] == ("applied", "created with agent.support")


def test_a_server_that_creates_the_agent_without_its_secrets_fails_the_secret_set(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    letta.drops_relations = {"secrets"}

    report = fleet.apply(fleet.plan(PLANNED))

    assert fleet.results(report)["agent.support.secret.ORDERS_API_KEY"] == (
        "failed",
        "the server created agent support without secret ORDERS_API_KEY",
    )


def test_an_agents_whole_set_is_written_with_the_secrets_the_fleet_does_not_name_kept(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-2")
    letta.add_agent("quiet", system="You help.", secrets={"COMPANY": "Acme", "ORDERS_API_KEY": "sk-orders-2"})
    support = letta.add_agent(
        "support", system="You help.", secrets={"COMPANY": "Acme Support", "ORDERS_API_KEY": "sk-old", "OTHER": "o"}
    )

    plan = fleet.plan(PLANNED)

    changed = {c.address: c.action.value for c in plan.changes if c.kind == "secret" and c.changes_something}
    assert changed == {"agent.support.secret.ORDERS_API_KEY": "update"}
    shown = json.dumps(plan.to_json())
    assert not [value for value in ("sk-old", "sk-orders-2", "Acme Support", '"o"') if value in shown]
    fleet.apply(plan)
    [patch] = letta.resource_writes
    assert (patch.method, patch.path) == ("PATCH", f"/v1/agents/{support['id']}")
    assert patch.body == {"secrets": {"COMPANY": "Acme Support", "ORDERS_API_KEY": "sk-orders-2", "OTHER": "o"}}


def test_an_unset_variable_stops_the_plan_and_says_how_to_keep_the_servers_value(fleet, letta, monkeypatch):
    monkeypatch.delenv("FLEET_ORDERS_KEY", raising=False)

    with pytest.raises(FleetError) as raised:
        fleet.plan(PLANNED)

    # One line, however many agents get the fleet-wide secret.
    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert ":3:3: secret ORDERS_API_KEY: environment variable FLEET_ORDERS_KEY is not set" in error
    assert "add `preserve_existing: true` to keep the server's value" in error
    assert letta.resource_writes == []


def test_preserve_existing_keeps_the_servers_value_of_an_unset_variable(fleet, letta, monkeypatch):
    monkeypatch.delenv("FLEET_ORDERS_KEY", raising=False)
    text = PLANNED.replace("{from_env: FLEET_ORDERS_KEY}", "{from_env: FLEET_ORDERS_KEY, preserve_existing: true}")
    letta.add_agent("quiet", system="You help.", secrets={"COMPANY": "Acme", "ORDERS_API_KEY": "kept-1"})
    support = letta.add_agent("support", system="You help.", secrets={"COMPANY": "Old", "ORDERS_API_KEY": "kept-2"})

    plan = fleet.plan(text)

    assert plan.by_address()["agent.quiet.secret.ORDERS_API_KEY"].action.value == "no-op"
    fleet.apply(plan)
    [patch] = letta.resource_writes
    assert patch.path == f"/v1/agents/{support['id']}"
    assert patch.body == {"secrets": {"COMPANY": "Acme Support", "ORDERS_API_KEY": "kept-2"}}


def test_preserve_existing_without_a_value_on_the_server_stops_the_plan(fleet, letta, monkeypatch):
    monkeypatch.delenv("FLEET_ORDERS_KEY", raising=False)
    text = PLANNED.replace("{from_env: FLEET_ORDERS_KEY}", "{from_env: FLEET_ORDERS_KEY, preserve_existing: true}")

    with pytest.raises(FleetError) as raised:
        fleet.plan(text)

    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert "environment variable FLEET_ORDERS_KEY is not set and the server has no value to keep" in error


# -- removal ------------------------------------------------------------------------------------------------------

TWO_SECRETS = FLEET.format(secrets="      token: {value: t-1}\n      region: {value: eu}")


def test_a_secret_removed_from_the_file_is_deleted_and_one_set_by_hand_stays(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    fleet.apply(fleet.plan(TWO_SECRETS))
    support = letta.agent_named("support")
    support["secrets"]["BY_HAND"] = "h-1"  # set by hand: in no record

    plan = fleet.plan(FLEET.format(secrets="      token: {value: t-1}"))

    changed = {c.address: c.action.value for c in plan.changes if c.changes_something}
    assert changed == {"agent.support.secret.REGION": "delete"}
    assert "eu" not in json.dumps(plan.to_json())
    fleet.apply(plan)
    [patch] = letta.resource_writes
    assert patch.body == {
        "secrets": {"COMPANY": "Acme", "ORDERS_API_KEY": "sk-orders-1", "TOKEN": "t-1", "BY_HAND": "h-1"}
    }
    assert not fleet.plan(FLEET.format(secrets="      token: {value: t-1}")).needs_attention


def test_an_agents_secret_changes_go_in_one_request(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    fleet.apply(fleet.plan(TWO_SECRETS))

    plan = fleet.plan(FLEET.format(secrets="      token: {value: t-2}\n      mode: {value: fast}"))

    changed = {c.name: c.action.value for c in plan.changes if c.changes_something}
    assert changed == {"MODE": "create", "REGION": "delete", "TOKEN": "update"}
    report = fleet.apply(plan)
    assert report.ok
    [patch] = letta.resource_writes
    assert patch.body["secrets"] == {"COMPANY": "Acme", "ORDERS_API_KEY": "sk-orders-1", "TOKEN": "t-2", "MODE": "fast"}


def test_a_failed_write_fails_every_secret_change_of_the_agent(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    fleet.apply(fleet.plan(TWO_SECRETS))
    support = letta.agent_named("support")
    letta.refuse("PATCH", f"/v1/agents/{support['id']}", 422, "no")

    report = fleet.apply(fleet.plan(FLEET.format(secrets="      token: {value: t-2}")))

    results = fleet.results(report)
    assert results["agent.support.secret.TOKEN"][0] == results["agent.support.secret.REGION"][0] == "failed"
    assert len(letta.writes_to("PATCH", f"/v1/agents/{support['id']}")) == 1


def test_a_protected_secret_is_not_deleted(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    fleet.apply(fleet.plan(FLEET.format(secrets="      token: {value: t-1, protect: true}")))

    plan = fleet.plan(FLEET.format(secrets="      other: {value: o}"))

    assert plan.by_address()["agent.support.secret.TOKEN"].held == "protect"
    fleet.apply(plan)
    assert letta.agent_named("support")["secrets"]["TOKEN"] == "t-1"


def test_a_secret_named_in_preserve_secrets_is_never_deleted(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    fleet.apply(fleet.plan("preserve_secrets: [token]\n" + FLEET.format(secrets="      token: {value: t-1}")))

    plan = fleet.plan("preserve_secrets: [TOKEN]\n" + FLEET.format(secrets="      other: {value: o}"))

    assert plan.by_address()["agent.support.secret.TOKEN"].held == "protect"
    fleet.apply(plan)
    assert letta.agent_named("support")["secrets"]["TOKEN"] == "t-1"


def test_without_preserve_secrets_the_same_removal_deletes(fleet, letta, monkeypatch):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    fleet.apply(fleet.plan(FLEET.format(secrets="      token: {value: t-1}")))

    fleet.apply(fleet.plan(FLEET.format(secrets="      other: {value: o}")))

    assert "TOKEN" not in letta.agent_named("support")["secrets"]


def test_ctrl_c_while_an_agents_secrets_are_written_reports_every_secret_of_the_write_as_it_went(
    fleet, letta, monkeypatch
):
    monkeypatch.setenv("FLEET_ORDERS_KEY", "sk-orders-1")
    fleet.apply(fleet.plan(TWO_SECRETS))
    plan = fleet.plan(FLEET.format(secrets="      token: {value: t-2}\n      mode: {value: fast}"))
    stop = threading.Event()
    write_set = secrets._write_set

    def interrupted_while_writing(agent, session):
        write_set(agent, session)
        stop.set()  # Ctrl-C while the one request for the whole set was in flight

    monkeypatch.setattr(secrets, "_write_set", interrupted_while_writing)
    letta.writes.clear()
    with fleet._client() as client:
        report = apply_plan(plan, client, fleet.manager, parallelism=1, stop=stop)

    assert report.interrupted and report.not_attempted == []
    assert {fleet.results(report)[f"agent.support.secret.{n}"][0] for n in ("MODE", "REGION", "TOKEN")} == {"applied"}
    assert len(letta.resource_writes) == 1
    assert not fleet.plan(FLEET.format(secrets="      token: {value: t-2}\n      mode: {value: fast}")).has_changes
