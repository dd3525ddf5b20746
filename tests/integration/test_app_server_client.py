"""The App Server client against a real Letta App Server 0.34.12: each operation lettafleet needs, and each of the
server's sharp edges handled (paging at 20, tags it owns, git's lock, rejected writes, secrets left on disk)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError

if TYPE_CHECKING:
    from tests.fakes.llm_server import FakeLLM

pytest_plugins = ["tests.fakes.llm_server"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def memory_file(name: str, body: str) -> str:
    """A memory file as MemFS v2 accepts it: frontmatter with exactly `name` and `description`."""
    return f"---\nname: {name}\ndescription: written by the client tests\n---\n{body}"


@pytest.fixture
def agent(app_server_client: AppServerClient) -> Iterator[dict[str, Any]]:
    made = app_server_client.create_agent({"name": unique("as-client"), "model": "openai-compatible/none"})
    yield made
    app_server_client.delete_agent(made["id"])


def test_agents_are_found_by_exact_name_beyond_the_first_page_of_20(app_server_client: AppServerClient) -> None:
    family = unique("as-page")
    names = [f"{family}-{i:02d}" for i in range(22)]
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda name: app_server_client.create_agent({"name": name, "tags": [family]}), names))
    try:
        everyone = app_server_client.list_agents()
        found = app_server_client.agents_named(names[-1])
        tagged = app_server_client.list_agents(tags=[family])
    finally:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda agent: app_server_client.delete_agent(agent["id"]), made))

    assert len(everyone) >= 22
    assert [agent["id"] for agent in found] == [made[-1]["id"]]
    assert {agent["name"] for agent in tagged} == set(names)
    assert app_server_client.agents_named(names[-1]) == []


def test_create_retrieve_and_update_keep_the_tag_the_server_owns(
    app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    assert "git-memory-enabled" in agent["tags"]

    updated = app_server_client.update_agent(agent["id"], {"tags": ["team:a", "lettafleet:managed"]})

    assert updated["tags"] == ["team:a", "lettafleet:managed", "git-memory-enabled"]
    assert app_server_client.retrieve_agent(agent["id"])["tags"] == updated["tags"]
    # With the tags the caller already read, the same, without reading the agent again.
    again = app_server_client.update_agent(agent["id"], {"tags": ["team:b"]}, current_tags=updated["tags"])
    assert again["tags"] == ["team:b", "git-memory-enabled"]


def test_deleting_an_agent_leaves_no_secret_value_on_disk(
    app_server_client: AppServerClient, app_server_data_dir: Path
) -> None:
    made = app_server_client.create_agent({"name": unique("as-secret-delete")})
    value = unique("secret-value-on-disk")
    app_server_client.apply_secrets(made["id"], set_values={"api_token": value})

    app_server_client.delete_agent(made["id"])

    with pytest.raises(AppServerError, match="not found"):
        app_server_client.retrieve_agent(made["id"])
    holding = [
        path for path in app_server_data_dir.rglob("*") if path.is_file() and value.encode() in path.read_bytes()
    ]
    assert holding == []


def test_memory_files_are_written_read_listed_across_frames_and_deleted(
    app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    for i in range(12):  # the server lists five a frame: three frames and more
        assert app_server_client.write_memory_file(agent["id"], f"n{i}.md", memory_file(f"n{i}", f"v{i}"))

    listed = {entry["relative_path"] for entry in app_server_client.list_memory(agent["id"])}
    assert {f"n{i}.md" for i in range(12)} <= listed
    assert app_server_client.read_memory_file(agent["id"], "n7.md").endswith("\nv7")
    # The same content again makes no commit.
    assert app_server_client.write_memory_file(agent["id"], "n7.md", memory_file("n7", "v7")) is False

    app_server_client.delete_memory_file(agent["id"], "n7.md")

    assert "n7.md" not in {entry["relative_path"] for entry in app_server_client.list_memory(agent["id"])}


def test_concurrent_writes_to_one_agent_all_land(app_server_client: AppServerClient, agent: dict[str, Any]) -> None:
    """Unserialized, some of these fail on git's index lock; the client writes one at a time per agent."""
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: app_server_client.write_memory_file(agent["id"], f"c{i}.md", memory_file(f"c{i}", str(i))),
                range(8),
            )
        )

    contents = {entry["relative_path"]: entry["content"] for entry in app_server_client.list_memory(agent["id"])}
    assert all(contents.get(f"c{i}.md", "").endswith(str(i)) for i in range(8)), sorted(contents)


def test_a_rejected_write_leaves_the_file_as_last_committed(
    app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    app_server_client.write_memory_file(agent["id"], "kept.md", memory_file("kept", "the good text"))

    with pytest.raises(AppServerError, match="unknown frontmatter key 'owner'"):
        app_server_client.write_memory_file(agent["id"], "kept.md", "---\nowner: me\n---\nthe bad text")
    with pytest.raises(AppServerError, match="unknown frontmatter key 'owner'"):
        app_server_client.write_memory_file(agent["id"], "new.md", "---\nowner: me\n---\nnever committed")

    assert app_server_client.read_memory_file(agent["id"], "kept.md").endswith("the good text")
    listed = {entry["relative_path"] for entry in app_server_client.list_memory(agent["id"])}
    assert "new.md" not in listed
    # The working tree is clean again: the next write of another file commits only itself.
    assert app_server_client.write_memory_file(agent["id"], "after.md", memory_file("after", "fine"))


def test_a_rejected_delete_leaves_the_file_as_last_committed(
    app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    """The server takes the file out of the working tree before its check refuses the commit: left so, the
    deletion stays staged and blocks every later write to the agent."""
    with pytest.raises(AppServerError, match="Memory validation"):
        app_server_client.delete_memory_file(agent["id"], "MEMORY.md")  # v2 needs its root index

    listed = {entry["relative_path"] for entry in app_server_client.list_memory(agent["id"])}
    assert "MEMORY.md" in listed
    assert app_server_client.write_memory_file(agent["id"], "after.md", memory_file("after", "fine"))


def test_conversations_are_created_listed_by_summary_and_archived(
    app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    first = app_server_client.create_conversation(agent["id"], "triage")
    second = app_server_client.create_conversation(agent["id"], "triage weekly")

    listed = app_server_client.list_conversations(agent["id"])
    searched = app_server_client.list_conversations(agent["id"], summary_search="weekly")
    archived = app_server_client.archive_conversation(first["id"])

    assert {first["id"], second["id"]} <= {conversation["id"] for conversation in listed}
    assert [conversation["id"] for conversation in searched] == [second["id"]]
    assert archived["archived"] is True
    states = {c["id"]: c["archived"] for c in app_server_client.list_conversations(agent["id"])}
    assert states[first["id"]] is True and states[second["id"]] is False


def test_secrets_are_set_listed_and_unset_by_upper_cased_name(
    app_server_client: AppServerClient, agent: dict[str, Any]
) -> None:
    names = app_server_client.apply_secrets(agent["id"], set_values={"db_password": "pw-1", "API_TOKEN": "tok-2"})
    assert names == ["API_TOKEN", "DB_PASSWORD"]
    assert app_server_client.secret_values(agent["id"]) == {"API_TOKEN": "tok-2", "DB_PASSWORD": "pw-1"}

    assert app_server_client.apply_secrets(agent["id"], unset=["db_password"]) == ["API_TOKEN"]
    assert app_server_client.secret_names(agent["id"]) == ["API_TOKEN"]


def test_a_connected_openai_compatible_provider_lists_its_models(
    app_server_client: AppServerClient, fake_llm: FakeLLM
) -> None:
    app_server_client.connect_provider("openai-compatible", {"baseUrl": fake_llm.base_url, "apiKey": "sk-stand-in"})

    handles = {model["handle"] for model in app_server_client.list_models()}

    assert "openai-compatible/fake-echo-model" in handles


def test_an_agent_made_by_0_32_18_has_the_v1_memory_layout(app_server_v1_layout_url: str) -> None:
    with AppServerClient(app_server_v1_layout_url) as client:
        assert client.server_info()["letta_code_version"] == "0.32.18"
        made = client.create_agent(
            {"name": unique("as-v1-layout"), "memory_blocks": [{"label": "persona", "value": "Helpful."}]}
        )
        try:
            client.write_memory_file(made["id"], "system/human.md", "---\ndescription: who I help\n---\nBob")
            entries = {entry["relative_path"]: entry for entry in client.list_memory(made["id"])}
        finally:
            client.delete_agent(made["id"])

    assert {"system/persona.md", "system/human.md"} <= set(entries)
    assert entries["system/persona.md"]["is_system"] is True
    assert "MEMORY.md" not in entries
