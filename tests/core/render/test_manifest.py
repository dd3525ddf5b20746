"""The apply's manifest: every declared or removed resource with its server id and what the apply did to it."""

from __future__ import annotations

import json

from lettafleet.core.engine.applying import INTERRUPTED, ApplyReport, ChangeResult
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.render.manifest import render_manifest_json

SERVER = "http://127.0.0.1:8283"


def fleet_plan() -> Plan:
    return Plan.build(
        "fleet.yaml",
        SERVER,
        [
            Change("agent.kept", "agent", "kept", Action.NO_OP, {"a": 1}, {"a": 1}, id="agent-kept"),
            Change("agent.made", "agent", "made", Action.CREATE, None, {"a": 1}),
            Change("agent.late", "agent", "late", Action.CREATE, None, {"a": 1}),
            Change(
                "agent.kept.secret.TOKEN",
                "secret",
                "TOKEN",
                Action.UPDATE,
                {"value": "old"},
                {"value": "s3cr3t-v"},
                parent="agent.kept",
                sensitive=frozenset({"value"}),
            ),
            Change("agent.gone", "agent", "gone", Action.DELETE, {"a": 1}, None, id="agent-gone", held="prune"),
        ],
    )


def entries(document: dict[str, object]) -> dict[str, tuple[object, object]]:
    resources = document["resources"]
    assert isinstance(resources, list)
    return {entry["address"]: (entry["id"], entry["status"]) for entry in resources}


def test_a_manifest_gives_each_resource_its_id_and_what_the_apply_did() -> None:
    plan = fleet_plan()
    results = (
        ChangeResult("agent.made", Action.CREATE, "applied"),
        ChangeResult("agent.late", Action.CREATE, "failed", "POST /v1/agents/ answered 500"),
        ChangeResult("agent.kept.secret.TOKEN", Action.UPDATE, "applied"),
    )
    report = ApplyReport(results, ids={"agent.kept": "agent-kept", "agent.made": "agent-new"})

    document = json.loads(render_manifest_json(plan, report, fleet_file="fleet.yaml"))

    assert document["format_version"] == 1 and document["status"] == "failed"
    assert document["server"] == SERVER and document["fleet_file"] == "fleet.yaml"
    assert document["agents"] == {"gone": "agent-gone", "kept": "agent-kept", "made": "agent-new"}
    assert entries(document) == {
        "agent.gone": ("agent-gone", "held"),
        "agent.kept": ("agent-kept", "unchanged"),
        "agent.kept.secret.TOKEN": (None, "applied"),
        "agent.late": (None, "failed"),
        "agent.made": ("agent-new", "applied"),
    }


def test_a_manifest_never_holds_a_value_nor_a_servers_message() -> None:
    plan = fleet_plan()
    results = (ChangeResult("agent.late", Action.CREATE, "failed", "answered 400: s3cr3t-v is not allowed"),)

    text = render_manifest_json(plan, ApplyReport(results), fleet_file="fleet.yaml")

    assert "s3cr3t-v" not in text and "old" not in text


def test_an_interrupted_apply_marks_the_manifest_and_what_never_started() -> None:
    plan = fleet_plan()
    results = (
        ChangeResult("agent.made", Action.CREATE, "applied"),
        ChangeResult("agent.late", Action.CREATE, "skipped", INTERRUPTED),
    )
    report = ApplyReport(results, interrupted=True, ids={"agent.made": "agent-new"})

    document = json.loads(render_manifest_json(plan, report, fleet_file="fleet.yaml"))

    assert document["status"] == "interrupted"
    assert entries(document)["agent.late"] == (None, "not attempted")
    assert entries(document)["agent.made"] == ("agent-new", "applied")


def test_an_apply_stopped_at_once_marks_every_change_unknown() -> None:
    document = json.loads(render_manifest_json(fleet_plan(), None, fleet_file="f.yaml", stopped_at_once=True))

    assert document["status"] == "interrupted"
    assert entries(document)["agent.made"] == (None, "unknown")
    assert entries(document)["agent.kept"] == ("agent-kept", "unchanged")
