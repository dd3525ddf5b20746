"""The App Server's Protocol V2 operations lettafleet needs, with the server's sharp edges handled here once:
agent lists that ignore `name` and page at 20, tag updates that would drop the server's own tags, memory writes
that fail on git's lock or leave a rejected file behind, deleted agents whose secrets stay on disk.

Types are those of Letta Code's `dist/types/types/protocol_v2.d.ts` (letta 0.34.12).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import urlsplit

from lettafleet.core import LettaError, SecretMasker, public_url, refuse_credential_in_the_clear
from lettafleet.core.letta.connection import RequestStats
from lettafleet.plugins.backends.app_server.connection import (
    CONNECT_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    AppServerConnectionError,
    AppServerError,
    AppServerTimeout,
    Connection,
    Frame,
)

# Asked for per page of `agent_list` (the server's default is 20; the local backend has no cap, and pages are
# followed until one is empty, so a server that caps lower still lists every agent). Each page costs the server
# a re-read of every agent's record from disk: fewer pages, less work (200 agents: 2 pages, where 20 a page
# takes 11).
AGENT_PAGE = 500
CONVERSATION_PAGE = 50
# Tags the server adds and owns: an update that names tags replaces them all, so these are carried over.
SERVER_OWNED_TAGS = frozenset({"git-memory-enabled"})
# The requests that change nothing on the server.
READS = frozenset(
    {
        "app_server_info",
        "agent_list",
        "agent_retrieve",
        "list_memory",
        "read_memory_file",
        "memory_history",
        "conversation_list",
        "conversation_messages_list",
        "conversation_retrieve",
        "secret_list",
        "list_models",
    }
)


class AppServerClient:
    """A client of one App Server over one WebSocket, safe to share between threads: requests from many threads
    are pipelined on the socket, memory writes are one at a time per agent and parallel across agents."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        allow_insecure: bool = False,
    ) -> None:
        given = (base_url or os.environ.get("LETTA_BASE_URL") or "").rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("LETTA_API_KEY") or None
        self.masker = SecretMasker([api_key])
        self.base_url = public_url(given)
        _check_ws_url(self.base_url)
        headers = {}
        if api_key:
            refuse_credential_in_the_clear(self.base_url, "LETTA_API_KEY", allow_insecure)
            headers["Authorization"] = f"Bearer {api_key}"
        self._connection = Connection(
            _endpoint(self.base_url),
            headers=headers,
            masker=self.masker,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self._agent_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self.stats = RequestStats()  # requests sent, reads counted as GET (what `-v` and benchmarks report)
        self._agent_locks_lock = threading.Lock()
        self._info: Frame | None = None
        self._info_lock = threading.Lock()

    def __enter__(self) -> AppServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    @property
    def events(self) -> Iterable[Frame]:
        """Frames with no request id that arrived so far (memory_updated, stream deltas, ...), oldest first."""
        return tuple(self._connection.events)

    # The protocol ---------------------------------------------------------------------------------------------

    def call(self, request_type: str, **fields: Any) -> Frame:
        """One request, one answer; a refusal raises AppServerError with the server's words, secrets masked."""
        self.stats.count(_counted_as(request_type))
        return self._checked(request_type, self._connection.request(request_type, fields))[-1]

    def call_until_done(self, request_type: str, **fields: Any) -> list[Frame]:
        """One request answered in several frames, up to the one that says `done: true`."""
        self.stats.count(_counted_as(request_type))
        return self._checked(request_type, self._connection.request(request_type, fields, until_done=True))

    def _checked(self, request_type: str, frames: list[Frame]) -> list[Frame]:
        last = frames[-1]
        if last.get("success") is False or last.get("type") != f"{request_type}_response":
            said = last.get("error") or f"an answer of type {last.get('type')!r} without an error message"
            raise AppServerError(request_type, self.masker(str(said)))
        return frames

    def server_info(self) -> Frame:
        """Version, protocol version, backend and capabilities, asked once per client (a caller meanwhile waits for
        that answer)."""
        with self._info_lock:
            if self._info is None:
                self._info = self.call("app_server_info")
            return self._info

    def ask_server_info_ahead(self) -> None:
        """Ask `server_info` now, in the background, for those who will need it later (a plan's header)."""
        threading.Thread(target=self._info_or_nothing, name="app-server-info", daemon=True).start()

    def _info_or_nothing(self) -> None:
        with contextlib.suppress(LettaError):  # asked again, and reported, by whoever needs it
            self.server_info()

    @functools.cached_property
    def made_by(self) -> tuple[int, ...]:
        """The server's Letta Code version as numbers, `(0, 34, 12)`: what it makes (a memory layout) hangs on it."""
        said = str(self.server_info().get("letta_code_version") or "")
        return tuple(int(part) for part in re.findall(r"\d+", said)[:3])

    # Agents ---------------------------------------------------------------------------------------------------

    def create_agent(self, body: Mapping[str, Any]) -> Frame:
        return self.call("agent_create", body=dict(body))["agent"]

    def retrieve_agent(self, agent_id: str) -> Frame:
        return self.call("agent_retrieve", agent_id=agent_id)["agent"]

    def update_agent(
        self, agent_id: str, body: Mapping[str, Any], *, current_tags: Iterable[str] | None = None
    ) -> Frame:
        """`agent_update`; `tags` in `body` keep the server's own tags (the server would drop them). A caller
        that has just read the agent passes its `current_tags` and saves a request."""
        body = dict(body)
        if "tags" in body:
            if current_tags is None:
                current_tags = self.retrieve_agent(agent_id).get("tags") or []
            body["tags"] = with_server_owned_tags(body["tags"], current_tags)
        return self.call("agent_update", agent_id=agent_id, body=body)["agent"]

    def list_agents(
        self, *, tags: Iterable[str] = (), query_text: str | None = None, page_size: int = AGENT_PAGE
    ) -> list[Frame]:
        """Every agent (with all of `tags`, and `query_text` in its name, description, id or model, ignoring
        case), page by page after the last id, until a page comes back empty."""
        query: dict[str, Any] = {"limit": page_size}
        if tags:
            query["tags"] = list(tags)
        if query_text:
            query["query_text"] = query_text
        return self._every_page("agent_list", query, "agents")

    def agents_named(self, name: str, *, tags: Iterable[str] = ()) -> list[Frame]:
        """The agents called exactly `name`: the server ignores a `name` filter, and names are not unique."""
        return [agent for agent in self.list_agents(tags=tags) if agent.get("name") == name]

    def delete_agent(self, agent_id: str) -> None:
        """Unset the agent's secrets, then delete it: `agent_delete` leaves them on disk in plain text."""
        names = self.secret_names(agent_id)
        if names:
            self.apply_secrets(agent_id, unset=names)
        self.call("agent_delete", agent_id=agent_id)

    # Memory (MemFS: one git repository per agent) -------------------------------------------------------------

    def list_memory(self, agent_id: str) -> list[Frame]:
        """Every memory file with its content; the server sends them a few per frame until `done`."""
        frames = self.call_until_done("list_memory", agent_id=agent_id)
        return [entry for frame in frames for entry in frame.get("entries") or ()]

    def read_memory_file(self, agent_id: str, path: str) -> str:
        content = self.call("read_memory_file", agent_id=agent_id, path=path).get("content")
        if content is None:
            raise AppServerError("read_memory_file", f"{path} of {agent_id} came back without content")
        return str(content)

    def write_memory_file(self, agent_id: str, path: str, content: str, *, message: str | None = None) -> bool:
        """Write and commit one file; True when it made a commit (identical content makes none). A write the
        server rejects (its frontmatter check) is undone in the working tree before the error is raised."""
        fields: dict[str, Any] = {"agent_id": agent_id, "path": path, "content": content}
        if message:
            fields["commit_message"] = message
        with self._one_writer(agent_id):
            try:
                answer = self.call("write_memory_file", **fields)
            except (AppServerTimeout, AppServerConnectionError):
                raise  # unanswered, not refused: the write may have landed, and a lost socket cannot restore
            except AppServerError:
                self._restore_committed(agent_id, path)
                raise
        return bool(answer.get("committed"))

    def delete_memory_file(self, agent_id: str, path: str, *, message: str | None = None) -> None:
        """Delete and commit one file. A delete the server rejects (its check of the whole memory) is undone in the
        working tree before the error is raised: the server unlinks the file first."""
        fields: dict[str, Any] = {"agent_id": agent_id, "path": path}
        if message:
            fields["commit_message"] = message
        with self._one_writer(agent_id):
            try:
                self.call("delete_memory_file", **fields)
            except (AppServerTimeout, AppServerConnectionError):
                raise  # unanswered, not refused: the delete may have landed
            except AppServerError:
                self._restore_committed(agent_id, path)  # the server unlinked it before its check refused
                raise

    @contextmanager
    def _one_writer(self, agent_id: str) -> Iterator[None]:
        """Git's index lock fails concurrent commits to one repository: one write at a time per agent."""
        with self._agent_locks_lock:
            lock = self._agent_locks[agent_id]
        with lock:
            yield

    def _restore_committed(self, agent_id: str, path: str) -> None:
        """Put `path` back as its last commit has it (or remove it, if it was never committed)."""
        at_head = self._connection.request(
            "memory_file_at_ref", {"agent_id": agent_id, "file_path": path, "ref": "HEAD"}
        )[-1]
        if at_head.get("success") and at_head.get("content") is not None:
            self._connection.request(
                "write_memory_file", {"agent_id": agent_id, "path": path, "content": at_head["content"]}
            )
        else:
            # A new file: the server removes it from disk, then reports that git had nothing to stage.
            self._connection.request("delete_memory_file", {"agent_id": agent_id, "path": path})

    # Conversations (no delete: archived instead) --------------------------------------------------------------

    def create_conversation(self, agent_id: str, summary: str | None = None) -> Frame:
        body: dict[str, Any] = {"agent_id": agent_id}
        if summary is not None:
            body["summary"] = summary
        return self.call("conversation_create", body=body)["conversation"]

    def list_conversations(self, agent_id: str, *, page_size: int = CONVERSATION_PAGE, **query: Any) -> list[Frame]:
        """Every conversation of the agent (further filters as the server names them), page by page."""
        wanted: dict[str, Any] = {"agent_id": agent_id, "limit": page_size, **query}
        return self._every_page("conversation_list", wanted, "conversations")

    def _every_page(self, request_type: str, query: dict[str, Any], key: str) -> list[Frame]:
        """Page after page (`after` the last id) until one comes back empty: a short page does not prove the end."""
        found: list[Frame] = []
        while True:
            page = self.call(request_type, query=query)[key]
            if not page:
                return found
            found.extend(page)
            query = query | {"after": page[-1]["id"]}

    def archive_conversation(self, conversation_id: str) -> Frame:
        return self.call("conversation_update", conversation_id=conversation_id, body={"archived": True})[
            "conversation"
        ]

    # Secrets (names upper-cased by the server; values never shown) -------------------------------------------

    def apply_secrets(
        self, agent_id: str, *, set_values: Mapping[str, str] | None = None, unset: Iterable[str] = ()
    ) -> list[str]:
        """Set and unset in one request; returns the names the agent has afterwards. One at a time per agent: the
        server reads the agent's list of names, then writes it back."""
        values = dict(set_values or {})
        self.masker.add(*values.values())
        with self._one_writer(agent_id):
            return list(self.call("secret_apply", agent_id=agent_id, set=values, unset=list(unset))["names"])

    def secret_values(self, agent_id: str) -> dict[str, str]:
        """The agent's secrets with their values (the server sends them); every value is masked from then on."""
        entries = self.call("secret_list", agent_id=agent_id)["secrets"]
        values = {str(entry["key"]): str(entry["value"]) for entry in entries}
        self.masker.add(*values.values())
        return values

    def secret_names(self, agent_id: str) -> list[str]:
        return sorted(self.secret_values(agent_id))

    # Models -----------------------------------------------------------------------------------------------------

    def connect_provider(self, provider_id: str, fields: Mapping[str, str], *, name: str | None = None) -> None:
        """Store a provider's settings on the server (`target: local`); its API key is masked in every error, and
        the answer (the server's whole provider catalogue) is not passed on."""
        self.masker.add(fields.get("apiKey"))
        request: dict[str, Any] = {"target": "local", "provider_id": provider_id, "fields": dict(fields)}
        if name:
            request["provider_name"] = name
        self.call("connect_provider", **request)

    def list_models(self, *, refresh: bool = True) -> list[Frame]:
        """The models of every connected provider (`handle` is `provider/model`); `refresh` skips its cache."""
        return list(self.call("list_models", force=refresh)["entries"])

    # Turns and messages (turns.py runs a turn) -------------------------------------------------------------------

    def listening(self) -> AbstractContextManager[queue.SimpleQueue[Frame]]:
        """Every event from now until the block ends (stream deltas, approval requests, turn_finished, ...)."""
        return self._connection.listening()

    def start_runtime(self, agent_id: str, conversation_id: str, *, mode: str) -> Frame:
        """`runtime_start` of one conversation (`default`: the agent's own), in permission `mode` (`strict`: every
        tool call asks first)."""
        return self.call("runtime_start", agent_id=agent_id, conversation_id=conversation_id, mode=mode)

    def send_input(self, runtime: Mapping[str, Any], payload: Mapping[str, Any]) -> Frame:
        """An `input` (a message, an approval response) to a started runtime; answered `input_accepted`."""
        self.stats.count("input")
        answer = self._connection.request("input", {"runtime": dict(runtime), "payload": dict(payload)})[-1]
        if answer.get("type") != "input_accepted" or not answer.get("accepted"):
            said = answer.get("error") or f"an answer of type {answer.get('type')!r}, not accepted"
            raise AppServerError("input", self.masker(str(said)))
        return answer

    def abort_turn(self, runtime: Mapping[str, Any]) -> None:
        """Stop the turn running in `runtime` (Ctrl-C during `send`); the answer is not waited for."""
        self._connection.send_only("abort_message", {"runtime": dict(runtime)})

    def abort(self, runtime: Mapping[str, Any], *, run_id: str | None = None) -> bool:
        """Stop the turn running in `runtime` (only run `run_id`'s, when named), from any socket; True if one was
        running (a pending approval counts), False if nothing was."""
        fields: dict[str, Any] = {"runtime": dict(runtime)} | ({"run_id": run_id} if run_id else {})
        return bool(self.call("abort_message", **fields).get("aborted"))

    def recompile_conversation(self, agent_id: str, conversation_id: str) -> str:
        """Compile the agent's system prompt and memory files anew into the conversation (`default`: the agent's
        own); the server answers the compiled system prompt."""
        body = {"agent_id": agent_id}
        return str(self.call("conversation_recompile", conversation_id=conversation_id, body=body)["result"] or "")

    def retrieve_conversation(self, conversation_id: str) -> Frame:
        return self.call("conversation_retrieve", conversation_id=conversation_id)["conversation"]

    def list_messages(self, conversation_id: str, **query: Any) -> Frame:
        """One page of a conversation's messages: `messages`, `next_before`, `has_more`."""
        return self.call("conversation_messages_list", conversation_id=conversation_id, query=query)

    def compact_conversation(self, conversation_id: str, body: Mapping[str, Any]) -> Frame:
        """Summarize older messages: `num_messages_before`, `num_messages_after`, `summary`."""
        return self.call("conversation_compact", conversation_id=conversation_id, body=dict(body))["compaction"]


def _counted_as(request_type: str) -> str:
    """`GET` for a request that only reads, else its own type: writes are what is not a GET."""
    return "GET" if request_type in READS else request_type


def with_server_owned_tags(wanted: Iterable[str], current: Iterable[str]) -> list[str]:
    """`wanted`, plus the server-owned tags the agent has now (an update that names tags replaces them all)."""
    tags = list(dict.fromkeys(wanted))
    return tags + [tag for tag in current if tag in SERVER_OWNED_TAGS and tag not in tags]


def _check_ws_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise LettaError(
            f"the App Server URL {url!r} is not a ws:// or wss:// address with a host. Write it like "
            "ws://127.0.0.1:4617 (--base-url or LETTA_BASE_URL)."
        )


def _endpoint(base_url: str) -> str:
    """The protocol's one WebSocket path, `/ws`, under the base URL (given with or without it)."""
    return base_url if urlsplit(base_url).path.endswith("/ws") else base_url + "/ws"
