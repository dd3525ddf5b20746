"""Isolated blocks: per-conversation copies of an agent's blocks (`isolated_blocks: [label]`).

Letta makes the copies only when a conversation is created, so they ride along in that request. A conversation
that lacks a declared copy and has no messages yet is replaced (deleted and created with its copies); one with
messages, or with copies the fleet does not declare, is reported as drift: it cannot be changed in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
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
    string_list,
)
from lettafleet.plugins.resources.server_reads import (
    AGENTS,
    CONVERSATIONS,
    agents_by_name,
    blocks_labelled,
    conversations_by_agent,
    labelled,
    remade,
)

KIND = "isolated_block"
CONVERSATION = "conversation"  # the conversations plugin's kind: copies live on its conversations


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [ResourceKind(KIND, "isolated blocks", "a conversation's own copy of one of its agent's blocks")]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    return [SchemaFragment({"isolated_blocks": string_list()}, at=("agents", "conversations"))]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems = []
    for agent_index, agent in enumerate(fleet.data["agents"]):
        labels = [block["name"] for block in agent.get("memory_blocks", [])] + list(agent.get("shared_blocks", []))
        for conversation_index, conversation in enumerate(agent.get("conversations", [])):
            seen: set[str] = set()
            for index, label in enumerate(conversation.get("isolated_blocks", [])):
                at = ("agents", agent_index, "conversations", conversation_index, "isolated_blocks", index)
                if label not in labels:
                    problems.append(
                        Problem(
                            at,
                            f"isolated block '{label}' is not a block of agent '{agent['name']}'",
                            f"the agent's blocks are: {', '.join(sorted(set(labels))) or 'none'}",
                        )
                    )
                elif label in seen:
                    problems.append(Problem(at, f"isolated block '{label}' is listed twice", "list each label once"))
                seen.add(label)
    return problems


@hookimpl
def lettafleet_desired(fleet: Fleet) -> Iterable[Resource]:
    for agent_index, agent in enumerate(fleet.data["agents"]):
        agent_address = address_of("agent", agent["name"])
        own = {block["name"] for block in agent.get("memory_blocks", [])}
        for conversation_index, conversation in enumerate(agent.get("conversations", [])):
            conversation_address = address_of("conversation", conversation["summary"], agent_address)
            for index, label in enumerate(conversation.get("isolated_blocks", [])):
                source_block = address_of("block" if label in own else "shared_block", label, agent_address)
                yield Resource(
                    address_of(KIND, label, conversation_address),
                    KIND,
                    label,
                    {"isolated": True},
                    parent=conversation_address,
                    depends_on=(source_block,),
                    source=("agents", agent_index, "conversations", conversation_index, "isolated_blocks", index),
                )


@hookimpl
def lettafleet_live_reads(desired: Sequence[Resource]) -> Iterable[tuple[str, dict[str, Any]]]:
    if not any(resource.kind in (KIND, CONVERSATION) for resource in desired):
        return []
    labels = sorted({resource.name for resource in desired if resource.kind == KIND})
    return [AGENTS, CONVERSATIONS, *(labelled(label) for label in labels)]


@hookimpl
def lettafleet_read_live(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Resource]:
    """For every declared conversation that exists: its copies, and a 'missing' entry for each declared label
    it lacks, so the diff can tell a conversation to create from one that exists without its copy."""
    mine = [resource for resource in desired if resource.kind == KIND]
    declared_labels: dict[str | None, set[str]] = {}
    for resource in mine:
        declared_labels.setdefault(resource.parent, set()).add(resource.name)
    # Every declared conversation is checked, also those declaring no copies: a copy they have is drift too.
    declared_conversations = {r.address for r in desired if r.kind == CONVERSATION} | set(declared_labels)
    if not declared_conversations:
        return []
    found: list[Resource] = []
    by_agent = conversations_by_agent(reader)
    labels = _CopyLabels(reader, {label for labels in declared_labels.values() for label in labels})
    for name, agent in agents_by_name(reader).items():
        agent_address = address_of("agent", name)
        for conversation in by_agent.get(agent["id"], []):
            conversation_address = address_of("conversation", conversation.get("summary") or "", agent_address)
            if conversation_address not in declared_conversations:
                continue
            copies = {labels.of(block_id): block_id for block_id in conversation.get("isolated_block_ids") or []}
            declared = declared_labels.get(conversation_address, set())
            # A conversation the plan replaces is made again with every declared copy, and loses the others.
            replaced = remade(reader, conversation, declared)
            for label in sorted(set(copies) | declared):
                values = {"isolated": label in copies, "conversation": conversation["id"], "replaced": replaced}
                found.append(
                    Resource(
                        address_of(KIND, label, conversation_address),
                        KIND,
                        label,
                        values,
                        parent=conversation_address,
                        id=copies.get(label),
                    )
                )
            declared_conversations.discard(conversation_address)  # the oldest with this summary is the one
    return found


class _CopyLabels:
    """The label of each isolated copy, from one read per declared label (shared by every conversation). A copy
    of some other label (one the fleet does not declare: drift) costs one read of that block."""

    def __init__(self, reader: LiveReader, declared: set[str]) -> None:
        self.reader = reader
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


@hookimpl
def lettafleet_diff(desired: Resource | None, live: Resource | None) -> Change | None:
    model = desired or live
    if model is None or model.kind != KIND:
        return None
    if live is None:
        return compare(desired, live)
    if live.attributes["replaced"]:
        return _with_replaced_conversation(desired, live)
    change = compare(desired, _compared(live))
    if desired is not None and not live.attributes["isolated"]:
        conversation = live.attributes["conversation"]
        return replace(
            change,
            action=Action.NO_OP,
            drift=(
                "the conversation exists without an isolated copy of this block and has messages, so apply does not "
                "replace it (Letta makes copies only when a conversation is created). To get one, delete it (its "
                f"messages go with it): `lettafleet delete conversation {conversation} --force`, then apply again"
            ),
        )
    if desired is None:
        return replace(
            change,
            action=Action.NO_OP,
            drift=(
                "the conversation has an isolated copy of this block that the fleet does not declare; it cannot be "
                "removed in place"
            ),
        )
    return change


def _with_replaced_conversation(desired: Resource | None, live: Resource) -> Change:
    """A copy of a conversation the plan replaces: a declared one is made with the new conversation, any other
    goes with the old one (Letta deletes a conversation's copies with it)."""
    if desired is not None:
        return compare(desired, None)
    return replace(compare(None, _compared(live)), action=Action.DELETE, after=None)


def _compared(live: Resource) -> Resource:
    """A live copy with only what a plan compares and shows: whether it exists."""
    return replace(live, attributes={"isolated": live.attributes["isolated"]})


@hookimpl
def lettafleet_ride_along(
    parent: Change, child: Change, request: dict[str, Any], session: ApplySession
) -> Callable[[Mapping[str, Any]], str | None] | None:
    if child.kind != KIND or child.action is not Action.CREATE:
        return None
    labels = request.setdefault("isolated_block_labels", [])
    labels.append(child.name)

    def check(answer: Mapping[str, Any]) -> str | None:
        if len(answer.get("isolated_block_ids") or []) >= len(labels):
            return None
        return (
            f"the server created conversation '{parent.name}' without an isolated copy of '{child.name}': "
            "it ignores isolated_block_labels (Letta 0.16.4 to 0.16.x supports them)"
        )

    return check


@hookimpl
def lettafleet_apply(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    if change.kind != KIND:
        return None
    if change.action is Action.DELETE and session.change_at(change.parent or "").action is Action.REPLACE:
        return {"id": change.id}  # deleted by Letta with the conversation it belonged to
    raise ApplyError(f"{change.address}: an isolated block can only be made together with its conversation")
