"""Isolated blocks: per-conversation copies of an agent's blocks (`isolated_blocks: [label]`).

Letta makes the copies only when a conversation is created, so they ride along in that request. A conversation
whose copies differ from the declared ones (a label added to or removed from the file) and has no messages yet is
replaced: deleted (its copies with it) and created with the declared copies. One with messages is reported as
drift and kept: it cannot be changed in place, and its messages are never deleted for a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    Action,
    ApplyError,
    ApplySession,
    Change,
    Fleet,
    LiveReader,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    RideAlongCheck,
    SchemaFragment,
    address_of,
    compare,
    hookimpl,
    string_list,
)
from lettafleet.plugins.backends.letta_v1.conversations import ISOLATED_LABELS, lacks_isolated_copies
from lettafleet.plugins.backends.letta_v1.reads import AGENTS, CONVERSATIONS, conversations_by_agent, labelled
from lettafleet.plugins.backends.letta_v1.server import ISOLATED_BLOCKS_REMOVED, isolated_blocks_missing
from lettafleet.plugins.resources.agents import agent_address, declared_agents, live_agents
from lettafleet.plugins.resources.conversations import (
    CONVERSATION,
    CopyLabels,
    conversation_address,
    declared_conversations,
    replaced_by_plan,
)

ISOLATED_BLOCK = "isolated_block"


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    description = "a conversation's own copy of one of its agent's blocks"
    return [ResourceKind(ISOLATED_BLOCK, "isolated blocks", description, handler=IsolatedBlockHandler())]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    return [SchemaFragment({"isolated_blocks": string_list()}, at=("agents", "conversations"))]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems = []
    for declared in declared_agents(fleet):
        agent, agent_index = declared.data, declared.index
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


class IsolatedBlockHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for agent in declared_agents(fleet):
            own = {block["name"] for block in agent.data.get("memory_blocks", [])}
            for conversation_index, conversation in declared_conversations(agent):
                parent = conversation_address(conversation["summary"], agent.address)
                for index, label in enumerate(conversation.get("isolated_blocks", [])):
                    source_block = address_of("block" if label in own else "shared_block", label, agent.address)
                    yield Resource(
                        address_of(ISOLATED_BLOCK, label, parent),
                        ISOLATED_BLOCK,
                        label,
                        {"isolated": True},
                        parent=parent,
                        depends_on=(source_block,),
                        source=(*agent.at, "conversations", conversation_index, "isolated_blocks", index),
                    )

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        # Without copies declared, the conversations are read only if some are declared (by their own handler).
        labels = sorted({r.name for r in desired})
        return [AGENTS, CONVERSATIONS, *(labelled(label) for label in labels)] if labels else []

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Before any write: a server that makes no isolated copies (hosted Letta) would create the conversations
        without them, so the plan stops at each declared copy instead."""
        if not desired:
            return []
        path, params = CONVERSATIONS
        why = isolated_blocks_missing(reader.list_all(path, **params), reader.client.server_info)
        if why is None:
            return []
        server = reader.client.server_info().describe()
        message = (
            f"{server} makes no isolated blocks ({why}): Letta removed them from hosted Letta on "
            f"{ISOLATED_BLOCKS_REMOVED}; only self-hosted Letta 0.16.4 to 0.16.8 makes them"
        )
        hint = "remove `isolated_blocks` from this conversation, or apply the fleet to a self-hosted Letta 0.16.x"
        return [Problem(resource.source, message, hint) for resource in desired if resource.source]

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        """For every declared conversation that exists: its copies, and a 'missing' entry for each declared label
        it lacks, so the diff can tell a conversation to create from one that exists without its copy."""
        declared_labels: dict[str | None, set[str]] = {}
        for resource in desired:
            declared_labels.setdefault(resource.parent, set()).add(resource.name)
        # Every declared conversation is checked, also those declaring no copies: a copy they have is drift too.
        declared_conversations = {r.address for r in fleet if r.kind == CONVERSATION} | set(declared_labels)
        if not declared_conversations:
            return []
        found: list[Resource] = []
        by_agent = conversations_by_agent(reader)
        labels = CopyLabels(reader, {label for labels in declared_labels.values() for label in labels})
        for name, agent in live_agents(reader).items():
            for conversation in by_agent.get(agent["id"], []):
                parent = conversation_address(conversation.get("summary") or "", agent_address(name))
                if parent not in declared_conversations:
                    continue
                copies = {labels.of(block_id): block_id for block_id in conversation.get("isolated_block_ids") or []}
                declared = declared_labels.get(parent, set())
                # A conversation the plan replaces is made again with every declared copy, and loses the others.
                replaced = replaced_by_plan(reader, conversation, declared)
                for label in sorted(set(copies) | declared):
                    values = {"isolated": label in copies, "conversation": conversation["id"], "replaced": replaced}
                    address = address_of(ISOLATED_BLOCK, label, parent)
                    found.append(Resource(address, ISOLATED_BLOCK, label, values, parent=parent, id=copies.get(label)))
                declared_conversations.discard(parent)  # the oldest with this summary is the one
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
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
                    "the conversation exists without an isolated copy of this block and has messages, so apply does "
                    "not replace it (Letta makes copies only when a conversation is created). To get one, delete it "
                    f"(its messages go with it): `lettafleet delete conversation {conversation} --force`, then apply "
                    "again"
                ),
            )
        if desired is None:
            conversation = live.attributes["conversation"]
            return replace(
                change,
                action=Action.NO_OP,
                drift=(
                    "the conversation has an isolated copy of this block that the fleet does not declare, and has "
                    "messages, so apply does not replace it (a copy cannot be removed in place). To drop the copy, "
                    f"delete the conversation (its messages go with it): `lettafleet delete conversation "
                    f"{conversation} --force`, then apply again"
                ),
            )
        return change

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        if child.action is not Action.CREATE:
            return None
        labels = request.setdefault("isolated_block_labels", [])
        labels.append(child.name)

        def check(answer: Mapping[str, Any]) -> str | None:
            if not lacks_isolated_copies(answer, labels):
                return None
            return (
                f"the server created conversation '{parent.name}' without an isolated copy of '{child.name}': "
                f"it ignores {ISOLATED_LABELS}"
            )

        return check

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.action is Action.DELETE and session.change_at(change.parent or "").action is Action.REPLACE:
            return None  # deleted by Letta with the conversation it belonged to
        raise ApplyError(f"{change.address}: an isolated block can only be made together with its conversation")


def _with_replaced_conversation(desired: Resource | None, live: Resource) -> Change:
    """A copy of a conversation the plan replaces: a declared one is made with the new conversation, any other
    goes with the old one (Letta deletes a conversation's copies with it)."""
    if desired is not None:
        return compare(desired, None)
    return replace(compare(None, _compared(live)), action=Action.DELETE, after=None)


def _compared(live: Resource) -> Resource:
    """A live copy with only what a plan compares and shows: whether it exists."""
    return replace(live, attributes={"isolated": live.attributes["isolated"]})
