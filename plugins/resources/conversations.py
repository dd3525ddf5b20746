"""Conversations: each agent's declared conversations, matched by summary. Created when missing. A plan deletes
one only to replace it, when it lacks a declared isolated copy and has no messages yet: messages are never lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    AGENTS,
    CONVERSATIONS,
    Action,
    Ambiguity,
    ApplyError,
    ApplySession,
    Change,
    Fleet,
    LettaAPIError,
    LiveReader,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    blocks_labelled,
    compare,
    conversations_by_agent,
    has_messages,
    hookimpl,
    mapping_list,
    remove_half_created,
    string,
)
from lettafleet.plugins.resources.agents import agent_address, declared_agents, live_agents

CONVERSATION = "conversation"
# The isolated blocks plugin's kind: the copies a conversation must be created with (Letta makes them only then).
ISOLATED_BLOCK = "isolated_block"


def conversation_address(summary: str, agent: str) -> str:
    """`agent.support.conversation["Ticket #101"]`: a conversation's address under its agent's."""
    return address_of(CONVERSATION, summary, agent)


def lacks_copies(reader: LiveReader, conversation: Mapping[str, Any], labels: Iterable[str]) -> list[str]:
    """The labels among `labels` of which a conversation has no isolated copy (read by label, memoized)."""
    copies = set(conversation.get("isolated_block_ids") or [])
    return [label for label in sorted(labels) if not copies & {block["id"] for block in blocks_labelled(reader, label)}]


def replaced_by_plan(reader: LiveReader, conversation: Mapping[str, Any], labels: Iterable[str]) -> bool:
    """Whether a plan replaces (deletes and creates again) a declared conversation: it lacks an isolated copy
    the fleet declares (Letta makes copies only at creation), and nobody has talked in it, so nothing is lost.
    Messages are looked at only for conversations that lack a copy."""
    return bool(lacks_copies(reader, conversation, labels)) and not has_messages(reader, conversation)


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
        SchemaFragment({"conversations": mapping_list({"summary": string(required=True, empty=False)})}, at=("agents",))
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems = []
    for declared in declared_agents(fleet):
        agent, agent_index = declared.data, declared.index
        seen: set[str] = set()
        for index, conversation in enumerate(agent.get("conversations", [])):
            summary = conversation["summary"]
            if summary in seen:
                problems.append(
                    Problem(
                        ("agents", agent_index, "conversations", index, "summary"),
                        f"conversation '{summary}' is declared twice for agent '{agent['name']}'",
                        "conversations are matched by summary, so summaries must be unique per agent",
                    )
                )
            seen.add(summary)
    return problems


class ConversationHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for agent in declared_agents(fleet):
            for index, conversation in enumerate(agent.data.get("conversations", [])):
                summary = conversation["summary"]
                yield Resource(
                    conversation_address(summary, agent.address),
                    CONVERSATION,
                    summary,
                    {"summary": summary},
                    parent=agent.address,
                    source=(*agent.at, "conversations", index),
                )

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
        by_agent = conversations_by_agent(reader)
        for name, agent in live_agents(reader).items():
            for conversation in by_agent.get(agent["id"], []):
                address = conversation_address(conversation.get("summary") or "", agent_address(name))
                if address in wanted:
                    by_address.setdefault((agent_address(name), address), []).append(conversation)
        found: list[Resource | Ambiguity] = []
        for (parent, address), conversations in by_address.items():
            # Two conversations with one summary: the oldest is the declared one; the other is left alone.
            found.append(_live(reader, conversations[0], parent, address, copies.get(address, set())))
            if len(conversations) > 1:
                found.append(_same_summary(address, conversations))
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        change = compare(desired, live)
        missing = live.attributes.get("missing_copies") if live and desired else None
        if not live or not missing or live.attributes["has_messages"]:
            return change  # with messages, its isolated blocks report the missing copies as drift
        return replace(
            change,
            action=Action.REPLACE,
            detail=(
                f"replace (delete and create): it lacks its isolated cop{'y' if len(missing) == 1 else 'ies'} of "
                f"{', '.join(missing)} and has no messages yet"
            ),
        )

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.action is Action.UPDATE and "summary" in change.changed_fields():  # renamed (`moved`)
            answer: Mapping[str, Any] = session.client.patch(
                f"/v1/conversations/{change.id}", json={"summary": change.name}
            )
            return answer
        if change.action is Action.REPLACE:
            _delete_unused(change, session)
        elif change.action is not Action.CREATE:
            raise ApplyError(f"{change.address}: conversations are only ever created, renamed or replaced by apply")
        agent_id = session.id_of(change.parent or "")
        try:
            return session.create(change, "/v1/conversations/", {"summary": change.name}, agent_id=agent_id)
        except LettaAPIError as error:
            if error.status == 400:
                remove_half_created(session.client, agent_id, change.name)
            raise


def _live(reader: LiveReader, conversation: Mapping[str, Any], parent: str, address: str, labels: set[str]) -> Resource:
    """A declared conversation as the server has it; one that lacks a declared isolated copy also says which,
    and whether it has messages (read only for such a conversation)."""
    values: dict[str, Any] = {"summary": conversation["summary"]}
    missing = lacks_copies(reader, conversation, labels)
    if missing:
        values.update(missing_copies=missing, has_messages=has_messages(reader, conversation))
    return Resource(address, CONVERSATION, conversation["summary"], values, parent=parent, id=conversation["id"])


def _same_summary(address: str, conversations: list[dict[str, Any]]) -> Ambiguity:
    return Ambiguity.first_of(
        address,
        f"{len(conversations)} conversations of the agent have the summary '{conversations[0]['summary']}'",
        [conversation["id"] for conversation in conversations],
        "delete the ones that should not be there (`lettafleet delete conversation ID --force`; their messages go "
        "with them), then plan again",
    )


def _delete_unused(change: Change, session: ApplySession) -> None:
    """Delete the conversation a plan replaces, unless someone talked in it since the plan was made."""
    conversation = session.client.get(f"/v1/conversations/{change.id}")
    if has_messages(session.client, conversation):
        raise ApplyError(
            f"{change.address}: conversation {change.id} has messages now, so it was not replaced; plan again"
        )
    session.client.delete(f"/v1/conversations/{change.id}")
