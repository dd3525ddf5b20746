"""Plans are values: stable hashes, versioned JSON, quoted addresses, masked secrets."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.model import PLAN_FORMAT_VERSION, Action, Ambiguity, Change, Plan, TargetError, address_of


def change(address="agent.a", action=Action.CREATE, after=None, **extra) -> Change:
    return Change(
        address=address,
        kind="agent",
        name=address.rsplit(".", 1)[-1],
        action=action,
        before=None,
        after=after if after is not None else {"system": "hi"},
        **extra,
    )


def test_addresses_quote_names_that_are_not_plain_words():
    agent = address_of("agent", "support-agent")
    assert agent == "agent.support-agent"
    assert address_of("conversation", "Ticket #101", agent) == 'agent.support-agent.conversation["Ticket #101"]'


def test_the_plan_hash_ignores_order_and_server_url_but_not_content():
    one = Plan.build("fleet.yaml", "http://a", [change("agent.a"), change("agent.b")])
    same = Plan.build("fleet.yaml", "http://b", [change("agent.b"), change("agent.a")])
    other = Plan.build("fleet.yaml", "http://a", [change("agent.a"), change("agent.b", after={"system": "yo"})])
    assert one.sha256 == same.sha256
    assert one.sha256 != other.sha256


def test_plan_json_is_versioned_and_lists_every_change():
    plan = Plan.build("fleet.yaml", "http://a", [change(), change("agent.b", Action.NO_OP, after={})])
    document = plan.to_json()
    assert document["format_version"] == PLAN_FORMAT_VERSION
    assert document["has_changes"] is True
    assert [c["action"] for c in document["changes"]] == ["create", "no-op"]
    assert document["summary"] == {"agent": {"create": 1, "no-op": 1}}
    assert document["sha256"] == plan.sha256


def test_sensitive_values_are_masked_in_json(monkeypatch):
    secret = change(after={"value": "hunter2", "limit": 10}, sensitive=frozenset({"value"}))
    assert secret.to_json()["after"] == {"value": "(sensitive)", "limit": 10}
    assert "hunter2" not in str(Plan.build("f", "s", [secret]).to_json())


def test_a_changed_secret_changes_the_hash_only_through_a_keyed_digest():
    import hashlib
    import json

    secret = change(after={"value": "hunter2"}, sensitive=frozenset({"value"}))
    other_secret = change(after={"value": "hunter3"}, sensitive=frozenset({"value"}))
    one, other = (
        Plan.build("f", "s", [secret], hash_key=b"key-1"),
        Plan.build("f", "s", [other_secret], hash_key=b"key-1"),
    )
    assert one.sha256 != other.sha256
    # Someone who reads the published hash and guesses "hunter2" cannot confirm the guess without the key:
    guessed = [{**secret.to_json(), "after": {"value": "hunter2"}}]
    plain = hashlib.sha256(
        json.dumps({"fleet": "f", "changes": guessed}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert one.sha256 != plain
    assert Plan.build("f", "s", [secret]).sha256 == Plan.build("f", "s", [other_secret]).sha256  # no key


def test_one_plan_hashes_alike_in_every_environment(monkeypatch):
    """The key is passed in, never read from the environment: a saved plan compares equal wherever it is checked."""
    secret = change(after={"value": "hunter2"}, sensitive=frozenset({"value"}))
    monkeypatch.setenv("LETTA_API_KEY", "key-1")
    here = Plan.build("f", "s", [secret], hash_key=b"key-1").sha256
    monkeypatch.setenv("LETTA_API_KEY", "another")
    assert Plan.build("f", "s", [secret], hash_key=b"key-1").sha256 == here


def test_changed_fields_lists_only_differences():
    update = Change("agent.a", "agent", "a", Action.UPDATE, before={"x": 1, "y": 2}, after={"x": 1, "y": 3})
    assert update.changed_fields() == ["y"]


def targeting_plan() -> Plan:
    return Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            change("shared_block.policies"),
            change("agent.support", action=Action.NO_OP),
            change("agent.support.block.faq", parent="agent.support"),
            change(
                "agent.support.shared_block.policies", parent="agent.support", depends_on=("shared_block.policies",)
            ),
            change("agent.sales"),
            change("agent.sales.block.faq", parent="agent.sales"),
        ],
    )


def test_a_target_brings_what_it_contains_and_what_it_depends_on():
    part = targeting_plan().targeted(["agent.support"])

    assert [c.address for c in part.changes] == [
        "agent.support",
        "agent.support.block.faq",
        "agent.support.shared_block.policies",
        "shared_block.policies",
    ]


def test_a_targeted_child_brings_its_parent_and_a_glob_matches_many():
    assert [c.address for c in targeting_plan().targeted(["agent.sales.block.*"]).changes] == [
        "agent.sales",
        "agent.sales.block.faq",
    ]
    assert len(targeting_plan().targeted(["agent.s*"]).changes) == 6


def test_a_target_that_matches_nothing_is_an_error_that_shows_real_addresses():
    with pytest.raises(TargetError) as raised:
        targeting_plan().targeted(["agent.support", "agent.suport"])

    assert "--target 'agent.suport' matches no resource of fleet.yaml" in str(raised.value)
    assert "agent.sales" in str(raised.value)


def two_agents_named_a() -> Ambiguity:
    return Ambiguity.first_of("agent.a", "2 agents are named 'a'", ["agent-1", "agent-2"], "delete one")


def test_an_ambiguity_names_every_id_the_one_used_and_the_remedy_in_json():
    plan = Plan.build("f", "s", [change("agent.a", Action.NO_OP, after={})], [two_agents_named_a()])
    document = plan.to_json()
    assert document["has_changes"] is False and document["has_ambiguities"] is True
    assert document["ambiguities"] == [
        {
            "address": "agent.a",
            "message": "2 agents are named 'a': the plan uses the oldest, agent-1, and leaves agent-2 alone",
            "ids": ["agent-1", "agent-2"],
            "used": "agent-1",
            "remedy": "delete one",
        }
    ]
    assert plan.needs_attention


def test_the_plan_hash_covers_ambiguities_so_a_reviewed_plan_cannot_hide_one():
    changes = [change("agent.a", Action.NO_OP, after={})]
    clean = Plan.build("f", "s", changes)
    ambiguous = Plan.build("f", "s", changes, [two_agents_named_a()])
    assert clean.sha256 != ambiguous.sha256
    assert not clean.needs_attention


def test_targeting_keeps_the_ambiguities_of_the_chosen_part_only():
    plan = Plan.build(
        "f",
        "s",
        [change("agent.a", Action.NO_OP, after={}), change("agent.b")],
        [two_agents_named_a()],
    )
    assert plan.targeted(["agent.a"]).ambiguities == plan.ambiguities
    assert plan.targeted(["agent.b"]).ambiguities == ()


def test_a_replacement_changes_something_and_says_why_in_json():
    replaced = change("agent.a", Action.REPLACE, detail="it lacks its copy")
    assert replaced.changes_something
    assert replaced.to_json()["action"] == "replace" and replaced.to_json()["detail"] == "it lacks its copy"
