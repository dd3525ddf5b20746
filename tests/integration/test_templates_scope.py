"""What a template manages beyond its settings, against the real dev server: agents an application made over REST,
a template taken out of the file whole, tools it attaches, blocks it owns or seeds. Everything is checked over the
REST API, not through lettafleet; what the application and the agents put there stays."""

from __future__ import annotations

from pathlib import Path

from lettafleet.plugins.backends.letta_v1 import LettaClient
from tests.integration.cli import cli, ok
from tests.integration.test_templates_rollout import as_now, labels, made_by_the_application, prefix

HEAD = """\
fleet: {prefix}
shared_blocks:
  - {{name: {prefix}-policies, value: "Refunds within 30 days.", agent_owned: false}}
agents:
  - name: {prefix}-router
    system_prompt: {{value: "You route."}}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
"""
TEMPLATE = """\
templates:
  - name: support
    match: "{prefix}-user-*"
    system_prompt: {{value: "You are ACME support, {prefix}."}}
    shared_blocks: [{prefix}-policies]
    add_tags: [{prefix}-support]
"""


def write(path: Path, text: str, prefix: str) -> Path:
    path.write_text(text.format(prefix=prefix))
    return path


def test_a_template_taken_out_of_the_file_takes_back_only_what_it_put_there(letta_server, client, prefix, tmp_path):
    users = [made_by_the_application(client, f"{prefix}-user-{i}") for i in range(1, 4)]
    for user in users:
        client.patch(f"/v1/agents/{user['id']}", json={"tags": ["customer"]})
    chat = client.post("/v1/conversations/", json={"summary": "A customer's chat"}, agent_id=users[0]["id"])
    fleet = write(tmp_path / "fleet.yaml", HEAD + TEMPLATE, prefix)
    ok(cli(letta_server, "apply", "-f", str(fleet)))
    policies = labels(as_now(client, users[0]))[f"{prefix}-policies"]
    # The application attaches the shared block to an agent of its own and tags it as the template would.
    own_choice = made_by_the_application(client, f"{prefix}-user-9", [policies])
    client.patch(f"/v1/agents/{own_choice['id']}", json={"tags": [f"{prefix}-support"]})

    write(fleet, HEAD, prefix)
    plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
    assert (
        f"taken out of the file: 3 agents carry what it put there; 3 would change: detach shared block "
        f"{prefix}-policies (3), forget its record (3), remove tag {prefix}-support (3)"
    ) in plan
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    for user in users:
        now = as_now(client, user)
        assert set(labels(now)) == {"human"} and labels(now)["human"] == labels(user)["human"]
        assert client.get(f"/v1/blocks/{labels(user)['human']}")["value"] == f"The customer behind {user['name']}."
        assert now["tags"] == ["customer"]
        assert now["system"] == f"You are ACME support, {prefix}."  # as the template last set it
        assert not (now.get("metadata") or {}).get("lettafleet_templates")
    kept = as_now(client, own_choice)
    assert f"{prefix}-policies" in labels(kept) and kept["tags"] == [f"{prefix}-support"]
    [conversation] = client.list_all("/v1/conversations/", agent_id=users[0]["id"])
    assert conversation["id"] == chat["id"] and conversation["summary"] == "A customer's chat"
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0


__all__ = ["prefix"]  # the fixture: a unique prefix, whose agents and shared block are deleted afterwards


TOOL = '''def {name}(order: str) -> str:
    """Look an order up.

    Args:
        order: the order's number.
    """
    return order
'''


def tool_names(client: LettaClient, agent: dict) -> set[str]:
    return {tool["name"] for tool in client.get(f"/v1/agents/{agent['id']}/tools")}


def test_a_template_attaches_a_tool_and_detaches_it_only_where_it_attached_it(letta_server, client, prefix, tmp_path):
    name = f"lookup_{prefix.rsplit('-', 1)[-1]}"
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / f"{name}.py").write_text(TOOL.format(name=name))
    users = [made_by_the_application(client, f"{prefix}-user-{i}") for i in range(1, 4)]
    with_tool = HEAD + TEMPLATE.replace("    add_tags:", f"    tools: [{name}]\n    add_tags:")
    fleet = write(tmp_path / "fleet.yaml", with_tool, prefix)
    try:
        plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
        assert f"attach tool {name} (3)" in plan
        ok(cli(letta_server, "apply", "-f", str(fleet)))
        [tool] = [t for t in client.list_all("/v1/tools/", name=name) if t["name"] == name]
        assert all(name in tool_names(client, user) for user in users)
        # An agent the application gave the tool itself.
        own_choice = made_by_the_application(client, f"{prefix}-user-9")
        client.patch(f"/v1/agents/{own_choice['id']}/tools/attach/{tool['id']}")
        assert "attach tool" not in ok(cli(letta_server, "apply", "-f", str(fleet)))  # it has it: not the template's
        assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0

        write(fleet, with_tool.replace(f"    tools: [{name}]\n", ""), prefix)
        ok(cli(letta_server, "apply", "-f", str(fleet)))

        assert not any(name in tool_names(client, user) for user in users)
        assert name in tool_names(client, own_choice)
        plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
        assert "template support" not in plan  # nothing left to change on the agents
        assert own_choice["name"] in plan and "attached: kept" in " ".join(plan.split())  # in use: kept
    finally:
        for tool in client.list_all("/v1/tools/", name=name):
            client.delete(f"/v1/tools/{tool['id']}")


BLOCKS = """\
templates:
  - name: support
    match: "{prefix}-user-*"
    memory_blocks:
      - {{name: {prefix}-rules, value: "Refunds within 30 days.", limit: 4000, agent_owned: false}}
      - {{name: {prefix}-persona, value: "I am ACME's helper.", agent_owned: true}}
"""


def test_a_templates_blocks_are_kept_true_seeded_once_and_deleted_only_where_it_made_them(
    letta_server, client, prefix, tmp_path
):
    rules, persona = f"{prefix}-rules", f"{prefix}-persona"
    users = [made_by_the_application(client, f"{prefix}-user-{i}") for i in range(1, 4)]
    own_rules = client.post("/v1/blocks/", json={"label": rules, "value": "Anything goes."})
    client.patch(f"/v1/agents/{users[2]['id']}/core-memory/blocks/attach/{own_rules['id']}")
    fleet = write(tmp_path / "fleet.yaml", HEAD + BLOCKS, prefix)
    try:
        plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
        assert f"seed block {persona} (3), create block {rules} (2), set block {rules} (1)" in " ".join(plan.split())
        ok(cli(letta_server, "apply", "-f", str(fleet)))
        for user in users:
            values = {b["label"]: b["value"] for b in client.get(f"/v1/agents/{user['id']}/core-memory/blocks")}
            assert values[rules] == "Refunds within 30 days." and values[persona] == "I am ACME's helper."
            assert values["human"] == f"The customer behind {user['name']}."
        assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0

        # The agent writes its persona (its own) and its rules (the template's): only the rules are set back.
        for label in (rules, persona):
            client.patch(f"/v1/agents/{users[0]['id']}/core-memory/blocks/{label}", json={"value": "Rewritten."})
        plan = ok(cli(letta_server, "plan", "-f", str(fleet)))
        assert f"1 would change: set block {rules} (1) (edited by hand since the template set it" in plan
        ok(cli(letta_server, "apply", "-f", str(fleet)))
        values = {b["label"]: b["value"] for b in client.get(f"/v1/agents/{users[0]['id']}/core-memory/blocks")}
        assert values == {"human": values["human"], rules: "Refunds within 30 days.", persona: "Rewritten."}

        write(fleet, HEAD + BLOCKS.replace(BLOCKS.splitlines()[4] + "\n", ""), prefix)
        ok(cli(letta_server, "apply", "-f", str(fleet)))
        for user in users[:2]:
            assert rules not in {b["label"] for b in client.get(f"/v1/agents/{user['id']}/core-memory/blocks")}
        assert client.get(f"/v1/blocks/{own_rules['id']}")["value"] == "Refunds within 30 days."  # the app's block
        assert rules in {b["label"] for b in client.get(f"/v1/agents/{users[2]['id']}/core-memory/blocks")}
        assert not client.list_all("/v1/blocks/", label=rules)[1:]  # the template's own were deleted
        assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0
    finally:
        for label in (rules, persona):
            for block in client.list_all("/v1/blocks/", label=label):
                client.delete(f"/v1/blocks/{block['id']}")


LETTACTL = """\
agents:
  - name: {prefix}-template
    description: Support agent
    system_prompt: {{value: "Matched by lettactl's --match, {prefix}."}}
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    memory_blocks:
      - {{name: {prefix}-rules, description: Rules, limit: 2000, value: "Refunds within 30 days.", agent_owned: false}}
    tools: [{tool}]
  - name: {prefix}-other
    system_prompt: {{value: "Another agent."}}
    llm_config: {{model: letta/letta-free}}
"""


def test_apply_match_applies_a_lettactl_first_agents_blocks_and_tools(letta_server, client, prefix, tmp_path):
    name, rules = f"lookup_{prefix.rsplit('-', 1)[-1]}", f"{prefix}-rules"
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / f"{name}.py").write_text(TOOL.format(name=name))
    users = [made_by_the_application(client, f"{prefix}-user-{i}") for i in range(1, 3)]
    fleet = tmp_path / "agents.yml"
    fleet.write_text(LETTACTL.format(prefix=prefix, tool=name))
    try:
        ok(cli(letta_server, "apply", "-f", str(fleet), "--match", f"{prefix}-user-*"))

        for user in users:
            values = {b["label"]: b["value"] for b in client.get(f"/v1/agents/{user['id']}/core-memory/blocks")}
            assert values == {"human": f"The customer behind {user['name']}.", rules: "Refunds within 30 days."}
            assert name in tool_names(client, user)
        names = {agent["name"] for agent in client.list_all("/v1/agents/", query_text=prefix)}
        assert f"{prefix}-template" not in names
        matched = cli(letta_server, "plan", "-f", str(fleet), "--match", f"{prefix}-user-*", "--detailed-exitcode")
        assert matched.exit_code == 0
    finally:
        for tool in client.list_all("/v1/tools/", name=name):
            client.delete(f"/v1/tools/{tool['id']}")
        for block in client.list_all("/v1/blocks/", label=rules):
            client.delete(f"/v1/blocks/{block['id']}")


SECRETS = """\
templates:
  - name: support
    match: "{prefix}-user-*"
    secrets:
      TSCOPE_KEY: {{value: "sk-template-{prefix}"}}
"""


def secrets_of(client: LettaClient, agent: dict) -> dict[str, str]:
    now = client.get(f"/v1/agents/{agent['id']}", include=["agent.secrets"])
    return {secret["key"]: secret["value"] for secret in now.get("secrets") or ()}


def test_a_templates_secret_is_set_never_shown_and_removed_only_where_it_set_it(letta_server, client, prefix, tmp_path):
    fresh = made_by_the_application(client, f"{prefix}-user-1")
    had_one = made_by_the_application(client, f"{prefix}-user-2")
    client.patch(f"/v1/agents/{had_one['id']}", json={"secrets": {"TSCOPE_KEY": "the-apps", "APP_ONLY": "kept"}})
    fleet = write(tmp_path / "fleet.yaml", HEAD + SECRETS, prefix)

    plan = ok(cli(letta_server, "plan", "-f", str(fleet), "-v"))
    assert "set secret TSCOPE_KEY (2)" in plan and f"sk-template-{prefix}" not in plan and "the-apps" not in plan
    assert f"sk-template-{prefix}" not in ok(cli(letta_server, "apply", "-f", str(fleet), "-o", "json"))

    assert secrets_of(client, fresh) == {"TSCOPE_KEY": f"sk-template-{prefix}"}
    assert secrets_of(client, had_one) == {"TSCOPE_KEY": f"sk-template-{prefix}", "APP_ONLY": "kept"}
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0

    write(fleet, HEAD + SECRETS.replace(SECRETS.splitlines()[4] + "\n", "").replace("    secrets:\n", ""), prefix)
    ok(cli(letta_server, "apply", "-f", str(fleet)))

    assert secrets_of(client, fresh) == {}
    assert secrets_of(client, had_one) == {"TSCOPE_KEY": f"sk-template-{prefix}", "APP_ONLY": "kept"}
    assert cli(letta_server, "plan", "-f", str(fleet), "--detailed-exitcode").exit_code == 0
