"""Issue 16's rollout at scale: a template's prompt change and shared-block attachment rolled to N agents an
application made over REST (`apply --sample 10`, then `apply --promote`), and the same through a lettactl file
(`apply --match GLOB --sample 10`, then `--promote`) on a second set of N agents. After each step every agent is read
over the REST API, not through lettafleet: the sample changed exactly 10, whole (prompt and block) or not at all;
the promotion all of them, the shared block attached once each; each agent's own `human` block (id and value) and
its conversations (ids) are as the application left them. Each step runs as its own `lettafleet` process
(fleet_benchmark.run_step: wall time, requests as `-v` counts them, the dev server's CPU seconds).

    LETTAFLEET_DEV_HOME=/var/cache/lettafleet/roll-server lettafleet dev-server up --port 8391
    LETTAFLEET_DEV_HOME=/var/cache/lettafleet/roll-server nice python benchmarks/template_rollout.py --count 1000

Everything it made is deleted at the end (`--keep` leaves it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the integration test's helpers
import fleet_benchmark  # the step runner and server CPU
import template_scale  # conversations for the first agents, the load average

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.devserver import supervisor
from tests.integration.test_templates_rollout import made_by_the_application, write

SAMPLE = 10
LETTACTL = """\
shared_blocks:
  - {{name: {block}, description: "Company policies", limit: 2000, value: "Refunds within 30 days.", \
agent_owned: false}}
agents:
  - name: {prefix}-template
    description: Support agent
    system_prompt: {{value: "{prompt}"}}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    shared_blocks: [{block}]
"""


class Snapshot:
    """What the application gave each agent of one set, read over REST before lettafleet touches them."""

    def __init__(self, client: LettaClient, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self.agents = agents_of(client, prefix)
        self.own = {agent["id"]: human(agent) for agent in self.agents}
        self.conversations = conversations_of(client, {agent["id"] for agent in self.agents})

    def check(self, prompt: str, block: str, expected: int) -> str:
        """Over REST: `expected` agents hold the prompt and the block (once), the others neither; every agent's own
        block and conversations are unchanged. Raises on any difference; returns a one-line summary."""
        now = agents_of(self.client, self.prefix)
        holding, problems = 0, []
        for agent in now:
            attached = [b for b in agent["blocks"] if b["label"] == block]
            changed = (agent["system"] == prompt, len(attached) > 0)
            if changed not in {(True, True), (False, False)} or len(attached) > 1:
                problems.append(f"{agent['name']}: prompt {changed[0]}, {len(attached)} {block} block(s)")
            holding += all(changed)
            if human(agent) != self.own[agent["id"]]:
                problems.append(f"{agent['name']}: its own human block changed")
        conversations = conversations_of(self.client, {agent["id"] for agent in now})
        if conversations != self.conversations:
            problems.append("conversations changed")
        if holding != expected or len(now) != len(self.agents):
            problems.append(f"{holding} of {len(now)} agents hold the change, {expected} of {len(self.agents)} wanted")
        if problems:
            raise SystemExit(f"checked over REST, {len(problems)} problem(s): {problems[:5]}")
        count = sum(len(ids) for ids in self.conversations.values())
        return (
            f"REST: {holding} of {len(now)} hold prompt and {block} (once each), {len(now) - holding} neither; "
            f"{len(now)} own human blocks (id, value) and {count} conversations unchanged"
        )


def agents_of(client: LettaClient, prefix: str) -> list[dict[str, Any]]:
    agents = client.list_all("/v1/agents/", query_text=prefix, include=["agent.blocks"], order="asc", limit=250)
    return [agent for agent in agents if agent["name"].startswith(prefix)]


def human(agent: dict[str, Any]) -> tuple[str, str]:
    [block] = [block for block in agent["blocks"] if block["label"] == "human"]
    return block["id"], block["value"]


def conversations_of(client: LettaClient, agent_ids: set[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for conversation in client.list_all("/v1/conversations/", order="asc"):
        if conversation["agent_id"] in agent_ids:
            found[conversation["agent_id"]].add(conversation["id"])
    return dict(found)


def make_agents(client: LettaClient, prefix: str, count: int, conversations: int) -> Snapshot:
    """`count` agents as an application makes them (its own `human` block each), the first `conversations` with
    one conversation each; then what they hold, read over REST."""
    names = [f"{prefix}{index:05d}" for index in range(count)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: made_by_the_application(client, name), names))
    template_scale.give_conversations(client, agents_of(client, prefix), conversations)
    return Snapshot(client, prefix)


def rollout(label: str, fleet: list[str], base_url: str, snapshot: Snapshot, prompt: str, block: str) -> None:
    """`apply --sample 10`, `apply --promote`, `plan --detailed-exitcode` of one fleet, each exiting 0 and checked
    over REST."""
    size = len(snapshot.agents)
    for name, args, holding in (
        ("apply --sample 10", ["apply", *fleet, "--sample", str(SAMPLE)], SAMPLE),
        ("apply --promote", ["apply", *fleet, "--promote"], size),
        ("plan --detailed-exitcode", ["plan", *fleet, "--detailed-exitcode"], size),
    ):
        ran = fleet_benchmark.run_step(size, name, args, base_url)
        if ran.exit_code != 0:
            raise SystemExit(f"{label}: {name} exited {ran.exit_code}")
        show(f"{label}: {name}", ran, snapshot.check(prompt, block, holding))


def show(label: str, step: fleet_benchmark.Step, checked: str) -> None:
    cpu = "-" if step.server_cpu_s is None else step.server_cpu_s
    print(
        f"| {label} | {step.seconds} | {step.requests} ({step.by_method}) | {cpu} | {step.exit_code} | {checked} | "
        f"{template_scale.load()} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="agents in each of the two sets")
    parser.add_argument("--conversations", type=int, default=100, help="the first N of each set get one each")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/template-rollout"))
    parser.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL"), help="default: the dev server")
    parser.add_argument("--keep", action="store_true", help="leave the agents and blocks on the server")
    args = parser.parse_args()
    base_url = args.base_url or supervisor.status().base_url
    if not base_url:
        raise SystemExit("no Letta server: run `lettafleet dev-server up` or pass --base-url")
    prefix = f"roll-{uuid.uuid4().hex[:6]}"
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        run(args, base_url, prefix)
    finally:
        if not args.keep:
            fleet_benchmark.cleanup(base_url, prefix)


def run(args: argparse.Namespace, base_url: str, prefix: str) -> None:
    with LettaClient(base_url) as client:
        made = time.perf_counter()
        fleet_set = make_agents(client, f"{prefix}-user-", args.count, args.conversations)
        lettactl_set = make_agents(client, f"{prefix}-app-", args.count, args.conversations)
        print(
            f"{prefix}: 2 x {args.count} agents made over REST ({args.conversations} with a conversation each) in "
            f"{time.perf_counter() - made:.0f} s; {client.get('/v1/agents/count')} on the server; "
            f"load {template_scale.load()}\n",
            flush=True,
        )
        print("| step | wall s | requests | server CPU s | exit | checked | load 1/5/15 |", flush=True)
        print("|---|---:|---|---:|---:|---|---|", flush=True)
        fleet = write(args.workdir / "fleet.yaml", prefix, with_block=True)
        rollout(
            "template fleet",
            ["-f", str(fleet)],
            base_url,
            fleet_set,
            f"You are ACME support, {prefix}.",
            f"{prefix}-policies",
        )
        prompt, block = f"Matched by lettactl's --match, {prefix}.", f"{prefix}-lettactl-policies"
        lettactl = args.workdir / "agents.yml"
        lettactl.write_text(LETTACTL.format(prefix=prefix, prompt=prompt, block=block), encoding="utf-8")
        rollout(
            "lettactl file",
            ["-f", str(lettactl), "--match", f"{prefix}-app-*"],
            base_url,
            lettactl_set,
            prompt,
            block,
        )


if __name__ == "__main__":
    main()
