"""A stand-in for hosted Letta's git-backed memory (MemFS over `/v1/git/<agent_id>/state.git`), for tests only.

Hosted Letta cannot be reached from here, and the self-hosted 0.16.8 dev server answers every `/v1/git` request
501 (it proxies them to a memfs service it does not ship). This is an HTTP server on 127.0.0.1 in front of the real
dev server that reproduces what hosted Letta documents about git memory (docs/hosted-letta.md, "Git-backed
memory"), and forwards everything else to the dev server unchanged:

- every request needs the API key (`Authorization: Bearer KEY`, or basic auth with KEY as the password, as Letta
  Code sends it); without it: 401 with a `WWW-Authenticate: Basic` challenge. The key is never logged;
- `/v1/git/<agent_id>/state.git/...` is served by git's own `git http-backend` (smart HTTP: clone, fetch, push)
  from one bare repository per agent, kept in a temporary folder;
- the repository is made from the agent's blocks when the agent carries the tag `git-memory-enabled` (seen on a
  create or update this server forwards, or on the first git request): each block becomes `<label>.md` with a
  `description` front matter, labels not yet under `system/` are renamed `system/<label>` first, and the tag is
  put back on an agent the dev server created without it (0.16.8 drops the tag from a create request);
- a git request for an agent without the tag answers 404 (what hosted answers is not documented);
- after each push, once `sync_delay` seconds have passed (hosted documents "~2-3s"), every `*.md` file at HEAD is
  written back into the agent's block of label `path[:-3]` (`skills/<name>/SKILL.md` as `skills/<name>`; other
  files under `skills/` are not blocks) over the dev server's REST API: a new label becomes a new attached block,
  and a block whose file is gone is detached.

It is a `FaultProxy` (tests/fakes/fault_proxy.py) that serves the git requests itself: the proxy's faults (refusals,
dropped connections, held requests, its death) fall on git's requests as on any other, and its counts count them
(`pushes`).

    with running_hosted_git_memory(letta_url, api_key="...") as hosted:
        clone hosted.git_url(agent_id) with the key in an Authorization header ...
        hosted.wait_for_syncs(agent_id, 1)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from tests.fakes.fault_proxy import HOP_HEADERS, FaultProxy, json_answer

GIT_MEMORY_TAG = "git-memory-enabled"
SYNC_DELAY = 2.0  # seconds; letta-code's syncing-memory-filesystem skill: "webhook-triggered, ~2-3s delay"
BLOCK_LIMIT = 20_000  # Letta's CORE_MEMORY_BLOCK_CHAR_LIMIT, the limit hosted gives a block a push creates
GIT_TIMEOUT = 60.0
_GIT_PATH = re.compile(r"^/v1/git/(?P<agent>[^/]+)/state\.git(?P<rest>/.*)?$")
_AGENT_PATH = re.compile(r"^/v1/agents/(?P<agent>agent-[^/]+)/?$")
_BLOCK_WRITE = re.compile(r"^/v1/(blocks/block-[^/]+|agents/agent-[^/]+/core-memory/blocks/[^/]+)/?$")
UNAUTHORIZED = "Unauthorized: send the API key as `Authorization: Bearer KEY` (or as the password of basic auth)."
_AUTHOR = {
    "GIT_AUTHOR_NAME": "hosted-git-standin",
    "GIT_AUTHOR_EMAIL": "standin@127.0.0.1",
    "GIT_COMMITTER_NAME": "hosted-git-standin",
    "GIT_COMMITTER_EMAIL": "standin@127.0.0.1",
}


class HostedGitMemoryStandIn(FaultProxy):
    """The stand-in's state: its URL, where its repositories are, and what it saw (`seen`, `syncs`, and the fault
    proxy's `counts`)."""

    def __init__(self, upstream: str, api_key: str, sync_delay: float = SYNC_DELAY) -> None:
        super().__init__(upstream)
        self.api_key = api_key
        self.sync_delay = sync_delay
        self.repos = Path(tempfile.mkdtemp(prefix="hosted-git-standin-"))
        self.seen: Counter[str] = Counter()  # "unauthorized", "untagged", "repository made", "push", ...
        self.syncs: Counter[str] = Counter()  # per agent id: the write-backs done after pushes
        self.pushed_at: dict[str, float] = {}  # per agent id: when its last push was answered
        self.synced_at: dict[str, float] = {}  # per agent id: when its last write-back ended
        self._changed = threading.Condition()
        self._agent_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._rest = self._forwarder  # the stand-in's own requests to the dev server: past the faults, uncounted

    # -- what tests use -----------------------------------------------------------------------------------------

    def git_url(self, agent_id: str) -> str:
        return f"{self.url}/v1/git/{agent_id}/state.git"

    def repository(self, agent_id: str) -> Path:
        """The bare repository of an agent (it may not exist yet)."""
        return self.repos / f"{agent_id}.git"

    def files_at_head(self, agent_id: str) -> dict[str, str]:
        """Every file of the agent's repository at HEAD, read on the server side."""
        return _files_at_head(self.repository(agent_id))

    def wait_for_syncs(self, agent_id: str, count: int, timeout: float = 30.0) -> None:
        """Return once `count` write-backs of the agent's pushes are done."""
        with self._changed:
            done = self._changed.wait_for(lambda: self.syncs[agent_id] >= count, timeout)
        assert done, f"{self.syncs[agent_id]} of {count} write-backs for {agent_id} after {timeout:g} s"

    # -- authentication -----------------------------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries the API key: as a bearer token, or as basic auth's password."""
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.api_key.encode())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            return hmac.compare_digest(decoded.partition(":")[2].encode(), self.api_key.encode())
        return False

    # -- the agent's side: tags, blocks ---------------------------------------------------------------------------

    def agent(self, agent_id: str) -> httpx.Response:
        return self._rest.get(f"/v1/agents/{agent_id}", params={"include": ["agent.tags", "agent.blocks"]})

    def agent_lock(self, agent_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._agent_locks.setdefault(agent_id, threading.Lock())

    def enable(self, agent_id: str) -> None:
        """What hosted does when the tag appears: make the repository from the blocks (labels moved under
        `system/` first), or add the blocks the repository lacks."""
        with self.agent_lock(agent_id):
            blocks = self.agent(agent_id).raise_for_status().json().get("blocks") or []
            repository = self.repository(agent_id)
            if repository.exists():
                present = _files_at_head(repository)
                missing = {f"{b['label']}.md": _block_file(b) for b in blocks if f"{b['label']}.md" not in present}
                if missing:
                    _commit(repository, missing, [], "Backfill blocks")
                return
            for block in blocks:
                if not block["label"].startswith("system/"):
                    self.relabel(agent_id, block, f"system/{block['label']}")
            _create_repository(repository, {f"{b['label']}.md": _block_file(b) for b in blocks})
            self.seen["repository made"] += 1

    def relabel(self, agent_id: str, block: dict[str, Any], label: str) -> None:
        """Give a block of the agent another label (hosted moves them under `system/` when git memory starts)."""
        self._rest.patch(f"/v1/blocks/{block['id']}", json={"label": label}).raise_for_status()
        block["label"] = label

    # -- serving ------------------------------------------------------------------------------------------------

    def answer_instead(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response | None:
        """401 for a request without the key; everything else is served (`send`)."""
        sent = {name.lower(): value for name, value in headers.items()}
        if self.authorized(sent.get("authorization")):
            return None
        self.seen["unauthorized"] += 1
        return json_answer(401, {"detail": UNAUTHORIZED}, {"WWW-Authenticate": 'Basic realm="Letta API"'})

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        """A git request served from the agent's repository; any other, the dev server's answer (after what hosted
        does on a tag or a block write)."""
        path = urlsplit(target).path
        git = _GIT_PATH.match(path)
        if git is not None:
            return self.serve_git(git["agent"], git["rest"] or "/", method, target, headers, body)
        response = self.upstream_answer(method, target, headers, body)
        payload = self.after_forward(method, path, body, response)
        return httpx.Response(response.status_code, headers=_kept(response.headers), content=payload)

    def upstream_answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        """The dev server's answer to a request that is not a git one."""
        return super().send(method, target, headers, body)

    def serve_git(
        self, agent_id: str, rest: str, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        """One smart-HTTP request for a tagged agent's repository, answered by `git http-backend`; a push is
        written back into the blocks after the sync delay."""
        agent = self.agent(agent_id)
        if agent.status_code != 200:
            return httpx.Response(agent.status_code, headers=_kept(agent.headers), content=agent.content)
        if GIT_MEMORY_TAG not in (agent.json().get("tags") or []):
            self.seen["untagged"] += 1
            detail = f"Agent {agent_id} has no git-backed memory: add the tag {GIT_MEMORY_TAG} to it first."
            return json_answer(404, {"detail": detail})
        if not self.repository(agent_id).exists():
            self.enable(agent_id)
        status, answer_headers, payload = _http_backend(self.repos, agent_id, rest, method, target, headers, body)
        if method == "POST" and rest == "/git-receive-pack" and status < 400:
            self.pushed(agent_id)
        return httpx.Response(status, headers=answer_headers, content=payload)

    def after_forward(self, method: str, path: str, body: bytes, response: httpx.Response) -> bytes:
        """Enable git memory when a create or update this server forwarded asked for the tag; the answer as the
        client gets it."""
        if response.status_code >= 300 or method not in ("POST", "PATCH"):
            return response.content
        if method == "PATCH" and _BLOCK_WRITE.match(path) and not path.endswith(("/attach", "/detach")):
            self.commit_block(response.json())
            return response.content
        creating = method == "POST" and path.rstrip("/") == "/v1/agents"
        updating = method == "PATCH" and _AGENT_PATH.match(path) is not None
        if not (creating or updating):
            return response.content
        try:
            asked = json.loads(body or b"{}").get("tags") or []
        except (ValueError, AttributeError):
            return response.content
        if GIT_MEMORY_TAG not in asked:
            return response.content
        answer = response.json()
        if creating:  # 0.16.8 drops the tag from a create (it moved the labels under system/ already): put it back
            self._rest.patch(f"/v1/agents/{answer['id']}", json={"tags": asked}).raise_for_status()
        self.enable(answer["id"])
        answer["tags"] = asked
        return json.dumps(answer).encode()

    def commit_block(self, block: dict[str, Any]) -> None:
        """What hosted does with a block written over the API: commit it to the repository of each git-enabled
        agent holding it ("Bidirectional sync: API <-> Git")."""
        for agent in self._rest.get(f"/v1/blocks/{block['id']}/agents").raise_for_status().json():
            repository = self.repository(agent["id"])
            if repository.exists() and GIT_MEMORY_TAG in (self.agent(agent["id"]).json().get("tags") or []):
                with self.agent_lock(agent["id"]):
                    _commit(
                        repository, {f"{block['label']}.md": _block_file(block)}, [], f"Update {block['label']} block"
                    )
                self.seen["block committed"] += 1

    # -- after a push -------------------------------------------------------------------------------------------

    def pushed(self, agent_id: str) -> None:
        """A push was answered: write the repository back into the blocks once the sync delay has passed."""
        self.seen["push"] += 1
        self.pushed_at[agent_id] = time.monotonic()
        timer = threading.Timer(self.sync_delay, self._sync_logged, args=(agent_id,))
        timer.daemon = True
        timer.start()

    def _sync_logged(self, agent_id: str) -> None:
        try:
            self.sync(agent_id)
        except Exception as error:  # a failed write-back is seen as one: the test waiting for it says so
            self.seen[f"sync failed: {type(error).__name__}"] += 1
            raise
        finally:
            with self._changed:
                self.syncs[agent_id] += 1
                self.synced_at[agent_id] = time.monotonic()
                self._changed.notify_all()

    def sync(self, agent_id: str) -> None:
        """Every block file at HEAD into the agent's blocks; blocks whose file is gone are detached."""
        with self.agent_lock(agent_id):
            files = _files_at_head(self.repository(agent_id))
            blocks = {b["label"]: b for b in self.agent(agent_id).raise_for_status().json().get("blocks") or []}
            labels = {label: path for path in files if (label := block_label(path)) is not None}
            for label, path in sorted(labels.items()):
                fields = parse_block_file(files[path])
                self.write_block(agent_id, label, fields, blocks.get(label))
            if labels:
                for label in sorted(set(blocks) - set(labels)):
                    self.detach(agent_id, blocks[label])

    def detach(self, agent_id: str, block: dict[str, Any]) -> None:
        self._rest.patch(f"/v1/agents/{agent_id}/core-memory/blocks/detach/{block['id']}").raise_for_status()

    def write_block(self, agent_id: str, label: str, fields: dict[str, Any], block: dict[str, Any] | None) -> None:
        value = fields["value"]
        body = {key: fields[key] for key in ("description", "limit", "read_only", "metadata") if key in fields}
        if block is None:
            made = self._rest.post(
                "/v1/blocks/",
                json={
                    "label": label,
                    "value": value,
                    "description": body.get("description") or f"{label} block",
                    "limit": max(body.get("limit") or BLOCK_LIMIT, len(value)),
                },
            ).raise_for_status()
            attach = f"/v1/agents/{agent_id}/core-memory/blocks/attach/{made.json()['id']}"
            self._rest.patch(attach).raise_for_status()
            return
        limit = max(body.get("limit") or block.get("limit") or 0, len(value))
        self._rest.patch(f"/v1/blocks/{block['id']}", json={**body, "value": value, "limit": limit}).raise_for_status()

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.repos, ignore_errors=True)


# -- the repository files -------------------------------------------------------------------------------------


def block_label(path: str) -> str | None:
    """The block a file of the repository is written back into, as hosted maps it; None for a file that is none."""
    if not path.endswith(".md"):
        return None
    if path.startswith("skills/"):
        parts = path.split("/")
        return f"skills/{parts[1]}" if len(parts) == 3 and parts[1] and parts[2] == "SKILL.md" else None
    return path[:-3]


def _block_file(block: dict[str, Any]) -> str:
    """A block as hosted writes it into the repository: a `description` front matter, then the value."""
    fields = {"description": block.get("description")}
    if block.get("read_only"):
        fields["read_only"] = True
    if block.get("metadata"):
        fields["metadata"] = block["metadata"]
    front = yaml.safe_dump(fields, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n{block.get('value') or ''}"


def parse_block_file(text: str) -> dict[str, Any]:
    """A file's block fields: its front matter's (`description`, `limit`, `read_only`, `metadata`) and the value
    after it; a file without a well-formed front matter is all value."""
    if not text.startswith("---\n") or (end := text.find("\n---\n", 4)) == -1:
        return {"value": text}
    try:
        front = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return {"value": text}
    if not isinstance(front, dict):
        return {"value": text}
    fields = {key: front[key] for key in ("description", "limit", "read_only", "metadata") if key in front}
    return {**fields, "value": text[end + 5 :]}


def _git(*args: str, env: dict[str, str] | None = None, given: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        env={**os.environ, **_AUTHOR, **(env or {})},
        input=given,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
        check=True,
    )
    return done.stdout.strip()


def _create_repository(repository: Path, files: dict[str, str]) -> None:
    _git("init", "--quiet", "--bare", "-b", "main", str(repository))
    _git("--git-dir", str(repository), "config", "http.receivepack", "true")
    _commit(repository, files, [], "Initial memory from the agent's blocks")


def _commit(repository: Path, writes: dict[str, str], deletes: list[str], message: str) -> None:
    """One commit on the bare repository's branch, made with git's plumbing and a temporary index."""
    with tempfile.TemporaryDirectory(prefix="hosted-git-standin-index-") as folder:
        env = {"GIT_DIR": str(repository), "GIT_INDEX_FILE": f"{folder}/index"}
        parent = ["-p", "HEAD"] if _has_head(repository) else []
        if parent:
            _git("read-tree", "HEAD", env=env)
        for path, text in writes.items():
            blob = _git("hash-object", "-w", "--stdin", env=env, given=text)
            _git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        for path in deletes:
            _git("update-index", "--force-remove", "--", path, env=env)
        tree = _git("write-tree", env=env)
        commit = _git("commit-tree", tree, *parent, "-m", message, env=env)
        _git("update-ref", "HEAD", commit, env=env)


def _has_head(repository: Path) -> bool:
    return subprocess.run(["git", "--git-dir", str(repository), "rev-parse", "--verify", "-q", "HEAD"],
                          capture_output=True, timeout=GIT_TIMEOUT).returncode == 0  # fmt: skip


def _files_at_head(repository: Path) -> dict[str, str]:
    if not repository.exists() or not _has_head(repository):
        return {}
    names = _git("--git-dir", str(repository), "ls-tree", "-r", "-z", "--name-only", "HEAD").split("\0")
    return {name: _show(repository, name) for name in names if name}


def _show(repository: Path, name: str) -> str:
    done = subprocess.run(["git", "--git-dir", str(repository), "show", f"HEAD:{name}"],
                          capture_output=True, timeout=GIT_TIMEOUT, check=True)  # fmt: skip
    return done.stdout.decode("utf-8")


def _kept(headers: httpx.Headers) -> dict[str, str]:
    """An answer's headers, but those of its framing: the stand-in passes on a body httpx decoded already."""
    return {name: value for name, value in headers.items() if name.lower() not in HOP_HEADERS}


def _http_backend(
    root: Path, agent_id: str, rest: str, method: str, target: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """git's own smart HTTP server (`git http-backend`, a CGI program) answering one request for the agent's repo."""
    query = urlsplit(target).query
    sent = {name.lower(): value for name, value in headers.items()}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{agent_id}.git{rest}",
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "CONTENT_TYPE": sent.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": "letta",
        "REMOTE_ADDR": "127.0.0.1",
        "GIT_CONFIG_NOSYSTEM": "1",
        **({"HTTP_CONTENT_ENCODING": enc} if (enc := sent.get("content-encoding")) else {}),
        **({"GIT_PROTOCOL": proto} if (proto := sent.get("git-protocol")) else {}),
    }
    done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=GIT_TIMEOUT)
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, payload = done.stdout.partition(b"\n\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return status, headers, payload


class OfflineGitMemory(HostedGitMemoryStandIn):
    """The stand-in's git side without a dev server, for unit tests: the agents are data given by the test
    (`{agent_id: {"tags": [...], "blocks": [{"id", "label", "value", "description"}]}}`), their blocks answer
    `GET /v1/agents/<id>/core-memory/blocks`, and a push's write-back changes them."""

    def __init__(self, agents: dict[str, dict[str, Any]], api_key: str, sync_delay: float = 0.0) -> None:
        super().__init__("http://127.0.0.1:9", api_key, sync_delay)
        self.agents = agents

    def agent(self, agent_id: str) -> httpx.Response:
        request = httpx.Request("GET", f"{self.url}/v1/agents/{agent_id}")
        if agent_id not in self.agents:
            return httpx.Response(404, json={"detail": f"Agent with ID {agent_id} not found"}, request=request)
        return httpx.Response(200, json={"id": agent_id, **self.agents[agent_id]}, request=request)

    def upstream_answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        request = httpx.Request(method, f"{self.url}{target}")
        blocks = re.match(r"^/v1/agents/([^/]+)/core-memory/blocks/?$", urlsplit(target).path)
        if method == "GET" and blocks and blocks[1] in self.agents:
            return httpx.Response(200, json=self.agents[blocks[1]].get("blocks") or [], request=request)
        return httpx.Response(404, json={"detail": "not served by the offline stand-in"}, request=request)

    def relabel(self, agent_id: str, block: dict[str, Any], label: str) -> None:
        block["label"] = label
        for kept in self.agents[agent_id].get("blocks") or []:
            if kept.get("id") == block.get("id"):
                kept["label"] = label

    def write_block(self, agent_id: str, label: str, fields: dict[str, Any], block: dict[str, Any] | None) -> None:
        blocks = self.agents[agent_id].setdefault("blocks", [])
        kept = next((b for b in blocks if b["label"] == label), None)
        if kept is None:
            kept = {"id": f"block-{len(blocks)}-{label}", "label": label, "description": f"{label} block"}
            blocks.append(kept)
        kept.update(fields)

    def detach(self, agent_id: str, block: dict[str, Any]) -> None:
        blocks = self.agents[agent_id]["blocks"]
        blocks[:] = [kept for kept in blocks if kept["label"] != block["label"]]


@contextmanager
def running_offline_git_memory(
    agents: dict[str, dict[str, Any]], api_key: str, sync_delay: float = 0.0
) -> Iterator[OfflineGitMemory]:
    """The offline stand-in on a free port of 127.0.0.1, stopped (its repositories deleted) when the block ends."""
    stand_in = OfflineGitMemory(agents, api_key, sync_delay)
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@contextmanager
def running_hosted_git_memory(
    upstream: str, api_key: str, sync_delay: float = SYNC_DELAY
) -> Iterator[HostedGitMemoryStandIn]:
    """The stand-in in front of `upstream` on a free port of 127.0.0.1, stopped (its repositories deleted) when the
    block ends."""
    stand_in = HostedGitMemoryStandIn(upstream, api_key, sync_delay)
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()
