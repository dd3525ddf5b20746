"""Conversations: each agent's declared conversations, matched by summary. Created when missing; replaced while
nobody has talked in them when their isolated copies differ from the file's (Letta makes copies only at creation).
One removed from the file is deleted when its agent's record says an apply made it: at once while it is empty,
with its messages only on `--prune`. Conversations made at runtime are never in the record, never deleted. One
archived on hosted Letta is matched and reported as drift, never recreated."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    LettaAPIError,
    LiveReader,
    Note,
    Problem,
    Read,
    Recorded,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    boolean,
    compare,
    hookimpl,
    mapping_list,
    read_record,
    string,
)
from lettafleet.plugins.backends.letta_v1.conversations import remove_half_created
from lettafleet.plugins.backends.letta_v1.reads import (
    AGENTS,
    CONVERSATIONS,
    blocks_labelled,
    conversations_by_agent,
    has_messages,
)
from lettafleet.plugins.commands.histories import count_messages
from lettafleet.plugins.resources.agents import DeclaredAgent, agent_address, declared_agents, live_agents

CONVERSATION = "conversation"
# Hosted Letta archives conversations (`archived`); lettafleet reads them too (`archive_status=all`) and matches a
# declared one someone archived rather than make it again, and never unarchives it: archiving is a person's act.
ARCHIVED = (
    "archived on the server: matched by its summary and left archived (apply never unarchives nor recreates it). "
    "Unarchive it in Letta to use it again, or take it out of the file"
)
# The isolated blocks plugin's kind: the copies a conversation must be created with (Letta makes them only then).
ISOLATED_BLOCK = "isolated_block"


def conversation_address(summary: str, agent: str) -> str:
    """`agent.support.conversation["Ticket #101"]`: a conversation's address under its agent's."""
    return address_of(CONVERSATION, summary, agent)


def lacks_copies(reader: LiveReader, conversation: Mapping[str, Any], labels: Iterable[str]) -> list[str]:
    """The labels among `labels` of which a conversation has no isolated copy (read by label, memoized)."""
    copies = set(conversation.get("isolated_block_ids") or [])
    return [label for label in sorted(labels) if not copies & _ids_labelled(reader, label)]


def has_undeclared_copies(reader: LiveReader, conversation: Mapping[str, Any], labels: Iterable[str]) -> bool:
    """Whether a conversation has an isolated copy of a block other than those of `labels` (the file no longer
    declares it, or never did)."""
    undeclared = set(conversation.get("isolated_block_ids") or [])
    for label in labels:
        undeclared -= _ids_labelled(reader, label)
    return bool(undeclared)


def _ids_labelled(reader: LiveReader, label: str) -> frozenset[str]:
    """The ids of every block with one label, gathered once per plan (a conversation of each agent asks)."""
    ids: frozenset[str] = reader.derived(
        ("block_ids_labelled", label), lambda: frozenset(block["id"] for block in blocks_labelled(reader, label))
    )
    return ids


def replaced_by_plan(reader: LiveReader, conversation: Mapping[str, Any], labels: Iterable[str]) -> bool:
    """Whether a plan replaces (deletes and creates again) a declared conversation: its isolated copies are not
    the ones the fleet declares (Letta makes copies only at creation), and nobody has talked in it, so nothing is
    lost. Messages are looked at only for conversations whose copies differ."""
    labels = list(labels)
    differs = bool(lacks_copies(reader, conversation, labels)) or has_undeclared_copies(reader, conversation, labels)
    return differs and not has_messages(reader, conversation)


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    description = "an isolated message history of an agent, matched by summary"
    return [
        ResourceKind(
            CONVERSATION,
            "conversations",
            description,
            counted=True,
            renamed_as="summary",
            handler=ConversationHandler(),
        )
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    return [
        SchemaFragment(
            {"conversations": mapping_list({"summary": string(required=True, empty=False), "protect": boolean()})},
            at=("agents",),
        )
    ]


def declared_conversations(agent: DeclaredAgent) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The agent's conversation entries with their index, the first of each summary only: an entry repeated as is
    is the same conversation (lettactl makes one), and `lettafleet_check` notes it."""
    seen: set[str] = set()
    for index, conversation in enumerate(agent.data.get("conversations", [])):
        if conversation["summary"] not in seen:
            seen.add(conversation["summary"])
            yield index, conversation


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    """A summary declared twice on one agent: the same conversation when both entries say the same (a note), an
    error when they differ (which one would the file mean?)."""
    problems: list[Problem] = []
    for declared in declared_agents(fleet):
        agent, agent_index = declared.data, declared.index
        first: dict[str, tuple[int, Mapping[str, Any]]] = {}
        for index, conversation in enumerate(agent.get("conversations", [])):
            summary = conversation["summary"]
            at = ("agents", agent_index, "conversations", index, "summary")
            if summary not in first:
                first[summary] = (index, conversation)
            elif first[summary][1] == conversation:
                problems.append(
                    Note(
                        at,
                        f"conversation '{summary}' is declared again for agent '{agent['name']}' "
                        f"(first at conversations[{first[summary][0]}]): it is the same conversation, made once",
                        "remove the repeated entry",
                    )
                )
            else:
                problems.append(
                    Problem(
                        at,
                        f"conversation '{summary}' is declared twice for agent '{agent['name']}', differently",
                        "conversations are matched by summary: keep one entry with the settings you mean",
                    )
                )
    return problems


def desired_conversations(fleet: Fleet) -> Iterator[Resource]:
    """Every agent's declared conversations, by summary, as every backend's conversation handler declares them."""
    for agent in declared_agents(fleet):
        for index, conversation in declared_conversations(agent):
            summary, protect = conversation["summary"], bool(conversation.get("protect"))
            yield Resource(
                conversation_address(summary, agent.address),
                CONVERSATION,
                summary,
                {"summary": summary, "protect": protect},
                parent=agent.address,
                source=(*agent.at, "conversations", index),
                protected=protect,
            )


class ConversationHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        return desired_conversations(fleet)

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [AGENTS, CONVERSATIONS] if desired else []

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        wanted = {resource.address for resource in desired}
        if not wanted:
            return []
        copies: dict[str | None, set[str]] = {}
        for resource in fleet:
            if resource.kind == ISOLATED_BLOCK:
                copies.setdefault(resource.parent, set()).add(resource.name)
        by_address: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (agent address, own address) -> oldest first
        recorded: dict[str, Recorded] = {}  # own address -> what the agent's record says the last apply made there
        by_agent = conversations_by_agent(reader)
        for name, agent in live_agents(reader).items():
            parent = agent_address(name)
            recorded.update({f"{parent}.{entry.address}": entry for entry in read_record(agent) or ()})
            for conversation in by_agent.get(agent["id"], []):
                address = conversation_address(conversation.get("summary") or "", parent)
                if address in wanted:
                    by_address.setdefault((parent, address), []).append(conversation)
        found: list[Resource | Ambiguity] = []
        for (parent, address), conversations in by_address.items():
            entry = recorded.get(address)
            # Two conversations with one summary: the one the last apply made (else the oldest) is the declared
            # one; the other is left alone.
            conversations.sort(key=lambda conversation: not entry or conversation["id"] != entry.id)
            found.append(_live(reader, conversations[0], parent, address, copies.get(address, set()), entry))
            if len(conversations) > 1:
                found.append(
                    _same_summary(address, conversations, made=bool(entry and entry.id == conversations[0]["id"]))
                )
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource]:
        """The conversations an apply made that the file no longer declares and the server still has, with their
        message count (what a removal deletes) and their isolated copies (Letta deletes them with it)."""
        path, params = CONVERSATIONS
        by_id = {conversation["id"]: conversation for conversation in reader.list_all(path, **params)}
        return [
            replace(resource, attributes=_removal_attributes(reader, by_id[resource.id]))
            for resource in recorded
            if resource.id in by_id
        ]

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Each agent's conversations that have a summary (the one the last apply made, else the oldest, of equal
        summaries), with their isolated copies and their protection. Those the agent's record lists are the
        fleet's, always exported (else a plan of the export would remove them); the others only with
        `export --conversations`, as they were made at runtime."""
        by_agent = conversations_by_agent(reader)
        for agent in agents:
            recorded = {entry.address for entry in read_record(agent) or ()}
            entries = _exported_conversations(reader, agent, by_agent.get(agent["id"], []))
            for runtime in (False, True):
                part = [e for e in entries if (address_of(CONVERSATION, e["summary"]) not in recorded) is runtime]
                if part:
                    yield Exported("conversations", part, str(agent["name"]), runtime=runtime)

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        change = compare(desired, live)
        if desired is None:
            return _removal(change)
        if live and live.state.get("archived") and not live.attributes.get("replaced"):
            return replace(change, drift=ARCHIVED)
        if not live or not live.attributes.get("replaced"):
            return change  # with messages, its isolated blocks report the copies that differ as drift
        return replace(
            change, action=Action.REPLACE, detail=f"replace (delete and create): {live.attributes['replaced']}"
        )

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.action is Action.DELETE:
            _remove(change, session)
            return None
        if change.action is Action.UPDATE and "summary" in change.changed_fields():  # renamed (`moved`)
            answer: Mapping[str, Any] = session.client.patch(
                f"/v1/conversations/{change.id}", json={"summary": change.name}
            )
            return answer
        if change.action is Action.UPDATE:
            return None  # only its protection changed: the agent's record of what the apply made carries it
        if change.action is Action.REPLACE:
            _delete_while_empty(change, session, "replaced")
        agent_id = session.id_of(change.parent or "")
        try:
            return session.create(change, "/v1/conversations/", {"summary": change.name}, agent_id=agent_id)
        except LettaAPIError as error:
            if error.status == 400:
                remove_half_created(session.client, agent_id, change.name)
            raise


def _live(
    reader: LiveReader,
    conversation: Mapping[str, Any],
    parent: str,
    address: str,
    labels: set[str],
    entry: Recorded | None,
) -> Resource:
    """A declared conversation as the server has it, protected as the record says; one whose isolated copies
    differ from the declared ones and has no messages says why a plan replaces it (`replaced`)."""
    values: dict[str, Any] = {"summary": conversation["summary"], "protect": bool(entry and entry.protect)}
    if replaced_by_plan(reader, conversation, labels):
        missing = lacks_copies(reader, conversation, labels)
        values["replaced"] = (
            f"it lacks its isolated cop{'y' if len(missing) == 1 else 'ies'} of {', '.join(missing)}"
            if missing
            else "it has an isolated copy the fleet does not declare"
        ) + " and has no messages yet"
    return Resource(
        address,
        CONVERSATION,
        conversation["summary"],
        values,
        parent=parent,
        id=conversation["id"],
        protected=bool(entry and entry.protect),
        state={"archived": bool(conversation.get("archived"))},
    )


def _same_summary(address: str, conversations: list[dict[str, Any]], *, made: bool) -> Ambiguity:
    return Ambiguity.first_of(
        address,
        f"{len(conversations)} conversations of the agent have the summary '{conversations[0]['summary']}'",
        [conversation["id"] for conversation in conversations],
        "delete the ones that should not be there (`lettafleet delete conversation ID --force`; their messages go "
        "with them), then plan again",
        chosen="the one the last apply made" if made else "the oldest",
    )


def _exported_conversations(
    reader: LiveReader, agent: Mapping[str, Any], conversations: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The `conversations:` entries of one agent, one per summary, as a plan of them finds them unchanged."""
    recorded = {entry.address: entry for entry in read_record(agent) or ()}
    chosen: dict[str, tuple[Mapping[str, Any], Recorded | None]] = {}
    for conversation in conversations:
        summary = conversation.get("summary")
        entry = recorded.get(address_of(CONVERSATION, summary or ""))
        if summary and (summary not in chosen or (entry and entry.id == conversation["id"])):
            chosen[summary] = (conversation, entry)
    labels = CopyLabels(reader, {block["label"] for block in agent.get("blocks") or []})
    entries = []
    for summary, (conversation, entry) in chosen.items():
        exported: dict[str, Any] = {"summary": summary}
        # A copy of a block the agent no longer has cannot be declared: a plan shows it as drift.
        copies = [labels.of(copy) for copy in conversation.get("isolated_block_ids") or []]
        if declared := sorted(label for label in copies if label in labels.declared):
            exported["isolated_blocks"] = declared
        if entry and entry.protect:
            exported["protect"] = True
        entries.append(exported)
    return entries


class CopyLabels:
    """The label of each isolated copy, from one read per label in `declared` (shared by every conversation). A
    copy of some other label (one the fleet does not declare) costs one read of that block."""

    def __init__(self, reader: LiveReader, declared: set[str]) -> None:
        self.reader = reader
        self.declared = declared
        self.known = {block["id"]: label for label in sorted(declared) for block in blocks_labelled(reader, label)}

    def of(self, block_id: str) -> str:
        if block_id not in self.known:
            try:
                self.known[block_id] = self.reader.get(f"/v1/blocks/{block_id}").get("label") or block_id
            except LettaAPIError as error:
                if error.status != 404:
                    raise
                self.known[block_id] = block_id  # the conversation names a copy the server no longer has
        return self.known[block_id]


def _removal_attributes(reader: LiveReader, conversation: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "summary": conversation.get("summary"),
        "messages": count_messages(reader.client, conversation),
        "isolated_copies": len(conversation.get("isolated_block_ids") or []),
    }


def _removal(change: Change) -> Change:
    """A conversation removed from the file: deleted with its isolated copies; held for `--prune` when someone
    has talked in it."""
    before = change.before or {}
    messages, copies = before.get("messages", 0), before.get("isolated_copies", 0)
    goes_too = f"; its {copies} isolated cop{'y goes' if copies == 1 else 'ies go'} with it" if copies else ""
    if messages:
        return replace(change, held="prune", detail=f"it holds {messages} message{'s' * (messages != 1)}{goes_too}")
    return replace(change, detail=f"it has no messages{goes_too}")


def _remove(change: Change, session: ApplySession) -> None:
    """Delete a conversation removed from the file. One the plan found empty is deleted only while it still is:
    messages someone sent since the plan are deleted only by a plan that shows them."""
    if (change.before or {}).get("messages"):
        session.delete(f"/v1/conversations/{change.id}")
    else:
        _delete_while_empty(change, session, "removed")


def _delete_while_empty(change: Change, session: ApplySession, outcome: str) -> None:
    """Delete the conversation of `change` unless someone talked in it since the plan was made (gone already:
    done). `outcome` is what the plan meant to do, for the error."""
    try:
        conversation = session.client.get(f"/v1/conversations/{change.id}")
    except LettaAPIError as error:
        if error.status == 404:
            return
        raise
    if has_messages(session.client, conversation):
        raise ApplyError(
            f"{change.address}: conversation {change.id} has messages now, so it was not {outcome}; plan again"
        )
    session.delete(f"/v1/conversations/{change.id}")
