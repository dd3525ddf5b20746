"""Fuzzing `validate`: whatever a fleet file is mutated into, validate exits 0 or 1 without a traceback, and every
error it prints is one `FILE:LINE:COL: ` line for that file.

CI runs a small, derandomized sample (a few seconds). A longer campaign: LETTAFLEET_FUZZ_EXAMPLES=3000 pytest THIS,
or, counting every outcome rather than stopping at the first failure, benchmarks/fuzz_validate.py.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lettafleet.core.cli.app import main
from lettafleet.core.engine.planning import desired_resources
from lettafleet.core.engine.plugin_manager import fleet_schema, get_plugin_manager
from lettafleet.core.engine.validation import load_fleet
from tests.docs_examples import example_fleets, write_named_files
from tests.fleet_shapes import A_KEY, RULE_NAMES, keys_of_type, placed, secret_keys

SEED = Path(__file__).parents[2] / "fixtures" / "seed"
EXAMPLES = int(os.environ.get("LETTAFLEET_FUZZ_EXAMPLES", "60"))
HANG_SECONDS = 20  # far more than any fleet file takes: a validate that runs longer hangs
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
    '"\\ud800"',
    '"knowledge/\\udc80.md"',
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


@dataclass(frozen=True)
class Case:
    """One generated fleet: its bytes, the files written beside it, and the secret it holds, if any."""

    family: str  # which strategy made it: "mutated", "wrong shape", "secret", "tool source"
    origin: str
    data: bytes
    files: dict[str, str] = field(default_factory=dict)
    secret: str | None = None
    memory_tree: bool = False  # the folders, links and outside sentinel a `memory:` section's paths point at


SCHEMA = fleet_schema(get_plugin_manager())
LIST_KEYS = list(keys_of_type(SCHEMA, "list"))
MAPPING_KEYS = list(keys_of_type(SCHEMA, "dict"))
SECRET_KEYS = list(secret_keys(SCHEMA))
# A secret's tail is looked for in the output: it ends with a capital and a digit, so that no word validate prints
# ("conversation", of "2 conversations") passes for it.
TOKEN = st.builds(
    lambda body, capital, digit: body + capital + digit,
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=10, max_size=22),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.sampled_from("0123456789"),
)
# Sources Python's parser fails on with more than a SyntaxError (RecursionError, MemoryError, "line None").
PATHOLOGICAL = st.one_of(
    st.integers(200, 120_000).map(lambda depth: "-" * depth + "x"),
    st.integers(200, 150_000).map(lambda length: "x+" * length + "x"),
    st.integers(50, 3_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(50, 3_000).map(lambda depth: "f(" * depth + ")" * depth),
    st.integers(20, 200).map(lambda depth: nested_blocks(depth)),
    st.integers(1, 60_000).map(lambda lines: "x\n" + "    y = 1\n" * lines),  # long, and valid
    st.sampled_from(["\0", "x\0y", '"""\0"""', "def f():\n    return '\0'"]),
    st.sampled_from(["'\udc80'", "x\ud800", "# \udfff"]),  # a lone surrogate: YAML's "\udc80" writes one
)


@st.composite
def mutated_fleet(draw: st.DrawFn) -> Case:
    text, origin = draw(st.sampled_from(seeds()))
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        lines = draw(mutation(lines))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if draw(st.booleans()) and draw(st.booleans()):  # sometimes raw bytes, which may not be UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return Case("mutated", origin, data)


@st.composite
def wrong_shape(draw: st.DrawFn) -> Case:
    """A list key given a mapping (of cerberus's rule names, often) or a scalar; a mapping key given a list."""
    key = st.one_of(st.sampled_from(RULE_NAMES), st.text(max_size=8))
    mapping = st.dictionaries(key, st.one_of(SCALAR, st.lists(SCALAR, max_size=2)), min_size=1, max_size=4)
    if draw(st.booleans()):
        path, value = draw(st.sampled_from(LIST_KEYS)), draw(st.one_of(mapping, SCALAR))
    else:
        path, value = draw(st.sampled_from(MAPPING_KEYS)), draw(st.one_of(st.lists(mapping, max_size=2), SCALAR))
    return seed_case("wrong shape", path, value)


@st.composite
def secret_in_wrong_shape(draw: st.DrawFn) -> Case:
    """A secret value (some look like variable names) written where a secret goes, in any shape but the right one,
    or pasted where a variable's name or a key belongs."""
    secret = draw(st.sampled_from(["sk-live-", "ghp_", "xoxb-", "AKIA"])) + draw(TOKEN)
    shapes = [
        secret,
        [secret],
        {"from_env": secret},
        {"value": [secret]},
        {"value": {"nested": secret}},
        {"from_env": secret, "value": secret},
        {A_KEY: secret},
        {A_KEY: [secret]},
        {A_KEY: {"from_env": secret}},
        {secret: {"value": "x"}},
        {secret: secret},
    ]
    return seed_case("secret", draw(st.sampled_from(SECRET_KEYS)), draw(st.sampled_from(shapes)), secret=secret)


@st.composite
def pathological_tool(draw: st.DrawFn) -> Case:
    """A tool whose Python is nested deeply, very long, or holds a NUL or a lone surrogate, inline or in a file under
    tools/ (a surrogate only inline: a file holds UTF-8)."""
    source = "def deep(x):\n    return " + draw(PATHOLOGICAL) + "\n"
    where = draw(st.sampled_from(["source_code", "tools/deep.py", "tools/*"]))
    if where == "source_code" or not _encodes(source):  # a file holds only UTF-8
        return seed_case("tool source", ("agents", 0, "tools"), [{"name": "deep", "source_code": source}])
    entry = "deep" if where == "tools/deep.py" else "tools/*"
    return replace(seed_case("tool source", ("agents", 0, "tools"), [entry]), files={"tools/deep.py": source})


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# What no file or resource may ever hold: the text of files outside the fleet's folder, reached by `..`, an
# absolute path (OUTSIDE is replaced by the outside folder's path), or links at any depth.
SENTINEL = "SENTINEL-outside-the-fleet-folder-Q7"
OUTSIDE = "@OUTSIDE@"
MEMORY_PATHS = [
    "../outside/sentinel.md",
    "../outside",
    f"{OUTSIDE}/sentinel.md",
    OUTSIDE,
    "link-out",  # a link to the outside folder
    "link-out/sentinel.md",
    "sentinel-link.md",  # a link to the outside file
    "tpl",
    "tpl/",
    "tpl/leak.md",  # a link inside the template folder, to the outside file
    "tpl/deep",  # holds a link to the outside folder, one level down
    "tpl-link",  # a template folder that is itself a link, leading out
    "tpl-inner-link",  # a link to tpl, inside the fleet's folder
    "skills/good",
    "skills/leak",  # a skill folder that is a link, leading out (the outside folder holds a SKILL.md)
    "big.md",  # over the size a referenced file may have
    "latin1.md",  # not UTF-8
    "notes.md",
    "system/a.md",
    "system/MEMORY.md",
    "MEMORY.md",
    ".git/config",
    ".git",
    "./a.md",
    "a//b.md",
    "a.md/",
    "a\nb.md",
    "~/a.md",
    "",
    ".",
    "tpl/loop",
]
MEMORY_PATH = st.one_of(st.sampled_from(MEMORY_PATHS), SCALAR)


def usually(plausible: list[str]) -> st.SearchStrategy[str]:
    """Mostly one of `plausible` (so that the rest of the section can be valid and what it reads is planned), else
    any memory path or scalar."""
    return st.one_of(st.sampled_from(plausible), st.sampled_from(plausible), st.sampled_from(plausible), MEMORY_PATH)
    # (hypothesis leans on the first branch of one_of and the first item of sampled_from: the plausible ones)


# Each list mixes what is fine with what leads out, by link or by path, so that a valid section shows what it read.
SOURCE_PATHS = [
    *("notes.md", "sentinel-link.md", "link-out/sentinel.md", "tpl/leak.md", "tpl-inner-link/a.md"),
    *("tpl/deep/out/sentinel.md", "tpl-link/sentinel.md", "tpl-inner-link/leak.md", "big.md", "latin1.md"),
]
FOLDER_PATHS = ["tpl", "tpl-inner-link", "tpl/deep", "tpl-link", "link-out", "tpl/deep/out", "tpl-inner-link/deep"]
SKILL_PATHS = ["skills/good", "skills/leak", "link-out", "tpl-link", "tpl/deep/out", "tpl-inner-link/deep"]
TARGETS = usually(["notes/a.md", "x.md", "skills-like/y.md", "deep/er/z.md"])
SOURCES = usually(SOURCE_PATHS)
FOLDERS = usually(FOLDER_PATHS)
SKILL_FOLDERS = usually(SKILL_PATHS)
VAR_NAME = st.one_of(
    st.sampled_from(["TEAM", "A_1", "team", "A-B", "{{X}}", "", " ", "__proto__", "\u2028", "X" * 300]),
    st.text(max_size=6),
)


@st.composite
def memory_section(draw: st.DrawFn) -> Case:
    """The seed's first agent with a `memory:` section of valid and hostile shapes: paths out of the folder by `..`,
    absolute or through links at any depth, a `to` into `.git` or out of the memory, huge or non-UTF-8 files,
    template_vars of odd names, keys of the wrong shape. One to three keys each, so that many are valid and show
    what they read."""
    file_entry = st.fixed_dictionaries(
        {"to": TARGETS},
        optional={
            "template_vars": st.dictionaries(VAR_NAME, st.one_of(SCALAR, st.lists(SCALAR, max_size=1)), max_size=3)
        },
    )
    source = st.one_of(st.fixed_dictionaries({"from_file": SOURCES}), st.fixed_dictionaries({"value": st.text()}))
    files = st.builds(lambda entry, text: {**entry, **text}, file_entry, source)
    skill = st.fixed_dictionaries({"from_dir": SKILL_FOLDERS}, optional={"name": usually(["triage", "leak"])})
    block = st.fixed_dictionaries(
        {"block": st.sampled_from(["persona", "nope"]), "to": TARGETS},
        optional={"extract_section": st.one_of(st.just("Refunds"), SCALAR)},
    )
    keys = {
        "files": st.lists(st.one_of(files, files, files, SCALAR), min_size=1, max_size=3),
        "template_dir": FOLDERS,
        "capability_index_file": usually(["MEMORY.md", "a.md", "leak.md", "deep/out/sentinel.md"]),
        "skills": st.lists(skill, min_size=1, max_size=2),
        "from_blocks": st.lists(block, min_size=1, max_size=2),
        "prune_paths": st.lists(usually(["old.md", "system/old.md"]), max_size=3),
        "preserve_existing_paths": st.lists(TARGETS, max_size=3),
        "verify": st.one_of(st.just({"smoke_prompt": "hi"}), SCALAR),
        "bare_repo": st.one_of(st.just("auto"), SCALAR),
        "unknown": SCALAR,
    }
    source_key = draw(st.sampled_from(["files", "files", "template_dir", "template_dir", "skills", "from_blocks"]))
    chosen = [source_key, *draw(st.lists(st.sampled_from(sorted(keys)), max_size=2, unique=True))]
    section = {"mode": draw(st.one_of(st.just("memfs"), st.just("memfs"), st.sampled_from(["blocks", "git"])))}
    section |= {key: draw(keys[key]) for key in chosen}
    wrong_shape = draw(st.integers(0, 9)) == 9
    value = draw(st.one_of(SCALAR, st.lists(SCALAR, max_size=2))) if wrong_shape else section
    return replace(seed_case("memory", ("agents", 0, "memory"), value), memory_tree=True)


def write_memory_tree(folder: Path, outside: Path) -> None:
    """Beside the fleet: a template folder, a skill, a huge and a non-UTF-8 file, and links out of the folder at
    every depth; outside it, files holding SENTINEL."""
    for relative in ("sentinel.md", "SKILL.md", "system/a.md", "MEMORY.md"):
        (outside / relative).parent.mkdir(parents=True, exist_ok=True)
        (outside / relative).write_text(f"{SENTINEL}\n", encoding="utf-8")
    texts = {"tpl/a.md": "a", "tpl/system/x.md": "x", "tpl/MEMORY.md": "# i", "skills/good/SKILL.md": "s"}
    for relative, text in {**texts, "notes.md": "n", "tpl/deep/ok.md": "ok"}.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    (folder / "big.md").write_bytes(b"x" * (1024 * 1024 + 1))
    (folder / "latin1.md").write_bytes("caf\u00e9".encode("latin-1"))
    links = {
        "link-out": outside,
        "sentinel-link.md": outside / "sentinel.md",
        "tpl/leak.md": outside / "sentinel.md",
        "tpl/deep/out": outside,
        "tpl-link": outside,
        "tpl-inner-link": folder / "tpl",
        "skills/leak": outside,
        "tpl/loop": Path("."),
    }
    for relative, target in links.items():
        os.symlink(target, folder / relative)


def seed_case(family: str, path: tuple[str | int, ...], value: object, secret: str | None = None) -> Case:
    """The seed fleet with `value` at `path` (the lists and mappings on the way made where it has none)."""
    data = placed(yaml.safe_load((SEED / "fleet.yaml").read_text(encoding="utf-8")), path, value)
    text = json.dumps(data, indent=1) if "\0" in json.dumps(value) else yaml.safe_dump(data, sort_keys=False)
    return Case(family, "seed", text.encode("utf-8"), secret=secret)


def nested_blocks(depth: int) -> str:
    """`if x:` inside `if x:`, `depth` times."""
    return "x\n" + "".join(f"    {' ' * level}if x:\n" for level in range(depth)) + "    " + " " * depth + "pass"


def validate_in(folder: Path, case: Case, *options: str) -> tuple[Path, object]:
    if case.origin == "seed":
        shutil.copytree(SEED, folder, dirs_exist_ok=True)
    else:
        write_named_files(dict(example_fleets())[case.origin], folder)  # the example's files, not the mutated text's
    for relative, text in case.files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    data = case.data
    if case.memory_tree:
        outside = folder.parent / "outside"
        if not outside.exists():
            outside.mkdir()
            write_memory_tree(folder, outside)
        data = data.replace(OUTSIDE.encode(), str(outside).encode())
    path = folder / "fleet.yaml"
    path.write_bytes(data)
    return path, within_time(lambda: CliRunner().invoke(main, ["validate", *options, str(path)]))


class Hang(Exception):
    """validate took longer than any fleet file may take."""


def within_time(run: Callable[[], Result]) -> Result:
    """`run()`, stopped with Hang after HANG_SECONDS (which click's runner would otherwise keep as the command's
    exception, a traceback rather than a hang)."""

    def stop(signum: int, frame: object) -> None:
        raise Hang(f"validate ran more than {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(HANG_SECONDS)
    try:
        result = run()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, Hang):
        raise result.exception
    return result


CASES = st.one_of(mutated_fleet(), wrong_shape(), secret_in_wrong_shape(), pathological_tool(), memory_section())


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # the first example pays for loading the plugins
    derandomize=True,  # the same examples on every run, so CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(CASES)
def test_any_mutated_fleet_is_valid_or_gets_located_errors(case):
    assert failures(case) == []


def declared_text(path: Path) -> str:
    """Everything the valid fleet at `path` declares, every resource's attributes and state, as one text."""
    manager = get_plugin_manager()
    return repr(desired_resources(load_fleet(path, manager), manager))


def failures(case: Case) -> list[str]:
    """What is wrong with validate's answers (text, and JSON when the case holds a secret) to a case: nothing, for
    "valid" or for errors each at FILE:LINE:COL with a hint. Raises Hang when validate does not finish."""
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "fleet"
        folder.mkdir()
        path, result = validate_in(folder, case)
        outputs = [result.output]
        if case.secret:
            outputs.append(validate_in(folder, case, "-o", "json")[1].output)
        declared = declared_text(path) if case.memory_tree and result.exit_code == 0 else ""
    found = []
    if SENTINEL in result.output or SENTINEL in declared:
        found.append(f"a file outside the fleet's folder was read: {result.output} {declared}")
    if not (result.exception is None or isinstance(result.exception, SystemExit)) or "Traceback" in result.output:
        found.append(f"traceback: {result.exc_info}")
    if case.secret and any(case.secret in output or case.secret[-12:] in output for output in outputs):
        found.append(f"secret shown: {outputs}")
    if result.exit_code == 0:
        said_valid = result.stdout.startswith(f"{path}: valid (")
        return found if said_valid else [*found, f"exit 0 without 'valid': {result.output}"]
    if result.exit_code != 1:
        return [*found, f"exit code {result.exit_code}: {result.output}"]
    lines = result.stderr.splitlines()
    errors, summary = lines[:-1], lines[-1] if lines else ""
    located = re.compile(rf"{re.escape(str(path))}:\d+:\d+: ")
    if not SUMMARY.fullmatch(summary) or not errors or not all(located.match(error) for error in errors):
        found.append(f"not located: {result.stderr}")
    if "line None" in result.output or not all(error.endswith(")") for error in errors):  # (hint): what to do
        found.append(f"no line or no hint: {result.stderr}")
    return found


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(memory_section())
def test_any_memory_section_is_valid_or_gets_located_errors_and_nothing_outside_the_folder_is_read(case):
    assert failures(case) == []


@pytest.mark.parametrize(
    "section",
    [{"files": [{"to": "a.md", "from_file": path}]} for path in [*SOURCE_PATHS, f"{OUTSIDE}/sentinel.md"]]
    + [{"template_dir": path} for path in [*FOLDER_PATHS, OUTSIDE, "../outside"]]
    + [{"template_dir": "tpl", "capability_index_file": path} for path in ("leak.md", "deep/out/sentinel.md")]
    + [{"skills": [{"from_dir": path, "name": "s"}]} for path in [*SKILL_PATHS, OUTSIDE, "../outside"]],
    ids=repr,
)
def test_no_path_or_link_at_any_depth_reads_a_file_outside_the_fleet_folder(section):
    """Every way out (`..`, absolute, a link as the folder, a link inside it at any depth, a link in the path) is
    refused at its line or skipped: the outside files' text is in no output and no declared resource."""
    case = replace(seed_case("memory", ("agents", 0, "memory"), {"mode": "memfs", **section}), memory_tree=True)
    assert failures(case) == []
