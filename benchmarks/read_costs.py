"""The dev server's CPU seconds for each read a plan makes, and for variants of the agents read (which relations,
which page size), each read repeated: where a no-change plan's server time goes.

    LETTAFLEET_DEV_HOME=... python benchmarks/read_costs.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_benchmark  # the server CPU counter

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.reads import AGENT_PAGE, AGENTS, CONVERSATIONS, labelled
from lettafleet.plugins.devserver import supervisor

READS: dict[str, tuple[str, dict[str, Any]]] = {
    "agents, blocks and tags (the plan's)": AGENTS,
    "agents, tags only": ("/v1/agents/", {"include": ["agent.tags"], "order": "asc", "limit": AGENT_PAGE}),
    "agents, every relation (no include)": ("/v1/agents/", {"order": "asc", "limit": AGENT_PAGE}),
    "conversations": CONVERSATIONS,
    "blocks labelled customer_context": labelled("customer_context"),
    "blocks labelled persona": labelled("persona"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--base-url", default=os.environ.get("LETTA_BASE_URL"))
    args = parser.parse_args()
    base_url = args.base_url or supervisor.status().base_url
    roots = fleet_benchmark.server_processes()
    with LettaClient(base_url) as client:
        for what, (path, params) in READS.items():
            costs, count = [], 0
            for _ in range(args.repeat):
                before = fleet_benchmark.cpu_seconds(roots) or 0.0
                count = len(client.list_all(path, **params))
                costs.append((fleet_benchmark.cpu_seconds(roots) or 0.0) - before)
            median = statistics.median(costs)
            each = f"{1000 * median / count:.2f} ms each" if count else "-"
            print(f"{what:<40} {count:>6} items  server CPU median {median:.2f} s ({each})", flush=True)


if __name__ == "__main__":
    main()
