"""lettactl v1.1.2 against lettafleet on one Letta dev server, back to back, measured the same way.

Both tools apply the same generated fleet (fleet_benchmark.py's `write_fleet`: N agents with 3 memory blocks, 2
conversations and 1 isolated block each), under their own name prefix, in rounds: each round, for each tool,
the benchmark deletes what that prefix left, creates all, counts what is on the server, re-applies with no change
(first round only) and deletes it all again. Every step runs through the project's fault proxy with no faults
(tests/fakes/fault_proxy.py), so both tools' requests are counted in one place; the server CPU of a step is the
CPU seconds the dev server's processes (Letta and PostgreSQL, see `fleet_benchmark.cpu_seconds`) spent during it.

Needs: the dev server (`lettafleet dev-server up`) on this machine, node >= 18 and npm (Debian: `apt-get install
nodejs npm`). lettactl 1.1.2 is installed into --cache by `npm install lettactl@1.1.2`; where the npm registry does
not have it, pass --lettactl-source, a git checkout of github.com/nouamanecodes/lettactl (its tag v1.1.2 is built
with npm and tsc, with the Letta client version its lock file names).

    .venv/bin/python benchmarks/compare_lettactl.py --size 50 --rounds 1
    .venv/bin/python benchmarks/compare_lettactl.py --size 200 --rounds 2 --json compare-200.json \\
        --lettactl-source ~/src/lettactl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from fleet_benchmark import LETTAFLEET, REQUESTS, cleanup, cpu_seconds, server_processes, write_fleet

from lettafleet.core.letta.connection import LettaAPIError
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.reads import AGENTS, CONVERSATIONS
from lettafleet.plugins.devserver import supervisor
from lettafleet.plugins.devserver.home import LETTA_VERSION

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test fakes: the counting proxy
from tests.fakes.fault_proxy import FaultProxy, ProxyCounts

LETTACTL_VERSION = "1.1.2"
# The Letta client lettactl's pnpm-lock.yaml pins at v1.1.2; a plain `npm install` would take a newer one.
LETTACTL_LETTA_CLIENT = "@letta-ai/letta-client@1.7.8"
TOOLS = ("lettactl", "lettafleet")


@dataclass
class Measured:
    tool: str
    size: int
    step: str
    seconds: float
    server_cpu_s: float | None  # None: the server's processes are not on this machine
    requests: int  # as the proxy counted them
    by_method: str
    posts_by_collection: str
    own_count: int | None  # lettafleet's own request count (-v), which leaves out its apply lock's; None for lettactl
    exit_code: int
    background_cpu_s: float | None  # the server's CPU per wall second just before, times this step's seconds


@dataclass
class OnServer:
    """What one tool's create left on the server, counted for its prefix."""

    tool: str
    agents: int
    blocks: int  # attached to the agents
    conversations: int
    isolated_blocks: int


# -- installing lettactl ---------------------------------------------------------------------------------------


def install_lettactl(cache: Path, source: Path | None) -> list[str]:
    """The command that runs lettactl 1.1.2, installed into `cache` on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("lettactl needs node and npm: apt-get install nodejs npm")
    from_npm = cache / "node_modules" / "lettactl" / "dist" / "index.js"
    built = cache / f"source-v{LETTACTL_VERSION}" / "dist" / "index.js"
    for entry in (from_npm, built):
        if entry.exists():
            return ["node", str(entry)]
    cache.mkdir(parents=True, exist_ok=True)
    npm = subprocess.run(
        ["npm", "install", "--prefix", str(cache), f"lettactl@{LETTACTL_VERSION}"], capture_output=True, text=True
    )
    if npm.returncode == 0:
        return ["node", str(from_npm)]
    if source is None:
        raise SystemExit(
            f"npm could not install lettactl@{LETTACTL_VERSION}:\n{npm.stderr[-800:]}\n"
            "pass --lettactl-source with a git checkout of github.com/nouamanecodes/lettactl to build it instead"
        )
    build_from_source(source, built.parents[1])
    return ["node", str(built)]


def build_from_source(source: Path, target: Path) -> None:
    """Build lettactl's tag v1.1.2 from a git checkout (or bare repository) into `target`."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(source), "archive", f"v{LETTACTL_VERSION}"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    quiet = ["--ignore-scripts", "--no-audit", "--no-fund"]  # its `prepare` script sets up git hooks only
    subprocess.run(["npm", "install", *quiet], cwd=target, check=True, capture_output=True)
    subprocess.run(["npm", "install", *quiet, "--no-save", LETTACTL_LETTA_CLIENT], cwd=target, check=True)
    subprocess.run(["npx", "tsc"], cwd=target, check=True)


# -- the fleet --------------------------------------------------------------------------------------------------


def write_tool_fleet(workdir: Path, size: int, prefix: str) -> Path:
    """fleet_benchmark's fleet in the form lettactl reads (lettafleet reads it too), its agents named `prefix`NNNN."""
    text = write_fleet(workdir / "generated", size).read_text(encoding="utf-8")
    edits = [
        # the agents' names: one prefix per tool, so that both fleets can be on the server at once
        (re.compile(rf"name: bench-{size}-"), f"name: {prefix}"),
        # lettactl requires agent_owned on every block; true is lettafleet's default
        (re.compile(r'^(      - \{name: .*, value: "[^"]*")\}$', re.MULTILINE), r"\1, agent_owned: true}"),
        # lettactl refuses an empty block value (and skips empty server blocks when it reads them)
        (re.compile(r'value: ""'), 'value: "No customer yet."'),
        # without `tools:` lettactl attaches web_search and fetch_webpage, lettafleet nothing
        (re.compile(r"^    tags: \[bench\]$", re.MULTILINE), "    tags: [bench]\n    tools: []"),
    ]
    for pattern, replacement in edits:
        text, count = pattern.subn(replacement, text)
        if count < size:
            raise SystemExit(f"write_fleet's output changed: {pattern.pattern!r} matched {count} times, not {size}")
    path = workdir / f"{prefix}fleet.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class BlockRecordingProxy(FaultProxy):
    """The fault proxy, with no faults, remembering every block created through it. lettactl creates an agent's
    blocks before the agent, with no mark of their own: when it fails after that, only their ids find them."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.created_blocks: set[str] = set()

    def rewrite(self, method: str, target: str, status: int, payload: bytes) -> bytes:
        if method == "POST" and status == 200 and target.rstrip("/").split("?")[0] == "/v1/blocks":
            self.created_blocks.add(json.loads(payload)["id"])
        return payload


def delete_leftovers(base_url: str, prefix: str, proxy: BlockRecordingProxy) -> None:
    """Delete the prefix's agents and their blocks, then any block created through the proxy that is left."""
    cleanup(base_url, prefix)
    with LettaClient(base_url) as client:
        for block_id in sorted(proxy.created_blocks):
            try:
                client.delete(f"/v1/blocks/{block_id}")
            except LettaAPIError as error:
                if error.status != 404:  # most went with their agents
                    raise
    proxy.created_blocks.clear()


def background_cpu_rate(seconds: float = 10.0) -> float | None:
    """The server's CPU seconds per wall second while neither tool runs: what other clients of a shared dev
    server cost it meanwhile."""
    roots = server_processes()
    before = cpu_seconds(roots)
    time.sleep(seconds)
    after = cpu_seconds(roots)
    return None if before is None or after is None else round((after - before) / seconds, 3)


# -- measuring --------------------------------------------------------------------------------------------------


def measured_step(
    tool: str, size: int, step: str, command: list[str], proxy: FaultProxy, log: Path, background: float | None
) -> Measured:
    """Run one tool's command against the proxy: wall time, the server's CPU meanwhile, the requests counted."""
    env = {**os.environ, "LETTA_BASE_URL": proxy.url, "LETTA_API_KEY": "unused-by-the-dev-server"}
    proxy.counts = ProxyCounts()
    roots = server_processes()
    cpu_before = cpu_seconds(roots)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as output:
        exit_code = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds(roots)
    server_cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 1)
    own = REQUESTS.search(log.read_text(encoding="utf-8")) if tool == "lettafleet" else None
    counts = proxy.counts
    posts = Counter({collection: n for (method, collection), n in counts.forwarded_to.items() if method == "POST"})
    return Measured(
        tool,
        size,
        step,
        round(seconds, 2),
        server_cpu,
        counts.received.total(),
        _tally(counts.received),
        _tally(posts),
        int(own.group(1)) if own else None,
        exit_code,
        None if background is None else round(background * seconds, 1),
    )


def _tally(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in counter.most_common())


def command_for(tool: str, lettactl: list[str], fleet: Path) -> list[str]:
    if tool == "lettactl":
        return [*lettactl, "--no-spinner", "apply", "-f", str(fleet)]
    return [LETTAFLEET, "apply", "-f", str(fleet), "--parallelism", "8", "-v"]


def on_server(base_url: str, tool: str, prefix: str) -> OnServer:
    with LettaClient(base_url) as client:
        path, params = AGENTS
        agents = [agent for agent in client.list_all(path, **params) if agent["name"].startswith(prefix)]
        ids = {agent["id"] for agent in agents}
        path, params = CONVERSATIONS
        conversations = [c for c in client.list_all(path, **params) if c["agent_id"] in ids]
    return OnServer(
        tool,
        len(agents),
        sum(len(agent.get("blocks") or []) for agent in agents),
        len(conversations),
        sum(len(c.get("isolated_block_ids") or []) for c in conversations),
    )


# -- the comparison ---------------------------------------------------------------------------------------------


def compare(
    size: int, rounds: int, reapply: bool, base_url: str, workdir: Path, lettactl: list[str]
) -> tuple[list[Measured], list[OnServer]]:
    prefixes = {tool: f"cmp-{tool}-{size}-" for tool in TOOLS}
    fleets = {tool: write_tool_fleet(workdir, size, prefixes[tool]) for tool in TOOLS}
    steps: list[Measured] = []
    found: list[OnServer] = []
    proxy = BlockRecordingProxy(base_url)
    proxy.start()
    try:
        for round_number in range(1, rounds + 1):
            names = ["create all", "re-apply, no change"] if round_number == 1 and reapply else ["create all"]
            for tool in TOOLS:
                delete_leftovers(base_url, prefixes[tool], proxy)
                for name in names:
                    log = workdir / f"{prefixes[tool]}{name.replace(', ', '-').replace(' ', '-')}-{round_number}.log"
                    command = command_for(tool, lettactl, fleets[tool])
                    background = background_cpu_rate()
                    steps.append(measured_step(tool, size, f"{name} #{round_number}", command, proxy, log, background))
                    _print(steps[-1])
                    if name == "create all":  # a real create? count what it left before anything else runs
                        found.append(on_server(base_url, tool, prefixes[tool]))
                        print(f"     on the server: {found[-1]}", flush=True)
                delete_leftovers(base_url, prefixes[tool], proxy)
    finally:
        proxy.stop()
    return steps, found


def _print(step: Measured) -> None:
    print(
        f"{step.tool:<10} {step.size:>4} agents  {step.step:<24} {step.seconds:>7.2f} s  server CPU "
        f"{step.server_cpu_s} s (background ~{step.background_cpu_s} s)  {step.requests:>5} requests "
        f"({step.by_method}; POST {step.posts_by_collection})  exit {step.exit_code}",
        flush=True,
    )


def markdown(steps: list[Measured], found: list[OnServer], command: str, base_url: str) -> str:
    rows = [
        "| tool | agents | step | wall s | server CPU s | of it background, est. | requests | by method | "
        "POSTs by collection | own count | exit |",
        "|---|---:|---|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    rows += [
        f"| {s.tool} | {s.size} | {s.step} | {s.seconds} | {_figure(s.server_cpu_s)} | {_figure(s.background_cpu_s)} | "
        f"{s.requests} | {s.by_method} | {s.posts_by_collection} | {_figure(s.own_count)} | "
        f"{s.exit_code} |"
        for s in steps
    ]
    counted = ["| tool | agents | blocks attached | conversations | isolated blocks |", "|---|---:|---:|---:|---:|"]
    counted += [f"| {f.tool} | {f.agents} | {f.blocks} | {f.conversations} | {f.isolated_blocks} |" for f in found]
    return (
        f"Command: `{command}`\n\nServer: Letta {LETTA_VERSION} dev server at {base_url}, {os.cpu_count()} cores; "
        f"both tools through the fault proxy with no faults.\n\n"
        + "\n".join(rows)
        + "\n\nAfter each create:\n\n"
        + "\n".join(counted)
        + "\n\n"
        + ratio(steps)
        + "\n"
    )


def _figure(value: float | None) -> str:
    return "-" if value is None else str(value)


def ratio(steps: list[Measured]) -> str:
    """lettafleet's create server CPU against lettactl's, as the mean of the rounds."""
    creates = {
        tool: [s.server_cpu_s for s in steps if s.tool == tool and s.step.startswith("create") and s.server_cpu_s]
        for tool in TOOLS
    }
    if not all(creates.values()):
        return "Ratio: not measured (no server CPU for one of the tools)."
    mean = {tool: sum(values) / len(values) for tool, values in creates.items()}
    return (
        f"Create, server CPU s (each round): lettactl {creates['lettactl']}, lettafleet {creates['lettafleet']}. "
        f"lettafleet / lettactl = {mean['lettafleet'] / mean['lettactl']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200, help="agents in the fleet")
    parser.add_argument("--rounds", type=int, default=1, help="creates per tool (the first round also re-applies)")
    parser.add_argument(
        "--reapply",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="re-apply the unchanged fleet after the first create (lettactl 1.1.2 fails it on Letta 0.16.8)",
    )
    parser.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL"), help="default: the dev server")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/compare-lettactl"))
    parser.add_argument("--cache", type=Path, default=Path("/var/cache/lettafleet/lettactl"), help="lettactl's home")
    parser.add_argument("--lettactl-source", type=Path, help="a git checkout of lettactl, when npm does not have it")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    base_url = args.base_url or supervisor.status().base_url
    if not base_url:
        raise SystemExit("no Letta server: run `lettafleet dev-server up` or pass --base-url")
    lettactl = install_lettactl(args.cache, args.lettactl_source)
    args.workdir.mkdir(parents=True, exist_ok=True)
    steps, found = compare(args.size, args.rounds, args.reapply, base_url, args.workdir, lettactl)
    command = "python benchmarks/compare_lettactl.py " + " ".join(sys.argv[1:])
    print()
    print(markdown(steps, found, command.strip(), base_url))
    if args.json:
        figures = {"steps": [asdict(s) for s in steps], "on_server": [asdict(f) for f in found]}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
