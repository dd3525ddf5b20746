"""Conversations on the App Server: each agent's declared conversations, matched by exact summary (the server's
`summary_search` is a substring, and summaries need not be unique), created when missing. The server has no
delete: one taken out of the file is archived, and only when its agent's record says an apply made it. One
archived on the server that the file declares is matched, never made again.

Conversation ids are not identities there: `local-conv-N` counts from the highest id the server finds when it
starts, so an id whose conversation is gone may name another one later. The record keeps each conversation as
its id with its creation time (`local-conv-3@2026-12-07T14:49:36.119Z`), and only a conversation with both is
the recorded one (docs/removing.md, "On the App Server")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    Action,
    Ambiguity,
    ApplyError,
    ApplySession,
    Change,
    Exported,
    Fleet,
    LiveReader,
    Recorded,
    Resource,
    ResourceHandler,
    address_of,
    compare,
)
from lettafleet.plugins.backends.app_server.agents import RECORD_READS, agents_by_name, read_app_record
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.resources.agents import agent_address
from lettafleet.plugins.resources.conversations import CONVERSATION, conversation_address, desired_conversations

ARCHIVED = (
    "archived on the App Server: matched by its summary and left archived (apply never unarchives nor recreates "
    "it). Unarchive it on the server to use it again, or take it out of the file"
)
NO_DELETE = "the App Server has no delete"


def recorded_id(conversation: Mapping[str, Any]) -> str:
    """What the record names a conversation by: its id with its creation time (ids are reused, the pair is not)."""
    return f"{conversation['id']}@{conversation.get('created_at') or ''}"


def server_id(recorded: str) -> str:
    """The conversation's id on the server, from what the record names it by."""
    return recorded.split("@", 1)[0]


def conversations_of(reader: LiveReader, agent_id: str) -> list[dict[str, Any]]:
    """The agent's conversations, archived ones too (the server lists them all), oldest first; read once a plan."""

    def read() -> list[dict[str, Any]]:
        found = app_of(reader.client).list_conversations(agent_id)
        return sorted(found, key=lambda conversation: (str(conversation.get("created_at") or ""), conversation["id"]))

    conversations: list[dict[str, Any]] = reader.derived(("app_server", "conversations", agent_id), read)
    return conversations


def has_messages(app: AppServerClient, conversation_id: str) -> bool:
    """Whether anybody has talked in the conversation (the server's `last_message_at` is set at creation)."""
    answer = app.call("conversation_messages_list", conversation_id=conversation_id, query={"limit": 1})
    return bool(answer.get("messages"))


def still_the_planned(app: AppServerClient, recorded: str) -> dict[str, Any] | None:
    """The conversation a plan named (`recorded_id`), if the server still has it: its id alone may name a newer
    conversation by the time a saved plan is applied."""
    try:
        live = app.retrieve_conversation(server_id(recorded))
    except AppServerError as error:
        if "not found" in error.detail:
            return None
        raise
    return live if recorded_id(live) == recorded else None


class AppServerConversationHandler(ResourceHandler):
    """Declared conversations by exact summary; duplicates are ambiguities that name the one the plan uses (the
    one the last apply made, else the oldest). Removed ones the record lists are archived: with messages only on
    `--prune`, as on V1. Conversations made at runtime are never in the record, so never archived."""

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        return desired_conversations(fleet)

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        agents = _agents_by_address(reader)
        found = [(parent, agents[parent]) for parent in sorted({str(r.parent) for r in desired}) if parent in agents]
        with ThreadPoolExecutor(max_workers=RECORD_READS) as pool:
            reads = list(pool.map(lambda pair: _agent_reads(reader, str(pair[1]["id"])), found))
        wanted = {resource.address for resource in desired}
        matched: list[Resource | Ambiguity] = []
        for (parent, _agent), (conversations, record) in zip(found, reads, strict=True):
            recorded = {f"{parent}.{entry.address}": entry for entry in record or ()}
            for address, same in _by_summary(conversations, parent, wanted).items():
                matched.extend(match_declared(address, parent, same, recorded.get(address)))
        return matched

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource]:
        """The recorded conversations the file no longer declares that the server still has unarchived, the same
        id made at the same time (a reused id is another conversation), with whether anybody talked in them."""
        by_address = _agents_by_address(reader)
        app = app_of(reader.client)
        for placeholder in recorded:
            agent = by_address.get(str(placeholder.parent))
            if agent is None or placeholder.id is None:
                continue
            live = {recorded_id(c): c for c in conversations_of(reader, str(agent["id"]))}.get(placeholder.id)
            if live is None or live.get("archived"):
                continue  # gone, reused by another conversation, or archived already: nothing left to do
            talked = has_messages(app, str(live["id"]))
            yield replace(placeholder, attributes={"summary": live.get("summary"), "messages": talked})

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Each agent's conversations with a summary, one per summary (as a plan matches them), with their
        protection; archived ones never. Those the agent's record lists are the fleet's, always exported (else a
        plan of the export would archive them); the others only with `export --conversations` (made at runtime)."""
        with ThreadPoolExecutor(max_workers=RECORD_READS) as pool:
            reads = list(pool.map(lambda agent: _agent_reads(reader, str(agent["id"])), agents))
        for agent, (conversations, record) in zip(agents, reads, strict=True):
            entries = exported_conversations(conversations, {entry.address: entry for entry in record or ()})
            for runtime in (False, True):
                part = [declared for declared, recorded in entries if recorded is not runtime]
                if part:
                    yield Exported("conversations", part, str(agent["name"]), runtime=runtime)

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        change = compare(desired, live)
        if desired is None and live is not None:
            if live.attributes.get("messages"):
                detail = f"it has messages; it is archived, not deleted ({NO_DELETE}): they stay on the server"
                return replace(change, held="prune", detail=detail)
            return replace(change, detail=f"it has no messages; it is archived ({NO_DELETE})")
        if live is not None and live.state.get("archived"):
            return replace(change, drift=ARCHIVED)
        return change

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        app = app_of(session.client)
        if change.action is Action.CREATE:
            created = app.create_conversation(session.id_of(str(change.parent)), change.name)
            session.record_id(change.address, recorded_id(created))
            return created
        if change.action is Action.DELETE:
            return _archive(app, str(change.id))
        if change.action is Action.UPDATE and "summary" in change.changed_fields():  # renamed (`moved:`)
            return _rename(app, change)
        if change.action is Action.UPDATE:
            return None  # only its protection changed: the agent's record carries it
        raise ApplyError(f"{change.address}: the App Server backend cannot {change.action} a conversation")


def _archive(app: AppServerClient, recorded: str) -> Mapping[str, Any] | None:
    """Archive the planned conversation (the server has no delete); one gone since the plan is done, even when
    its id names a newer conversation now."""
    if still_the_planned(app, recorded) is None:
        return None
    return app.archive_conversation(server_id(recorded))


def _rename(app: AppServerClient, change: Change) -> Mapping[str, Any]:
    if still_the_planned(app, str(change.id)) is None:
        raise ApplyError(f"{change.address}: conversation {change.id} is no longer on the server; plan again")
    body = {"summary": change.name}
    answer: Mapping[str, Any] = app.call("conversation_update", conversation_id=server_id(str(change.id)), body=body)
    return answer


def exported_conversations(
    conversations: Sequence[dict[str, Any]], recorded: Mapping[str, Recorded]
) -> list[tuple[dict[str, Any], bool]]:
    """The `conversations:` entries of one agent (its conversations oldest first), each with whether the agent's
    record lists it: per summary the one a plan would match (the one the last apply made, else the oldest),
    left out when that one is archived (a plan of the export would show it as drift)."""
    by_summary: dict[str, list[dict[str, Any]]] = {}
    for conversation in conversations:
        if conversation.get("summary"):
            by_summary.setdefault(str(conversation["summary"]), []).append(conversation)
    entries = []
    for summary, same in by_summary.items():
        entry = recorded.get(address_of(CONVERSATION, summary))
        chosen = next((c for c in same if entry is not None and recorded_id(c) == entry.id), same[0])
        if chosen.get("archived"):
            continue
        declared: dict[str, Any] = {"summary": summary}
        if entry is not None and entry.protect:
            declared["protect"] = True
        entries.append((declared, entry is not None))
    return entries


def _agent_reads(reader: LiveReader, agent_id: str) -> tuple[list[dict[str, Any]], tuple[Recorded, ...] | None]:
    return conversations_of(reader, agent_id), read_app_record(reader, agent_id)


def _by_summary(
    conversations: Iterable[dict[str, Any]], parent: str, wanted: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """The agent's conversations whose exact summary is a declared one, by the declared address, oldest first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for conversation in conversations:
        address = conversation_address(str(conversation.get("summary") or ""), parent)
        if conversation.get("summary") and address in wanted:
            grouped.setdefault(address, []).append(conversation)
    return grouped


def _agents_by_address(reader: LiveReader) -> dict[str, dict[str, Any]]:
    """The agent a plan uses for each agent address (of equal names, the fleet's own first)."""
    return {agent_address(name): agents[0] for name, agents in agents_by_name(reader).items()}


def match_declared(
    address: str, parent: str, conversations: list[dict[str, Any]], entry: Recorded | None
) -> Iterable[Resource | Ambiguity]:
    """The declared conversation among those of one summary (the one the record names, else the oldest), and the
    ambiguity when there are several."""
    made = [c for c in conversations if entry is not None and recorded_id(c) == entry.id]
    ordered = made + [c for c in conversations if c not in made]
    chosen = ordered[0]
    protect = bool(entry and entry.protect)
    yield Resource(
        address,
        CONVERSATION,
        str(chosen["summary"]),
        {"summary": chosen["summary"], "protect": protect},
        parent=parent,
        id=recorded_id(chosen),
        protected=protect,
        state={"archived": bool(chosen.get("archived"))},
    )
    if len(ordered) > 1:
        yield Ambiguity.first_of(
            address,
            f"{len(ordered)} conversations of the agent have the summary '{chosen['summary']}'",
            [str(c["id"]) for c in ordered],
            "rename the others on the App Server (it has no delete, and archived conversations count too), "
            "then plan again",
            chosen="the one the last apply made" if made else "the oldest",
        )
