"""Conversations: each agent's declared conversations, matched by summary. Created when missing; never deleted
by a plan, so their messages are never lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lettafleet.core import (
    Action,
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
from lettafleet.plugins.server_reads import AGENTS, CONVERSATIONS, agents_by_name, conversations_by_agent

KIND = "conversation"


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
def lettafleet_read_live(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Resource]:
    wanted = {resource.address for resource in desired if resource.kind == KIND}
    if not wanted:
        return []
    found: dict[str, Resource] = {}
    by_agent = conversations_by_agent(reader)
    for name, agent in agents_by_name(reader).items():
        agent_address = address_of("agent", name)
        for conversation in by_agent.get(agent["id"], []):
            address = address_of(KIND, conversation.get("summary") or "", agent_address)
            # Two conversations with one summary: the oldest is the declared one; the other is left alone.
            if address in wanted and address not in found:
                found[address] = Resource(
                    address,
                    KIND,
                    conversation["summary"],
                    {"summary": conversation["summary"]},
                    parent=agent_address,
                    id=conversation["id"],
                )
    return list(found.values())


@hookimpl
def lettafleet_diff(desired: Resource | None, live: Resource | None) -> Change | None:
    model = desired or live
    if model is None or model.kind != KIND:
        return None
    return compare(desired, live)


@hookimpl
def lettafleet_apply(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    if change.kind != KIND:
        return None
    if change.action is not Action.CREATE:
        raise ApplyError(f"{change.address}: conversations are only ever created by apply")
    agent_id = session.id_of(change.parent or "")
    try:
        return session.create(change, "/v1/conversations/", {"summary": change.name}, agent_id=agent_id)
    except LettaAPIError as error:
        if error.status == 400:
            _remove_half_created(session, agent_id, change.name)
        raise


def _remove_half_created(session: ApplySession, agent_id: str, summary: str) -> None:
    """Letta can answer 400 to a create and still keep the conversation (without what it refused). The plan
    saw no conversation with this summary, so any there now is that half-made one: remove it, so the next
    apply creates it whole."""
    for conversation in session.client.list_all("/v1/conversations/", agent_id=agent_id, summary_search=summary):
        if conversation.get("summary") == summary:
            session.client.delete(f"/v1/conversations/{conversation['id']}")
