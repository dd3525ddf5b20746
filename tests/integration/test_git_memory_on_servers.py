"""GitMemory on real servers: the bare 0.16.8 dev server has no git-backed memory (and says why), and through the
stand-in for hosted Letta in front of it an agent's memory is written, synced into its blocks, and read back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.git_memory import GitMemory
from tests.fakes.hosted_git_memory import GIT_MEMORY_TAG, HostedGitMemoryStandIn, running_hosted_git_memory

KEY = "sk-let-gitmemory-8c2d"
MODEL = {"llm_config": {"model": "letta-free", "model_endpoint_type": "openai", "context_window": 32000}}


@pytest.fixture
def hosted(letta_server: str) -> Iterator[HostedGitMemoryStandIn]:
    with running_hosted_git_memory(letta_server, KEY, sync_delay=2.0) as stand_in:
        yield stand_in


@pytest.fixture
def through_hosted(hosted: HostedGitMemoryStandIn) -> Iterator[LettaClient]:
    with LettaClient(hosted.url, api_key=KEY) as client:
        yield client


@pytest.fixture
def memfs_agent(through_hosted: LettaClient, client: LettaClient) -> Iterator[str]:
    """An agent with git-backed memory, made through the stand-in; it and its blocks are deleted afterwards."""
    agent = through_hosted.post(
        "/v1/agents/",
        json={
            "name": f"gitmem-{uuid.uuid4().hex[:8]}",
            "tags": [GIT_MEMORY_TAG],
            "memory_blocks": [{"label": "persona", "value": "I help.", "description": "who I am"}],
            "embedding": "letta/letta-free",
            "include_base_tools": False,
            **MODEL,
        },
    )
    yield agent["id"]
    blocks = client.get(f"/v1/agents/{agent['id']}/core-memory/blocks")
    client.delete(f"/v1/agents/{agent['id']}")
    for block in blocks:
        client.delete(f"/v1/blocks/{block['id']}")


def test_the_bare_dev_server_has_no_git_backed_memory_and_available_says_why(client):
    reason = GitMemory(client).available("agent-00000000-0000-4000-8000-000000000000")
    assert reason is not None
    assert reason.startswith(
        f"{client.base_url} has no git-backed memory: it answered 501 (git HTTP requires memfs service "
        "(LETTA_MEMFS_SERVICE_URL not configured))."
    )


def test_memory_written_through_hosted_is_synced_into_the_blocks_and_read_back(
    hosted, through_hosted, memfs_agent, client
):
    memory = GitMemory(through_hosted)
    files = {
        "system/persona.md": "---\ndescription: who I am\n---\nI help, kindly.",
        "system/policies.md": "---\ndescription: the rules\n---\nRefunds within 30 days.",
        "reference/faq.md": "Opening hours: 9 to 5.",
    }
    assert memory.available(memfs_agent) is None

    memory.write(memfs_agent, files, [], "lettafleet: memory files")
    memory.wait_synced(memfs_agent, files, timeout=30)

    blocks = {block["label"]: block for block in client.get(f"/v1/agents/{memfs_agent}/core-memory/blocks")}
    assert blocks["system/persona"]["value"] == "I help, kindly."
    assert blocks["system/policies"]["value"] == "Refunds within 30 days."
    assert blocks["system/policies"]["description"] == "the rules"
    assert memory.read(memfs_agent) == files
    pushes = hosted.seen["push"]
    memory.write(memfs_agent, files, [], "lettafleet: the same again")
    assert hosted.seen["push"] == pushes  # nothing changed: nothing pushed


def test_a_deleted_file_is_gone_from_the_repository_and_its_block_detached(hosted, through_hosted, memfs_agent, client):
    memory = GitMemory(through_hosted)
    memory.write(memfs_agent, {"system/notes.md": "temporary"}, [], "add notes")
    memory.wait_synced(memfs_agent, {"system/notes.md": "temporary"}, timeout=30)

    memory.write(memfs_agent, {}, ["system/notes.md"], "drop notes")
    hosted.wait_for_syncs(memfs_agent, 2)

    assert "system/notes.md" not in memory.read(memfs_agent)
    labels = {block["label"] for block in client.get(f"/v1/agents/{memfs_agent}/core-memory/blocks")}
    assert labels == {"system/persona"}
