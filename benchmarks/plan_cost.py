"""What one fleet file's plan costs, run by a given lettafleet, several times: wall time, requests, peak RSS and
the dev server's CPU seconds (Letta and PostgreSQL, measured as fleet_benchmark.py does).

Made to compare two builds of lettafleet on one server holding one fleet (before and after a change), and a small
fleet on a server holding many other agents:

    LETTAFLEET_DEV_HOME=... python benchmarks/plan_cost.py --fleet /tmp/fleet.yaml --repeat 3 \\
        --lettafleet /work/main/.venv/bin/lettafleet --lettafleet .venv/bin/lettafleet
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_benchmark  # the step runner, server CPU and fleet writer

from lettafleet.plugins.devserver import supervisor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fleet", type=Path, help="the fleet file to plan (default: one written by --size)")
    parser.add_argument("--size", type=int, help="write fleet_benchmark's fleet of this size and plan it")
    parser.add_argument("--named", metavar="NAME", help="with --size: give the written fleet `fleet: NAME`")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--lettafleet", action="append", default=[], help="a lettafleet executable (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL"))
    args = parser.parse_args()
    base_url = args.base_url or supervisor.status().base_url
    if not base_url:
        raise SystemExit("no Letta server: run `lettafleet dev-server up` or pass --base-url")
    fleet = args.fleet or written_fleet(args.workdir, args.size, args.named)
    for executable in args.lettafleet or [fleet_benchmark.LETTAFLEET]:
        fleet_benchmark.LETTAFLEET = executable
        steps = [fleet_benchmark.run_step(0, "plan", ["plan", "-f", str(fleet)], base_url) for _ in range(args.repeat)]
        for step in steps:
            print(
                f"{executable}: {step.seconds:.2f} s  {step.requests} requests ({step.by_method})  "
                f"{step.peak_rss_mb} MB  server CPU {step.server_cpu_s} s  exit {step.exit_code}",
                flush=True,
            )
        print(
            f"{executable}: median {statistics.median(s.seconds for s in steps):.2f} s, server CPU median "
            f"{statistics.median(s.server_cpu_s or 0 for s in steps):.2f} s, peak RSS max "
            f"{max(s.peak_rss_mb for s in steps)} MB\n",
            flush=True,
        )


def written_fleet(workdir: Path, size: int | None, name: str | None) -> Path:
    if size is None:
        raise SystemExit("give --fleet or --size")
    path = fleet_benchmark.write_fleet(workdir / f"fleet-{size}", size)
    if name:
        path.write_text(f"fleet: {name}\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
