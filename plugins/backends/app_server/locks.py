"""The App Server backend's apply locks (core/engine/locking.py), built from git: the protocol has no request that
refuses a duplicate, but a memory write commits only when the file differs from the agent's last commit.

Each lock id has an agent of its own (named `lettafleet-lock:<lock id>`, tagged `lettafleet-lock`) whose memory
holds the lock's generations, `lock/g<N>.md`, every one with the same text. Writing generation N+1 is "create if
absent": the taker whose commit is the first to touch the file (its history says, by the token in the commit
message) wins; the others find nothing to commit, or a first commit that is not theirs. Odd generations are
held, even ones free; a file is never rewritten, so a writer that looked at a stale generation writes a file
that exists already and changes nothing. Who holds generation N, and until when,
is `lock/holder.md`, written by the winner and by each renewal. docs/locking.md says what this does not close.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from lettafleet.core import Connection, LettaAPIError, LettaError, LockRecord
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError
from lettafleet.plugins.backends.app_server.fleet_connection import app_of

LOCK_TAG = "lettafleet-lock"  # every lock agent's tag: plans and listings leave these agents out
NAME_PREFIX = "lettafleet-lock:"
INDEX = "lock/MEMORY.md"  # the folder's index, which the server's memory check requires
INDEX_TEXT = "# lettafleet apply lock\n\nThe generations of one lettafleet apply lock and its holder.\n"
HOLDER = "lock/holder.md"
GENERATION = re.compile(r"^lock/g(\d+)\.md$")
# The same text in every generation file: a second write of one is no change, so git makes no second commit.
GENERATION_TEXT = "---\nname: generation\ndescription: a generation of a lettafleet apply lock\n---\n"
# Two takers that both found no lock agent each make one; after this long each sees both and picks the same.
SETTLE_S = 3.0
READY_WAIT_S = 60.0  # how long a taker waits for another taker to finish making the lock's agent
WRITE_ATTEMPTS = 12  # a write that fails on git's index lock (another writer) is tried again
GENERATIONS_KEPT = 2
TAKEN_BY = "lettafleet lock taken by "  # a generation commit's message: the taker's token follows
HISTORY_LIMIT = 20  # commits of one generation file read back (its create, a torn copy's, its delete)
TIDY_AT = 10  # generation files there before a taker deletes the old ones


class AppServerLocks:
    """Locks kept in lock agents' memory on the App Server `connection` talks to (`Backend.locks`)."""

    def __init__(self, connection: Connection, *, settle: float = SETTLE_S) -> None:
        self.app: AppServerClient = app_of(connection)
        self.settle = settle

    def create(self, lock_id: str, name: str, properties: Mapping[str, str]) -> LockRecord | None:
        agent_id = self._lock_agent(lock_id)
        if agent_id is None:
            agent_id = self._make_lock_agent(lock_id)
        elif not self._committed(agent_id, INDEX):
            agent_id = self._ready_lock_agent(lock_id)
        current, files = self._generations(agent_id)
        taken, token = current + 1, properties.get("token") or secrets.token_hex(8)
        if current % 2 == 1 or not self._won(agent_id, _generation_path(taken), token):
            return None
        self._write_holder(agent_id, taken, properties)
        if len(files) >= TIDY_AT:
            self._forget_before(agent_id, files, taken)
        return LockRecord(lock_id, _server_id(agent_id, taken), dict(properties))

    def find(self, lock_id: str) -> LockRecord | None:
        agent_id = self._lock_agent(lock_id)
        return None if agent_id is None else self._held(lock_id, agent_id)

    def every(self) -> list[LockRecord]:
        held = (self._held(lock_id, agent_id) for lock_id, agent_id in self._lock_agents().items())
        return [record for record in held if record is not None]

    def update(self, server_id: str, properties: Mapping[str, str]) -> None:
        agent_id, generation = _parsed_server_id(server_id)
        current = self._still_held(agent_id, generation, server_id)
        said = self._holder(agent_id)
        kept = said.get("properties", {}) if said.get("generation") == current else {}
        self._write_holder(agent_id, generation, {**kept, **properties})

    def remove(self, server_id: str) -> None:
        agent_id, generation = _parsed_server_id(server_id)
        self._still_held(agent_id, generation, server_id)
        if not self._commit_once(agent_id, _generation_path(generation + 1)):
            raise _gone(server_id)  # another remover or a taker-over freed it first

    # The lock's agent ----------------------------------------------------------------------------------------

    def _lock_agents(self, lock_id: str | None = None) -> dict[str, str]:
        """Each lock id's agent (or `lock_id`'s alone): of several made by takers racing for a new lock id, the
        one with the lowest id. One lock id's agents fit in one page of the server's list, which a concurrent
        create cannot shift under the reader."""
        found: dict[str, str] = {}
        wanted = NAME_PREFIX + lock_id if lock_id is not None else None
        for agent in self.app.list_agents(tags=[LOCK_TAG], query_text=wanted):
            name = str(agent.get("name") or "")
            if name.startswith(NAME_PREFIX):
                lock_id = name.removeprefix(NAME_PREFIX)
                found[lock_id] = min(found.get(lock_id, agent["id"]), agent["id"])
        return found

    def _lock_agent(self, lock_id: str) -> str | None:
        return self._lock_agents(lock_id).get(lock_id)

    def _make_lock_agent(self, lock_id: str) -> str:
        """Make the lock's agent, wait for other takers' to show, and agree on one (the lowest id): a taker that
        made another deletes its own. The chosen one's maker writes its index; the others wait for it."""
        made = self.app.create_agent(
            {
                "name": NAME_PREFIX + lock_id,
                "description": "lettafleet's apply lock (docs/locking.md); it runs nothing. Delete it only when "
                "no apply runs.",
                "tags": [LOCK_TAG],
            }
        )["id"]
        time.sleep(self.settle)
        chosen = self._lock_agent(lock_id) or made
        if chosen != made:
            self.app.delete_agent(made)
            return self._ready_lock_agent(lock_id)
        self._commit_once(chosen, INDEX, INDEX_TEXT)
        return chosen

    def _ready_lock_agent(self, lock_id: str) -> str:
        """The lock's agent once its maker has finished making it (its memory and index are committed): an agent
        is listed before its memory repository exists, and a write then would race the server's own setup."""
        deadline = time.monotonic() + READY_WAIT_S
        while True:
            chosen = self._lock_agent(lock_id)
            if chosen is not None and self._committed(chosen, INDEX):
                return chosen
            if time.monotonic() > deadline:
                raise LettaError(
                    f"the lock agent of {lock_id!r} was not ready after {READY_WAIT_S:.0f} s (another apply is "
                    "making it): run apply again"
                )
            time.sleep(0.5)

    # Generations ---------------------------------------------------------------------------------------------

    def _generation(self, agent_id: str) -> int:
        return self._generations(agent_id)[0]

    def _generations(self, agent_id: str) -> tuple[int, list[int]]:
        """The highest generation the lock agent's last commit has (0: never taken), and every generation file
        there. The memory list shows the working tree, where a write that failed may have left a file git never
        committed: those are skipped."""
        numbers = sorted(
            (int(match[1]) for entry in self.app.list_memory(agent_id) if (match := GENERATION.match(_path(entry)))),
            reverse=True,
        )
        current = next((n for n in numbers if self._committed(agent_id, _generation_path(n))), 0)
        return current, numbers

    def _committed(self, agent_id: str, path: str) -> bool:
        try:
            self.app.call("memory_file_at_ref", agent_id=agent_id, file_path=path, ref="HEAD")
        except AppServerError:
            return False
        return True

    def _won(self, agent_id: str, path: str, token: str) -> bool:
        """Commit generation `path` and check that this taker's commit is the first that touched it. Writers of
        one file truncate it before writing, and the server's check of a commit does not always run, so a racer
        may commit a torn copy after which another commits the whole one: the first commit decides."""
        if not self._commit_once(agent_id, path, message=f"{TAKEN_BY}{token}"):
            return False
        commits = self.app.call("memory_history", agent_id=agent_id, file_path=path, limit=HISTORY_LIMIT)["commits"]
        return bool(commits) and str(commits[-1].get("message", "")).endswith(token)

    def _commit_once(self, agent_id: str, path: str, text: str = GENERATION_TEXT, *, message: str = "") -> bool:
        """Write `path` and report whether this write committed it: False when the last commit has it already.
        A write refused because another commit to the agent ran at once (git's index lock) is made again."""
        error: AppServerError | None = None
        for _ in range(WRITE_ATTEMPTS):
            try:
                fields = {"commit_message": message} if message else {}
                answer = self.app.call("write_memory_file", agent_id=agent_id, path=path, content=text, **fields)
            except AppServerError as refused:
                error = refused
                time.sleep(random.uniform(0.05, 0.3))
                continue
            return bool(answer.get("committed"))
        raise LettaError(f"the lock agent {agent_id} refused {WRITE_ATTEMPTS} writes of {path}: {error}")

    def _forget_before(self, agent_id: str, numbers: list[int], generation: int) -> None:
        """Delete the generation files older than the last few, so the lock's memory stays small (every few
        takes: each delete is a commit)."""
        for number in numbers:
            if number <= generation - GENERATIONS_KEPT:
                with contextlib.suppress(AppServerError):  # another commit ran at once: a later taker tidies up
                    self.app.delete_memory_file(agent_id, _generation_path(number))

    def _still_held(self, agent_id: str, generation: int, server_id: str) -> int:
        current = self._generation(agent_id)
        if current != generation:
            raise _gone(server_id)
        return current

    # The holder ----------------------------------------------------------------------------------------------

    def _held(self, lock_id: str, agent_id: str) -> LockRecord | None:
        generation = self._generation(agent_id)
        if generation % 2 == 0:
            return None
        said = self._holder(agent_id)
        # Won but not yet (or never) described: held, with no expiry, so no one takes it over silently.
        properties = said.get("properties", {}) if said.get("generation") == generation else {}
        return LockRecord(lock_id, _server_id(agent_id, generation), properties)

    def _holder(self, agent_id: str) -> dict[str, Any]:
        try:
            text = self.app.read_memory_file(agent_id, HOLDER)
        except AppServerError:
            return {}
        try:
            said = json.loads(text.split("---\n", 2)[-1])
        except ValueError:
            return {}
        return said if isinstance(said, dict) else {}

    def _write_holder(self, agent_id: str, generation: int, properties: Mapping[str, str]) -> None:
        body = json.dumps({"generation": generation, "properties": dict(properties)}, indent=2)
        text = f"---\nname: holder\ndescription: who holds this lettafleet apply lock, and until when\n---\n{body}\n"
        self._commit_once(agent_id, HOLDER, text)


def _path(entry: Mapping[str, Any]) -> str:
    return str(entry.get("relative_path") or "")


def _generation_path(generation: int) -> str:
    return f"lock/g{generation}.md"


def _server_id(agent_id: str, generation: int) -> str:
    """What names one taking of a lock: its agent and generation (a later taking has a higher one)."""
    return f"{agent_id}#{generation}"


def _parsed_server_id(server_id: str) -> tuple[str, int]:
    agent_id, _, generation = server_id.rpartition("#")
    if not agent_id or not generation.isdigit():
        raise _gone(server_id)
    return agent_id, int(generation)


def _gone(server_id: str) -> LettaAPIError:
    return LettaAPIError("LOCK", server_id, 404, "that taking of the lock is over (released or taken over)")
