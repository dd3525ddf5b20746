"""The dev server's CPU seconds per request type, one type at a time: what a new agent costs Letta.

    .venv/bin/python benchmarks/request_costs.py [--agents 50]

Creates N throwaway agents (three inline blocks each, as lettafleet creates them), a conversation for each without
and one with an isolated copy, PATCHes each agent's metadata as lettafleet writes its record, lists agents N times,
and deletes what it made. Each line is the CPU the server's processes (Letta and PostgreSQL, see
`fleet_benchmark.cpu_seconds`) spent on that batch, divided by N.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import Any

from fleet_benchmark import cpu_seconds, server_processes

from lettafleet.plugins.backends.letta_v1.client import LettaClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--base-url", default="http://127.0.0.1:8283")
    count = parser.parse_args().agents
    roots = server_processes()
    tag = uuid.uuid4().hex[:6]
    with LettaClient(parser.parse_args().base_url) as client:

        def measured(label: str, batch: Callable[[], Any]) -> Any:
            before, started = cpu_seconds(roots) or 0.0, time.perf_counter()
            result = batch()
            spent = (cpu_seconds(roots) or 0.0) - before
            print(f"{label:42} {spent / count * 1000:5.0f} ms server CPU each ({time.perf_counter() - started:.1f} s)")
            return result

        def create(index: int) -> dict[str, Any]:
            blocks = [{"label": label, "value": "v", "limit": 2000} for label in ("a", "b", "c")]
            body = {"name": f"cost-{tag}-{index}", "system": "You help.", "model": "letta/letta-free"}
            return client.post("/v1/agents/", json={**body, "embedding": "letta/letta-free", "memory_blocks": blocks})

        agents = measured("agent create, 3 inline blocks", lambda: [create(i) for i in range(count)])
        try:
            measured(
                "conversation create",
                lambda: [client.post("/v1/conversations/", json={"summary": "one"}, agent_id=a["id"]) for a in agents],
            )
            measured(
                "conversation create, 1 isolated copy",
                lambda: [
                    client.post(
                        "/v1/conversations/", json={"summary": "two", "isolated_block_labels": ["c"]}, agent_id=a["id"]
                    )
                    for a in agents
                ],
            )
            record = {"managed_by": "lettafleet", "lettafleet_applied": [{"address": "block.a", "kind": "block"}]}
            measured(
                "agent metadata PATCH (the record)",
                lambda: [client.patch(f"/v1/agents/{a['id']}", json={"metadata": record}) for a in agents],
            )
            measured(
                f"agents list of {count}, every relation",
                lambda: [client.get("/v1/agents/", limit=count) for _ in range(count)],
            )
        finally:
            for agent in agents:
                client.delete(f"/v1/agents/{agent['id']}")


if __name__ == "__main__":
    main()
