"""The compiled schema gives cerberus's answer: for every fleet the repository holds, and for many mutations of
them, it finds valid exactly the documents cerberus finds valid, normalised to the same data (the same conversions,
defaults and key order); and a schema it does not mirror leaves every document to cerberus."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fleet_benchmark import write_fleet as write_benchmark_fleet
from lettafleet.core import hookimpl
from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.document import parse_document
from lettafleet.core.engine.kinds import SchemaFragment, mapping_list, string
from lettafleet.core.engine.plugin_manager import get_plugin_manager
from lettafleet.core.engine.validation import FleetValidator, compiled_schema, load_fleet
from tests.docs_examples import example_fleets

ROOT = Path(__file__).parents[3]
MANAGER = get_plugin_manager()
COMPILED = compiled_schema(MANAGER)


def repository_fleets() -> list[tuple[str, str]]:
    """(name, text) of every fleet file of the tests, the docs and the examples, and of the benchmark's fleet."""
    files = [ROOT / "tests" / "fixtures" / "seed" / "fleet.yaml", *sorted((ROOT / "examples").glob("*.yaml"))]
    fleets = [(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")) for path in files]
    return fleets + example_fleets() + benchmark_fleets()


def benchmark_fleets() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as folder:
        return [
            (
                f"benchmark, tools and secrets {extras}",
                write_benchmark_fleet(Path(folder), 3, tools_and_secrets=extras).read_text(),
            )
            for extras in (False, True)
        ]


FLEETS = repository_fleets()
DOCUMENTS = [parse_document(text, Path("fleet.yaml")).data for _, text in FLEETS]


def cerberus_answer(data: dict[str, Any]) -> str | None:
    """cerberus's normalised document (as JSON, which keeps key order and tells 1 from 1.0 and True), or None."""
    validator = FleetValidator(MANAGER.schema)
    return json.dumps(validator.document) if validator.validate(copy.deepcopy(data)) else None


def compiled_answer(data: dict[str, Any]) -> str | None:
    assert COMPILED is not None
    before = copy.deepcopy(data)
    normalised = COMPILED(data)
    assert data == before, "the compiled schema changed the document it checked"
    return None if normalised is None else json.dumps(normalised)


def test_the_built_in_plugins_schema_is_compiled():
    assert COMPILED is not None


@pytest.mark.parametrize("data", DOCUMENTS, ids=[name for name, _ in FLEETS])
def test_every_fleet_of_the_repository_is_normalised_as_cerberus_does(data):
    expected = cerberus_answer(data)
    assert expected is not None  # the repository's fleets are valid
    assert compiled_answer(data) == expected


# Values that a fleet file may hold where another is expected: strictyaml leaves every scalar a string.
TRICKY = [
    "",
    " ",
    "12",
    " 12 ",
    "-3",
    "0",
    "1.5",
    ".5",
    "1e3",
    "nan",
    "inf",
    "1_000",
    "１２",
    "999",
    "2.5",
    "true",
    "True",
    "TRUE",
    " yes ",
    "Yes",
    "on",
    "ON",
    "false",
    "No",
    "off",
    "y",
    "n",
    "all",
    "sse",
    "memfs",
    "blocks",
    "sliding_window",
    "name-with-dash",
    "UPPER_name",
    "has space",
    "a\n",
    "x" * 70,
    None,
    [],
    ["a"],
    [""],
    ["a", {"b": "c"}],
    {},
    {"value": "v"},
    {"from_env": "X"},
    {"from_file": "f.md"},
    {"name": "n", "value": "v"},
    {"model": "m"},
    {"mode": "blocks"},
]


def schema_keys(rules: Any) -> set[str]:
    """Every key name the schema declares, at any depth."""
    found: set[str] = set()
    if isinstance(rules, dict):
        for name, value in rules.items():
            if isinstance(value, dict) and name not in ("schema", "keysrules", "valuesrules"):
                found.add(name)
            found |= schema_keys(value)
    elif isinstance(rules, list):
        for value in rules:
            found |= schema_keys(value)
    return found


KEYS = sorted(schema_keys(MANAGER.schema) | {"unknown_key", "from_bucket", "lettabot", "model_settings"})


def places(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value inside `data`."""
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += places(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += places(value, (*path, index))
    return found


def parent_and_key(data: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    for part in path[:-1]:
        data = data[part]
    return data, path[-1]


@st.composite
def mutated_document(draw: st.DrawFn) -> dict[str, Any]:
    """A repository fleet with one to four changes: a value replaced, a key removed, a key added (known or not,
    refused, or one that excludes a key given), a list item repeated."""
    data = copy.deepcopy(draw(st.sampled_from(DOCUMENTS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        path = draw(st.sampled_from(places(data)[1:]))
        parent, key = parent_and_key(data, path)
        change = draw(st.sampled_from(["replace", "remove", "add", "add", "repeat"]))
        if change == "replace":
            parent[key] = copy.deepcopy(draw(st.sampled_from(TRICKY)))
        elif change == "remove":
            del parent[key]
        elif change == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.sampled_from(KEYS))] = copy.deepcopy(draw(st.sampled_from(TRICKY)))
        elif change == "repeat" and isinstance(parent[key], list) and parent[key]:
            parent[key].append(copy.deepcopy(parent[key][0]))
    return data


@settings(
    max_examples=800,
    deadline=None,
    derandomize=True,  # the same documents on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_document())
def test_any_mutated_fleet_gets_cerberus_s_verdict_and_normalised_document(data):
    assert compiled_answer(data) == cerberus_answer(data)


class ForbiddingPlugin:
    """A third-party plugin whose schema uses a cerberus rule the compiler does not mirror (`forbidden`)."""

    @hookimpl
    def lettafleet_schema(self):
        rules = {"name": string(required=True, forbidden=["admin"])}
        return [SchemaFragment({"teams": mapping_list(rules)})]


def test_a_schema_with_a_rule_the_compiler_does_not_know_is_left_to_cerberus(write_fleet):
    manager = get_plugin_manager(extra_plugins=[ForbiddingPlugin()])
    head = "agents:\n  - name: a\n    llm_config: {model: m}\n    system_prompt: {value: v}\n"
    assert compiled_schema(manager) is None
    assert load_fleet(write_fleet(head + "teams:\n  - name: support\n"), manager).data["teams"] == [{"name": "support"}]
    with pytest.raises(FleetError) as refused:
        load_fleet(write_fleet(head + "teams:\n  - name: admin\n"), manager)
    assert [(d.line, d.column) for d in refused.value.diagnostics] == [(6, 5)]
    assert "unallowed value admin" in refused.value.diagnostics[0].message


def test_a_manager_s_schema_is_compiled_once():
    manager = get_plugin_manager()
    assert compiled_schema(manager) is compiled_schema(manager)


SEED = DOCUMENTS[0]
# Values at single places that the mutations above reach rarely: the whole value must match a pattern (a final
# newline does not), `empty: False` refuses an empty string but not a missing key, a null where a value is due.
EDGES = [
    (("fleet",), "support\n"),
    (("fleet",), "Support"),
    (("fleet",), "support"),
    (("fleet",), ""),
    (("fleet",), None),
    (("agents", 0, "name"), "bot\n"),
    (("agents", 0, "name"), ""),
    (("agents", 0, "name"), None),
    (("agents", 0, "description"), ""),
    (("agents", 0, "description"), None),
    (("agents", 0, "llm_config", "model"), ""),
    (("agents", 0, "llm_config", "context_window"), None),
    (("prune",), None),
    (("from_bucket",), None),
    (("agents", 0, "lettabot"), None),
]


@pytest.mark.parametrize(("path", "value"), EDGES, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v in EDGES])
def test_edge_values_get_cerberus_s_verdict(path, value):
    data = copy.deepcopy(SEED)
    parent, key = parent_and_key(data, path)
    parent[key] = value
    assert compiled_answer(data) == cerberus_answer(data)
