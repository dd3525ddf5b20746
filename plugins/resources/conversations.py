"""Conversations: each agent's declared conversations, matched by summary. Created when missing. A plan deletes
one only to replace it, when it lacks a declared isolated copy and has no messages yet: messages are never lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    Action,
    Ambiguity,
    ApplyError,
    ApplySession,
    Change,
    Fleet,
    LettaAPIError,
    LiveReader,
    Problem,
    Resource,
    ResourceKind,
    SchemaFragment,
    address_of,
    compare,
    hookimpl,
    mapping_list,
    string,
)
from lettafleet.plugins.resources.server_reads import (
    AGENTS,
    CONVERSATIONS,
    agents_by_name,
    conversations_by_agent,
    has_messages,
    lacks_copies,
)

KIND = "conversation"
ISOLATED_BLOCK = "isolated_block"  # the isolated blocks plugin's kind: the copies a conversation must be made with


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [
        ResourceKind(KIND, "conversations", "an isolated message history of an agent, matched by summary", counted=True)
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    return [
        SchemaFragment({"conversations": mapping_list({"summary": string(required=True, empty=False)})}, at=("agents",))
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems = []
    for agent_index, agent in enumerate(fleet.data["agents"]):
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


@hookimpl
def lettafleet_desired(fleet: Fleet) -> Iterable[Resource]:
    for agent_index, agent in enumerate(fleet.data["agents"]):
        agent_address = address_of("agent", agent["name"])
        for index, conversation in enumerate(agent.get("conversations", [])):
            summary = conversation["summary"]
            yield Resource(
                address_of(KIND, summary, agent_address),
                KIND,
                summary,
                {"summary": summary},
                parent=agent_address,
                source=("agents", agent_index, "conversations", index),
            )


@hookimpl
def lettafleet_live_reads(desired: Sequence[Resource]) -> Iterable[tuple[str, dict[str, Any]]]:
    return [AGENTS, CONVERSATIONS] if any(resource.kind == KIND for resource in desired) else []


@hookimpl
def lettafleet_read_live(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
    wanted = {resource.address for resource in desired if resource.kind == KIND}
    if not wanted:
        return []
    copies: dict[str | None, set[str]] = {}
    for resource in desired:
        if resource.kind == ISOLATED_BLOCK:
            copies.setdefault(resource.parent, set()).add(resource.name)
    by_address: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (agent address, own address) -> oldest first
    by_agent = conversations_by_agent(reader)
    for name, agent in agents_by_name(reader).items():
        agent_address = address_of("agent", name)
        for conversation in by_agent.get(agent["id"], []):
            address = address_of(KIND, conversation.get("summary") or "", agent_address)
            if address in wanted:
                by_address.setdefault((agent_address, address), []).append(conversation)
    found: list[Resource | Ambiguity] = []
    for (agent_address, address), conversations in by_address.items():
        # Two conversations with one summary: the oldest is the declared one; the other is left alone.
        found.append(_live(reader, conversations[0], agent_address, address, copies.get(address, set())))
        if len(conversations) > 1:
            found.append(_same_summary(address, conversations))
    return found


def _live(reader: LiveReader, conversation: Mapping[str, Any], parent: str, address: str, labels: set[str]) -> Resource:
    """A declared conversation as the server has it; one that lacks a declared isolated copy also says which,
    and whether it has messages (read only for such a conversation)."""
    values: dict[str, Any] = {"summary": conversation["summary"]}
    missing = lacks_copies(reader, conversation, labels)
    if missing:
        values.update(missing_copies=missing, has_messages=has_messages(reader, conversation))
    return Resource(address, KIND, conversation["summary"], values, parent=parent, id=conversation["id"])


def _same_summary(address: str, conversations: list[dict[str, Any]]) -> Ambiguity:
    return Ambiguity.first_of(
        address,
        f"{len(conversations)} conversations of the agent have the summary '{conversations[0]['summary']}'",
        [conversation["id"] for conversation in conversations],
        "delete the ones that should not be there (`lettafleet delete conversation ID --force`; their messages go "
        "with them), then plan again",
    )


@hookimpl
def lettafleet_diff(desired: Resource | None, live: Resource | None) -> Change | None:
    model = desired or live
    if model is None or model.kind != KIND:
        return None
    change = compare(desired, live)
    missing = live.attributes.get("missing_copies") if live and desired else None
    if not missing or live.attributes["has_messages"]:  # type: ignore[union-attr]
        return change  # with messages, its isolated blocks report the missing copies as drift
    return replace(
        change,
        action=Action.REPLACE,
        detail=(
            f"replace (delete and create): it lacks its isolated cop{'y' if len(missing) == 1 else 'ies'} of "
            f"{', '.join(missing)} and has no messages yet"
        ),
    )


@hookimpl
def lettafleet_apply(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    if change.kind != KIND:
        return None
    if change.action is Action.REPLACE:
        _delete_unused(change, session)
    elif change.action is not Action.CREATE:
        raise ApplyError(f"{change.address}: conversations are only ever created or replaced by apply")
    agent_id = session.id_of(change.parent or "")
    try:
        return session.create(change, "/v1/conversations/", {"summary": change.name}, agent_id=agent_id)
    except LettaAPIError as error:
        if error.status == 400:
            _remove_half_created(session, agent_id, change.name)
        raise


def _delete_unused(change: Change, session: ApplySession) -> None:
    """Delete the conversation a plan replaces, unless someone talked in it since the plan was made."""
    conversation = session.client.get(f"/v1/conversations/{change.id}")
    if has_messages(session.client, conversation):
        raise ApplyError(
            f"{change.address}: conversation {change.id} has messages now, so it was not replaced; plan again"
        )
    session.client.delete(f"/v1/conversations/{change.id}")


def _remove_half_created(session: ApplySession, agent_id: str, summary: str) -> None:
    """Letta can answer 400 to a create and still keep the conversation (without what it refused). The plan
    saw no conversation with this summary, so any there now is that half-made one: remove it, so the next
    apply creates it whole."""
    for conversation in session.client.list_all("/v1/conversations/", agent_id=agent_id, summary_search=summary):
        if conversation.get("summary") == summary:
            session.client.delete(f"/v1/conversations/{conversation['id']}")
