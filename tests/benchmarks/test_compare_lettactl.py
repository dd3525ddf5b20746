"""The lettactl comparison's fleet: fleet_benchmark's fleet, changed only where lettactl would otherwise refuse it
or build something else, so that both tools create the same thing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lettafleet.core.engine.validation import load_fleet

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import each other as siblings
    import compare_lettactl
    import fleet_benchmark

    return compare_lettactl, fleet_benchmark


def test_the_compared_fleet_differs_from_the_benchmark_fleet_only_where_lettactl_needs_it(
    benchmarks, manager, tmp_path
):
    compare_lettactl, fleet_benchmark = benchmarks
    original = load_fleet(fleet_benchmark.write_fleet(tmp_path / "original", 3), manager).data["agents"]
    compared = load_fleet(compare_lettactl.write_tool_fleet(tmp_path, 3, "cmp-lettactl-3-"), manager).data["agents"]

    assert [agent["name"] for agent in compared] == [
        "cmp-lettactl-3-0000",
        "cmp-lettactl-3-0001",
        "cmp-lettactl-3-0002",
    ]
    for before, after in zip(original, compared, strict=True):
        assert after["tools"] == []  # lettactl would attach web_search and fetch_webpage
        blocks = {block["name"]: block for block in after["memory_blocks"]}
        assert blocks["customer_context"]["value"] == "No customer yet."  # lettactl refuses an empty value
        unchanged = {key for key in before if key not in ("name", "memory_blocks")}
        assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}
        assert [{**block, "value": "-"} for block in after["memory_blocks"]] == [
            {**block, "value": "-"} for block in before["memory_blocks"]
        ]


def test_every_block_of_the_compared_fleet_says_agent_owned_as_lettactl_requires(benchmarks, tmp_path):
    compare_lettactl, _ = benchmarks
    text = compare_lettactl.write_tool_fleet(tmp_path, 2, "cmp-lettafleet-2-").read_text()
    block_lines = [line for line in text.splitlines() if line.startswith("      - {name: ")]
    assert len(block_lines) == 6
    assert all("agent_owned: " in line and 'value: ""' not in line for line in block_lines)
