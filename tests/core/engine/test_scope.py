"""`--scope TAGS`: a plan narrowed to the agents that carry every tag, with what they contain and need; the
fleet's shared things stay (as in lettactl), removals only in scope."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.model import Action, Change, Plan, Resource, ScopeError, TargetError, compare


def change(address: str, tags: set[str] | None = None, action: Action = Action.CREATE, **extra) -> Change:
    return Change(
        address=address,
        kind=address.split(".")[-2],
        name=address.rsplit(".", 1)[-1],
        action=action,
        before=None if action is Action.CREATE else {"v": 1},
        after=None if action is Action.DELETE else {"v": 2},
        tags=frozenset(tags) if tags is not None else None,
        **extra,
    )


def scoping_plan() -> Plan:
    return Plan.build(
        "fleet.yaml",
        "http://127.0.0.1:8283",
        [
            change("shared_block.policies"),
            change("shared_block.unused"),
            change("shared_block.gone", action=Action.DELETE),
            change("tool.lookup"),
            change("agent.eu-prod", {"prod", "eu"}, Action.UPDATE),
            change("agent.eu-prod.block.faq", parent="agent.eu-prod"),
            change(
                "agent.eu-prod.shared_block.policies", parent="agent.eu-prod", depends_on=("shared_block.policies",)
            ),
            change("agent.us-prod", {"prod", "us"}),
            change("agent.eu-dev", {"dev", "eu"}),
            change("agent.old-eu-prod", {"prod", "eu"}, Action.DELETE),
            change("agent.old-us-prod", {"prod", "us"}, Action.DELETE),
        ],
    )


def addresses(plan: Plan) -> list[str]:
    return [c.address for c in plan.changes]


def test_a_scope_keeps_only_agents_with_all_its_tags_and_what_is_inside_them():
    scoped = addresses(scoping_plan().scoped(["prod", "eu"]))

    assert "agent.eu-prod" in scoped and "agent.eu-prod.block.faq" in scoped
    assert "agent.us-prod" not in scoped  # has prod, not eu: scoping is AND
    assert "agent.eu-dev" not in scoped


def test_a_scope_keeps_the_fleet_shared_things_but_not_their_removals():
    scoped = addresses(scoping_plan().scoped(["prod"]))

    assert {"shared_block.policies", "shared_block.unused", "tool.lookup"} <= set(scoped)
    assert "shared_block.gone" not in scoped


def test_removals_are_limited_by_the_scope():
    scoped = addresses(scoping_plan().scoped(["eu", "prod"]))

    assert "agent.old-eu-prod" in scoped
    assert "agent.old-us-prod" not in scoped


def test_scope_and_target_both_apply():
    both = addresses(scoping_plan().scoped(["prod"]).targeted(["agent.??-prod"]))

    assert both == [
        "agent.eu-prod",
        "agent.eu-prod.block.faq",
        "agent.eu-prod.shared_block.policies",
        "agent.us-prod",
        "shared_block.policies",
    ]
    with pytest.raises(TargetError):
        scoping_plan().scoped(["dev"]).targeted(["agent.us-prod"])


def test_a_scope_no_agent_matches_is_an_error_naming_the_tags_there_are():
    with pytest.raises(ScopeError) as raised:
        scoping_plan().scoped(["prod", "asia"])

    message = str(raised.value)
    assert "--scope prod,asia matches no agent of fleet.yaml" in message
    assert "dev, eu, prod, us" in message


def test_a_change_carries_the_desired_tags_or_for_a_removal_the_live_ones():
    desired = Resource("agent.a", "agent", "a", {"tags": ["new"]}, tags=frozenset({"new"}))
    live = Resource("agent.a", "agent", "a", {"tags": ["old"]}, id="agent-1", tags=frozenset({"old"}))

    assert compare(desired, live).tags == {"new"}
    assert compare(None, live).tags == {"old"}
