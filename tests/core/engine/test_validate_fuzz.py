"""Fuzzing `validate`: whatever a fleet file is mutated into, validate exits 0 or 1 without a traceback, and every
error it prints is one `FILE:LINE:COL: ` line for that file.

CI runs a small, derandomized sample (a few seconds). A longer campaign: LETTAFLEET_FUZZ_EXAMPLES=3000 pytest THIS.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lettafleet.core.cli.app import main
from tests.docs_examples import example_fleets, write_named_files

SEED = Path(__file__).parents[2] / "fixtures" / "seed"
EXAMPLES = int(os.environ.get("LETTAFLEET_FUZZ_EXAMPLES", "60"))
SUMMARY = re.compile(r"\d+ errors?\.")

# Values that broke, or could break, parsing, conversion, file reading or the printing of errors.
TRICKY = [
    "9" * 5000,
    "-1",
    "0",
    "nan",
    ".inf",
    "1_000",
    "１２３",
    "3²",
    "2.5",
    "<<",
    "<<: {a: b}",
    '"a\\nb.yaml:1:1: fine"',
    '"\\x1b[2J"',
    '"\\u2028"',
    '"\\0"',
    "[" * 300 + "]" * 300,
    "{" * 60,
    "x" * 300,
    "../../outside.md",
    "/dev/zero",
    "/etc/hostname",
    "tools/*",
    "knowledge",
    "knowledge/faq.md",
    "&anchor x",
    "*anchor",
    "!!python/object:os.system",
    "[]",
    "{}",
    '""',
    "yes",
    "~",
    "- item",
    "key: value",
]
SCALAR = st.one_of(st.sampled_from(TRICKY), st.text(max_size=20))


@functools.cache
def seeds() -> list[tuple[str, str]]:
    """Fleets to mutate: the seed fixture and the docs' examples, each as (its text, where it comes from)."""
    seed = [((SEED / "fleet.yaml").read_text(encoding="utf-8"), "seed")]
    return seed + [(fleet, name) for name, fleet in example_fleets()]


@st.composite
def mutation(draw: st.DrawFn, lines: list[str]) -> list[str]:
    """One change to a fleet's lines: delete, duplicate, re-indent, insert, or replace a value."""
    lines = list(lines)
    at = draw(st.integers(0, max(len(lines) - 1, 0)))
    kind = draw(st.sampled_from(["delete", "duplicate", "indent", "insert", "replace"]))
    if not lines or kind == "insert":
        lines.insert(at, " " * draw(st.integers(0, 8)) + draw(SCALAR))
    elif kind == "delete":
        del lines[at]
    elif kind == "duplicate":
        lines.insert(at, lines[at])
    elif kind == "indent":
        lines[at] = " " * draw(st.integers(0, 10)) + lines[at].lstrip(" ")
    else:
        key, colon, _ = lines[at].partition(": ")
        value = draw(SCALAR)
        lines[at] = f"{key}: {value}" if colon else re.sub(r"\S.*", lambda _: value, lines[at], count=1)
    return lines


@st.composite
def mutated_fleet(draw: st.DrawFn) -> tuple[str, bytes]:
    text, origin = draw(st.sampled_from(seeds()))
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        lines = draw(mutation(lines))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if draw(st.booleans()) and draw(st.booleans()):  # sometimes raw bytes, which may not be UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return origin, data


def validate_in(folder: Path, origin: str, data: bytes) -> tuple[Path, object]:
    if origin == "seed":
        shutil.copytree(SEED, folder, dirs_exist_ok=True)
    else:
        write_named_files(dict(example_fleets())[origin], folder)  # the example's files, not the mutated text's
    path = folder / "fleet.yaml"
    path.write_bytes(data)
    return path, CliRunner().invoke(main, ["validate", str(path)])


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # the first example pays for loading the plugins
    derandomize=True,  # the same examples on every run, so CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_fleet())
def test_any_mutated_fleet_is_valid_or_gets_located_errors(fleet):
    origin, data = fleet
    with tempfile.TemporaryDirectory() as temporary:
        path, result = validate_in(Path(temporary), origin, data)

    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.stdout.startswith(f"{path}: valid (")
        return
    *errors, summary = result.stderr.splitlines()
    assert SUMMARY.fullmatch(summary)
    assert errors and all(re.match(rf"{re.escape(str(path))}:\d+:\d+: ", error) for error in errors), errors
