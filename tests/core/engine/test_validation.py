"""Validation reports every problem at once, each as FILE:LINE:COL with how to fix it, and never a traceback."""

from __future__ import annotations

import pytest

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.validation import load_fleet

AGENT = """
agents:
  - name: support-agent
    description: "Support"
    llm_config:
      model: letta/letta-free
      context_window: 32000
    system_prompt:
      value: You help.
    embedding: letta/letta-free
"""


def errors_of(path, manager) -> list[str]:
    with pytest.raises(FleetError) as caught:
        load_fleet(path, manager)
    return [str(diagnostic) for diagnostic in caught.value.diagnostics]


def test_the_seed_fleet_file_validates_unchanged(seed_fleet, manager):
    fleet = load_fleet(seed_fleet, manager)
    agent = fleet.data["agents"][0]
    assert agent["name"] == "support-agent"
    assert agent["llm_config"]["context_window"] == 32000  # converted from strictyaml's string
    assert agent["memory_blocks"][0]["agent_owned"] is True
    assert agent["memory_blocks"][1]["agent_owned"] is True  # the default when omitted
    assert agent["conversations"][1]["isolated_blocks"] == ["customer_context"]


def test_a_broken_copy_of_the_seed_reports_every_error_with_its_line(seed_fleet, manager):
    text = seed_fleet.read_text()
    text = text.replace(
        '    description: "Multi-conversation support agent"\n',
        '    description: "Multi-conversation support agent"\n    colour: blue\n',
    )
    text = text.replace('limit: 2000\n        value: ""', 'limit: 5\n        value: "far too long"')
    text = text.replace("isolated_blocks: [customer_context]", "isolated_blocks: [customer_ctx]")
    seed_fleet.write_text(text)
    errors = errors_of(seed_fleet, manager)
    assert len(errors) == 3
    assert errors[0].startswith(f"{seed_fleet}:4:5: unknown key 'colour' in agents[0]")
    assert "allowed keys here:" in errors[0]
    assert errors[1].startswith(
        f"{seed_fleet}:23:9: block 'customer_context' value is 12 characters, over its limit of 5"
    )
    assert errors[2].startswith(f"{seed_fleet}:27:27: isolated block 'customer_ctx' is not a block of agent")


def test_bad_indentation_is_reported_at_its_line(seed_fleet, manager):
    lines = seed_fleet.read_text().splitlines()
    lines[2] = "   " + lines[2].lstrip()  # description now indented one column less than name
    seed_fleet.write_text("\n".join(lines) + "\n")
    [error] = errors_of(seed_fleet, manager)
    assert error.startswith(f"{seed_fleet}:3:")
    assert "invalid YAML" in error and "indentation" in error


def test_a_duplicate_key_is_reported_at_the_second_occurrence(write_fleet, manager):
    path = write_fleet(AGENT + "    embedding: letta/other\n")
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:10:")
    assert "Duplicate key 'embedding'" in error


def test_a_number_that_is_not_a_number_names_the_value(write_fleet, manager):
    path = write_fleet(AGENT.replace("context_window: 32000", "context_window: lots"))
    [error] = errors_of(path, manager)
    assert error == (
        f"{path}:6:7: agents[0].llm_config.context_window must be a whole number, got 'lots' "
        "(write a plain whole number in ASCII digits, such as 32000)"
    )


def test_missing_required_keys_are_named(write_fleet, manager):
    path = write_fleet(AGENT.replace("    system_prompt:\n      value: You help.\n", ""))
    [error] = errors_of(path, manager)
    assert "missing required key 'system_prompt' in agents[0]" in error


def test_value_and_from_file_together_are_refused(write_fleet, manager):
    path = write_fleet(
        AGENT.replace("      value: You help.", "      value: You help.\n      from_file: p.md"),
        files={"p.md": "prompt"},
    )
    errors = errors_of(path, manager)
    assert errors and all("either `from_file` or `value`, not both" in e for e in errors)


@pytest.mark.parametrize("reference", ["../outside.md", "/etc/hostname"])
def test_from_file_may_not_leave_the_fleet_directory(write_fleet, manager, reference):
    path = write_fleet(AGENT.replace("      value: You help.", f"      from_file: {reference}"))
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:8:7: from_file")
    assert reference in error


def test_from_file_that_does_not_exist_is_named(write_fleet, manager):
    path = write_fleet(AGENT.replace("      value: You help.", "      from_file: prompts/missing.md"))
    [error] = errors_of(path, manager)
    assert "from_file not found: prompts/missing.md" in error


def test_from_file_is_read_relative_to_the_fleet_file(write_fleet, manager):
    path = write_fleet(
        AGENT.replace("      value: You help.", "      from_file: prompts/p.md"), files={"prompts/p.md": "From a file."}
    )
    fleet = load_fleet(path, manager)
    assert fleet.text(fleet.data["agents"][0]["system_prompt"]) == "From a file."


def test_agent_names_must_be_unique(write_fleet, manager):
    second = AGENT.split("agents:\n", 1)[1]
    path = write_fleet(AGENT + second)
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:10:")  # the second agent's name
    assert "agent name 'support-agent' is used twice" in error


def test_a_shared_block_reference_must_exist(write_fleet, manager):
    path = write_fleet(AGENT + "    shared_blocks: [policies]\n")
    [error] = errors_of(path, manager)
    assert "shared block 'policies' is not declared under the top-level shared_blocks" in error


def test_a_conversation_summary_declared_twice_differently_is_an_error(write_fleet, manager):
    path = write_fleet(AGENT + '    conversations:\n      - summary: "A"\n      - {summary: "A", protect: true}\n')
    [error] = errors_of(path, manager)
    assert "conversation 'A' is declared twice for agent" in error and "differently" in error


def test_an_empty_file_gets_a_clear_error(write_fleet, manager):
    path = write_fleet("\n")
    [error] = errors_of(path, manager)
    assert error == f"{path}:1:1: the file is empty (a fleet file needs an `agents:` list)"


def test_a_missing_file_gets_a_clear_error(tmp_path, manager):
    [error] = errors_of(tmp_path / "nope.yaml", manager)
    assert "nope.yaml:1:1: file not found" in error


def test_nesting_deeper_than_a_fleet_needs_is_refused_at_its_line(write_fleet, manager):
    path = write_fleet(AGENT + "    tags: " + "[" * 245 + "]" * 245 + "\n")
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:10:")
    assert "nested more than 40 levels deep" in error


def test_deep_block_nesting_is_refused_too(write_fleet, manager):
    path = write_fleet(AGENT + "".join("  " * depth + f"k{depth}:\n" for depth in range(300)))
    [error] = errors_of(path, manager)
    assert "nested more than 40 levels deep" in error


@pytest.mark.parametrize(
    ("text", "place"),
    [
        (AGENT.replace("    embedding: letta/letta-free", "    <<: {embedding: letta/letta-free}"), "9:5"),
        ("<<: {colour: blue}\n" + AGENT.lstrip("\n"), "1:1"),  # at the top level it used to vanish
    ],
)
def test_yaml_merge_keys_are_refused_at_their_line(write_fleet, manager, text, place):
    path = write_fleet(text)
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:{place}: invalid YAML: merge keys (`<<`) are not supported")


def test_a_name_ending_in_a_newline_does_not_match_the_name_pattern(write_fleet, manager):
    path = write_fleet(AGENT.replace("name: support-agent", 'name: "support-agent\\n"'))
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:2:5: agents[0].name 'support-agent\\n' does not match")


def test_a_secret_name_ending_in_a_newline_is_refused(write_fleet, manager):
    path = write_fleet(AGENT + '    secrets:\n      "KEY\\n": {value: x}\n')
    errors = errors_of(path, manager)
    assert errors and all(error.startswith(f"{path}:11:") for error in errors)


ENDPOINT = "      model_endpoint_type: openai\n      temperature: {}\n"


@pytest.mark.parametrize("temperature", ["nan", "inf", "-inf", "1_0", "１", ".nan"])
def test_a_temperature_must_be_a_finite_ascii_number(write_fleet, manager, temperature):
    path = write_fleet(
        AGENT.replace("      context_window: 32000\n", "      context_window: 32000\n" + ENDPOINT.format(temperature))
    )
    [error] = errors_of(path, manager)
    assert error == (
        f"{path}:8:7: agents[0].llm_config.temperature must be a number, got '{temperature}' "
        "(write a plain finite number in ASCII digits, such as 0.7)"
    )


@pytest.mark.parametrize(
    ("temperature", "message"),
    [("2.5", "at most 2.0, got 2.5 (use 2.0 or less)"), ("-0.1", "at least 0.0, got -0.1 (use 0.0 or more)")],
)
def test_a_temperature_must_be_in_range(write_fleet, manager, temperature, message):
    path = write_fleet(
        AGENT.replace("      context_window: 32000\n", "      context_window: 32000\n" + ENDPOINT.format(temperature))
    )
    [error] = errors_of(path, manager)
    assert error == f"{path}:8:7: agents[0].llm_config.temperature must be {message}"


def test_a_temperature_in_range_is_read_as_a_number(write_fleet, manager):
    path = write_fleet(
        AGENT.replace("      context_window: 32000\n", "      context_window: 32000\n" + ENDPOINT.format("0.7"))
    )
    assert load_fleet(path, manager).data["agents"][0]["llm_config"]["temperature"] == 0.7


@pytest.mark.parametrize("number", ["３２０００", "3²000", "32_000", "9" * 5000])
def test_a_whole_number_is_ascii_digits_and_reported_once(write_fleet, manager, number):
    path = write_fleet(AGENT.replace("context_window: 32000", f"context_window: {number}"))
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:6:7: agents[0].llm_config.context_window must be a whole number, got ")


def test_a_value_with_a_newline_cannot_forge_an_error_line(write_fleet, manager):
    path = write_fleet(AGENT + '    tools: ["x\\n/etc/fleet.yaml:1:1: all good\\u001b[2J"]\n')
    [error] = errors_of(path, manager)
    assert "\n" not in error and "\x1b" not in error
    assert error.startswith(f"{path}:10:") and "x\\n/etc/fleet.yaml:1:1: all good\\x1b[2J" in error


def test_a_fleet_name_is_refused_at_its_line_with_what_it_may_hold(write_fleet, manager):
    [upper] = errors_of(write_fleet("fleet: Support Team\n" + AGENT), manager)
    assert ":1:1: fleet 'Support Team' does not match" in upper
    assert upper.endswith("(use only lower-case letters, digits, '_', '.' and '-', with no spaces or line breaks)")
    [long] = errors_of(write_fleet(f"fleet: {'a' * 64}\n" + AGENT), manager)
    assert ":1:1: fleet must be at most 63 characters long, got 64 (shorten it)" in long


def test_a_mapping_where_a_list_of_entries_belongs_is_an_error_at_its_line_not_a_traceback(write_fleet, manager):
    # Its keys (`type`) are names of the item rules, which cerberus once took for the mapping's own fields.
    path = write_fleet("mcp_servers:\n    type: streamable_http\n    server_url: https://mcp.example.com/mcp\n" + AGENT)
    [error] = errors_of(path, manager)
    assert error.startswith(f"{path}:1:1: mcp_servers must be a list")


@pytest.mark.parametrize("agents", ["{type: x, empty: true}", "support-agent", "[[a]]"])
def test_agents_written_in_a_wrong_shape_is_one_error_not_also_a_missing_agents_key(write_fleet, manager, agents):
    [error] = errors_of(write_fleet(f"agents: {agents}\n"), manager)
    assert ":1:" in error and "declares no" not in error
