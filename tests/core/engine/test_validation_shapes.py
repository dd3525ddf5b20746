"""Wrong shapes at every place the schema describes: each is one located error that says what to write, never a
traceback, and a value written under a key that holds secrets is never shown."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.plugin_manager import fleet_schema, get_plugin_manager
from lettafleet.core.engine.validation import load_fleet
from tests.fleet_shapes import A_KEY, RULE_NAMES, as_yaml, describe, document_with, keys_of_type, secret_keys

SCHEMA = fleet_schema(get_plugin_manager())
LIST_KEYS = list(keys_of_type(SCHEMA, "list"))
MAPPING_KEYS = list(keys_of_type(SCHEMA, "dict"))
SECRET_KEYS = list(secret_keys(SCHEMA))
SECRET = "sk-live-4f9c2a7b1e8d"
# A secret written in every wrong shape: where a mapping belongs, as a mapping's text, in a list, as a number.
SECRET_SHAPES = [SECRET, {"from_env": SECRET}, {"value": [SECRET]}, [SECRET], {A_KEY: SECRET}, {A_KEY: [SECRET]}]


def named(path) -> str:
    """How messages name a path: a name chosen inside a key that holds secrets is not shown."""
    return describe(path).replace(A_KEY, "<name>")


def diagnostics_of(path, manager) -> list:
    with pytest.raises(FleetError) as caught:
        load_fleet(path, manager)
    return caught.value.diagnostics


def test_the_shapes_cover_every_kind_of_list_mapping_and_secret():
    assert ("agents",) in LIST_KEYS and ("agents", 0, "folders", 0, "files") in LIST_KEYS
    assert ("agents", 0, "llm_config") in MAPPING_KEYS
    assert {("global-secrets",), ("agents", 0, "secrets"), ("providers", 0, "api_key")} <= set(SECRET_KEYS)
    assert {("mcp_servers", 0, "custom_headers"), ("mcp_servers", 0, "env")} <= set(SECRET_KEYS)


@pytest.mark.parametrize("path", LIST_KEYS, ids=describe)
def test_a_list_key_given_a_mapping_of_rule_names_is_one_error_at_its_line(write_fleet, manager, path):
    fleet = write_fleet(as_yaml(document_with(path, dict.fromkeys(RULE_NAMES, "x"))))
    errors = [d for d in diagnostics_of(fleet, manager) if d.message.startswith(named(path) + " ")]
    assert [error.message for error in errors] == [f"{named(path)} must be a list, got a mapping"]
    assert errors[0].hint.startswith("write a list")


@pytest.mark.parametrize("path", LIST_KEYS, ids=describe)
def test_a_list_key_given_text_is_one_error_that_says_what_to_write(write_fleet, manager, path):
    fleet = write_fleet(as_yaml(document_with(path, "type")))
    errors = [d for d in diagnostics_of(fleet, manager) if d.message.startswith(named(path) + " ")]
    assert [error.message for error in errors] == [f"{named(path)} must be a list, got 'type'"]
    assert errors[0].hint.startswith("write a list")


@pytest.mark.parametrize("path", MAPPING_KEYS, ids=describe)
def test_a_mapping_key_given_a_list_of_rule_names_is_an_error_at_its_line(write_fleet, manager, path):
    fleet = write_fleet(as_yaml(document_with(path, [{name: "x"} for name in RULE_NAMES])))
    errors = [d for d in diagnostics_of(fleet, manager) if d.message.startswith(named(path) + " ")]
    [error] = errors
    assert error.message.startswith(f"{named(path)} must be ") and error.message.endswith("a mapping, got a list")
    assert "write a mapping" in error.hint


@pytest.mark.parametrize("shape", SECRET_SHAPES, ids=repr)
@pytest.mark.parametrize("path", SECRET_KEYS, ids=describe)
def test_a_secret_in_a_wrong_shape_is_never_shown(write_fleet, manager, path, shape):
    errors = diagnostics_of(write_fleet(as_yaml(document_with(path, shape))), manager)
    assert errors and all(error.hint for error in errors)
    for part in ("sk-live", "4f9c2a7b", "1e8d"):
        assert not any(part in f"{error} {error.hint}" for error in errors), errors


def test_a_secret_pasted_as_a_name_of_secrets_is_not_shown(write_fleet, manager):
    errors = diagnostics_of(write_fleet(as_yaml(document_with(("global-secrets", SECRET), {"value": "x"}))), manager)
    assert [error.message for error in errors if "global-secrets" in error.message] == [
        "a key of global-secrets does not match ^[A-Za-z_][A-Za-z0-9_]*$"
    ]
    assert SECRET not in str(errors)


def test_a_value_refused_by_the_schema_is_not_checked_again(write_fleet, manager):
    path = write_fleet(
        """
        agents:
          - name: a
            llm_config: {model: m}
            system_prompt: {value: v}
            memory_blocks:
              - {name: b, value: some text, limit: -1}
        """
    )
    [error] = diagnostics_of(path, manager)
    assert error.message == "agents[0].memory_blocks[0].limit must be at least 1, got -1"


def test_a_value_that_fits_no_choice_of_an_anyof_is_one_error_naming_the_choices(write_fleet, manager):
    path = write_fleet(
        """
        mcp_servers: [{name: s, type: sse, server_url: "http://localhost:1"}]
        agents:
          - name: a
            llm_config: {model: m}
            system_prompt: {value: v}
            mcp_tools: [{server: s, tools: 5}]
        """
    )
    [error] = diagnostics_of(path, manager)
    assert error.message == "agents[0].mcp_tools[0].tools must be `all` or a list of text, got '5'"


def test_a_source_missing_both_of_its_choices_is_one_error(write_fleet, manager):
    path = write_fleet(
        """
        providers: [{name: p, provider_type: openai, api_key: {}}]
        agents: [{name: a, llm_config: {model: m}, system_prompt: {value: v}}]
        """
    )
    [error] = diagnostics_of(path, manager)
    assert error.line == 1
    assert error.message == "missing required key in providers[0].api_key: give `from_env:` or `value:`"


@pytest.mark.parametrize("place", ["global-secrets", "mcp_servers"])
def test_a_secret_pasted_as_a_name_that_looks_like_one_is_not_shown(write_fleet, manager, place):
    token = "ghp_4f9c2a7b1e8dAAAA"  # a valid name for a secret or a header
    path = ("global-secrets", token) if place == "global-secrets" else ("mcp_servers", 0, "env", token)
    errors = diagnostics_of(write_fleet(as_yaml(document_with(path, [token]))), manager)
    assert errors and token not in str(errors) and "4f9c2a7b" not in str(errors)


def test_two_keys_that_exclude_each_other_are_one_error_at_the_later(write_fleet, manager):
    path = write_fleet(
        """
        agents:
          - name: a
            llm_config: {model: m}
            system_prompt: {value: v, from_file: prompt.md}
        """
    )
    [error] = diagnostics_of(path, manager)
    assert (error.line, error.column) == (4, 31)
    assert error.message == "agents[0].system_prompt: give either `from_file` or `value`, not both"


def test_a_refused_source_beside_another_is_one_error_the_refusal(write_fleet, manager):
    path = write_fleet(
        """
        agents:
          - name: a
            llm_config: {model: m}
            system_prompt: {value: v, from_bucket: {bucket: b, path: p}}
        """
    )
    [error] = diagnostics_of(path, manager)
    assert error.message.startswith("agents[0].system_prompt.from_bucket is not supported")
