"""Template mode at scale (issue 16): one template changing the system prompt of every agent an application made
(benchmarks/other_agents.py --prefix user-), planned, applied, planned again, then a further change applied
through the fault proxy answering 429 to a share of the writes. Each step runs as its own `lettafleet` process
(fleet_benchmark.run_step: wall time, requests, peak RSS, the dev server's CPU seconds).

    python benchmarks/other_agents.py --base-url URL --prefix user- --count 10000
    LETTAFLEET_DEV_HOME=... python benchmarks/template_scale.py --match 'user-*' --conversations 1000

The requests of the plan and of the faulty apply are also counted by route (ids folded to {id}) at a proxy, so
the list requests and each agent's writes can be told apart; after the faulty apply every matched agent is read
over the REST API (not through lettafleet) to check that each holds the new prompt and that no write reached the
server twice.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test fakes: the fault proxy
import fleet_benchmark  # the step runner and server CPU

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.devserver import supervisor
from tests.fakes.fault_proxy import WRITE_METHODS, FaultProxy, Faults, Refusal, running_fault_proxy

TEMPLATE = "bench-users"
ID = re.compile(r"^[a-z_]+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ONLY_429 = (Refusal(429), Refusal(429, "0"), Refusal(429, "1"))


class CountingProxy(FaultProxy):
    """The fault proxy, also counting what it forwards by route (`GET /v1/agents/`, `PATCH /v1/agents/{id}`) and
    each write by its exact path (a path forwarded twice is a write that reached the server twice)."""

    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        super().__init__(upstream, faults)
        self.routes: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()

    def forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        path = urlsplit(target).path
        with self._lock:
            self.routes[f"{method} {route(path)}"] += 1
            if method in WRITE_METHODS:
                self.writes[f"{method} {path}"] += 1
        return super().forward(method, target, headers, body)


def route(path: str) -> str:
    return "/".join("{id}" if ID.match(part) else part for part in path.split("/"))


def write_fleet(directory: Path, glob: str, version: int) -> Path:
    """One template over the application's agents, setting their system prompt (version `version`)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fleet.yaml"
    path.write_text(
        "templates:\n"
        f"  - name: {TEMPLATE}\n"
        f'    match: "{glob}"\n'
        f'    system_prompt: {{value: "You are a support agent for one customer. Prompt v{version}."}}\n',
        encoding="utf-8",
    )
    return path


def matched_agents(client: LettaClient, glob: str) -> list[dict[str, Any]]:
    prefix = re.split(r"[*?\[]", glob, maxsplit=1)[0]
    agents = client.list_all("/v1/agents/", query_text=prefix, include=["agent.tags"], order="asc", limit=250)
    # Only what the checks use: each step's peak RSS (wait4's ru_maxrss) starts from this process's size at fork.
    return [
        {key: agent.get(key) for key in ("id", "name", "system")}
        for agent in agents
        if fnmatch.fnmatchcase(agent["name"], glob)
    ]


def give_conversations(client: LettaClient, agents: list[dict[str, Any]], count: int) -> int:
    """One conversation each for the first `count` agents that have none (a user who has talked to their agent),
    so that the apply's recompile has something to recompile."""
    having = {c["agent_id"] for c in client.list_all("/v1/conversations/", order="asc")}
    wanting = [agent["id"] for agent in agents[:count] if agent["id"] not in having]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda agent_id: client.post("/v1/conversations/", agent_id=agent_id), wanting))
    return len(wanting)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def show(label: str, step: fleet_benchmark.Step) -> None:
    print(
        f"| {label} | {step.seconds} | {step.requests} | {step.by_method} | {step.peak_rss_mb} | "
        f"{'-' if step.server_cpu_s is None else step.server_cpu_s} | {step.exit_code} | {load()} |",
        flush=True,
    )


def show_routes(label: str, proxy: CountingProxy) -> None:
    print(f"\n{label}, forwarded by route:", flush=True)
    for name, count in proxy.routes.most_common():
        print(f"  {count:6d}  {name}", flush=True)
    print(f"  refused: {dict(proxy.counts.refused)}", flush=True)


def check_landed(client: LettaClient, glob: str, version: int, proxy: CountingProxy) -> None:
    """Over the REST API: every matched agent holds the prompt of `version`; no write reached the server twice."""
    agents = matched_agents(client, glob)
    wrong = [agent["name"] for agent in agents if not (agent.get("system") or "").endswith(f"Prompt v{version}.")]
    twice = {path: count for path, count in proxy.writes.items() if count > 1}
    patched = {path.rsplit("/", 1)[1] for path in proxy.writes if re.fullmatch(r"PATCH /v1/agents/[^/]+", path)}
    print(
        f"\nafter the faulty apply: {len(agents)} agents match, {len(agents) - len(wrong)} hold prompt v{version}, "
        f"{len(wrong)} do not{' (e.g. ' + ', '.join(wrong[:3]) + ')' if wrong else ''}; "
        f"{len(patched)} agents updated, writes forwarded twice: {len(twice)} {list(twice.items())[:3]}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--match", default="user-*", help="the template's selector (the application's agents)")
    parser.add_argument("--conversations", type=int, default=0, help="give the first N matched agents one each")
    parser.add_argument("--refuse", type=float, default=0.2, help="the share of writes answered 429 (0: skip)")
    parser.add_argument(
        "--faulty-only",
        action="store_true",
        help="only the apply through 429s and the plan after it (the agents --match selects hold prompt v1 already)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/template-scale"))
    parser.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL"))
    args = parser.parse_args()
    base_url = args.base_url or supervisor.status().base_url
    if not base_url:
        raise SystemExit("no Letta server: run `lettafleet dev-server up` or pass --base-url")
    with LettaClient(base_url) as client:
        agents = matched_agents(client, args.match)
        given = give_conversations(client, agents, args.conversations) if args.conversations else 0
        print(
            f"{len(agents)} agents match {args.match!r} (of {client.get('/v1/agents/count')} on the server); "
            f"{given} given a conversation; load {load()}\n",
            flush=True,
        )
    print("| step | wall s | requests | by method | peak RSS MB | server CPU s | exit | load 1/5/15 |", flush=True)
    print("|---|---:|---:|---|---:|---:|---:|---|", flush=True)
    fleet = write_fleet(args.workdir, args.match, 1)
    plan = ["plan", "-f", str(fleet), "--detailed-exitcode"]
    apply = ["apply", "-f", str(fleet)]
    if not args.faulty_only:
        first_apply(len(agents), plan, apply, base_url)
    if args.refuse:
        faulty_apply(len(agents), args, plan, apply, base_url)


def first_apply(size: int, plan: list[str], apply: list[str], base_url: str) -> None:
    """The plan of prompt v1 for every matched agent (twice, then through the counting proxy), its apply, and the
    plan after it."""
    run = fleet_benchmark.run_step
    show("plan (prompt v1 for all)", run(size, "plan", plan, base_url))
    show("plan again", run(size, "plan", plan, base_url))
    with running_fault_proxy(base_url, kind=CountingProxy) as proxy:
        show("plan, through the counting proxy", run(size, "plan", plan, proxy.url))
    show("apply", run(size, "apply", apply, base_url))
    show("plan after the apply", run(size, "plan", plan, base_url))
    show_routes("the plan", proxy)


def faulty_apply(size: int, args: argparse.Namespace, plan: list[str], apply: list[str], base_url: str) -> None:
    """Prompt v2 applied through the fault proxy refusing `--refuse` of the writes with 429, the plan after it, and
    the check over REST that every agent holds it and no write reached the server twice."""
    run = fleet_benchmark.run_step
    write_fleet(args.workdir, args.match, 2)
    faults = Faults(refuse=args.refuse, refusals=ONLY_429)
    with running_fault_proxy(base_url, faults, CountingProxy) as proxy:
        show(f"apply prompt v2, {args.refuse:.0%} of writes answered 429", run(size, "apply", apply, proxy.url))
    show("plan after it", run(size, "plan", plan, base_url))
    show_routes("the faulty apply", proxy)
    with LettaClient(base_url) as client:
        check_landed(client, args.match, 2, proxy)


if __name__ == "__main__":
    main()
