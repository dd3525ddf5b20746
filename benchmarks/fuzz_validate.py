"""A fuzz campaign of `lettafleet validate`: generated fleet files (the families of tests/core/engine/
test_validate_fuzz.py: mutated examples, wrong shapes, secrets in wrong shapes, pathological tool source), each
run through the command and checked as that test checks it, every outcome counted rather than stopping at the
first failure. Prints the counts by family and outcome; exits 1 on any traceback, hang, secret shown, or error
without a place or a hint. The examples are the same on every run (derandomized).

    python benchmarks/fuzz_validate.py --examples 10000 [--failures DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test's strategies and checks
from tests.core.engine.test_validate_fuzz import CASES, Case, Hang, failures


def campaign(examples: int, keep: Path | None) -> tuple[Counter[tuple[str, str]], float]:
    """Run `examples` cases; the count of each (family, outcome), and the seconds taken."""
    counts: Counter[tuple[str, str]] = Counter()
    started = time.perf_counter()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(CASES)
    def run(case: Case) -> None:
        try:
            found = failures(case)
        except Hang:
            found = ["hang"]
        except Exception as error:  # the harness failed on this case: count it, and go on with the others
            found = [f"harness error: {error!r}"]
        for failure in found:
            counts[(case.family, failure.split(":", 1)[0])] += 1
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{sum(counts.values())}.yaml").write_bytes(case.data)
        counts[(case.family, "run")] += 1

    run()
    return counts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--failures", type=Path, help="write the fleet file of each failing case here")
    arguments = parser.parse_args()
    counts, seconds = campaign(arguments.examples, arguments.failures)
    families = sorted({family for family, _ in counts})
    outcomes = sorted({outcome for _, outcome in counts} - {"run"})
    print(f"{sum(counts[(f, 'run')] for f in families)} cases in {seconds:.0f} s")
    for family in families:
        found = ", ".join(f"{counts[(family, o)]} {o}" for o in outcomes if counts[(family, o)]) or "no failure"
        print(f"  {family}: {counts[(family, 'run')]} cases, {found}")
    failed = sum(count for (_, outcome), count in counts.items() if outcome != "run")
    print(f"failures: {failed}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
