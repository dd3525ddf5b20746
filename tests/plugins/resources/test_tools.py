"""Tools in a fleet file, offline: how lettactl's `tools:` entries are read, and what is refused before any
request because Letta would refuse it or name the tool differently. Then against a fake Letta (respx): tools
defined from source, attached by name, never detached."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.planning import desired_resources
from lettafleet.core.engine.validation import load_fleet

AGENT = """
agents:
  - name: support
    llm_config: {model: letta/letta-free}
    system_prompt: {value: You help.}
    tools:
"""


def tool_source(name: str, *, before: str = "", docstring: bool = True) -> str:
    doc = '    """Do it.\n\n    Args:\n        x: what to do it to.\n    """\n' if docstring else ""
    return before + f"def {name}(x: str) -> str:\n{doc}    return x\n"


def fleet_with(write_fleet, tools: str, files: dict[str, str] | None = None, extra: str = ""):
    return write_fleet(
        AGENT + textwrap.indent(textwrap.dedent(tools).strip("\n"), "      ") + "\n" + extra, files=files
    )


def errors_of(path, manager) -> list[str]:
    with pytest.raises(FleetError) as raised:
        load_fleet(path, manager)
    return [str(diagnostic) for diagnostic in raised.value.diagnostics]


def test_names_the_tools_folder_and_definitions_become_tools_and_attachments(write_fleet, manager):
    path = fleet_with(
        write_fleet,
        """
        - web_search
        - tools/*
        - {name: refund, source_code: "def refund(x: str) -> str:\\n    '''Refund.'''\\n    return x\\n"}
        """,
        files={"tools/lookup.py": tool_source("lookup"), "tools/_shared.py": "X = 1\n"},
    )

    resources = {r.address: r for r in desired_resources(load_fleet(path, manager), manager)}

    assert {address for address in resources if address.startswith("tool.")} == {
        "tool.web_search",
        "tool.lookup",
        "tool.refund",
    }
    assert resources["tool.lookup"].attributes["source_code"] == tool_source("lookup")
    assert "source_code" not in resources["tool.web_search"].attributes  # the server's own tool: nothing to compare
    assert resources["agent.support.tool.lookup"].depends_on == ("tool.lookup",)
    assert resources["agent.support.tool.web_search"].parent == "agent.support"


def test_a_bare_name_is_the_tools_folder_file_when_there_is_one(write_fleet, manager):
    path = fleet_with(write_fleet, "- lookup", files={"tools/lookup.py": tool_source("lookup")})

    [tool] = [r for r in desired_resources(load_fleet(path, manager), manager) if r.kind == "tool"]

    assert tool.attributes["source_code"] == tool_source("lookup")


def test_the_tool_function_must_be_the_last_one_in_its_source(write_fleet, manager):
    source = tool_source("lookup") + "\n\ndef helper() -> None:\n    pass\n"
    path = fleet_with(write_fleet, "- lookup", files={"tools/lookup.py": source})

    [error] = errors_of(path, manager)

    assert error.startswith(f"{path}:6:9: Letta names a tool after the last function in its source")
    assert "tools/lookup.py ends with `helper`, not `lookup`" in error
    assert "define `lookup` last" in error


def test_helpers_before_the_tool_function_are_fine(write_fleet, manager):
    source = tool_source("lookup", before="def _clean(x: str) -> str:\n    return x.strip()\n\n\n")
    path = fleet_with(write_fleet, "- lookup", files={"tools/lookup.py": source})

    assert load_fleet(path, manager)


def test_a_tool_function_needs_a_docstring(write_fleet, manager):
    path = fleet_with(write_fleet, "- lookup", files={"tools/lookup.py": tool_source("lookup", docstring=False)})

    [error] = errors_of(path, manager)

    assert "function `lookup` in tools/lookup.py has no docstring" in error


def test_invalid_python_names_the_file_its_line_and_column(write_fleet, manager):
    path = fleet_with(write_fleet, "- lookup", files={"tools/lookup.py": "import os\ndef lookup(:\n    pass\n"})

    [error] = errors_of(path, manager)

    assert "tools/lookup.py:2:12: invalid Python" in error


def test_one_tool_with_two_sources_is_refused(write_fleet, manager):
    second_agent = """
  - name: sales
    llm_config: {model: letta/letta-free}
    system_prompt: {value: You sell.}
    tools:
      - {name: lookup, from_file: other/lookup.py}
"""
    path = fleet_with(
        write_fleet,
        "- lookup",
        files={"tools/lookup.py": tool_source("lookup"), "other/lookup.py": tool_source("lookup", before="# v2\n")},
        extra=second_agent,
    )

    [error] = errors_of(path, manager)

    assert "tool 'lookup' has another source than the one agents[0] gives it" in error


def test_every_file_of_an_empty_tools_folder_is_an_error(write_fleet, manager):
    path = fleet_with(write_fleet, "- tools/*")

    [error] = errors_of(path, manager)

    assert "tools/* matches no file" in error


def test_a_tool_listed_twice_is_refused(write_fleet, manager):
    path = fleet_with(write_fleet, "- web_search\n- web_search")

    [error] = errors_of(path, manager)

    assert error.startswith(f"{path}:7:9: tool 'web_search' is listed twice")


def test_source_code_and_from_file_together_are_refused(write_fleet, manager):
    path = fleet_with(
        write_fleet,
        "- {name: lookup, from_file: tools/lookup.py, source_code: 'x'}",
        files={"tools/lookup.py": tool_source("lookup")},
    )

    errors = errors_of(path, manager)

    assert errors and all("give either `from_file` or `source_code`, not both" in error for error in errors)


def test_a_tool_file_outside_the_fleet_folder_is_refused(write_fleet, manager):
    path = fleet_with(write_fleet, "- {name: lookup, from_file: ../lookup.py}")

    [error] = errors_of(path, manager)

    assert "from_file leaves the fleet file's directory: ../lookup.py" in error


def test_a_broken_tool_file_used_by_many_agents_is_one_error(write_fleet, manager):
    more = "".join(
        f"""
  - name: agent-{number}
    llm_config: {{model: letta/letta-free}}
    system_prompt: {{value: You help.}}
    tools: [lookup]
"""
        for number in range(5)
    )
    path = fleet_with(write_fleet, "- lookup", files={"tools/lookup.py": "def lookup(:\n"}, extra=more)

    [error] = errors_of(path, manager)

    assert error.startswith(f"{path}:6:9: tools/lookup.py:1:12: invalid Python")


def test_a_bare_entry_must_be_a_tool_name_not_a_path(write_fleet, manager):
    path = fleet_with(write_fleet, "- ../../outside", files={"outside.py": tool_source("outside")})

    [error] = errors_of(path, manager)

    assert error.startswith(f"{path}:6:9: '../../outside' is not a tool name")


def tools_fleet(tools: str) -> str:
    return AGENT + textwrap.indent(textwrap.dedent(tools).strip("\n"), "      ") + "\n"


def test_a_tool_defined_from_source_is_made_then_given_to_the_new_agent_by_id(fleet, letta):
    text = tools_fleet("- lookup\n- web_search")
    letta.add_tool("web_search")

    report = fleet.apply(fleet.plan(text, files={"tools/lookup.py": tool_source("lookup")}))

    assert report.ok
    made, agent = letta.resource_writes
    assert (made.path, made.body) == (
        "/v1/tools/",
        {"source_code": tool_source("lookup"), "tags": ["managed_by:lettafleet"]},
    )
    ids = {tool["name"]: tool["id"] for tool in letta.tools.values()}
    assert agent.path == "/v1/agents/" and agent.body["tool_ids"] == [ids["lookup"], ids["web_search"]]


def test_a_changed_source_is_patched_into_the_tool_the_server_has(fleet, letta):
    tool = letta.add_tool("lookup", source_code=tool_source("lookup", before="# v1\n"), description="Looks up.")
    letta.add_agent("support", system="You help.", tool_ids=[tool["id"]])
    text = tools_fleet("- {name: lookup, description: Looks up., from_file: tools/lookup.py}")

    plan = fleet.plan(text, files={"tools/lookup.py": tool_source("lookup")})

    assert fleet.actions(plan) == {
        "agent.support": "no-op",
        "agent.support.tool.lookup": "no-op",
        "tool.lookup": "update",
    }
    fleet.apply(plan)
    [patch] = letta.resource_writes
    assert (patch.method, patch.path, patch.body) == (
        "PATCH",
        f"/v1/tools/{tool['id']}",
        {"source_code": tool_source("lookup")},
    )


def test_a_server_tool_is_attached_to_an_existing_agent_and_others_stay_attached(fleet, letta):
    web_search = letta.add_tool("web_search")
    agent = letta.add_agent("support", system="You help.")

    plan = fleet.plan(tools_fleet("- web_search"))

    assert fleet.actions(plan) == {
        "agent.support": "no-op",
        "agent.support.tool.web_search": "create",
        "tool.web_search": "no-op",
    }
    fleet.apply(plan)
    [attach] = letta.resource_writes
    assert (attach.method, attach.path) == ("PATCH", f"/v1/agents/{agent['id']}/tools/attach/{web_search['id']}")
    # The base tools Letta gave the agent are not listed, and not detached.
    assert not fleet.plan(tools_fleet("- web_search")).needs_attention


def test_a_server_that_creates_the_agent_without_its_tools_fails_the_attachment(fleet, letta):
    letta.add_tool("web_search")
    letta.drops_relations = {"tool_ids"}

    report = fleet.apply(fleet.plan(tools_fleet("- web_search")))

    assert fleet.results(report)["agent.support.tool.web_search"] == (
        "failed",
        "the server created agent support without tool 'web_search'",
    )


@pytest.mark.parametrize(
    ("name", "hint"),
    [("web_serch", "did you mean web_search?"), ("weather", "define it: put tools/weather.py beside the fleet file")],
)
def test_a_named_tool_the_server_lacks_stops_the_plan(fleet, letta, name, hint):
    letta.add_tool("web_search")

    with pytest.raises(FleetError) as raised:
        fleet.plan(tools_fleet(f"- {name}"))

    [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
    assert f":6:9: tool '{name}' is not on http://letta.test ({hint})" in error
    assert letta.resource_writes == []


def test_a_tool_file_without_a_function_is_refused(write_fleet, manager):
    path = fleet_with(write_fleet, "- lookup", files={"tools/lookup.py": "X = 1\n"})

    [error] = errors_of(path, manager)

    assert "tools/lookup.py defines no function (define `def lookup(...)` in it)" in error


def test_every_file_of_a_tools_folder_outside_the_fleets_directory_is_refused(write_fleet, manager, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "lookup.py").write_text(tool_source("lookup"))
    (tmp_path / "tools").symlink_to(outside)
    path = fleet_with(write_fleet, "- tools/*")

    [error] = errors_of(path, manager)

    assert error.startswith(f"{path}:6:9: tools/*: the folder tools leaves the fleet file's directory")


def test_a_tool_the_server_lists_twice_on_an_agent_is_one_attachment(fleet, letta):
    """An agent created with one of Letta's base tools named in its request lists that tool twice (in this stand-in
    at least): the plan sees one attachment, not two resources at one address."""
    search = next(tool for tool in letta.tools.values() if tool["name"] == "conversation_search")
    letta.add_agent("support", system="You help.", tool_ids=[search["id"]])

    plan = fleet.plan(tools_fleet("- conversation_search"))

    assert fleet.actions(plan)["agent.support.tool.conversation_search"] == "no-op"


# -- removal ------------------------------------------------------------------------------------------------------

LOOKUP = {"tools/lookup.py": tool_source("lookup")}


def named(text: str, name: str = "shop") -> str:
    return f"fleet: {name}\n{text}"


def test_a_tool_line_removed_is_detached_and_one_attached_by_hand_stays(fleet, letta):
    letta.add_tool("web_search")
    by_hand = letta.add_tool("weather")
    fleet.apply(fleet.plan(tools_fleet("- web_search\n- conversation_search")))
    agent = letta.agent_named("support")
    agent_id = agent["id"]
    letta.agents[agent_id]["tool_ids"].append(by_hand["id"])  # attached by hand: in no record

    plan = fleet.plan(tools_fleet("- conversation_search"))

    assert {a: v for a, v in fleet.actions(plan).items() if v != "no-op"} == {"agent.support.tool.web_search": "delete"}
    fleet.apply(plan)
    web_search = next(t for t in letta.tools.values() if t["name"] == "web_search")
    assert letta.resource_writes[0].path == f"/v1/agents/{agent_id}/tools/detach/{web_search['id']}"
    attached = {letta.tools[tool_id]["name"] for tool_id in letta.agents[agent_id]["tool_ids"]}
    assert "web_search" not in attached and {"weather", "conversation_search"} <= attached
    assert "web_search" in {t["name"] for t in letta.tools.values()}  # the server's tool itself stays
    assert not fleet.plan(tools_fleet("- conversation_search")).needs_attention


def test_letta_base_tools_are_never_in_the_record(fleet, letta):
    letta.add_tool("web_search")
    fleet.apply(fleet.plan(tools_fleet("- web_search")))

    plan = fleet.plan(tools_fleet("- web_search").replace("    tools:\n      - web_search\n", ""))

    assert {a: v for a, v in fleet.actions(plan).items() if v != "no-op"} == {"agent.support.tool.web_search": "delete"}


def test_a_named_fleet_deletes_the_tool_it_defined_after_detaching_it(fleet, letta):
    fleet.apply(fleet.plan(named(tools_fleet("- lookup\n- conversation_search")), files=LOOKUP))
    [made] = [t for t in letta.tools.values() if t["name"] == "lookup"]
    assert made["tags"] == ["managed_by:lettafleet", "lettafleet-fleet:shop"]

    plan = fleet.plan(named(tools_fleet("- conversation_search")), files=LOOKUP)

    changed = {a: v for a, v in fleet.actions(plan).items() if v != "no-op"}
    assert changed == {"agent.support.tool.lookup": "delete", "tool.lookup": "delete"}
    fleet.apply(plan)
    writes = [(w.method, w.path) for w in letta.resource_writes]
    agent_id = letta.agent_named("support")["id"]
    assert writes == [
        ("PATCH", f"/v1/agents/{agent_id}/tools/detach/{made['id']}"),
        ("DELETE", f"/v1/tools/{made['id']}"),
    ]
    assert not fleet.plan(named(tools_fleet("- conversation_search")), files=LOOKUP).needs_attention


def test_a_fleet_without_a_name_never_deletes_a_tool(fleet, letta):
    fleet.apply(fleet.plan(tools_fleet("- lookup\n- conversation_search"), files=LOOKUP))

    plan = fleet.plan(tools_fleet("- conversation_search"), files=LOOKUP)

    changed = {a: v for a, v in fleet.actions(plan).items() if v != "no-op"}
    assert changed == {"agent.support.tool.lookup": "delete"}


def test_a_defined_tool_another_agent_has_attached_is_kept_and_the_plan_says_why(fleet, letta):
    fleet.apply(fleet.plan(named(tools_fleet("- lookup\n- conversation_search")), files=LOOKUP))
    [made] = [t for t in letta.tools.values() if t["name"] == "lookup"]
    letta.add_agent("by-hand", managed=False, tool_ids=[made["id"]])

    plan = fleet.plan(named(tools_fleet("- conversation_search")), files=LOOKUP)

    tool = plan.by_address()["tool.lookup"]
    assert tool.action.value == "no-op"
    assert "agent by-hand has it still attached: kept" in (tool.drift or "")
    fleet.apply(plan)
    assert made["id"] in letta.tools


def test_another_fleets_tool_is_never_deleted(fleet, letta):
    fleet.apply(fleet.plan(named(tools_fleet("- lookup").replace("support", "other-agent"), "other"), files=LOOKUP))

    plan = fleet.plan(named(tools_fleet("- conversation_search")))

    assert "tool.lookup" not in fleet.actions(plan)


def test_defining_a_tool_another_named_fleet_made_is_an_error_at_its_line_before_any_write(fleet, letta):
    other = tools_fleet("- lookup").replace("support", "other-agent")
    fleet.apply(fleet.plan(named(other, "other"), files=LOOKUP))
    letta.writes.clear()
    rewritten = {"tools/lookup.py": tool_source("lookup", before="X = 1\n\n\n")}

    for mine in (named(tools_fleet("- lookup")), tools_fleet("- lookup")):
        with pytest.raises(FleetError) as raised:
            fleet.plan(mine, files=rewritten)
        [error] = [str(diagnostic) for diagnostic in raised.value.diagnostics]
        path, line, _ = error.split(":", 2)
        assert Path(path).read_text().splitlines()[int(line) - 1].strip() == "- lookup"
        assert "tool 'lookup'" in error and "belongs to fleet 'other', not to" in error
    assert letta.writes == []


def test_a_tool_another_named_fleet_made_may_be_used_by_name(fleet, letta):
    fleet.apply(fleet.plan(named(tools_fleet("- lookup").replace("support", "other-agent"), "other"), files=LOOKUP))
    (fleet.write_fleet("").parent / "tools" / "lookup.py").unlink()  # `- lookup` now names the server's tool

    plan = fleet.plan(named(tools_fleet("- lookup")))

    assert fleet.actions(plan) == {
        "agent.support": "create",
        "agent.support.tool.lookup": "create",
        "tool.lookup": "no-op",
    }


def test_a_protected_tool_definition_is_not_deleted_nor_detached(fleet, letta):
    protected = "- {name: lookup, from_file: tools/lookup.py, protect: true}\n- conversation_search"
    fleet.apply(fleet.plan(named(tools_fleet(protected)), files=LOOKUP))
    [made] = [t for t in letta.tools.values() if t["name"] == "lookup"]
    assert "lettafleet-protect" in made["tags"]

    plan = fleet.plan(named(tools_fleet("- conversation_search")), files=LOOKUP)

    held = {c.address: c.held for c in plan.changes if c.held}
    assert held == {"agent.support.tool.lookup": "protect", "tool.lookup": "protect"}
    fleet.apply(plan)
    assert letta.resource_writes == [] and made["id"] in letta.tools


# Sources Python's parser gives up on with more than a SyntaxError: RecursionError or MemoryError, or "line None".
PATHOLOGICAL_SOURCES = {
    "deep unary": "def deep(x):\n    return " + "-" * 100_000 + "x\n",
    "long chain": "def deep(x):\n    return " + "x+" * 200_000 + "x\n",
    "deep brackets": "def deep(x):\n    return " + "[" * 5_000 + "]" * 5_000 + "\n",
    "NUL byte": 'def deep(x):\n    """Do it."""\n    return "\0"\n',
}


@pytest.mark.parametrize("source", PATHOLOGICAL_SOURCES.values(), ids=PATHOLOGICAL_SOURCES.keys())
@pytest.mark.parametrize("where", ["tools/deep.py", "tools/*", "source_code"])
def test_a_source_python_cannot_parse_is_an_error_at_the_tool_with_a_line_and_a_hint(
    write_fleet, manager, source, where
):
    if where == "source_code":
        entry = f"- name: deep\n  source_code: {json.dumps(source)}"
        path, files = fleet_with(write_fleet, entry), None
    else:
        files = {"tools/deep.py": source}
        path = fleet_with(write_fleet, "- deep" if where == "tools/deep.py" else "- tools/*", files=files)
    [error] = errors_of(path, manager)
    origin = "source_code" if where == "source_code" else "tools/deep.py"
    assert error.startswith(f"{path}:6:9: ") and origin in error
    assert "None" not in error and error.endswith(")"), error  # a line when it has one, and what to do


def test_a_lone_surrogate_in_inline_source_is_an_error_at_the_tool_with_its_line(write_fleet, manager):
    # YAML's "\udc80" escape writes half of a UTF-16 pair, which Python's parser cannot encode to read.
    path = fleet_with(write_fleet, '- name: deep\n  source_code: "def deep(x):\\n    return \\"\\udc80\\"\\n"')

    [error] = errors_of(path, manager)

    assert error == f"{path}:6:9: source_code:2:13: contains a lone surrogate ('\\udc80') (remove it from the source)"
