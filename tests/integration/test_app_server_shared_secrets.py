"""`shared_blocks`, `secrets` and named tools against the real dev App Servers: a shared block is one memory file
per attaching agent (v2 layout on 0.34.12, v1 on 0.32.18), secrets go by `secret_apply` and never show, and named
tools stop at their line."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner, Result

from lettafleet.core.cli.app import main
from lettafleet.plugins.backends.app_server.client import AppServerClient
from tests.fakes.llm_server import FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]

MODEL = "openai-compatible/fake-echo-model"
TOKEN = uuid.uuid4().hex[:8]
SECRET = f'p"a\\ss-wörd&x=1 y+z/{TOKEN}'  # quote, backslash, non-ASCII, URL-special characters


def connected(url: str, fake_llm: FakeLLM) -> str:
    with AppServerClient(url) as client:
        client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})
    return url


@pytest.fixture(scope="module")
def app_server(app_server_url: str, fake_llm: FakeLLM) -> str:
    """The dev App Server with the suite's LLM stand-in connected, so that its model is one the server lists."""
    return connected(app_server_url, fake_llm)


@pytest.fixture
def suffix(app_server_client: AppServerClient) -> Iterator[str]:
    """A suffix unique to one test; every agent whose name ends with it is deleted afterwards."""
    chosen = uuid.uuid4().hex[:8]
    yield chosen
    delete_agents(app_server_client, chosen)


def delete_agents(client: AppServerClient, suffix: str) -> None:
    for agent in client.list_agents():
        if str(agent.get("name", "")).endswith(suffix):
            client.delete_agent(agent["id"])


def cli(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    invoked = CliRunner().invoke(main, [*args], env={"LETTA_BASE_URL": url, **(env or {})}, catch_exceptions=False)
    return invoked


def apply(url: str, fleet: Path, *options: str, env: dict[str, str] | None = None) -> Result:
    return cli(url, "apply", "-f", str(fleet), "--no-lock", *options, env=env)


def agent_yaml(name: str, extra: str = "") -> str:
    return (
        f"  - name: {name}\n    description: helps\n"
        f"    llm_config:\n      model: {MODEL}\n      context_window: 16000\n"
        f"    system_prompt:\n      value: You are {name}.\n{extra}"
    )


def shared_yaml(value: str, *, owned: bool, name: str = "policy") -> str:
    return (
        f"shared_blocks:\n  - name: {name}\n    description: the {name}\n    value: {json.dumps(value)}\n"
        f"    agent_owned: {str(owned).lower()}\n"
    )


def fleet_file(tmp_path: Path, head: str, *agents: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"fleet: fl-{tmp_path.name[-12:]}\n{head}agents:\n" + "".join(agents))
    return path


def by_name(client: AppServerClient, suffix: str) -> dict[str, dict[str, Any]]:
    return {str(a["name"]): a for a in client.list_agents() if str(a.get("name", "")).endswith(suffix)}


def files_of(client: AppServerClient, agent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(entry["relative_path"]): entry for entry in client.list_memory(agent["id"])}


ATTACHES = "    shared_blocks: [policy]\n"


def only_reads(run: Result) -> bool:
    """Whether `-v`'s request count lists reads only (no write was sent)."""
    counted = run.stderr.split("Requests: ")[1].split("\n")[0]
    return all(method == "GET" for method in re.findall(r"(\w+) \d+", counted))


# Shared blocks ----------------------------------------------------------------------------------------------------


def test_a_shared_block_is_a_copy_in_every_agent_and_a_change_reaches_each_copy(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names = [f"sh-{role}-{suffix}" for role in ("a", "b")]
    fleet = fleet_file(
        tmp_path, shared_yaml("Refunds: 30 days.", owned=False), *(agent_yaml(n, ATTACHES) for n in names)
    )

    planned = cli(app_server, "plan", "-f", str(fleet))
    applied = apply(app_server, fleet)

    assert "own copy" in planned.output and "no shared memory" in planned.output, planned.output
    assert applied.exit_code == 0, applied.output
    live = by_name(app_server_client, suffix)
    for name in names:
        assert files_of(app_server_client, live[name])["policy.md"]["content"] == "Refunds: 30 days."
    again = apply(app_server, fleet, "-v")
    assert "No changes." in again.output and only_reads(again), again.stderr

    changed = fleet_file(
        tmp_path, shared_yaml("Refunds: 14 days.", owned=False), *(agent_yaml(n, ATTACHES) for n in names)
    )
    updated = apply(app_server, changed)

    assert updated.exit_code == 0, updated.output
    assert "0 created, 2 updated, 0 deleted" in updated.output, updated.output
    for name in names:
        assert files_of(app_server_client, live[name])["policy.md"]["content"] == "Refunds: 14 days."
    assert "No changes." in cli(app_server, "plan", "-f", str(changed)).output


def test_a_copy_an_agent_edited_is_drift_named_by_its_agent_and_overwritten_when_the_file_is_the_truth(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    names = [f"sh-ed-{role}-{suffix}" for role in ("a", "b")]
    fleet = fleet_file(tmp_path, shared_yaml("Be kind.", owned=False), *(agent_yaml(n, ATTACHES) for n in names))
    assert apply(app_server, fleet).exit_code == 0
    edited = by_name(app_server_client, suffix)[names[0]]
    app_server_client.write_memory_file(
        edited["id"], "policy.md", "---\nname: policy\ndescription: the policy\n---\nBe terse."
    )

    planned = cli(app_server, "plan", "-f", str(fleet))
    applied = apply(app_server, fleet)

    assert f"drift: agent {names[0]} edited its copy (policy.md)" in planned.output, planned.output
    assert names[1] not in planned.output  # the other agent's copy is as lettafleet wrote it
    assert applied.exit_code == 0 and "0 created, 1 updated" in applied.output, applied.output
    assert files_of(app_server_client, edited)["policy.md"]["content"] == "Be kind."
    assert "No changes." in cli(app_server, "plan", "-f", str(fleet)).output


def test_an_agent_owned_copy_the_agent_edited_is_shown_as_drift_once_and_kept(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"sh-own-{suffix}"
    fleet = fleet_file(tmp_path, shared_yaml("Seed.", owned=True), agent_yaml(name, ATTACHES))
    assert apply(app_server, fleet).exit_code == 0
    agent = by_name(app_server_client, suffix)[name]
    app_server_client.write_memory_file(
        agent["id"], "policy.md", "---\nname: policy\ndescription: the policy\n---\nMine."
    )

    planned = cli(app_server, "plan", "-f", str(fleet), "--detailed-exitcode")
    applied = apply(app_server, fleet)

    assert planned.exit_code == 2 and "[!]" in planned.output, planned.output
    assert (
        f"agent {name} edited its copy (policy.md)" in planned.output and "kept (agent_owned: true)" in planned.output
    )
    assert applied.exit_code == 0, applied.output
    assert files_of(app_server_client, agent)["policy.md"]["content"] == "Mine."
    assert "No changes." in cli(app_server, "plan", "-f", str(fleet)).output  # the edit is recorded as seen


def test_detaching_deletes_only_the_copy_the_record_names_and_an_edited_copy_waits_for_prune(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    plain, edited, by_hand = (f"sh-det-{role}-{suffix}" for role in ("plain", "edited", "hand"))
    hand = "---\nname: policy\ndescription: mine\n---\nMy own."
    both = fleet_file(
        tmp_path, shared_yaml("Rule.", owned=False), agent_yaml(plain, ATTACHES), agent_yaml(edited, ATTACHES)
    )
    assert apply(app_server, both).exit_code == 0
    agents = by_name(app_server_client, suffix)
    app_server_client.write_memory_file(agents[edited]["id"], "policy.md", hand.replace("My own.", "Edited."))
    made = app_server_client.create_agent({"name": by_hand, "model": MODEL})
    app_server_client.write_memory_file(made["id"], "policy.md", hand)
    detached = fleet_file(
        tmp_path, shared_yaml("Rule.", owned=False), agent_yaml(plain), agent_yaml(edited), agent_yaml(by_hand)
    )

    applied = apply(app_server, detached)

    assert applied.exit_code == 0, applied.output
    assert "policy.md" not in files_of(app_server_client, agents[plain])
    assert files_of(app_server_client, agents[edited])["policy.md"]["content"] == "Edited."  # held: needs --prune
    assert files_of(app_server_client, made)["policy.md"]["content"] == "My own."  # never the fleet's
    pruned = apply(app_server, detached, "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert "policy.md" not in files_of(app_server_client, agents[edited])
    assert files_of(app_server_client, made)["policy.md"]["content"] == "My own."
    assert "No changes." in cli(app_server, "plan", "-f", str(detached)).output


def test_a_shared_block_on_an_agent_made_by_0_32_is_a_v1_memory_file(
    app_server_v1_layout_url: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    url, suffix = connected(app_server_v1_layout_url, fake_llm), uuid.uuid4().hex[:8]
    names = [f"sh-v1-{role}-{suffix}" for role in ("a", "b")]
    fleet = fleet_file(tmp_path, shared_yaml("Old.", owned=False), *(agent_yaml(n, ATTACHES) for n in names))
    with AppServerClient(url) as client:
        try:
            assert apply(url, fleet).exit_code == 0
            assert "No changes." in cli(url, "plan", "-f", str(fleet)).output
            changed = fleet_file(tmp_path, shared_yaml("New.", owned=False), *(agent_yaml(n, ATTACHES) for n in names))
            updated = apply(url, changed)
            assert updated.exit_code == 0 and "2 updated" in updated.output, updated.output
            for agent in by_name(client, suffix).values():
                files = files_of(client, agent)
                assert files["system/policy.md"]["content"] == "New." and "policy.md" not in files
                assert client.read_memory_file(agent["id"], "system/policy.md").startswith("---\ndescription: ")
            assert "No changes." in cli(url, "plan", "-f", str(changed)).output
        finally:
            delete_agents(client, suffix)


# Secrets ----------------------------------------------------------------------------------------------------------


def secrets_yaml(**values: str) -> str:
    return "    secrets:\n" + "".join(f"      {name}: {{from_env: {name.upper()}}}\n" for name in values)


def shown_forms(secret: str) -> set[str]:
    """The ways an output may write `secret`: plain, JSON, repr, base64 and URL-encoded, and its first characters."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        base64.b64encode(secret.encode()).decode(),
        quote(secret, safe=""),
        quote_plus(secret),
        secret[:12],
    }


def test_secrets_apply_replan_update_and_prune_and_no_value_ever_shows(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"sec-{suffix}"
    env = {"API_TOKEN": SECRET, "REGION": "eu-west-7"}
    fleet = fleet_file(tmp_path, "", agent_yaml(name, secrets_yaml(api_token="", region="")))

    saved = tmp_path / "plan.json"
    outputs = ([], ["-o", "json"], ["-o", "markdown"], ["--out", str(saved)])
    runs = [cli(app_server, "plan", "-f", str(fleet), *o, env=env) for o in outputs]
    applied = apply(app_server, fleet, "-v", env=env)

    assert applied.exit_code == 0, applied.output
    agent = by_name(app_server_client, suffix)[name]
    values = app_server_client.secret_values(agent["id"])
    assert values["API_TOKEN"] == SECRET and values["REGION"] == "eu-west-7"  # upper-cased names
    replanned = cli(app_server, "plan", "-f", str(fleet), "-v", env=env)
    assert "No changes." in replanned.output, replanned.output
    assert "LETTAFLEET_RECORD" not in replanned.output
    assert only_reads(replanned), replanned.stderr

    app_server_client.apply_secrets(agent["id"], set_values={"API_TOKEN": SECRET + "-x", "BY_HAND": "h1"})
    drift = cli(app_server, "plan", "-f", str(fleet), env=env)
    assert "differs from the file's" in drift.output and "API_TOKEN" in drift.output, drift.output
    one = fleet_file(tmp_path, "", agent_yaml(name, secrets_yaml(api_token="")))
    pruned = apply(app_server, one, env=env)

    assert pruned.exit_code == 0, pruned.output
    values = app_server_client.secret_values(agent["id"])
    assert values["API_TOKEN"] == SECRET  # the server's changed value is put back
    assert "REGION" not in values and values["BY_HAND"] == "h1"  # only what the record lists is removed
    assert "LETTAFLEET_RECORD" in values
    shown = "".join(run.stdout + run.stderr for run in [*runs, applied, replanned, drift, pruned]) + saved.read_text()
    assert [form for form in shown_forms(SECRET) | shown_forms(SECRET + "-x") if form in shown] == []
    assert "Traceback" not in shown


def test_a_secret_named_as_the_record_is_refused_at_its_line_with_nothing_written(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    extra = "    secrets:\n      lettafleet_record: {value: overwritten}\n"
    fleet = fleet_file(tmp_path, "", agent_yaml(f"sec-rec-{suffix}", extra))

    applied = apply(app_server, fleet)

    assert applied.exit_code == 1
    assert "fleet.yaml:11:7: secret LETTAFLEET_RECORD is where lettafleet keeps" in applied.output, applied.output
    assert by_name(app_server_client, suffix) == {}


def test_two_secrets_equal_once_upper_cased_are_refused_at_the_line_with_nothing_written(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    extra = "    secrets:\n      api_key: {value: one}\n      API_KEY: {value: two}\n"
    fleet = fleet_file(tmp_path, "", agent_yaml(f"sec-case-{suffix}", extra))

    applied = apply(app_server, fleet)

    assert applied.exit_code == 1
    assert "fleet.yaml:12:7: secret 'API_KEY' is 'api_key' again: names are upper-cased" in applied.output
    assert by_name(app_server_client, suffix) == {}


# Named tools ------------------------------------------------------------------------------------------------------


def test_a_named_tool_is_refused_at_its_line_with_letta_codes_tools(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    fleet = fleet_file(tmp_path, "", agent_yaml(f"tool-{suffix}", "    tools: [web_search]\n"))

    applied = apply(app_server, fleet)

    assert applied.exit_code == 1
    assert "fleet.yaml:10:13: tools: the Letta App Server backend has no per-agent choice of tools" in applied.output
    assert "Bash, Edit" in applied.output and "remove the agent's `tools:`" in applied.output, applied.output
    assert by_name(app_server_client, suffix) == {}


def test_pruning_an_agent_with_copies_and_secrets_deletes_it_and_leaves_the_others_copies(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    kept, dropped = f"sh-kept-{suffix}", f"sh-drop-{suffix}"
    extra = ATTACHES + secrets_yaml(api_token="")
    env = {"API_TOKEN": SECRET}
    both = fleet_file(tmp_path, shared_yaml("Rule.", owned=False), agent_yaml(kept, extra), agent_yaml(dropped, extra))
    assert apply(app_server, both, env=env).exit_code == 0
    one = fleet_file(tmp_path, shared_yaml("Rule.", owned=False), agent_yaml(kept, extra))

    pruned = apply(app_server, one, "--prune", env=env)

    assert pruned.exit_code == 0, pruned.output
    live = by_name(app_server_client, suffix)
    assert sorted(live) == [kept]
    assert files_of(app_server_client, live[kept])["policy.md"]["content"] == "Rule."
    assert app_server_client.secret_values(live[kept]["id"])["API_TOKEN"] == SECRET
    assert "No changes." in cli(app_server, "plan", "-f", str(one), env=env).output


def test_a_shared_block_and_a_memory_block_without_description_update_and_replan_no_changes(
    app_server: str, app_server_client: AppServerClient, suffix: str, tmp_path: Path
) -> None:
    name = f"sh-nodesc-{suffix}"

    def fleet(value: str) -> Path:
        shared = f"shared_blocks:\n  - name: policy\n    value: {value}\n    agent_owned: false\n"
        own = f"    memory_blocks:\n      - name: notes\n        value: {value}\n        agent_owned: false\n"
        return fleet_file(tmp_path, shared, agent_yaml(name, ATTACHES + own))

    assert apply(app_server, fleet("One.")).exit_code == 0
    assert "No changes." in cli(app_server, "plan", "-f", str(fleet("One."))).output

    updated = apply(app_server, fleet("Two."))

    assert updated.exit_code == 0 and "0 created, 2 updated" in updated.output, updated.output
    files = files_of(app_server_client, by_name(app_server_client, suffix)[name])
    assert files["policy.md"]["content"] == "Two." and files["notes.md"]["content"] == "Two."
    assert "No changes." in cli(app_server, "plan", "-f", str(fleet("Two."))).output
