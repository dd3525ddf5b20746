"""What loading a large fleet file costs, step by step, without a server: parse (YAML to data), validate (the
schema: compiled, and cerberus for comparison), checks (every plugin's cross-checks), and load_fleet in all.

    python benchmarks/validation_cost.py --sizes 1000,5000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmark's fleet writer
from benchmarks.fleet_benchmark import write_fleet
from lettafleet.core.engine.document import load_document
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.plugin_manager import fleet_schema, get_plugin_manager
from lettafleet.core.engine.validation import FleetValidator, compiled_schema, load_fleet, validate_schema


def seconds(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def measure(size: int) -> str:
    manager = get_plugin_manager()
    compiled = compiled_schema(manager)  # compiled once per plugin manager, as every command does
    with tempfile.TemporaryDirectory() as folder:
        path = write_fleet(Path(folder), size, tools_and_secrets=True)
        parse, document = seconds(lambda: load_document(path))
        validate, (data, problems) = seconds(lambda: validate_schema(document, document.data, manager, compiled))
        assert not problems, problems
        by_cerberus, _ = seconds(lambda: FleetValidator(fleet_schema(manager)).validate(document.data))
        fleet = Fleet(document=document, data=data)
        checks, _ = seconds(lambda: list(manager.hook.lettafleet_check(fleet=fleet)))
        total, _ = seconds(lambda: load_fleet(path, manager))
    return (
        f"{size:>6} agents: parse {parse:.2f} s, validate {validate:.2f} s (cerberus {by_cerberus:.2f} s, "
        f"{by_cerberus / validate:.0f}x), checks {checks:.2f} s; load_fleet {total:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated numbers of agents")
    for size in (int(size) for size in parser.parse_args().sizes.split(",")):
        print(measure(size), flush=True)


if __name__ == "__main__":
    main()
