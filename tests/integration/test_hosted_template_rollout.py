"""A template's rollout through the stand-in for hosted Letta (tests/fakes/hosted_letta.py): pages capped at a few
items, agents' tags shown only when asked for, and a fifth of the writes answered 429. `--sample` then `--promote`
bring the change to every agent the template selects among those the application made, each exactly once, and
nothing else; checked over the REST API of the real server behind."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.fakes.fault_proxy import Faults, Refusal
from tests.fakes.hosted_letta import HostedLettaStandIn, running_hosted_letta
from tests.integration.cli import ok
from tests.integration.test_hosted_standin import cli
from tests.integration.test_templates_rollout import labels, made_by_the_application, prefix  # noqa: F401

AGENTS = 20  # on the paid plan: the template's
FREE = 5  # named alike, on the free plan: not the template's
PAGE = 5  # far below any page lettafleet asks for: every list the rollout reads takes many pages
TOO_MANY = (Refusal(429, "1"), Refusal(429), Refusal(429, "0"))
RATE = re.compile(r"^Rate: \d+ requests in [\d.]+ s \([\d.]+/s\), \d+ to \d+ at once; (\d+) refused \(429/503\)")


TEMPLATE = """\
fleet: {prefix}
shared_blocks:
  - {{name: {prefix}-policies, value: "Refunds within 30 days.", agent_owned: false}}
templates:
  - name: support
    match: "{prefix}-user-*"
    tags: [plan-pro]
    system_prompt: {{value: "You are ACME support, {prefix}."}}
    shared_blocks: [{prefix}-policies]
    add_tags: [support]
"""


@pytest.fixture
def hosted(letta_server: str) -> Iterator[HostedLettaStandIn]:
    with running_hosted_letta(letta_server, page_cap=PAGE) as stand_in:
        yield stand_in


def refusals_said(output: str) -> int:
    """How many refusals the run's `Rate:` line says it met (it must say one)."""
    [said] = [found.group(1) for line in output.splitlines() if (found := RATE.match(line))]
    return int(said)


def test_a_sample_then_a_promotion_through_capped_pages_and_429s_change_every_agent_once(
    letta_server,
    client,
    hosted,
    prefix,  # noqa: F811  (the fixture imported above)
    tmp_path,
):
    plans = ["plan-pro"] * AGENTS + ["plan-free"] * FREE

    def name(index: int) -> str:
        return f"{prefix}-user-{index:02d}"

    with LettaClient(hosted.url, project=hosted.project) as application, ThreadPoolExecutor(max_workers=4) as pool:
        made = list(
            pool.map(
                lambda i: made_by_the_application(application, name(i), tags=[plans[i], f"customer:{name(i)}"]),
                range(len(plans)),
            )
        )
    users, free = made[:AGENTS], made[AGENTS:]
    own = {user["id"]: labels(user)["human"] for user in made}
    chat = client.post("/v1/conversations/", json={"summary": "A customer's chat"}, agent_id=users[0]["id"])
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(TEMPLATE.format(prefix=prefix))
    prompt, block = f"You are ACME support, {prefix}.", f"{prefix}-policies"
    hosted.faults = Faults(seed=16, refuse=0.2, refusals=TOO_MANY)

    def holding() -> set[str]:
        """The agents holding the change over REST: the prompt, and the shared block once; their own block as the
        application made it. An agent holds the change whole or not at all."""
        found = set()
        for user in users:
            now = client.get(f"/v1/agents/{user['id']}")
            attached = [b["label"] for b in now["blocks"]]
            assert attached.count("human") == 1 and labels(now)["human"] == own[user["id"]], now["name"]
            assert attached.count(block) <= 1, f"{now['name']} holds {block} {attached.count(block)} times"
            changed = (now["system"] == prompt, block in attached, "support" in now["tags"])
            assert changed in {(True, True, True), (False, False, False)}, now["name"]
            assert {"plan-pro", f"customer:{now['name']}"} <= set(now["tags"]), now["tags"]
            found |= {now["name"]} if all(changed) else set()
        return found

    fleet = str(fleet)
    sampled = ok(cli(hosted, "apply", "-f", fleet, "--sample", "5"))
    assert len(holding()) == 5, sampled
    promoted = ok(cli(hosted, "apply", "-f", fleet, "--promote", "--batch-size", "10"))

    assert holding() == {user["name"] for user in users}
    assert hosted.counts.refused[429] > 0 and refusals_said(sampled) + refusals_said(promoted) > 0
    # Each agent's update (prompt and record) and its attach reached the server exactly once; one shared block.
    for user in users:
        agent = f"/v1/agents/{user['id']}"
        writes = {path: n for path, n in hosted.counts.forwarded_writes.items() if path.startswith(f"PATCH {agent}")}
        assert sorted(writes.values()) == [1, 1] and f"PATCH {agent}" in writes, writes
        assert client.get(f"/v1/blocks/{own[user['id']]}")["value"] == f"The customer behind {user['name']}."
    assert len(client.list_all("/v1/blocks/", label=block)) == 1
    [kept] = client.list_all("/v1/conversations/", agent_id=users[0]["id"])
    assert kept["id"] == chat["id"] and kept["summary"] == "A customer's chat"
    assert hosted.counts.forwarded_writes[f"POST /v1/conversations/{chat['id']}/recompile"] == 1
    for agent in free:  # named alike, without the template's tag: as the application made them
        now = client.get(f"/v1/agents/{agent['id']}")
        assert now["system"] == "You help one customer." and sorted(now["tags"]) == sorted(agent["tags"])
        assert [b["id"] for b in now["blocks"]] == [own[agent["id"]]]
    # The pages really were capped: the agents took many pages to list, each of at most PAGE.
    assert hosted.counts.forwarded_to[("GET", "agents")] > 2 * AGENTS / PAGE

    again = cli(hosted, "plan", "-f", fleet, "--detailed-exitcode", "-o", "json")
    assert again.exit_code == 0, again.output + again.stderr
    [line] = [change for change in json.loads(again.stdout)["changes"] if change["kind"] == "template"]
    assert (line["after"]["matched"], line["after"]["changing"]) == (AGENTS, 0)
