"""What a template plan costs to read (issue 16): one template over the agents an application made, planned a few
times by a given `lettafleet` (this checkout's, or another's to compare), each plan as its own process
(fleet_benchmark.run_step: wall time, requests, peak RSS, the dev server's CPU seconds). Writes nothing.

    python benchmarks/other_agents.py --base-url URL --prefix user- --count 2000
    LETTAFLEET_DEV_HOME=... python benchmarks/template_plan_reads.py --match 'user-*' --runs 3
    LETTAFLEET_DEV_HOME=... python benchmarks/template_plan_reads.py --lettafleet ../main/.venv/bin/lettafleet
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_benchmark  # the step runner and server CPU

PROMPT = '    system_prompt: {value: "You are a support agent for one customer."}\n'
POLICIES = 'shared_blocks:\n  - {name: bench-policies, value: "Be kind.", agent_owned: false}\n'


def write_fleet(directory: Path, glob: str, *, shared_block: bool) -> Path:
    """One template over the application's agents setting their prompt (and, `shared_block`, attaching one)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("fleet-blocks.yaml" if shared_block else "fleet.yaml")
    text = (POLICIES if shared_block else "") + f'templates:\n  - name: bench-users\n    match: "{glob}"\n' + PROMPT
    path.write_text(text + ("    shared_blocks: [bench-policies]\n" if shared_block else ""), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--match", default="user-*", help="the template's selector (the application's agents)")
    parser.add_argument("--shared-block", action="store_true", help="the template attaches a shared block too")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lettafleet", default=fleet_benchmark.LETTAFLEET, help="the lettafleet to measure")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/template-plan-reads"))
    parser.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL"))
    args = parser.parse_args()
    if not args.base_url:
        raise SystemExit("give --base-url or LETTA_BASE_URL (the dev server's, see `lettafleet dev-server status`)")
    fleet_benchmark.LETTAFLEET = args.lettafleet
    fleet = write_fleet(args.workdir, args.match, shared_block=args.shared_block)
    print("| run | wall s | requests | by method | peak RSS MB | server CPU s | exit | load 1/5/15 |")
    print("|---|---:|---:|---|---:|---:|---:|---|")
    for run in range(1, args.runs + 1):
        step = fleet_benchmark.run_step(0, "plan", ["plan", "-f", str(fleet)], args.base_url)
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
        print(
            f"| {run} | {step.seconds} | {step.requests} | {step.by_method} | {step.peak_rss_mb} | {step.server_cpu_s} "
            f"| {step.exit_code} | {load} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
