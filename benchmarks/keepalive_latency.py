"""Measure a Letta server's answer time on a kept-alive connection against a new connection per request.

A server whose kept-alive answers are about 40 ms slower than fresh ones meets the client's delayed
acknowledgement with Nagle's algorithm (docs/dev-server.md, "Latency on kept-alive connections").

    python benchmarks/keepalive_latency.py --base-url http://127.0.0.1:8283 --requests 50
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx

PATHS = ("/v1/health/", "/v1/agents/?limit=1")


def median_ms(send: Callable[[str], httpx.Response], path: str, requests: int) -> float:
    send(path)  # the first request opens the kept-alive connection; it is not measured
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        send(path).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(base_url: str, requests: int) -> list[tuple[str, float, float]]:
    """(path, median ms on a new connection each time, median ms on one kept-alive connection) per path."""
    rows = []
    # Both clients are made once, outside the timing: making an httpx client loads TLS certificates (~30 ms).
    new_each_time = httpx.Client(base_url=base_url, timeout=30.0, limits=httpx.Limits(max_keepalive_connections=0))
    kept_alive = httpx.Client(base_url=base_url, timeout=30.0)
    with new_each_time, kept_alive:
        for path in PATHS:
            rows.append((path, median_ms(new_each_time.get, path, requests), median_ms(kept_alive.get, path, requests)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8283")
    parser.add_argument("--requests", type=int, default=50, help="requests per path and connection kind")
    arguments = parser.parse_args()
    print(f"{arguments.base_url}, median of {arguments.requests} requests each")
    print(f"{'path':<22} {'new connection':>15} {'kept alive':>11}")
    for path, fresh, reused in measure(arguments.base_url, arguments.requests):
        print(f"{path:<22} {fresh:>12.1f} ms {reused:>8.1f} ms")


if __name__ == "__main__":
    main()
