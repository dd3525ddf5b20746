"""Benchmark plan and apply on generated fleets against a Letta dev server.

For each size N: a fleet of N agents (3 memory blocks, 2 conversations, 1 isolated block each) is planned and
applied from scratch, planned again (no changes), applied again (must write nothing), then 10% of the agents
get a new system prompt and are applied. Each step runs as its own `lettafleet` process, so the figures are
that process's wall time, requests (counted by lettafleet's client) and peak RSS, and the CPU seconds the dev
server's processes (Letta, its workers, PostgreSQL and its backends) spent during the step. With `--page-cap N`,
the no-change plan and apply also run through a proxy that caps every list page at N items, as hosted Letta does.
Everything the benchmark created is deleted at the end.

    python benchmarks/fleet_benchmark.py --sizes 10,200,500 --json results.json
    python benchmarks/fleet_benchmark.py --sizes 1000,5000 --page-cap 100
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from lettafleet.core.letta.connection import LettaAPIError
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.reads import AGENTS, CONVERSATIONS
from lettafleet.plugins.devserver import supervisor
from lettafleet.plugins.devserver.home import LETTA_VERSION, SERVER_TUNING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test fakes: the page-capping proxy
from tests.fakes.fault_proxy import Faults, running_fault_proxy

LETTAFLEET = str(Path(sys.executable).with_name("lettafleet"))
REQUESTS = re.compile(r"^Requests: (\d+) \((.*)\)$", re.MULTILINE)


@dataclass
class Step:
    size: int
    step: str
    seconds: float
    requests: int
    by_method: str
    peak_rss_mb: float
    exit_code: int
    server_cpu_s: float | None  # None: the server's processes are not on this machine (not the dev server)


BENCH_TOOL = "bench_lookup"
BENCH_SECRET_VARIABLE = "LETTAFLEET_BENCH_SECRET"


def write_fleet(
    directory: Path, size: int, prompt_version: int = 1, changed: int = 0, tools_and_secrets: bool = False
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if tools_and_secrets:
        (directory / "tools").mkdir(exist_ok=True)
        (directory / "tools" / f"{BENCH_TOOL}.py").write_text(
            f'def {BENCH_TOOL}(order_id: str) -> str:\n    """Look up an order.\n\n    Args:\n'
            '        order_id: The order.\n    """\n    return order_id\n'
        )
    lines = ["agents:"]
    for index in range(size):
        version = prompt_version + 1 if index < changed else prompt_version
        lines += [
            f"  - name: bench-{size}-{index:04d}",
            f'    description: "Benchmark agent {index}"',
            "    llm_config: {model: letta/letta-free, context_window: 16000}",
            "    embedding: letta/letta-free",
            f'    system_prompt: {{value: "You are benchmark agent {index}, prompt v{version}."}}',
            "    tags: [bench]",
            "    memory_blocks:",
            '      - {name: persona, description: "Who I am", limit: 2000, value: "A helpful agent."}',
            '      - {name: policy, description: "Synced", limit: 2000, value: "Be brief.", agent_owned: false}',
            '      - {name: customer_context, description: "Per customer", limit: 2000, value: ""}',
            "    conversations:",
            '      - {summary: "Ticket A"}',
            '      - {summary: "Ticket B", isolated_blocks: [customer_context]}',
        ]
        if tools_and_secrets:
            lines += [
                f"    tools: [web_search, {BENCH_TOOL}]",
                f"    secrets: {{BENCH_KEY: {{from_env: {BENCH_SECRET_VARIABLE}}}}}",
            ]
    path = directory / "fleet.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_processes() -> list[int]:
    """The dev server's root processes (Letta and PostgreSQL), from its state file; none if it is not running."""
    found = supervisor.status()
    return [pid for pid in (found.letta_pid, found.postgres_pid) if pid]


def cpu_seconds(roots: list[int]) -> float | None:
    """CPU seconds (user + system) of `roots` and every process under them, with the children they reaped (a
    PostgreSQL backend that ended during the step counts in its parent's cutime and cstime)."""
    if not roots:
        return None
    stats: dict[int, tuple[int, list[str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        stats[int(entry.name)] = (int(fields[1]), fields)
    wanted = set(roots)
    while added := {pid for pid, (parent, _) in stats.items() if parent in wanted} - wanted:
        wanted |= added  # one generation deeper each round
    ticks = sum(int(value) for pid in wanted & stats.keys() for value in stats[pid][1][11:15])
    return ticks / CLOCK_TICKS  # fields 14 to 17 of /proc/PID/stat: utime, stime, cutime, cstime


def run_step(size: int, step: str, args: list[str], base_url: str) -> Step:
    env = {**os.environ, "LETTA_BASE_URL": base_url, BENCH_SECRET_VARIABLE: "not-a-real-secret"}
    roots = server_processes()
    cpu_before = cpu_seconds(roots)
    started = time.perf_counter()
    process = subprocess.Popen(
        [LETTAFLEET, *args, "-v"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    stderr = process.stderr.read() if process.stderr else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds(roots)
    server_cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 1)
    exit_code = os.waitstatus_to_exitcode(status)
    match = REQUESTS.search(stderr)
    if match is None:
        raise SystemExit(f"{step} at {size} agents printed no request count:\n{stderr[-2000:]}")
    return Step(
        size,
        step,
        round(seconds, 2),
        int(match.group(1)),
        match.group(2),
        round(usage.ru_maxrss / 1024, 1),
        exit_code,
        server_cpu,
    )


def cleanup(base_url: str, prefix: str) -> None:
    """Delete the benchmark's agents, then their blocks and their conversations' isolated copies (Letta keeps
    an agent's blocks when it deletes the agent; blocks made inside an agent's create request carry no metadata,
    so they are found through the agents), and blocks an older lettafleet made and marked for them."""
    with LettaClient(base_url) as client:
        path, params = AGENTS
        agents = [agent for agent in client.list_all(path, **params) if agent["name"].startswith(prefix)]
        ids = {agent["id"] for agent in agents}
        blocks = {block["id"] for agent in agents for block in agent.get("blocks") or []}
        path, params = CONVERSATIONS
        for conversation in client.list_all(path, **params):
            if conversation["agent_id"] in ids:
                blocks.update(conversation.get("isolated_block_ids") or [])
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda agent_id: client.delete(f"/v1/agents/{agent_id}"), ids))
        blocks.update(
            b["id"]
            for b in client.list_all("/v1/blocks/")
            if str((b.get("metadata") or {}).get("agent", "")).startswith(prefix)
        )
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda block_id: _delete_if_there(client, f"/v1/blocks/{block_id}"), blocks))
        for tool in client.get("/v1/tools/", name=BENCH_TOOL):
            client.delete(f"/v1/tools/{tool['id']}")


def _delete_if_there(client: LettaClient, path: str) -> None:
    try:
        client.delete(path)
    except LettaAPIError as error:
        if error.status != 404:  # an isolated copy may have gone with its conversation
            raise


def benchmark(
    size: int, base_url: str, workdir: Path, parallelism: int, extras: bool, page_cap: int | None, keep: bool = False
) -> list[Step]:
    cleanup(base_url, f"bench-{size}-")
    fleet = write_fleet(workdir / f"fleet-{size}", size, tools_and_secrets=extras)
    steps = [
        run_step(size, "plan (empty server)", ["plan", "-f", str(fleet)], base_url),
        run_step(size, "apply (create all)", ["apply", "-f", str(fleet), "--parallelism", str(parallelism)], base_url),
        run_step(size, "plan (no changes)", ["plan", "-f", str(fleet)], base_url),
        run_step(size, "apply (no changes)", ["apply", "-f", str(fleet)], base_url),
    ]
    if page_cap:
        steps += capped_steps(size, fleet, base_url, page_cap)
    write_fleet(workdir / f"fleet-{size}", size, changed=max(1, size // 10), tools_and_secrets=extras)
    steps.append(
        run_step(size, "apply (10% changed)", ["apply", "-f", str(fleet), "--parallelism", str(parallelism)], base_url)
    )
    steps.append(run_step(size, "plan (after change)", ["plan", "-f", str(fleet)], base_url))
    if not keep:
        cleanup(base_url, f"bench-{size}-")
    return steps


def capped_steps(size: int, fleet: Path, base_url: str, page_cap: int) -> list[Step]:
    """The no-change plan and apply again, through a proxy that caps every list page at `page_cap` items."""
    with running_fault_proxy(base_url, Faults(list_limit=page_cap)) as proxy:
        return [
            run_step(size, f"plan (no changes, pages of {page_cap})", ["plan", "-f", str(fleet)], proxy.url),
            run_step(size, f"apply (no changes, pages of {page_cap})", ["apply", "-f", str(fleet)], proxy.url),
        ]


def markdown(steps: list[Step], command: str, base_url: str) -> str:
    rows = [
        "| agents | step | wall s | requests | by method | peak RSS MB | server CPU s | exit |",
        "|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    rows += [
        f"| {s.size} | {s.step} | {s.seconds} | {s.requests} | {s.by_method} | {s.peak_rss_mb} | "
        f"{'-' if s.server_cpu_s is None else s.server_cpu_s} | {s.exit_code} |"
        for s in steps
    ]
    tuning = ", ".join(f"{k}={v}" for k, v in SERVER_TUNING.items())
    return (
        f"Command: `{command}`\n\nServer: Letta {LETTA_VERSION} dev server at {base_url} ({tuning}), "
        f"{os.cpu_count()} cores.\n\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,200,500", help="comma-separated fleet sizes")
    parser.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL"), help="default: the dev server")
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--page-cap",
        type=int,
        metavar="N",
        help="also run the no-change plan and apply through a proxy capping list pages at N items (hosted Letta: 100)",
    )
    parser.add_argument(
        "--tools-and-secrets",
        action="store_true",
        help=f"also give each agent two tools (web_search and {BENCH_TOOL}, defined from source) and a secret",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the last fleet on the server (to profile against it; the next run of that size deletes it first)",
    )
    args = parser.parse_args()
    base_url = args.base_url or supervisor.status().base_url
    if not base_url:
        raise SystemExit("no Letta server: run `lettafleet dev-server up` or pass --base-url")
    steps: list[Step] = []
    for size in (int(part) for part in args.sizes.split(",")):
        steps_of_size = benchmark(
            size, base_url, args.workdir, args.parallelism, args.tools_and_secrets, args.page_cap, args.keep
        )
        for step in steps_of_size:
            print(
                f"{step.size:>4} agents  {step.step:<36} {step.seconds:>7.2f} s  {step.requests:>5} requests "
                f"({step.by_method})  {step.peak_rss_mb:>6.1f} MB  server CPU {step.server_cpu_s} s  "
                f"exit {step.exit_code}",
                flush=True,
            )
            steps.append(step)
    command = "python benchmarks/fleet_benchmark.py " + " ".join(sys.argv[1:])
    print()
    print(markdown(steps, command.strip(), base_url))
    if args.json:
        args.json.write_text(json.dumps([asdict(step) for step in steps], indent=2))


if __name__ == "__main__":
    main()
