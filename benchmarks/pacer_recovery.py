"""How fast lettafleet's pacer (core/letta/pacing.py) recovers once a burst of 429s ends: how long until requests
flow again, until the concurrency is whole again, and the rate in the seconds after, against the rate before.

No Letta server: an in-process stand-in (httpx.MockTransport) answers each request after a fixed latency, as a
server with spare capacity does, except during a burst, when it answers every write 429 after the same latency
(with `Retry-After: 1` given `--retry-after 1`). Workers send writes through one LettaClient, as an apply does, at
most `--parallelism` at once; a sampler reads the pacer's limit every 50 ms. `--repeat` bursts of `--burst`
seconds, 10 s apart. Not a test: run it, read it, record it.

    .venv/bin/python benchmarks/pacer_recovery.py --burst 2            # five bursts of 2 s
    .venv/bin/python benchmarks/pacer_recovery.py --burst 0.1 --retry-after 1
    .venv/bin/python benchmarks/pacer_recovery.py --steady 0.2 --repeat 2   # a fifth refused all along, 23 s
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from dataclasses import dataclass

import httpx

from lettafleet.core import LettaError
from lettafleet.plugins.backends.letta_v1 import LettaClient

WINDOW = 5.0  # seconds after a burst over which the rate is compared with the rate before


@dataclass
class Burst:
    start: float  # seconds after the run starts
    seconds: float


class StandIn:
    """A server that answers after `latency` seconds, and 429 to every write during a burst."""

    def __init__(self, latency: float, bursts: list[Burst], retry_after: str | None, share: float = 0.0) -> None:
        self.latency = latency
        self.share = share  # refuse this share of writes at random, all along, instead of bursts
        self.bursts = bursts
        self.retry_after = retry_after
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.answered: list[float] = []  # when each write was answered (not refused), seconds after the start
        self.refused = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    def refusing(self, at: float) -> bool:
        if self.share:
            return random.random() < self.share
        return any(burst.start <= at < burst.start + burst.seconds for burst in self.bursts)

    def handle(self, request: httpx.Request) -> httpx.Response:
        refusing = self.refusing(self.now())
        time.sleep(self.latency)
        if refusing:
            with self.lock:
                self.refused += 1
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return httpx.Response(429, json={"detail": "slow down"}, headers=headers)
        with self.lock:
            self.answered.append(self.now())
        return httpx.Response(200, json={"id": "agent-1"})


def run(args: argparse.Namespace, bursts: list[Burst]) -> None:
    stand_in = StandIn(args.latency, bursts, args.retry_after, args.steady)
    client = LettaClient("http://127.0.0.1:9", transport=httpx.MockTransport(stand_in.handle))
    client.pacer.at_most(args.parallelism)
    stop = threading.Event()
    client.pacer.stops_with(stop)
    limits: list[tuple[float, int]] = []

    def work() -> None:
        while not stop.is_set():
            try:
                client.patch("/v1/agents/agent-1", json={"description": "x"})
            except LettaError:  # stopped while the server asked to wait
                return

    def sample() -> None:
        while not stop.is_set():
            limits.append((stand_in.now(), client.pacer.limit))
            time.sleep(0.05)

    threads = [threading.Thread(target=work) for _ in range(args.parallelism)] + [threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    client.close()
    report(stand_in, bursts, limits, args)


def report(stand_in: StandIn, bursts: list[Burst], limits: list[tuple[float, int]], args: argparse.Namespace) -> None:
    answered = stand_in.answered
    if args.steady:
        mean = sum(limit for _, limit in limits) / len(limits)
        print(
            f"latency {args.latency * 1000:.0f} ms, parallelism {args.parallelism}, Retry-After {args.retry_after}, "
            f"{args.steady:.0%} of writes refused all along: {len(answered) / args.seconds:.1f} writes/s answered, "
            f"{stand_in.refused} refused, {mean:.1f} allowed at once on average"
        )
        return
    first = bursts[0]
    before = sum(1 for t in answered if t < first.start) / first.start
    print(
        f"latency {args.latency * 1000:.0f} ms, parallelism {args.parallelism}, Retry-After {args.retry_after}, "
        f"{len(bursts)} bursts of {args.burst:g} s; before the first: {before:.1f} writes/s; {stand_in.refused} refused"
    )
    idle, rates = [], []
    for index, burst in enumerate(bursts):
        end = burst.start + burst.seconds
        following = bursts[index + 1].start if index + 1 < len(bursts) else args.seconds
        after = [t for t in answered if end <= t < following]
        idle.append((after[0] - end) if after else following - end)
        whole = next((t - end for t, limit in limits if t >= end and limit >= args.parallelism), float("nan"))
        rates.append(sum(1 for t in after if t < end + WINDOW) / WINDOW / before)
        print(
            f"  burst {index + 1}: first answer {idle[-1]:.2f} s after it ended; concurrency whole again after "
            f"{whole:.2f} s; in the {WINDOW:g} s after it {rates[-1]:.0%} of the rate before"
        )
    print(
        f"  mean: first answer {sum(idle) / len(idle):.2f} s after a burst (longest {max(idle):.2f} s); "
        f"{sum(rates) / len(rates):.0%} of the rate in the {WINDOW:g} s after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the stand-in takes to answer")
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--retry-after", help="the Retry-After header of each 429 (default: none)")
    parser.add_argument("--burst", type=float, default=2.0, help="seconds each burst of 429s lasts")
    parser.add_argument("--repeat", type=int, default=5, help="bursts, one every 10 s")
    parser.add_argument("--steady", type=float, default=0.0, help="refuse this share of writes all along, no bursts")
    args = parser.parse_args()
    bursts = [Burst(3.0 + 10.0 * index, args.burst) for index in range(args.repeat)]
    args.seconds = bursts[-1].start + 10.0
    run(args, bursts)


if __name__ == "__main__":
    main()
