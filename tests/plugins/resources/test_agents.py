"""Agents against a fake Letta (respx): what validate refuses, how a plan compares an agent's fields (a model
handle, or only the keys an explicit llm_config or embedding_config names), which agent of a shared name it
uses, and the exact requests apply sends."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.diagnostics import FleetError

FLEET = """
agents:
  - name: support
    description: Helps customers
    llm_config: {model: letta/letta-free}
    embedding: letta/letta-free
    system_prompt: {value: You help.}
    tags: [team-b, team-a]
"""
EXPLICIT_LLM = """
agents:
  - name: support
    llm_config:
      model: gpt-4o-mini
      model_endpoint_type: openai
      model_endpoint: https://api.openai.com/v1
      temperature: 0.2
      context_window: 16000
    embedding_config:
      embedding_endpoint_type: openai
      embedding_model: text-embedding-3-small
      embedding_dim: 1536
    system_prompt: {value: You help.}
"""


def errors_of(fleet, text: str) -> list[str]:
    with pytest.raises(FleetError) as raised:
        fleet.plan(text)
    return [str(diagnostic) for diagnostic in raised.value.diagnostics]


def test_a_new_agent_is_created_in_one_request_marked_as_lettafleets(fleet, letta):
    plan = fleet.plan(FLEET)

    assert fleet.actions(plan) == {"agent.support": "create"}
    report = fleet.apply(plan)

    assert report.ok
    [create] = letta.resource_writes
    assert (create.method, create.path) == ("POST", "/v1/agents/")
    assert create.body == {
        "name": "support",
        "metadata": {"managed_by": "lettafleet"},
        "description": "Helps customers",
        "system": "You help.",
        "tags": ["team-a", "team-b"],
        "model": "letta/letta-free",
        "embedding": "letta/letta-free",
    }


def test_an_agent_as_the_fleet_declares_it_plans_no_change_and_apply_sends_nothing(fleet, letta):
    fleet.apply(fleet.plan(FLEET))

    plan = fleet.plan(FLEET)

    assert fleet.actions(plan) == {"agent.support": "no-op"}
    assert not plan.needs_attention
    assert fleet.apply(plan).results == () and letta.resource_writes == []


def test_a_changed_description_and_model_are_the_only_fields_patched(fleet, letta):
    agent = letta.add_agent("support", description="Old", system="You help.", tags=["team-a", "team-b"])
    changed = FLEET.replace("Helps customers", "Helps everyone").replace(
        "{model: letta/letta-free}", "{model: openai/gpt-4o-mini}"
    )

    plan = fleet.plan(changed)

    change = plan.by_address()["agent.support"]
    assert change.action.value == "update"
    assert change.changed_fields() == ["description", "model"]
    assert (change.before["model"], change.after["model"]) == ("letta/letta-free", "openai/gpt-4o-mini")
    fleet.apply(plan)
    [patch] = letta.resource_writes
    assert (patch.method, patch.path) == ("PATCH", f"/v1/agents/{agent['id']}")
    assert patch.body == {"description": "Helps everyone", "model": "openai/gpt-4o-mini"}


def test_a_context_window_is_sent_as_the_agents_context_window_limit(fleet, letta):
    agent = letta.add_agent("support", system="You help.")
    text = "agents:\n  - name: support\n    llm_config: {model: letta/letta-free, context_window: 8000}\n"

    plan = fleet.plan(text + "    system_prompt: {value: You help.}\n")

    assert plan.by_address()["agent.support"].changed_fields() == ["context_window"]
    fleet.apply(plan)
    assert [(w.path, w.body) for w in letta.resource_writes] == [
        (f"/v1/agents/{agent['id']}", {"context_window_limit": 8000})
    ]


def test_an_explicit_llm_config_is_sent_whole_with_its_context_window(fleet, letta):
    fleet.apply(fleet.plan(EXPLICIT_LLM))

    [create] = letta.resource_writes
    assert "model" not in create.body and "embedding" not in create.body
    assert create.body["llm_config"] == {
        "model": "gpt-4o-mini",
        "model_endpoint_type": "openai",
        "model_endpoint": "https://api.openai.com/v1",
        "temperature": 0.2,
        "context_window": 16000,
    }
    assert create.body["embedding_config"] == {
        "embedding_endpoint_type": "openai",
        "embedding_model": "text-embedding-3-small",
        "embedding_dim": 1536,
    }


def test_of_an_explicit_config_only_the_keys_the_fleet_names_are_compared(fleet, letta):
    fleet.apply(fleet.plan(EXPLICIT_LLM))
    agent = letta.agent_named("support")
    # What the server fills in itself is not drift ...
    agent["llm_config"].update(max_tokens=4096, provider_name="openai")
    agent["embedding_config"].update(embedding_chunk_size=300)
    assert not fleet.plan(EXPLICIT_LLM).needs_attention

    # ... a named key that differs is.
    agent["llm_config"]["temperature"] = 0.9
    plan = fleet.plan(EXPLICIT_LLM)

    change = plan.by_address()["agent.support"]
    assert change.changed_fields() == ["llm_config"]
    assert change.before["llm_config"]["temperature"] == 0.9 and change.after["llm_config"]["temperature"] == 0.2
    fleet.apply(plan)
    [patch] = letta.resource_writes
    assert patch.body == {
        "llm_config": {
            "model": "gpt-4o-mini",
            "model_endpoint_type": "openai",
            "model_endpoint": "https://api.openai.com/v1",
            "temperature": 0.2,
            "context_window": 16000,
        }
    }


def test_an_explicit_llm_config_without_an_endpoint_type_is_sent_as_openai(fleet, letta):
    text = EXPLICIT_LLM.replace("      model_endpoint_type: openai\n", "")

    fleet.apply(fleet.plan(text))

    [create] = letta.resource_writes
    assert create.body["llm_config"]["model_endpoint_type"] == "openai"


@pytest.mark.parametrize(
    ("old", "new", "line", "noun"),
    [
        ("{model: letta/letta-free}", "{model: openai/gpt-5}", 4, "model handle 'openai/gpt-5'"),
        ("embedding: letta/letta-free", "embedding: openai/ada", 5, "embedding handle 'openai/ada'"),
    ],
)
def test_a_handle_the_server_does_not_offer_stops_the_plan_before_any_write(fleet, letta, old, new, line, noun):
    [error] = errors_of(fleet, FLEET.replace(old, new))

    assert f"fleet.yaml:{line}:" in error
    assert f"{noun} is not offered by http://letta.test" in error
    assert "use one of: letta/letta-free, " in error
    assert letta.resource_writes == []


def test_two_agents_of_one_name_are_reported_and_lettafleets_own_is_used(fleet, letta):
    by_hand = letta.add_agent("support", managed=False, description="By hand")
    own = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])

    plan = fleet.plan(FLEET)

    [ambiguity] = plan.ambiguities
    assert ambiguity.address == "agent.support"
    assert ambiguity.used == own["id"] and set(ambiguity.ids) == {own["id"], by_hand["id"]}
    assert "2 agents are named 'support'" in ambiguity.message
    assert f"{own['id']} (managed by lettafleet)" in ambiguity.message
    assert "lettafleet delete agent ID --force" in ambiguity.remedy
    assert plan.by_address()["agent.support"].action.value == "no-op"  # compared with lettafleet's own
    assert plan.needs_attention


def test_an_agent_the_fleet_does_not_declare_is_left_out_of_the_plan(fleet, letta):
    letta.add_agent("someone-else")

    plan = fleet.plan(FLEET)

    assert fleet.actions(plan) == {"agent.support": "create"}


def test_a_sensitive_system_prompt_is_masked_in_the_plan(fleet, letta):
    plan = fleet.plan(FLEET.replace("{value: You help.}", "{value: 'The code is 4711.', sensitive: true}"))

    [change] = plan.to_json()["changes"]
    assert change["after"]["system"] == "(sensitive)"
    assert "4711" not in str(plan.to_json())


def test_an_agent_name_used_twice_is_refused_at_its_second_use(fleet):
    twice = FLEET + "  - name: support\n    llm_config: {model: letta/letta-free}\n    system_prompt: {value: x}\n"

    [error] = errors_of(fleet, twice)

    assert ":8:" in error and "agent name 'support' is used twice (first by agents[0])" in error


def test_a_tag_with_a_comma_is_refused(fleet):
    [error] = errors_of(fleet, FLEET.replace("[team-b, team-a]", "['team-b,team-a']"))

    assert ":7:" in error and "tag 'team-b,team-a' contains a comma" in error and "use one tag per list item" in error


def test_copies_the_fleet_made_are_deleted_keeping_the_one_with_the_most_messages(fleet, letta):
    spare = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])
    used = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])
    talked = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])
    letta.add_conversation(used, "Ticket 1", talked=True)
    letta.add_conversation(used, "Ticket 2", talked=True)
    letta.add_conversation(talked, "Ticket 3", talked=True)

    plan = fleet.plan(FLEET)

    changes = plan.by_address()
    assert plan.ambiguities == ()
    assert changes["agent.support"].id == used["id"] and changes["agent.support"].action.value == "no-op"
    spare_copy, talked_copy = changes[f"agent.support~{spare['id']}"], changes[f"agent.support~{talked['id']}"]
    assert (spare_copy.action.value, spare_copy.held) == ("delete", None)
    assert f"it holds 0 message(s) and 0 conversation(s); the plan keeps {used['id']}" in spare_copy.detail
    assert (talked_copy.action.value, talked_copy.held) == ("delete", "prune")
    assert "2 message(s) and 1 conversation(s)" in (talked_copy.drift or "")

    assert fleet.apply(plan).ok
    assert [(write.method, write.path) for write in letta.resource_writes] == [("DELETE", f"/v1/agents/{spare['id']}")]
    assert set(letta.agents) == {used["id"], talked["id"]}


def test_of_copies_alike_the_oldest_is_kept(fleet, letta):
    oldest = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])
    newer = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])

    plan = fleet.plan(FLEET)

    assert plan.by_address()["agent.support"].id == oldest["id"]
    assert fleet.actions(plan)[f"agent.support~{newer['id']}"] == "delete"


def test_a_copy_not_made_by_the_fleet_is_only_reported(fleet, letta):
    own = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])
    spare = letta.add_agent("support", description="Helps customers", system="You help.", tags=["team-a", "team-b"])
    by_hand = letta.add_agent("support", managed=False)

    plan = fleet.plan(FLEET)

    [ambiguity] = plan.ambiguities
    assert set(ambiguity.ids) == {own["id"], by_hand["id"]} and ambiguity.used == own["id"]
    assert fleet.actions(plan) == {"agent.support": "no-op", f"agent.support~{spare['id']}": "delete"}


def test_deleting_a_copy_deletes_the_blocks_the_fleet_made_for_it_and_its_isolated_copies_only(fleet, letta):
    attributes = {"description": "Helps customers", "system": "You help.", "tags": ["team-a", "team-b"]}
    kept = letta.add_agent("support", **attributes)
    made_for_it = letta.add_block("persona", "I am Sam.", metadata={"managed_by": "lettafleet", "agent": "support"})
    by_hand = letta.add_block("scratch")
    also_kept_agents = letta.add_block("common")
    shared = letta.add_block("policies", metadata={"managed_by": "lettafleet", "shared": True})
    copy = letta.add_agent("support", blocks=[made_for_it, by_hand, also_kept_agents, shared], **attributes)
    letta.add_conversation(kept, "Ticket 1")  # the kept agent's conversation: it keeps it
    letta.agents[kept["id"]]["block_ids"].append(also_kept_agents["id"])
    conversation = letta.add_conversation(copy, "Ticket 2", copies=["persona"])
    [isolated] = conversation["isolated_block_ids"]

    plan = fleet.plan(FLEET)
    assert fleet.actions(plan)[f"agent.support~{copy['id']}"] == "delete"
    assert fleet.apply(plan).ok

    assert copy["id"] not in letta.agents
    assert made_for_it["id"] not in letta.blocks and isolated not in letta.blocks
    assert {by_hand["id"], also_kept_agents["id"], shared["id"]} <= set(letta.blocks)


def test_pruning_an_agent_without_its_record_deletes_the_blocks_made_in_its_create_request(fleet, letta):
    agent = "  - name: {}\n    llm_config: {{model: letta/letta-free}}\n    system_prompt: {{value: You help.}}\n"
    own = "    memory_blocks: [{name: persona, value: I am Sam.}]\n"
    both = "fleet: shop\nprune: true\nagents:\n" + agent.format("gone") + own + agent.format("stays")
    assert fleet.apply(fleet.plan(both)).ok
    gone = letta.agent_named("gone")
    del gone["metadata"]["lettafleet_applied"]  # an apply stopped before it wrote the record
    [persona] = gone["block_ids"]
    [isolated] = letta.add_conversation(gone, "Ticket 1", copies=["persona"])["isolated_block_ids"]

    plan = fleet.plan("fleet: shop\nprune: true\nagents:\n" + agent.format("stays"))
    assert fleet.actions(plan) == {"agent.gone": "delete", "agent.stays": "no-op"}
    assert fleet.apply(plan).ok

    assert gone["id"] not in letta.agents
    assert persona not in letta.blocks and isolated not in letta.blocks
