"""Fill a server with agents no fleet declares, as an application would make them (one memory block each, no
lettafleet marks), to measure what a small fleet's plan costs among them; or delete them again.

    python benchmarks/other_agents.py --base-url http://127.0.0.1:8390 --count 2000
    python benchmarks/other_agents.py --base-url http://127.0.0.1:8390 --delete
    python benchmarks/other_agents.py --base-url http://127.0.0.1:8390 --prefix user- --count 10000

`--prefix` names them as a template's selector would match them (`match: "user-*"`).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

from lettafleet.plugins.backends.letta_v1.client import LettaClient

PREFIX = "other-app-agent-"


def create(client: LettaClient, prefix: str, index: int) -> None:
    client.post(
        "/v1/agents/",
        json={
            "name": f"{prefix}{index:05d}",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "memory_blocks": [{"label": "human", "value": f"Customer {index}."}],
        },
    )


def delete_all(client: LettaClient, prefix: str) -> int:
    agents = client.list_all("/v1/agents/", query_text=prefix, include=["agent.blocks"], order="asc", limit=250)
    mine = [agent for agent in agents if agent["name"].startswith(prefix)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda agent: client.delete(f"/v1/agents/{agent['id']}"), mine))
        blocks = [block["id"] for agent in mine for block in agent.get("blocks") or []]
        list(pool.map(lambda block_id: client.delete(f"/v1/blocks/{block_id}"), blocks))
    return len(mine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0, help="the first index (to add more to those there)")
    parser.add_argument("--prefix", default=PREFIX, help=f"the start of each agent's name (default {PREFIX})")
    parser.add_argument("--delete", action="store_true", help="delete the agents whose names start with --prefix")
    args = parser.parse_args()
    with LettaClient(args.base_url) as client:
        if args.delete:
            print(f"deleted {delete_all(client, args.prefix)} agents")
            return
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda index: create(client, args.prefix, index), range(args.start, args.start + args.count)))
        print(f"the server holds {client.get('/v1/agents/count')} agents")


if __name__ == "__main__":
    main()
