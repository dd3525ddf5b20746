"""The App Server rows of docs/benchmarks.md: a fleet of N agents (2 or 3 memory blocks each) on a Letta App Server.

By default the App Server is a private one, started in a temporary dev-server home of its own (so that other
sessions' agents and load do not skew its counts) and stopped by its PID at the end; the suite's LLM stand-in is
connected to it as an `openai-compatible` provider, so the fleet's model is one `list_models` offers. Each round
(`--repeat` of them) runs, each step as its own `lettafleet` process (`-v` counts its requests):

- a create of every agent one change at a time (`apply --parallelism 1`), then the agents are deleted;
- a create with writes in parallel across agents (`apply --parallelism 8`, the default);
- a no-change plan, also once through a proxy that counts the frames the server gets, by type;
- a one-field update of every agent (its `description`), and the plan after it.

`--memory-files K` gives every agent a `memory:` section (`mode: memfs`) of K files in the v2 layout: the index
`system/MEMORY.md` and K-1 files with `name`/`description` frontmatter. `--count-every-step` runs every step through
the frame counter; `--no-serial-create` leaves out the create one at a time.

    python benchmarks/app_server_fleet.py --agents 200 --repeat 3 --json results.json
    python benchmarks/app_server_fleet.py --repeat 3 --create-rounds 1 --base-url ws://127.0.0.1:PORT --server-pid PID
    python benchmarks/app_server_fleet.py --memory-files 5 --repeat 3 --create-rounds 1 --no-serial-create \
        --count-every-step
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the suite's LLM stand-in
from fleet_benchmark import LETTAFLEET, REQUESTS, cpu_seconds

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.devserver import app_server
from lettafleet.plugins.devserver.home import DevServerHome
from lettafleet.plugins.devserver.progress import SilentProgress
from tests.fakes.llm_server import MODEL, FakeLLM

FLEET = "asbench"
PREFIX = "asbench-"
HANDLE = f"openai-compatible/{MODEL}"


@dataclass
class Step:
    round: int
    step: str
    seconds: float
    requests: int
    by_method: str
    exit_code: int
    server_cpu_s: float | None
    lettafleet_cpu_s: float  # user + system of the step's `lettafleet` process
    load: str  # the 1, 5 and 15 minute load averages when the step ended
    frames: dict[str, int] = field(default_factory=dict)  # by type, when counted at the proxy


def write_fleet(path: Path, agents: int, description: str = "v1", memory_files: int = 0) -> Path:
    """`agents` agents; even ones have 3 memory blocks (one `agent_owned: false`), odd ones 2; with `memory_files`,
    each a `memory:` section of that many files."""
    lines = [f"fleet: {FLEET}", "agents:"]
    for index in range(agents):
        lines += [
            f"  - name: {PREFIX}{index:04d}",
            f'    description: "Benchmark agent {index}, {description}"',
            f"    llm_config: {{model: {HANDLE}, context_window: 16000}}",
            f'    system_prompt: {{value: "You are benchmark agent {index}."}}',
            "    tags: [bench]",
            "    memory_blocks:",
            '      - {name: persona, description: "Who I am", value: "A helpful agent."}',
            '      - {name: policy, description: "Synced", value: "Be brief.", agent_owned: false}',
        ]
        if index % 2 == 0:
            lines.append('      - {name: customer, description: "Per customer", value: "none yet"}')
        if memory_files:
            lines += memory_section(memory_files)
    path.write_text("\n".join(lines) + "\n")
    return path


def memory_section(files: int) -> list[str]:
    """A `mode: memfs` section in the v2 layout: the index `system/MEMORY.md` and `files - 1` notes it lists."""
    notes = [f"note-{number}" for number in range(1, files)]
    texts = {"system/MEMORY.md": "# System\n" + "".join(f"- {note}.md\n" for note in notes)}
    for note in notes:
        texts[f"system/{note}.md"] = f"---\nname: {note}\ndescription: the fleet's {note}\n---\nRemember {note}.\n"
    lines = ["    memory:", "      mode: memfs", "      files:"]
    for to, text in texts.items():
        lines += [f"        - to: {to}", f"          value: {json.dumps(text)}"]
    return lines


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_step(
    round_: int, step: str, args: list[str], base_url: str, server_pid: int | None, count_frames: bool = False
) -> Step:
    """One `lettafleet` process: its wall time and CPU, the requests it counted, the server's CPU meanwhile, and
    with `count_frames` the frames the server got, by type."""
    if count_frames:
        with FrameCounter(base_url).running() as proxy:
            found = measure_step(round_, step, args, proxy.url, server_pid)
        found.frames = dict(sorted(proxy.frames.items()))
    else:
        found = measure_step(round_, step, args, base_url, server_pid)
    print(json.dumps(asdict(found)), flush=True)
    return found


def measure_step(round_: int, step: str, args: list[str], base_url: str, server_pid: int | None) -> Step:
    """The `lettafleet` process of one step, run against `base_url`."""
    roots = [server_pid] if server_pid else []
    cpu_before, own_before = cpu_seconds(roots), children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run(
        [LETTAFLEET, *args, "-v"],
        capture_output=True,
        text=True,
        env={**os.environ, "LETTA_BASE_URL": base_url},
        check=False,
    )
    seconds = time.perf_counter() - started
    cpu_after, own = cpu_seconds(roots), round(children_cpu_seconds() - own_before, 2)
    match = REQUESTS.search(done.stderr)
    if match is None:
        raise SystemExit(f"{step} printed no request count:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    server_cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 1)
    return Step(
        round_, step, round(seconds, 2), int(match.group(1)), match.group(2), done.returncode, server_cpu, own, load()
    )


def children_cpu_seconds() -> float:
    """User + system CPU of this process's ended children (the `lettafleet` steps; the App Server ends last)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class FrameCounter:
    """A WebSocket proxy on 127.0.0.1 that forwards every frame both ways and counts the client's by `type`."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.frames = upstream.rstrip("/"), Counter[str]()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-counter", daemon=True)
        self.url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        async with serve(self._relay, "127.0.0.1", 0, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            self._stop = self._loop.create_future()
            self._ready.set()
            await self._stop

    async def _relay(self, downstream: ServerConnection) -> None:
        async with connect(self.upstream + "/ws", max_size=None) as upstream:

            async def up() -> None:
                async for message in downstream:
                    self.frames[str(json.loads(message).get("type"))] += 1
                    await upstream.send(message)
                await upstream.close()

            async def down() -> None:
                async for message in upstream:
                    await downstream.send(message)

            await asyncio.gather(up(), down(), return_exceptions=True)

    @contextmanager
    def running(self) -> Iterator[FrameCounter]:
        self._thread.start()
        self._ready.wait(10)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
            self._thread.join(10)


def delete_fleet(base_url: str) -> None:
    """Every agent of the benchmark's fleet (by its tag), 8 at a time."""
    with AppServerClient(base_url) as client:
        ids = [agent["id"] for agent in client.list_agents(tags=[f"lettafleet-fleet:{FLEET}"])]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client.delete_agent, ids))


@contextmanager
def private_app_server() -> Iterator[tuple[str, int | None]]:
    """A dev App Server in a temporary home of its own, stopped by its recorded PID afterwards."""
    with tempfile.TemporaryDirectory(prefix="asbench-home-") as root:
        home = DevServerHome(Path(root))
        started = app_server.up(port=0, home=home, progress=SilentProgress())
        try:
            yield str(started.base_url), started.pid
        finally:
            app_server.down(home=home, progress=SilentProgress())


@dataclass(frozen=True)
class Options:
    """What every round does alike: the fleet's size and memory files, and which steps run how."""

    agents: int
    memory_files: int
    serial_create: bool
    count_every_step: bool


def one_round(round_: int, options: Options, base_url: str, pid: int | None, workdir: Path, create: bool) -> list[Step]:
    """The steps of one round; without `create`, the agents the round before left are planned and updated."""
    fleet = write_fleet(workdir / "fleet.yaml", options.agents, f"v{round_}", options.memory_files)
    apply_ = ["apply", "-f", str(fleet), "--no-lock"]
    count = options.count_every_step
    steps = []
    if create and options.serial_create:
        delete_fleet(base_url)
        steps.append(run_step(round_, "create, one at a time", [*apply_, "--parallelism", "1"], base_url, pid, count))
    if create:
        delete_fleet(base_url)
        parallel = [*apply_, "--parallelism", "8"]
        steps.append(run_step(round_, "create, parallel across agents", parallel, base_url, pid, count))
    plan = ["plan", "-f", str(fleet), "--detailed-exitcode"]
    steps.append(run_step(round_, "plan, no changes", plan, base_url, pid, count))
    if not count:
        steps.append(run_step(round_, "plan, no changes, through the frame counter", plan, base_url, pid, True))
    write_fleet(fleet, options.agents, f"v{round_ + 1}", options.memory_files)
    steps.append(run_step(round_, "update one field of every agent", apply_, base_url, pid, count))
    steps.append(run_step(round_, "plan after the update", plan, base_url, pid, count))
    return steps


def summary(steps: list[Step]) -> str:
    """One row per step: the median and the spread of its rounds."""
    rows = [
        "| step | wall s, median (min to max) | requests | by type (lettafleet's count) | lettafleet CPU s | "
        "server CPU s | frames by type (the last round's) | exit |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for name in dict.fromkeys(step.step for step in steps):
        runs = [step for step in steps if step.step == name]
        seconds = [step.seconds for step in runs]
        cpu = [step.server_cpu_s for step in runs if step.server_cpu_s is not None]
        frames = ", ".join(f"{kind} {count}" for kind, count in runs[-1].frames.items()) or "-"
        rows.append(
            f"| {name} | {statistics.median(seconds):.2f} ({min(seconds):.2f} to {max(seconds):.2f}) | "
            f"{'/'.join(str(step.requests) for step in runs)} | {runs[-1].by_method} | "
            f"{statistics.median(step.lettafleet_cpu_s for step in runs):.2f} | "
            f"{statistics.median(cpu) if cpu else '-'} | {frames} | {'/'.join(str(step.exit_code) for step in runs)} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--create-rounds", type=int, help="rounds that also create the fleet (default: every one)")
    parser.add_argument("--base-url", help="a running App Server (default: a private one, started and stopped here)")
    parser.add_argument("--server-pid", type=int, help="the --base-url server's PID, for its CPU seconds")
    parser.add_argument("--json", type=Path, help="write every step here")
    parser.add_argument("--memory-files", type=int, default=0, help="a `memory:` section of K files in every agent")
    parser.add_argument("--no-serial-create", action="store_true", help="leave out the create one at a time")
    parser.add_argument("--count-every-step", action="store_true", help="every step through the frame counter")
    args = parser.parse_args()
    options = Options(args.agents, args.memory_files, not args.no_serial_create, args.count_every_step)
    llm = FakeLLM().start()
    steps: list[Step] = []
    try:
        with (
            private_app_server() if args.base_url is None else _given(args.base_url, args.server_pid) as (
                base_url,
                pid,
            ),
            tempfile.TemporaryDirectory() as workdir,
        ):
            with AppServerClient(base_url) as client:
                client.connect_provider("openai-compatible", {"baseUrl": llm.base_url, "apiKey": "sk-stand-in"})
            print(f"App Server at {base_url} (pid {pid}), load {load()}", flush=True)
            for round_ in range(1, args.repeat + 1):
                create = round_ <= (args.repeat if args.create_rounds is None else args.create_rounds)
                steps += one_round(round_, options, base_url, pid, Path(workdir), create)
            delete_fleet(base_url)
    finally:
        llm.stop()
    print(summary(steps))
    if args.json:
        args.json.write_text(json.dumps([asdict(step) for step in steps], indent=1))


@contextmanager
def _given(base_url: str, pid: int | None) -> Iterator[tuple[str, int | None]]:
    yield base_url, pid


if __name__ == "__main__":
    main()
