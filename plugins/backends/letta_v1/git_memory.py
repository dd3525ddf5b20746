"""Git-backed memory of an agent on a V1 Letta server (hosted Letta's `/v1/git/<agent_id>/state.git`), read and
written with git's own command line over smart HTTP (docs/hosted-letta.md, "Git-backed memory").

The credential travels only in git's environment (`GIT_CONFIG_*`: an `http.extraHeader`), never in an argument, a
remote URL, a file or a message; git never prompts. Each call works in a temporary clone, deleted afterwards.
Writes to one agent are serialized (a lock per server and agent); writes to different agents run in parallel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import httpx
import yaml

from lettafleet.core import Connection, LettaError
from lettafleet.plugins.backends.letta_v1 import v1_client

GIT_TIMEOUT = 120.0  # seconds for one git command (a clone or a push)
PROBE_TIMEOUT = 30.0  # seconds for `available`'s one request
PROBE_AGENT = "agent-00000000-0000-4000-8000-000000000000"  # no agent's id: asks the server, not an agent
# What Letta 0.16.x answers (501) on every /v1/git request: it proxies them to a memfs service it does not ship.
NO_MEMFS_SERVICE = "git HTTP requires memfs service"
# What git says when the server answered 401: it wanted a credential git had no way to ask for.
_REFUSED_CREDENTIAL = ("could not read Username", "Authentication failed", "returned error: 401")
# What git (curl) says when the server answered with an HTTP error, and when no answer came at all.
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b|returned error: (\d{3})")
_UNREACHABLE = ("Failed to connect", "Could not resolve host", "Connection refused")
_NO_ANSWER = (
    "Empty reply from server",
    "hung up unexpectedly",
    "unexpected disconnect",
    "Connection reset",
    "transfer closed",
    "timed out",
)
_NO_ANSWER_ADVICE = (
    "The connection broke before the server answered: run the apply again (what landed is read back first, so "
    "nothing is written twice)"
)
_REJECTED_AS_STALE = ("non-fast-forward", "fetch first", "stale info")
_STALE_ADVICE = "Someone else keeps pushing to it: run the apply again once they are done"
_REFUSED_ADVICE = "The server refused the commit for the reason above: fix what it names and run the apply again"
_AGENT_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_AGENT_LOCKS_GUARD = threading.Lock()


class GitMemoryError(LettaError):
    """Git-backed memory could not be read, written or seen synced; the message says what to do."""


class GitMemory:
    """An agent's git-backed memory on the V1 server `connection` talks to."""

    def __init__(self, connection: Connection, *, git_timeout: float = GIT_TIMEOUT) -> None:
        self._client = v1_client(connection, "git-backed memory")
        self._authorization = self._client.git_authorization()
        self._git_timeout = git_timeout

    def repository_url(self, agent_id: str) -> str:
        """The agent's repository, as shown: the server's public URL, never a credential."""
        return f"{self._client.base_url}/v1/git/{quote(agent_id, safe='')}/state.git"

    def available(self, agent_id: str) -> str | None:
        """None when the server serves the agent's git-backed memory; otherwise why not, in a sentence."""
        url = f"{self.repository_url(agent_id)}/info/refs"
        headers = {"Authorization": self._authorization} if self._authorization else {}
        try:
            answer = httpx.get(url, params={"service": "git-upload-pack"}, headers=headers, timeout=PROBE_TIMEOUT)
        except httpx.HTTPError as error:
            return self._mask(f"{self._client.base_url} could not be asked for git-backed memory: {error}")
        if answer.is_success:
            return None
        detail = _detail(answer)
        if answer.status_code == 501 and NO_MEMFS_SERVICE in detail:
            return self._mask(
                f"{self._client.base_url} has no git-backed memory: it answered 501 ({detail}). Self-hosted Letta "
                "0.16.x sends /v1/git to a memfs service it does not ship; use hosted Letta, or keep `mode: blocks`"
            )
        return self._mask(
            f"{self._client.base_url} does not serve git-backed memory for agent {agent_id}: it answered "
            f"{answer.status_code} ({detail})"
        )

    def served(self) -> str | None:
        """None when the server has git-backed memory at all; otherwise why not. Asked with a made-up agent: a server
        with git memory refuses an unknown (or untagged) agent its own way, one without it answers every /v1/git
        request 501, so one agent's answer never decides for the server."""
        reason = self.available(PROBE_AGENT)
        if reason is None or NO_MEMFS_SERVICE in reason or "could not be asked" in reason:
            return reason
        return None

    def read(self, agent_id: str) -> dict[str, str]:
        """Every file of the agent's repository at HEAD, by its path in the repository."""
        with self._clone(agent_id) as tree:
            if not self._has_head(tree):
                return {}
            names = self._git(tree, "ls-tree", "-r", "-z", "--name-only", "HEAD").split("\0")
            return {name: (tree / name).read_text(encoding="utf-8", errors="replace") for name in names if name}

    def write(self, agent_id: str, writes: Mapping[str, str], deletes: Sequence[str], message: str) -> None:
        """One commit that writes and deletes these files, pushed; nothing when the repository holds them already.
        A push refused because someone pushed first is made again once on what they pushed, then refused loudly."""
        for path in [*writes, *deletes]:
            _check_path(path)
        with _agent_lock(self._client.base_url, agent_id):
            for attempt in (1, 2):
                with self._clone(agent_id) as tree:
                    if not self._commit(tree, writes, deletes, message):
                        return
                    refusal = self._push(tree)
                    if refusal is None:
                        return
                    stale = any(reason in refusal for reason in _REJECTED_AS_STALE)
                    if attempt == 1 and stale:
                        continue
                    failed = "was refused" if stale or _said_instead(refusal) is None else "failed"
                    advice = _STALE_ADVICE if stale else _said_instead(refusal) or _REFUSED_ADVICE
                    raise GitMemoryError(
                        f"pushing agent {agent_id}'s memory to {self.repository_url(agent_id)} {failed}: "
                        f"{refusal}. {advice}"
                    )

    def wait_synced(self, agent_id: str, files: Mapping[str, str], timeout: float) -> None:
        """Return once the agent's blocks hold the pushed `system/*.md` files (the server copies them in a few
        seconds after a push), asking again and again until `timeout` seconds have passed; then say which did not."""
        expected = {path[:-3]: (path, memory_file_value(text)) for path, text in files.items() if _in_system(path)}
        deadline = time.monotonic() + timeout
        pause = 0.2
        while True:
            blocks = {
                b.get("label"): b.get("value") for b in self._client.get(f"/v1/agents/{agent_id}/core-memory/blocks")
            }
            behind = [
                f"{path} ({'no block ' + label if label not in blocks else 'block ' + label + ' differs'})"
                for label, (path, value) in sorted(expected.items())
                if blocks.get(label) != value
            ]
            left = deadline - time.monotonic()
            if not behind:
                return
            if left <= 0:
                raise GitMemoryError(
                    f"agent {agent_id}'s blocks did not take the pushed memory files within {timeout:g} s: "
                    f"{', '.join(behind)}. The push is done; run plan again to see whether the server caught up"
                )
            time.sleep(min(pause, left))
            pause = min(pause * 1.5, 2.0)

    # -- git ----------------------------------------------------------------------------------------------------

    @contextmanager
    def _clone(self, agent_id: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="lettafleet-memory-"))
        try:
            self._git(None, "clone", "--quiet", "--no-tags", self.repository_url(agent_id), str(folder / "tree"))
            yield folder / "tree"
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _commit(self, tree: Path, writes: Mapping[str, str], deletes: Sequence[str], message: str) -> bool:
        """Stage the writes and deletes and commit them; False when that changes nothing."""
        for path, text in writes.items():
            target = tree / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        for path in deletes:
            (tree / path).unlink(missing_ok=True)
        self._git(tree, "add", "--all")
        if self._git_status(tree, "diff", "--cached", "--quiet") == 0:
            return False
        self._git(tree, "commit", "--quiet", "--no-verify", "-m", message)
        return True

    def _push(self, tree: Path) -> str | None:
        """Push the commit; None once pushed, else git's reason for refusing it."""
        branch = self._git(tree, "symbolic-ref", "--short", "HEAD").strip()
        done = self._run(tree, "push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}", check=False)
        if done.returncode == 0:
            return None
        refused = [line.strip() for line in done.stdout.splitlines() if line.startswith("!")]
        remote = [line.strip() for line in done.stderr.splitlines() if line.startswith("remote:")]
        said = "; ".join([*refused, *remote]) or _one_line(done.stderr) or f"git push exited {done.returncode}"
        return self._mask(said)

    def _has_head(self, tree: Path) -> bool:
        return self._git_status(tree, "rev-parse", "--verify", "--quiet", "HEAD") == 0

    def _git(self, tree: Path | None, *args: str) -> str:
        return self._run(tree, *args, check=True).stdout

    def _git_status(self, tree: Path, *args: str) -> int:
        return self._run(tree, *args, check=False).returncode

    def _run(self, tree: Path | None, *args: str, check: bool) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=tree,
                env=self._environment(),
                capture_output=True,
                text=True,
                timeout=self._git_timeout,
            )
        except FileNotFoundError:
            raise GitMemoryError("git-backed memory needs git: install it and put it on PATH") from None
        except subprocess.TimeoutExpired:
            raise GitMemoryError(
                f"git {args[0]} did not finish within {self._git_timeout:g} s talking to {self._client.base_url}: "
                "is the server reachable? Run the command again"
            ) from None
        if check and done.returncode != 0:
            said = self._mask(_one_line(done.stderr) or _one_line(done.stdout))
            advice = _said_instead(said) or "Run the command again; if git fails the same way, fix what it names"
            raise GitMemoryError(f"git {args[0]} failed for {self._client.base_url}: {said}. {advice}")
        return done

    def _environment(self) -> dict[str, str]:
        """git's environment: no prompt, no user or system configuration, and the credential as a header."""
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
        settings = {
            "credential.helper": "",
            "core.askPass": "",
            "core.hooksPath": os.devnull,
            "http.followRedirects": "false",  # the header must not follow a redirect to another host
            "init.defaultBranch": "main",
            "user.name": "lettafleet",
            "user.email": "lettafleet@localhost",
            "commit.gpgSign": "false",
        }
        if self._authorization:
            settings["http.extraHeader"] = f"Authorization: {self._authorization}"
        configured = {}
        for index, (key, value) in enumerate(settings.items()):
            configured[f"GIT_CONFIG_KEY_{index}"] = key
            configured[f"GIT_CONFIG_VALUE_{index}"] = value
        return {
            **inherited,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GCM_INTERACTIVE": "never",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_COUNT": str(len(settings)),
            **configured,
        }

    def _mask(self, text: str) -> str:
        return self._client.mask(text)


def memory_file_value(text: str) -> str:
    """What a memory file holds for its block: the text after its front matter (`---` YAML `---`), or all of it
    when it has none or one that is not a YAML mapping, as Letta reads it back."""
    if not text.startswith("---\n") or (end := text.find("\n---\n", 4)) == -1:
        return text
    try:
        front = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return text
    return text[end + 5 :] if isinstance(front, dict) else text


def _one_line(text: str) -> str:
    """git's message on one line (its lines joined), as an error of lettafleet shows it."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _said_instead(said: str) -> str | None:
    """What to do when git's words show the server answered with an HTTP error, or never answered; None when they
    show neither (the server's own refusal, say)."""
    if any(sign in said for sign in _REFUSED_CREDENTIAL):
        return "The server refused the credential: check LETTA_API_KEY"
    found = _HTTP_STATUS.search(said)
    status = int(found[1] or found[2]) if found else None
    if status == 403:
        return "The server refused access to the agent's memory (403): check that LETTA_API_KEY may write it"
    if status is not None and status >= 500:
        return f"The server failed (HTTP {status}): run the apply again once it answers"
    if status is not None:
        return f"The server answered HTTP {status}: fix what it names and run the apply again"
    if any(sign in said for sign in _UNREACHABLE):
        return "The server could not be reached: is it running? Run the apply again once it answers"
    if any(sign in said for sign in _NO_ANSWER):
        return _NO_ANSWER_ADVICE
    return None


def _in_system(path: str) -> bool:
    return path.startswith("system/") and path.endswith(".md")


def _check_path(path: str) -> None:
    """Refuse a path that would leave the repository or touch git's own files."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or "\\" in path or any(part in ("..", ".git", "") for part in parts):
        raise GitMemoryError(
            f"memory file path {path!r} is not a relative path inside the memory repository: write it like "
            "system/notes.md"
        )


def _agent_lock(server: str, agent_id: str) -> threading.Lock:
    with _AGENT_LOCKS_GUARD:
        return _AGENT_LOCKS.setdefault((server, agent_id), threading.Lock())


def _detail(answer: httpx.Response) -> str:
    """The server's reason in its answer: the JSON `detail`, or the start of its text."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text.strip()[:300] or answer.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:300]
