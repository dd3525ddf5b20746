"""Templates against the real dev server: agents an application made over REST get the template's prompt and
shared block; their own memory and conversations stay as they were; a shared block taken out of the template is
detached only where the template attached it. Everything is checked over the REST API, not through lettafleet."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.fakes.fault_proxy import FaultProxy, Hold
from tests.integration.cli import cli, ok
from tests.integration.test_interrupted_applies import killed_at

AGENTS = 20
TEMPLATE = """\
fleet: {prefix}
shared_blocks:
  - {{name: {block}, value: "Refunds within 30 days.", agent_owned: false}}
templates:
  - name: support
    match: "{prefix}-user-*"
    system_prompt: {{value: "You are ACME support, {prefix}."}}
{blocks}"""
LETTACTL = """\
agents:
  - name: {prefix}-template
    description: Support agent
    system_prompt: {{value: "Matched by lettactl's --match, {prefix}."}}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
  - name: {prefix}-other
    system_prompt: {{value: "Another agent."}}
    llm_config: {{model: letta/letta-free}}
"""


@pytest.fixture
def prefix(letta_server: str, client: LettaClient) -> Iterator[str]:
    """A unique name prefix; every agent and block named with it is deleted afterwards."""
    found = f"tmpl-{uuid.uuid4().hex[:8]}"
    yield found
    for agent in client.list_all("/v1/agents/", query_text=found):
        if agent["name"].startswith(found):
            client.delete(f"/v1/agents/{agent['id']}")
    for block in client.list_all("/v1/blocks/", label=f"{found}-policies"):
        client.delete(f"/v1/blocks/{block['id']}")


def made_by_the_application(client: LettaClient, name: str, block_ids: list[str] = ()) -> dict:
    """An agent as an application makes one per end user: its own memory block, its own prompt."""
    return client.post(
        "/v1/agents/",
        json={
            "name": name,
            "system": "You help one customer.",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "memory_blocks": [{"label": "human", "value": f"The customer behind {name}."}],
            "block_ids": list(block_ids),
        },
    )


def as_now(client: LettaClient, agent: dict) -> dict:
    return client.get(f"/v1/agents/{agent['id']}")


def labels(agent: dict) -> dict[str, str]:
    return {block["label"]: block["id"] for block in agent["blocks"]}


def write(path: Path, prefix: str, *, with_block: bool) -> Path:
    block = f"{prefix}-policies"
    path.write_text(
        TEMPLATE.format(prefix=prefix, block=block, blocks=f"    shared_blocks: [{block}]\n" if with_block else "")
    )
    return path


def test_a_template_rolls_a_prompt_and_a_shared_block_to_agents_an_application_made(
    letta_server, client, prefix, tmp_path
):
    with ThreadPoolExecutor(max_workers=4) as pool:
        users = list(
            pool.map(lambda i: made_by_the_application(client, f"{prefix}-user-{i:02d}"), range(1, AGENTS + 1))
        )
    own = {user["id"]: labels(user)["human"] for user in users}
    chat = client.post("/v1/conversations/", json={"summary": "A customer's chat"}, agent_id=users[0]["id"])
    fleet = write(tmp_path / "fleet.yaml", prefix, with_block=True)

    plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
    assert (
        f"{AGENTS} agents match `{prefix}-user-*`; {AGENTS} would change: attach shared block {prefix}-policies "
        f"({AGENTS}), system prompt ({AGENTS}); 0 already current"
    ) in plan
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    policies = None
    for user in users:
        now = as_now(client, user)
        assert now["system"] == f"You are ACME support, {prefix}."
        assert labels(now)["human"] == own[user["id"]]  # its own block: the same block, untouched
        human = client.get(f"/v1/blocks/{own[user['id']]}")
        assert human["value"] == f"The customer behind {user['name']}."
        policies = labels(now)[f"{prefix}-policies"]
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0  # No changes

    client.patch(f"/v1/agents/{users[1]['id']}", json={"system": "Edited by hand."})
    plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
    assert "(edited by hand since the template set it, and set back: system prompt (1))" in plan

    # An agent the application attached the shared block to itself: the template did not put it there.
    attached_by_app = made_by_the_application(client, f"{prefix}-user-99", [policies])
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    write(fleet, prefix, with_block=False)
    plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
    assert f"{AGENTS} would change: detach shared block {prefix}-policies ({AGENTS}); 1 already current" in plan
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    assert as_now(client, users[1])["system"] == f"You are ACME support, {prefix}."  # set back
    for user in users:
        now = as_now(client, user)
        assert set(labels(now)) == {"human"} and labels(now)["human"] == own[user["id"]]
    assert f"{prefix}-policies" in labels(as_now(client, attached_by_app))
    [kept] = client.list_all("/v1/conversations/", agent_id=users[0]["id"])  # the application's conversation stays
    assert kept["id"] == chat["id"] and kept["summary"] == "A customer's chat"
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


def test_apply_match_uses_a_lettactl_files_first_agent_as_the_template_without_creating_it(
    letta_server, client, prefix, tmp_path
):
    users = [made_by_the_application(client, f"{prefix}-user-{i}") for i in range(1, 4)]
    fleet = tmp_path / "agents.yml"
    fleet.write_text(LETTACTL.format(prefix=prefix))

    ok(cli(letta_server, "apply", "-f", str(fleet), "--match", f"{prefix}-user-*"))

    for user in users:
        now = as_now(client, user)
        assert now["system"] == f"Matched by lettactl's --match, {prefix}."
        assert now["description"] == "Support agent"
    names = {agent["name"] for agent in client.list_all("/v1/agents/", query_text=prefix)}
    assert f"{prefix}-template" not in names and f"{prefix}-other" in names
    assert (
        cli(letta_server, "plan", "-f", str(fleet), "--match", f"{prefix}-user-*", "--detailed-exitcode").exit_code == 0
    )


def test_a_sample_then_a_promotion_roll_the_change_to_every_agent_and_leave_their_own_blocks(
    letta_server, client, prefix, tmp_path
):
    with ThreadPoolExecutor(max_workers=4) as pool:
        users = list(
            pool.map(lambda i: made_by_the_application(client, f"{prefix}-user-{i:02d}"), range(1, AGENTS + 1))
        )
    own = {user["id"]: labels(user)["human"] for user in users}
    fleet = write(tmp_path / "fleet.yaml", prefix, with_block=True)
    prompt = f"You are ACME support, {prefix}."

    def holding() -> set[str]:
        """The agents the template changed, as the REST API shows them: each whole (prompt and block) or not at all."""
        found = set()
        for user in users:
            now = as_now(client, user)
            assert labels(now)["human"] == own[user["id"]]  # its own block: the same block throughout
            changed = (now["system"] == prompt, f"{prefix}-policies" in labels(now))
            assert changed in {(True, True), (False, False)}, now["name"]
            found |= {now["name"]} if all(changed) else set()
        return found

    sampled = ok(cli(letta_server, "apply", "-f", str(fleet), "--sample", "5"))
    assert len(holding()) == 5
    assert f"The other {AGENTS - 5} that would change stay as they are" in sampled

    ok(cli(letta_server, "apply", "-f", str(fleet), "--promote", "--batch-size", "6"))

    assert holding() == {user["name"] for user in users}
    for user in users:
        assert client.get(f"/v1/blocks/{own[user['id']]}")["value"] == f"The customer behind {user['name']}."
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


def test_a_promotion_killed_partway_is_finished_by_the_next_which_changes_only_what_is_left(
    letta_server, client, prefix, tmp_path, fault_proxy: FaultProxy
):
    users = [made_by_the_application(client, f"{prefix}-user-{i:02d}") for i in range(1, 13)]
    fleet = write(tmp_path / "fleet.yaml", prefix, with_block=True)
    prompt, block = f"You are ACME support, {prefix}.", f"{prefix}-policies"
    ok(cli(letta_server, "apply", "-f", str(fleet), "--sample", "2"))

    # Killed while the fifth promoted agent's update (its prompt and record) is on its way; it lands after.
    fifth = Hold("PATCH", r"^/v1/agents/[^/]+/?$", body="lettafleet_templates", nth=5, then="forward")
    killed_at(fault_proxy, fifth, fleet, "--promote", "--batch-size", "3")

    now = [as_now(client, user) for user in users]
    assert sum(agent["system"] == prompt for agent in now) == 2 + 5
    assert sum(block in labels(agent) for agent in now) == 2 + 4  # the fifth's attach never started
    resumed = json.loads(ok(cli(letta_server, "apply", "-f", str(fleet), "--promote", "-o", "json")))

    details = [c["detail"] for c in resumed["changes"] if c["kind"] == "templated_agent" and c["action"] == "update"]
    assert sorted(details) == [f"attach shared block {block}"] + [f"system prompt; attach shared block {block}"] * 5
    assert all(result["status"] == "applied" for result in resumed["apply"]["results"])
    for user in users:
        agent = as_now(client, user)
        assert agent["system"] == prompt and block in labels(agent)
