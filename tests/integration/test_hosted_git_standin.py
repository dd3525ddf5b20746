"""The stand-in for hosted Letta's git-backed memory (tests/fakes/hosted_git_memory.py) against the real dev server:
git's own clone and push through it, the write-back into the blocks after the delay, the key it requires, and the
tag that switches an agent's repository on."""

from __future__ import annotations

import base64
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.hosted_git_memory import GIT_MEMORY_TAG, HostedGitMemoryStandIn, running_hosted_git_memory

KEY = "sk-let-standin-4f1e/9a+c="
DELAY = 1.5
MODEL = {"llm_config": {"model": "letta-free", "model_endpoint_type": "openai", "context_window": 32000}}
BLOCKS = [
    {"label": "persona", "value": "I answer questions.", "description": "who I am"},
    {"label": "human", "value": "A customer.", "description": "who they are"},
]


@pytest.fixture
def hosted(letta_server: str) -> Iterator[HostedGitMemoryStandIn]:
    with running_hosted_git_memory(letta_server, KEY, sync_delay=DELAY) as stand_in:
        yield stand_in


@pytest.fixture
def rest(hosted: HostedGitMemoryStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hosted.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as client:
        yield client


@pytest.fixture
def make_agent(rest: httpx.Client, client: LettaClient) -> Iterator[Callable[..., dict]]:
    """Creates agents through the stand-in, named uniquely; they and their blocks are deleted afterwards."""
    made: list[str] = []

    def make(tags: list[str]) -> dict:
        body = {"name": f"gitmem-{uuid.uuid4().hex[:8]}", "tags": tags, "memory_blocks": BLOCKS, **MODEL}
        answer = rest.post("/v1/agents/", json={**body, "embedding": "letta/letta-free", "include_base_tools": False})
        assert answer.status_code == 200, answer.text
        made.append(answer.json()["id"])
        return answer.json()

    yield make
    for agent_id in made:
        blocks = client.get(f"/v1/agents/{agent_id}/core-memory/blocks")
        client.delete(f"/v1/agents/{agent_id}")
        for block in blocks:
            client.delete(f"/v1/blocks/{block['id']}")


def git(*args: str, cwd: Path | None = None, authorization: str | None = None) -> subprocess.CompletedProcess[str]:
    """git with the credential as an extra header (or none), never prompting."""
    header = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": authorization}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/nonexistent",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        **(header if authorization else {}),
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


BASIC = "Authorization: Basic " + base64.b64encode(f"letta:{KEY}".encode()).decode()


def clone(hosted: HostedGitMemoryStandIn, agent_id: str, into: Path) -> Path:
    done = git("clone", "--quiet", hosted.git_url(agent_id), str(into), authorization=BASIC)
    assert done.returncode == 0, done.stderr
    return into


def commit_and_push(tree: Path) -> None:
    for args in (("add", "--all"), ("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "edit"), ("push",)):
        done = git(*args, cwd=tree, authorization=BASIC)
        assert done.returncode == 0, done.stderr


def blocks_of(client: LettaClient, agent_id: str) -> dict[str, dict]:
    return {block["label"]: block for block in client.get(f"/v1/agents/{agent_id}/core-memory/blocks")}


def test_an_agent_created_with_the_tag_keeps_it_and_its_repository_holds_its_blocks(
    hosted, make_agent, client, tmp_path
):
    agent = make_agent(["support", GIT_MEMORY_TAG])

    assert GIT_MEMORY_TAG in agent["tags"]
    assert GIT_MEMORY_TAG in client.get(f"/v1/agents/{agent['id']}", include=["agent.tags"])["tags"]
    assert set(blocks_of(client, agent["id"])) == {"system/persona", "system/human"}
    tree = clone(hosted, agent["id"], tmp_path / "memory")
    assert (tree / "system" / "persona.md").read_text() == "---\ndescription: who I am\n---\nI answer questions."
    assert (tree / "system" / "human.md").read_text() == "---\ndescription: who they are\n---\nA customer."


def test_the_tag_added_later_opens_the_repository_and_moves_the_blocks_under_system(
    hosted, make_agent, rest, client, tmp_path
):
    agent = make_agent(["support"])
    refused = git("ls-remote", hosted.git_url(agent["id"]), authorization=BASIC)
    assert refused.returncode != 0 and "not found" in refused.stderr
    assert set(blocks_of(client, agent["id"])) == {"persona", "human"}

    rest.patch(f"/v1/agents/{agent['id']}", json={"tags": ["support", GIT_MEMORY_TAG]}).raise_for_status()

    assert set(blocks_of(client, agent["id"])) == {"system/persona", "system/human"}
    tree = clone(hosted, agent["id"], tmp_path / "memory")
    assert sorted(path.name for path in (tree / "system").iterdir()) == ["human.md", "persona.md"]


def test_a_git_request_for_an_agent_without_the_tag_says_so(hosted, make_agent):
    agent = make_agent(["support"])
    answer = httpx.get(
        f"{hosted.git_url(agent['id'])}/info/refs",
        params={"service": "git-upload-pack"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert answer.status_code == 404
    assert answer.json()["detail"] == (
        f"Agent {agent['id']} has no git-backed memory: add the tag {GIT_MEMORY_TAG} to it first."
    )


def test_a_push_is_written_back_into_the_blocks_after_the_delay_and_not_before(hosted, make_agent, client, tmp_path):
    agent = make_agent([GIT_MEMORY_TAG])
    tree = clone(hosted, agent["id"], tmp_path / "memory")
    (tree / "system" / "persona.md").write_text("---\ndescription: who I am now\n---\nI answer better.")
    (tree / "system" / "policies.md").write_text("Be kind.")
    (tree / "system" / "human.md").unlink()
    (tree / "skills" / "triage").mkdir(parents=True)
    (tree / "skills" / "triage" / "SKILL.md").write_text("Sort tickets.")
    (tree / "skills" / "triage" / "notes.md").write_text("not a block")

    commit_and_push(tree)
    before = blocks_of(client, agent["id"])
    hosted.wait_for_syncs(agent["id"], 1)
    after = blocks_of(client, agent["id"])

    assert time.monotonic() - hosted.pushed_at[agent["id"]] >= DELAY
    assert hosted.synced_at[agent["id"]] - hosted.pushed_at[agent["id"]] >= DELAY
    assert before["system/persona"]["value"] == "I answer questions."  # not yet: the delay had not passed
    assert after["system/persona"]["value"] == "I answer better."
    assert after["system/persona"]["description"] == "who I am now"
    assert after["system/policies"]["value"] == "Be kind."
    assert after["skills/triage"]["value"] == "Sort tickets."
    assert set(after) == {"system/persona", "system/policies", "skills/triage"}  # human's file is gone: detached


def test_every_request_without_the_key_is_refused(hosted, make_agent, tmp_path):
    agent = make_agent([GIT_MEMORY_TAG])

    for headers in ({}, {"Authorization": "Bearer sk-let-not-the-key"}):
        answer = httpx.get(f"{hosted.url}/v1/agents/", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Basic")
    no_key = git("clone", hosted.git_url(agent["id"]), str(tmp_path / "a"))
    assert no_key.returncode != 0 and "could not read Username" in no_key.stderr
    wrong_key = git("clone", hosted.git_url(agent["id"]), str(tmp_path / "b"), authorization="Authorization: Bearer x")
    assert wrong_key.returncode != 0
    bearer = git(
        "clone", hosted.git_url(agent["id"]), str(tmp_path / "c"), authorization=f"Authorization: Bearer {KEY}"
    )
    assert bearer.returncode == 0, bearer.stderr
    assert hosted.seen["unauthorized"] >= 4


def test_a_block_written_over_the_api_is_committed_to_the_repository(hosted, make_agent, rest, client, tmp_path):
    agent = make_agent([GIT_MEMORY_TAG])
    persona = blocks_of(client, agent["id"])["system/persona"]

    rest.patch(f"/v1/blocks/{persona['id']}", json={"value": "Edited over the API."}).raise_for_status()

    assert hosted.files_at_head(agent["id"])["system/persona.md"] == (
        "---\ndescription: who I am\n---\nEdited over the API."
    )
    tree = clone(hosted, agent["id"], tmp_path / "memory")
    assert (tree / "system" / "persona.md").read_text().endswith("Edited over the API.")
