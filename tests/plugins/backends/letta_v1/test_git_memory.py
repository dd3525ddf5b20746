"""GitMemory, the V1 client of an agent's git-backed memory: real git over smart HTTP against the offline stand-in
(git's own `http-backend` behind the API key), the credential only ever in git's environment."""

from __future__ import annotations

import base64
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
import respx

from lettafleet.core import LettaError
from lettafleet.plugins.backends.letta_v1 import git_memory
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.git_memory import GitMemory, GitMemoryError, memory_file_value
from tests.fakes.fault_proxy import Faults, Refusal
from tests.fakes.hosted_git_memory import GIT_MEMORY_TAG, OfflineGitMemory, running_offline_git_memory

KEY = "sk-let-unit-Zq9x/7+key=="  # URL-special characters, so that its URL-encoded forms differ from it
AGENT = "agent-unit-1"
OTHER = "agent-unit-2"
PERSONA = {"id": "block-1", "label": "system/persona", "value": "I help.", "description": "who I am"}


def agents() -> dict[str, dict]:
    return {
        AGENT: {"tags": [GIT_MEMORY_TAG], "blocks": [dict(PERSONA)]},
        OTHER: {"tags": [GIT_MEMORY_TAG], "blocks": []},
        "agent-untagged": {"tags": [], "blocks": []},
    }


@pytest.fixture
def hosted():
    with running_offline_git_memory(agents(), KEY) as stand_in:
        yield stand_in


@pytest.fixture
def memory(hosted):
    with LettaClient(hosted.url, api_key=KEY) as client:
        yield GitMemory(client, git_timeout=60)


def forms_of(secret: str) -> set[str]:
    """The key as git output or a server could show it: plain, base64 (alone and as basic auth), URL-encoded."""
    return {
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"letta:{secret}".encode()).decode(),
        quote(secret, safe=""),
        quote_plus(secret),
    }


def test_read_returns_every_file_of_the_repository_at_head(memory):
    assert memory.read(AGENT) == {"system/persona.md": "---\ndescription: who I am\n---\nI help."}


def test_write_makes_one_commit_of_the_writes_and_deletes_and_pushes_it(memory, hosted):
    memory.write(AGENT, {"system/policies.md": "Be kind.", "reference/faq.md": "Q & A"}, [], "fleet: first")
    memory.write(AGENT, {"system/policies.md": "Be kinder."}, ["reference/faq.md"], "fleet: second")

    assert hosted.files_at_head(AGENT) == {
        "system/persona.md": "---\ndescription: who I am\n---\nI help.",
        "system/policies.md": "Be kinder.",
    }
    log = subprocess.run(
        ["git", "--git-dir", str(hosted.repository(AGENT)), "log", "--format=%s"], capture_output=True, text=True
    ).stdout.split("\n")
    assert log[:2] == ["fleet: second", "fleet: first"]
    assert hosted.seen["push"] == 2


def test_a_write_that_changes_nothing_pushes_nothing(memory, hosted):
    memory.write(AGENT, {"system/persona.md": "---\ndescription: who I am\n---\nI help."}, ["absent.md"], "same")
    assert hosted.seen["push"] == 0


def test_the_key_travels_only_in_gits_environment(memory, monkeypatch):
    calls: list[tuple[list[str], dict[str, str]]] = []
    config_files: list[str] = []
    real_run = subprocess.run

    def recording_run(args, **kwargs):
        done = real_run(args, **kwargs)
        if threading.current_thread() is not threading.main_thread():
            return done  # the stand-in's own git, serving the request
        calls.append((list(args), dict(kwargs.get("env") or {})))
        if args[1] == "clone":
            config_files.append(Path(args[-1], ".git", "config").read_text())
        return done

    monkeypatch.setattr(git_memory.subprocess, "run", recording_run)
    memory.write(AGENT, {"system/new.md": "new"}, [], "fleet: new")

    assert calls and config_files
    for args, env in calls:
        assert not any(form in arg for arg in args for form in forms_of(KEY)), args
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        assert env[f"GIT_CONFIG_VALUE_{_header_index(env)}"].startswith("Authorization: Basic ")
    assert not any(form in text for text in config_files for form in forms_of(KEY))
    clone_url = next(args[-2] for args, _ in calls if args[1] == "clone")
    assert clone_url == f"{memory.repository_url(AGENT)}" and "@" not in clone_url


def _header_index(env: dict[str, str]) -> int:
    """The index of the GIT_CONFIG_KEY_n that sets http.extraHeader."""
    return next(int(name.rsplit("_", 1)[1]) for name, value in env.items() if value == "http.extraHeader")


def test_the_temporary_clone_is_deleted_afterwards(memory, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    memory.write(AGENT, {"system/new.md": "new"}, [], "fleet: new")
    memory.read(AGENT)
    assert list(tmp_path.iterdir()) == []


def test_the_key_is_masked_in_every_form_in_what_git_reports(memory, hosted):
    hosted.enable(AGENT)
    hook = hosted.repository(AGENT) / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    echoed = " ".join(sorted(forms_of(KEY)))
    hook.write_text(f"#!/bin/sh\necho 'refusing: {echoed}' >&2\nexit 1\n")
    hook.chmod(0o755)

    with pytest.raises(GitMemoryError) as caught:
        memory.write(AGENT, {"system/new.md": "new"}, [], "fleet: new")

    assert "remote: refusing: " in str(caught.value) and "The server refused the commit" in str(caught.value)
    assert [form for form in forms_of(KEY) if form in str(caught.value)] == []


GIT_FAULTS = {
    "push refused 500": (
        "write",
        Faults(refuse=1.0, refusals=(Refusal(500),), only="git-receive-pack$"),
        "The server failed (HTTP 500): run the apply again once it answers",
    ),
    "push refused 403": (
        "write",
        Faults(refuse=1.0, refusals=(Refusal(403),), only="git-receive-pack$"),
        "The server refused access to the agent's memory (403): check that LETTA_API_KEY may write it",
    ),
    "connection dropped during a push": (
        "write",
        Faults(drop=1.0, only="git-receive-pack$"),
        "The connection broke before the server answered: run the apply again",
    ),
    "connection dropped during a clone": (
        "read",
        Faults(drop=1.0, only="git-upload-pack$"),
        "The connection broke before the server answered: run the apply again",
    ),
}


@pytest.mark.parametrize("fault", list(GIT_FAULTS))
def test_a_git_fault_is_one_clear_line_saying_what_happened_and_what_to_do(memory, hosted, fault):
    call, faults, advice = GIT_FAULTS[fault]
    hosted.enable(AGENT)
    hosted.faults = faults

    with pytest.raises(GitMemoryError) as caught:
        memory.write(AGENT, {"system/new.md": "new"}, [], "fleet: new") if call == "write" else memory.read(AGENT)

    said = str(caught.value)
    assert advice in said and "\n" not in said and "The server refused the commit" not in said
    assert [form for form in forms_of(KEY) if form in said] == []


def test_a_wrong_key_is_a_clear_error_that_names_the_key_to_check(hosted):
    refused = pytest.raises(GitMemoryError, match="refused the credential: check LETTA_API_KEY")
    with LettaClient(hosted.url, api_key="sk-let-wrong-key-0000") as client, refused as caught:
        GitMemory(client).read(AGENT)
    assert "sk-let-wrong-key-0000" not in str(caught.value)


def test_a_push_refused_as_stale_is_made_again_once_on_what_was_pushed_first(memory, hosted, monkeypatch):
    competing = _competing_pushes(memory, hosted, monkeypatch, times=1)
    memory.write(AGENT, {"system/mine.md": "mine"}, [], "fleet: mine")

    files = hosted.files_at_head(AGENT)
    assert files["system/mine.md"] == "mine" and files["system/theirs-1.md"] == "theirs"
    assert competing == [1]


def test_a_push_refused_twice_is_a_clear_error(memory, hosted, monkeypatch):
    _competing_pushes(memory, hosted, monkeypatch, times=2)
    with pytest.raises(GitMemoryError, match=r"was refused: .*Someone else keeps pushing to it: run the apply again"):
        memory.write(AGENT, {"system/mine.md": "mine"}, [], "fleet: mine")
    assert "system/mine.md" not in hosted.files_at_head(AGENT)


def _competing_pushes(memory, hosted, monkeypatch, times: int) -> list[int]:
    """Someone else pushes to the agent's repository between the clone and the push, `times` times."""
    from tests.fakes.hosted_git_memory import _commit

    done: list[int] = []
    real_push = GitMemory._push

    def push_after_someone_else(self, tree):
        if len(done) < times:
            done.append(len(done) + 1)
            _commit(hosted.repository(AGENT), {f"system/theirs-{len(done)}.md": "theirs"}, [], "someone else")
        return real_push(self, tree)

    monkeypatch.setattr(GitMemory, "_push", push_after_someone_else)
    return done


def test_writes_to_one_agent_wait_for_each_other_and_other_agents_write_meanwhile(memory, hosted, monkeypatch):
    in_flight: dict[str, int] = {AGENT: 0, OTHER: 0}
    most: dict[str, int] = {AGENT: 0, OTHER: 0, "both": 0}
    guard = threading.Lock()
    real_push = GitMemory._push

    def slow_push(self, tree):
        agent = AGENT if AGENT in subprocess.run(
            ["git", "remote", "get-url", "origin"], cwd=tree, capture_output=True, text=True
        ).stdout else OTHER  # fmt: skip
        with guard:
            in_flight[agent] += 1
            most[agent] = max(most[agent], in_flight[agent])
            most["both"] = max(most["both"], in_flight[AGENT] + in_flight[OTHER])
        time.sleep(0.3)
        try:
            return real_push(self, tree)
        finally:
            with guard:
                in_flight[agent] -= 1

    monkeypatch.setattr(GitMemory, "_push", slow_push)
    writes = [(agent, n) for n in range(3) for agent in (AGENT, OTHER)]
    threads = [
        threading.Thread(target=memory.write, args=(agent, {f"system/w{n}.md": str(n)}, [], f"w{n}"))
        for agent, n in writes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert most[AGENT] == 1 and most[OTHER] == 1
    assert most["both"] == 2
    for agent in (AGENT, OTHER):
        assert {f"system/w{n}.md" for n in range(3)} <= set(hosted.files_at_head(agent))


def test_every_git_call_has_a_timeout(hosted):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection and never answers
    try:
        with LettaClient(f"http://127.0.0.1:{silent.getsockname()[1]}", api_key=KEY) as client:
            started = time.monotonic()
            with pytest.raises(GitMemoryError, match=r"git clone did not finish within 2 s"):
                GitMemory(client, git_timeout=2).read(AGENT)
        assert time.monotonic() - started < 10
    finally:
        silent.close()


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.md", "system/../../x.md", ".git/config", ""])
def test_a_path_outside_the_repository_is_refused_before_any_git(memory, hosted, path):
    with pytest.raises(GitMemoryError, match="not a relative path inside the memory repository"):
        memory.write(AGENT, {path: "x"}, [], "fleet: bad")
    assert hosted.seen["push"] == 0


def test_available_is_none_where_the_repository_is_served(memory):
    assert memory.available(AGENT) is None


def test_available_says_why_not_for_an_agent_the_server_serves_no_memory_for(memory):
    reason = memory.available("agent-untagged")
    assert reason is not None and "does not serve git-backed memory for agent agent-untagged: it answered 404" in reason


@respx.mock
def test_available_recognizes_self_hosted_0_16_8s_answer():
    detail = "git HTTP requires memfs service (LETTA_MEMFS_SERVICE_URL not configured)"
    respx.get("http://127.0.0.1:8283/v1/git/agent-1/state.git/info/refs").respond(501, json={"detail": detail})
    with LettaClient("http://127.0.0.1:8283", api_key=KEY) as client:
        reason = GitMemory(client).available("agent-1")
    assert reason is not None
    assert reason.startswith("http://127.0.0.1:8283 has no git-backed memory: it answered 501 (" + detail)
    assert "memfs service it does not ship" in reason


def test_served_asks_the_server_not_an_agent_an_unknown_agents_refusal_means_it_has_git_memory(memory):
    assert memory.served() is None  # the stand-in refuses the made-up agent with a 404: it has git memory


@respx.mock
def test_served_says_why_on_self_hosted_0_16_8():
    detail = "git HTTP requires memfs service (LETTA_MEMFS_SERVICE_URL not configured)"
    respx.get(url__regex=r"http://127.0.0.1:8283/v1/git/agent-0{8}-.*/info/refs").respond(501, json={"detail": detail})
    with LettaClient("http://127.0.0.1:8283", api_key=KEY) as client:
        reason = GitMemory(client).served()
    assert reason is not None and reason.startswith("http://127.0.0.1:8283 has no git-backed memory: it answered 501")


def test_wait_synced_returns_once_the_blocks_hold_the_pushed_system_files():
    agents_now = agents()
    files = {"system/persona.md": "---\ndescription: who I am\n---\nI help more.", "reference/x.md": "x"}
    with (
        running_offline_git_memory(agents_now, KEY, sync_delay=1.0) as hosted,
        LettaClient(hosted.url, api_key=KEY) as client,
    ):
        memory = GitMemory(client)
        memory.write(AGENT, files, [], "fleet: persona")
        started = time.monotonic()
        memory.wait_synced(AGENT, files, timeout=20)
        waited = time.monotonic() - started
    labels = {block["label"]: block["value"] for block in agents_now[AGENT]["blocks"]}
    assert labels["system/persona"] == "I help more."
    assert 0.5 < waited < 10


def test_wait_synced_says_which_files_the_blocks_do_not_hold_after_the_timeout():
    answers = iter(range(1000))

    def blocks(request: httpx.Request) -> httpx.Response:
        next(answers)
        return httpx.Response(200, json=[{"label": "system/persona", "value": "old"}])

    client = LettaClient("http://127.0.0.1:8283", api_key=KEY, transport=httpx.MockTransport(blocks))
    files = {"system/persona.md": "---\ndescription: d\n---\nnew", "system/policies.md": "p", "skills/a/SKILL.md": "s"}
    with pytest.raises(GitMemoryError) as caught:
        GitMemory(client).wait_synced(AGENT, files, timeout=1.5)
    message = str(caught.value)
    assert "within 1.5 s: system/persona.md (block system/persona differs), system/policies.md (no block " in message
    assert "skills/a/SKILL.md" not in message
    assert next(answers) >= 3  # asked again and again, not once after a sleep


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("---\ndescription: who\n---\nbody\n", "body\n"),
        ("no front matter", "no front matter"),
        ("---\nnot: [closed\n---\nbody", "---\nnot: [closed\n---\nbody"),
        ("---\njust a string\n---\nbody", "---\njust a string\n---\nbody"),
    ],
)
def test_a_memory_files_value_is_what_follows_its_front_matter(text, value):
    assert memory_file_value(text) == value


def test_the_offline_stand_in_refuses_git_without_the_key(hosted: OfflineGitMemory):
    done = subprocess.run(
        ["git", "ls-remote", hosted.git_url(AGENT)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0", "HOME": "/nonexistent"},
        timeout=30,
    )
    assert done.returncode != 0 and "could not read Username" in done.stderr


def test_git_is_given_the_key_as_letta_code_sends_it_or_the_urls_own_user_and_password():
    with LettaClient("http://127.0.0.1:8283", api_key=KEY) as keyed:
        assert keyed.git_authorization() == "Basic " + base64.b64encode(f"letta:{KEY}".encode()).decode()
    with LettaClient("http://ann:s3cret@127.0.0.1:8283", api_key="") as in_url:
        assert in_url.git_authorization() == "Basic " + base64.b64encode(b"ann:s3cret").decode()
    with LettaClient("http://127.0.0.1:8283", api_key="") as anonymous:
        assert anonymous.git_authorization() is None


def test_git_backed_memory_on_another_backend_is_a_clear_error():
    class AppServerLike:
        base_url = "ws://127.0.0.1:9999"

    with pytest.raises(LettaError, match=r"git-backed memory needs Letta's V1 REST API, which ws://127.0.0.1:9999"):
        GitMemory(AppServerLike())  # type: ignore[arg-type]
