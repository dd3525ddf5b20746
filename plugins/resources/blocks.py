"""Memory blocks: each agent's own blocks (by label) and the fleet's shared blocks, attached by name.

`agent_owned: true` (the default) means the fleet seeds the value once and never overwrites what the agent
wrote since; `agent_owned: false` makes the fleet the truth for value, description and limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    PROTECT_KEY,
    Action,
    Adoption,
    Ambiguity,
    ApplySession,
    Change,
    ContextUse,
    Exported,
    Fleet,
    LettaAPIError,
    LiveReader,
    Note,
    Owner,
    Plan,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    RideAlongCheck,
    SchemaFragment,
    address_of,
    attributes,
    boolean,
    compare,
    created_with,
    exported_text_source,
    fleet_of,
    hookimpl,
    integer,
    is_managed,
    mapping_list,
    read_record,
    string,
    string_list,
    text_source,
)
from lettafleet.plugins.backends.letta_v1.reads import AGENTS, blocks_labelled, conversations_by_agent, labelled
from lettafleet.plugins.resources.agents import (
    AGENT,
    GIT_MEMORY_TAG,
    agent_address,
    declared_agents,
    described,
    live_agents,
)
from lettafleet.plugins.resources.compiled_memory import compiled_block_characters
from lettafleet.plugins.resources.memfs import recorded_files
from lettafleet.plugins.resources.memfs_v1 import SKILLS_FOLDER

BLOCK = "block"
SHARED = "shared_block"
ATTACHMENT = "shared_block_attachment"
SYNCED_FIELDS = ("value", "description", "limit")
LABEL_PATTERN = r"^[a-zA-Z0-9_-]+$"


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    handler = BlockHandler()  # one handler for the three kinds: they are read together
    return [
        ResourceKind(
            BLOCK, "blocks", "an agent's own memory block, matched by label", renamed_as="label", handler=handler
        ),
        ResourceKind(
            SHARED, "shared blocks", "a memory block shared by several agents, matched by label", handler=handler
        ),
        ResourceKind(ATTACHMENT, "shared block attachments", "a shared block attached to an agent", handler=handler),
    ]


def block_fields() -> dict[str, Any]:
    """The keys of a block in a fleet file. Public, for kinds that declare blocks too (templates)."""
    return {
        "name": string(required=True, regex=LABEL_PATTERN),
        "description": string(),
        "limit": integer(min=1),
        "agent_owned": boolean(default=True),
        "sensitive": boolean(default=False),  # the value is masked in every plan output
        "protect": boolean(default=False),  # removing it from the file is refused, even with --prune
        "version": string(),  # lettactl's; it compares it to nothing either: read, noted, ignored
        **text_source(),
    }


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    return [
        SchemaFragment({"shared_blocks": mapping_list(block_fields())}),
        SchemaFragment({"memory_blocks": mapping_list(block_fields()), "shared_blocks": string_list()}, at=("agents",)),
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems: list[Problem] = []
    shared_names: set[str] = set()
    for index, block in enumerate(fleet.data.get("shared_blocks", [])):
        at: tuple[str | int, ...] = ("shared_blocks", index)
        if block["name"] in shared_names:
            problems.append(
                Problem(
                    (*at, "name"),
                    f"shared block '{block['name']}' is declared twice",
                    "shared block names must be unique",
                )
            )
        shared_names.add(block["name"])
        problems.extend(block_problems(fleet, block, at))
    for declared in declared_agents(fleet):
        agent, agent_index = declared.data, declared.index
        labels: set[str] = set()
        for index, block in enumerate(agent.get("memory_blocks", [])):
            at = ("agents", agent_index, "memory_blocks", index)
            if block["name"] in labels:
                problems.append(
                    Problem(
                        (*at, "name"),
                        f"block label '{block['name']}' is used twice by agent '{agent['name']}'",
                        "labels must be unique within an agent",
                    )
                )
            labels.add(block["name"])
            problems.extend(block_problems(fleet, block, at))
        for index, name in enumerate(agent.get("shared_blocks", [])):
            at = ("agents", agent_index, "shared_blocks", index)
            if name not in shared_names:
                known = ", ".join(sorted(shared_names)) or "none declared"
                problems.append(
                    Problem(
                        at,
                        f"shared block '{name}' is not declared under the top-level shared_blocks",
                        f"declared shared blocks: {known}",
                    )
                )
            elif name in labels:
                problems.append(
                    Problem(
                        at,
                        f"agent '{agent['name']}' already has a block labelled '{name}'",
                        "labels must be unique within an agent",
                    )
                )
            labels.add(name)
    return problems


def _version_note(block: Mapping[str, Any], at: tuple[Any, ...]) -> list[Problem]:
    """lettactl's block `version` is accepted and ignored, as lettactl ignores it: a note says so."""
    if "version" not in block:
        return []
    return [
        Note(
            (*at, "version"),
            f"block '{block['name']}': version is ignored; the block's value is compared as it is",
            "remove `version:`; the block's value (agent_owned: false) is what is kept in sync",
        )
    ]


def block_problems(fleet: Fleet, block: Mapping[str, Any], at: tuple[Any, ...]) -> list[Problem]:
    """A declared block's text that cannot be read, or is over its limit. Public, for templates' blocks too."""
    problems = fleet.text_problems(block, at) + _version_note(block, at)
    if problems or "limit" not in block:
        return problems
    length = len(fleet.text(block))
    if length > block["limit"]:
        where = (*at, "from_file") if "from_file" in block else (*at, "value")
        problems.append(
            Problem(
                where,
                f"block '{block['name']}' value is {length} characters, over its limit of {block['limit']}",
                "shorten the value or raise `limit`",
            )
        )
    return problems


class BlockHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for index, block in enumerate(fleet.data.get("shared_blocks", [])):
            yield Resource(
                address_of(SHARED, block["name"]),
                SHARED,
                block["name"],
                {**_block_attributes(fleet, block), "protect": block["protect"]},
                source=("shared_blocks", index),
                sensitive=_sensitive(block),
                protected=block["protect"],
            )
        for agent in declared_agents(fleet):
            for index, block in enumerate(agent.data.get("memory_blocks", [])):
                yield Resource(
                    address_of(BLOCK, block["name"], agent.address),
                    BLOCK,
                    block["name"],
                    _block_attributes(fleet, block),
                    parent=agent.address,
                    source=(*agent.at, "memory_blocks", index),
                    sensitive=_sensitive(block),
                    protected=block["protect"],
                )
            for index, name in enumerate(agent.data.get("shared_blocks", [])):
                yield Resource(
                    address_of(SHARED, name, agent.address),
                    ATTACHMENT,
                    name,
                    {"attached": True},
                    parent=agent.address,
                    depends_on=(address_of(SHARED, name),),
                    source=(*agent.at, "shared_blocks", index),
                )

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        # Attached blocks come with the agents; shared blocks not attached anywhere yet are found by label.
        return [AGENTS, *(labelled(r.name) for r in desired if r.kind == SHARED)] if desired else []

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        wanted = {resource.address: resource for resource in desired}
        if not wanted and not reader.owner.named:
            return []
        agents = live_agents(reader)
        found: list[Resource | Ambiguity] = []
        shared = _live_shared_blocks(reader, {r.name for r in wanted.values() if r.kind == SHARED}, found)
        found += [_live_shared(name, block) for name, block in shared.items()]
        holders = _agents_holding(reader)
        if reader.owner.named:  # the fleet made them and declares them no more: removals
            found += [
                _live_shared(name, block, [agent["name"] for agent in holders.get(block["id"], [])])
                for name, block in _undeclared_shared(reader, shared).items()
            ]
        attached_addresses: set[str] = set()
        for name, agent in agents.items():
            parent = agent_address(name)
            for block in agent.get("blocks") or []:
                label = declared_label(agent, block)
                own = address_of(BLOCK, label, parent)
                link = address_of(SHARED, label, parent)
                if own in wanted:  # another named fleet's block attached here (its shared one, say) is refused
                    attributes_now = _live_block_attributes(block)
                    found.append(
                        Resource(
                            own, BLOCK, label, attributes_now, parent=parent, id=block["id"], marked_by=fleet_of(block)
                        )
                    )
                    attached_addresses.add(own)
                    if len(holders[block["id"]]) > 1:
                        found.append(_held_by_others(own, block, holders[block["id"]]))
                elif link in wanted and label in shared and shared[label]["id"] == block["id"]:
                    found.append(Resource(link, ATTACHMENT, label, {"attached": True}, parent=parent, id=block["id"]))
        found.extend(_unattached_own_blocks(reader, wanted, attached_addresses))
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
        """What an agent's record says the fleet attached to it, still attached (by id): its own blocks, with
        the other agents that hold them too, and shared blocks' attachments. One detached or deleted since is
        gone already, and one the agent attached itself was never in the record."""
        agents = {agent_address(name): agent for name, agent in live_agents(reader).items()}
        holders = _agents_holding(reader, everywhere=True)  # a removal deletes the block: ask every agent
        found: list[Resource | Ambiguity] = []
        for resource in recorded:
            agent = agents.get(resource.parent or "") or {}
            block = _attached(agent, resource, reader.owner)
            if block is None:
                continue
            if resource.kind == ATTACHMENT:
                found.append(replace(resource, attributes={"attached": True}, id=block["id"]))
                continue
            others = sorted(held["name"] for held in holders.get(block["id"], []) if held["id"] != agent["id"])
            found.append(
                replace(resource, attributes=_live_block_attributes(block), id=block["id"], state={"others": others})
            )
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is None and live is not None:
            return _removal(live)
        if desired is None or live is None or desired.kind == ATTACHMENT:
            return compare(desired, live)
        synced = [] if desired.attributes["agent_owned"] else [f for f in SYNCED_FIELDS if f in desired.attributes]
        if desired.kind == SHARED:
            synced.append("protect")
        if live.attributes.get("attached") is False:
            synced.append("attached")
            desired = replace(desired, attributes={**desired.attributes, "attached": True})
        return compare(desired, live, synced)

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        """A new agent's own new blocks are made inside its create request (`memory_blocks`): Letta makes them and
        the agent in one request, so a stopped apply leaves the agent with its blocks or neither. Letta drops the
        metadata of blocks made this way; the agent's record names them by id (taken from the server's answer), and
        they carry the fleet's marks as tags, which Letta keeps: deleting the agent finds them by either.
        Shared blocks, and own blocks an earlier lettafleet made before the agent, go by id."""
        if parent.kind != AGENT:
            return None
        if child.kind == BLOCK and child.action is Action.CREATE:
            request.setdefault("memory_blocks", []).append({**_block_body(child), "tags": session.owner.tags()})
            return _made_inline(child, session, parent.name)
        if child.kind == ATTACHMENT:
            block_id = session.id_of(address_of(SHARED, child.name))
            session.record_id(child.address, block_id)  # the agent's record names the block it attached
        else:  # made, with lettafleet's marks, by an earlier apply that stopped before the agent existed
            _sync(child, session)
            block_id = child.id or ""
        request.setdefault("block_ids", []).append(block_id)
        return created_with("blocks", block_id, f"the server created agent {parent.name} without block '{child.name}'")

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        client = session.client
        if change.removes:
            _remove(change, session)
            return None
        if change.kind == ATTACHMENT:
            agent_id, block_id = session.id_of(change.parent or ""), session.id_of(address_of(SHARED, change.name))
            session.record_id(change.address, block_id)  # the agent's record names the block it attached
            return client.patch(f"/v1/agents/{agent_id}/core-memory/blocks/attach/{block_id}")
        if change.action is Action.CREATE:
            agent = change.parent and session.id_of(change.parent)
            metadata = {"agent": session.change_at(change.parent).name} if change.parent else _shared_marks(change)
            block = client.post("/v1/blocks/", json=_create_body(change, session.owner, **metadata))
            session.record_id(change.address, block["id"])
            if agent:
                client.patch(f"/v1/agents/{agent}/core-memory/blocks/attach/{block['id']}")
            return block
        answer = _sync(change, session)
        if change.kind == SHARED and "protect" in change.changed_fields():
            kept = {key: value for key, value in change.state.get("metadata", {}).items() if key != PROTECT_KEY}
            metadata = {**kept, **session.owner.metadata(**_shared_marks(change))}
            answer = client.patch(f"/v1/blocks/{change.id}", json={"metadata": metadata})
        if (change.before or {}).get("attached") is False:
            client.patch(f"/v1/agents/{session.id_of(change.parent or '')}/core-memory/blocks/attach/{change.id}")
        return answer

    def context_use(self, change: Change, changes: Mapping[str, Change]) -> Iterable[ContextUse]:
        """What an agent's own block, or a shared block through its attachment, changes in that agent's compiled
        memory: the text it will put there, less what it puts there now (a shared block counts once per agent)."""
        if change.kind == SHARED or not change.parent:
            return
        block = changes.get(change.depends_on[0]) if change.kind == ATTACHMENT and change.depends_on else change
        if block is None:
            return
        now = _compiled(block.name, block.before) if _in_context_now(change) else 0
        then = 0 if change.removes else _compiled(block.name, _values_after(block))
        yield ContextUse(change.parent, then - now)

    def recompiles(self, change: Change, plan: Plan) -> Iterable[str]:
        """The agents whose compiled memory this block change altered: a shared block's new value, description or
        limit reaches every agent the plan attaches it to; an agent's own block or attachment made, changed or
        removed, its agent. A new or removed agent has no conversation to recompile."""
        if change.kind == SHARED:
            if change.action is not Action.UPDATE or not set(SYNCED_FIELDS) & set(change.changed_fields()):
                return []
            return [
                c.parent for c in plan.changes if c.kind == ATTACHMENT and change.address in c.depends_on and c.parent
            ]
        agent = plan.by_address().get(change.parent or "")
        if agent is None or agent.action in (Action.CREATE, Action.REPLACE) or agent.removes:
            return []
        return [agent.address]

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Blocks carrying lettafleet's shared marker as shared blocks, every other block as the agent's own; all
        `agent_owned` (the default), so the fleet seeds them and the plan leaves what the agents wrote."""
        for agent in agents:
            name = str(agent["name"])
            for block in exported_blocks(agent):
                if is_managed(block) and block["metadata"].get("shared"):
                    declared, files = _exported_block(block, "blocks/shared")
                    yield Exported("shared_blocks", [declared], files=files)
                    yield Exported("shared_blocks", [block["label"]], name)
                else:
                    declared, files = _exported_block(block, f"blocks/{name}")
                    yield Exported("memory_blocks", [declared], name, files)

    def adopt(self, reader: LiveReader, agent: Mapping[str, Any]) -> Iterable[Adoption]:
        """The agent's own blocks get the marker of a block lettafleet made for that agent; a block other agents
        hold too is left alone (it is not this agent's own), and so is one lettafleet marked already."""
        holders = _agents_holding(reader)
        for block in agent.get("blocks") or []:
            what = f"block {block['label']} ({block['id']}) of agent {agent['name']}"
            others = [held["name"] for held in holders.get(block["id"], []) if held["id"] != agent["id"]]
            if is_managed(block):
                continue
            if others:
                yield Adoption(what, why=f"agents {', '.join(sorted(others))} hold it too")
                continue
            metadata = {**(block.get("metadata") or {}), **reader.owner.metadata(agent=agent["name"])}
            yield Adoption(what, f"/v1/blocks/{block['id']}", {"metadata": metadata})


def exported_blocks(agent: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The agent's blocks as `export` declares them, under the labels a fleet file gives them (with git memory on,
    those `block_files` names)."""
    if GIT_MEMORY_TAG not in (agent.get("tags") or []):
        return list(agent.get("blocks") or [])
    return [{**block, "label": declared_label(agent, block)} for block in block_files(agent).values()]


def block_files(agent: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """With git memory on (V1), the files of the agent's repository that are its blocks (`<label>.md`), by path. A
    skill's block (`skills/<name>`: its SKILL.md) and a block whose file the agent's record lists as a `memory:`
    section's (hosted makes a block of every `system/` file) are the section's, not blocks."""
    section = set(recorded_files(read_record(agent)))
    files = {f"{block.get('label')}.md": dict(block) for block in agent.get("blocks") or []}
    return {path: block for path, block in files.items() if not path.startswith(SKILLS_FOLDER) and path not in section}


def _exported_block(block: Mapping[str, Any], folder: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A block's declaration (its value inline, or in `folder/<label>.md` when long) and the files to write."""
    source, files = exported_text_source(block.get("value") or "", f"{folder}/{block['label']}.md")
    declared = {"name": block["label"], **attributes(description=block.get("description"), limit=block.get("limit"))}
    return {**declared, **source}, files


def _sensitive(block: Mapping[str, Any]) -> frozenset[str]:
    return frozenset({"value"}) if block.get("sensitive") else frozenset()


def _in_context_now(change: Change) -> bool:
    """Whether the block (or attachment) `change` is about is in its agent's compiled memory now: on the server
    and attached."""
    return change.before is not None and change.before.get("attached") is not False


def _compiled(label: str, values: Mapping[str, Any] | None) -> int:
    values = values or {}
    return compiled_block_characters(
        label, str(values.get("value") or ""), values.get("description"), values.get("limit")
    )


def _values_after(change: Change) -> dict[str, Any]:
    """A block's values once the plan is applied: what the plan writes, over what the server has."""
    return {**(change.before or {}), **{key: value for key, value in (change.after or {}).items() if value is not None}}


def _block_attributes(fleet: Fleet, block: Mapping[str, Any]) -> Mapping[str, Any]:
    return attributes(
        value=fleet.text(block),
        description=block.get("description"),
        limit=block.get("limit"),
        agent_owned=block["agent_owned"],
    )


def _agents_holding(reader: LiveReader, *, everywhere: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The agents the plan reads (`everywhere`: every agent on the server, also outside the fleet's scope) by the
    id of each block attached to it."""
    holders: dict[str, list[dict[str, Any]]] = {}
    path, params = AGENTS
    for agent in reader.list_everything(path, **params) if everywhere else reader.list_all(path, **params):
        for block in agent.get("blocks") or []:
            holders.setdefault(block["id"], []).append(agent)
    return holders


def _held_by_others(address: str, block: Mapping[str, Any], agents: list[dict[str, Any]]) -> Ambiguity:
    """An agent's own block that other agents hold too: a change the plan makes to it changes it for them."""
    names = ", ".join(f"{agent['name']} ({described(agent)})" for agent in agents)
    return Ambiguity(
        address=address,
        message=(
            f"block {block['id']} ('{block.get('label')}') is private to its agent in the fleet, yet "
            f"{len(agents)} agents hold it: {names}; what the plan writes to it, all of them see"
        ),
        ids=(block["id"], *(agent["id"] for agent in agents)),
        used=block["id"],
        remedy=(
            "detach it from the agents it does not belong to (PATCH /v1/agents/AGENT_ID/core-memory/blocks/detach/"
            f"{block['id']}), or declare it under shared_blocks if they are meant to share it"
        ),
    )


def _live_shared_blocks(
    reader: LiveReader, names: set[str], ambiguities: list[Resource | Ambiguity]
) -> dict[str, dict[str, Any]]:
    """The fleet's shared blocks on the server: label plus lettafleet's marker; the oldest wins, and of several
    an ambiguity is added to `ambiguities`."""
    found: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        marked = [block for block in blocks_labelled(reader, name) if shared_by(reader.owner, block)]
        if marked:
            found[name] = marked[0]
        if len(marked) > 1:
            ambiguities.append(_two_shared(name, marked))
    return found


def _two_shared(name: str, blocks: list[dict[str, Any]]) -> Ambiguity:
    return Ambiguity.first_of(
        address_of(SHARED, name),
        f"{len(blocks)} blocks are lettafleet's shared block '{name}'",
        [block["id"] for block in blocks],
        "detach the others from their agents and delete them (DELETE /v1/blocks/ID), then plan again",
    )


def _unattached_own_blocks(reader: LiveReader, wanted: Mapping[str, Resource], attached: set[str]) -> list[Resource]:
    """Blocks lettafleet made for an agent but never attached (an apply stopped between the two, or the agent's
    creation failed): reused, not made again. Only the labels of missing blocks are looked up, so this reads
    nothing when the server matches the fleet."""
    missing = {address for address, resource in wanted.items() if resource.kind == BLOCK and address not in attached}
    if not missing:
        return []
    # A conversation's isolated copy carries its original's metadata: it is not a block left unattached.
    copies = {
        block_id
        for conversations in conversations_by_agent(reader).values()
        for conversation in conversations
        for block_id in conversation.get("isolated_block_ids") or []
    }
    found: dict[str, Resource] = {}
    for label in sorted({wanted[address].name for address in missing}):
        for block in blocks_labelled(reader, label):
            metadata = block.get("metadata") or {}
            if not reader.owner.owns(block) or "agent" not in metadata or block["id"] in copies:
                continue
            address = address_of(BLOCK, label, agent_address(metadata["agent"]))
            if address not in missing or address in found:
                continue
            found[address] = Resource(
                address,
                BLOCK,
                block["label"],
                {**_live_block_attributes(block), "attached": False},
                parent=wanted[address].parent,
                id=block["id"],
            )
    return list(found.values())


def declared_label(agent: Mapping[str, Any], block: Mapping[str, Any]) -> str:
    """The label a fleet file gives the agent's block: with git memory on (V1), the server keeps a block as the
    file `system/<label>.md` and labels it `system/<label>`; the fleet still declares `<label>`. Without the tag, a
    block under `system/` is one a switch stopped part way left there (on its way in, or back): it is read as
    `<label>` too, unless the agent has a block of that label, so that the next apply finishes the move instead of
    making the block again."""
    label = str(block.get("label") or "")
    if not label.startswith("system/"):
        return label
    bare = label.removeprefix("system/")
    if GIT_MEMORY_TAG in (agent.get("tags") or []):
        return bare
    return label if bare in {str(other.get("label")) for other in agent.get("blocks") or []} else bare


def _live_block_attributes(block: Mapping[str, Any]) -> dict[str, Any]:
    return {"value": block.get("value") or "", "description": block.get("description"), "limit": block.get("limit")}


# -- shared blocks and removals ----------------------------------------------------------------------------------


def shared_by(owner: Owner, block: Mapping[str, Any]) -> bool:
    """One of `owner`'s shared blocks: its marks and the shared marker (two fleets' blocks of one label stay apart).
    Public, for kinds that attach the fleet's shared blocks too (templates)."""
    return owner.owns(block) and bool(block["metadata"].get("shared"))


def _shared_marks(change: Change) -> dict[str, Any]:
    """What a shared block carries besides the owner's marks: the shared marker, and its protection."""
    return {"shared": True, **({PROTECT_KEY: True} if (change.after or {}).get("protect") else {})}


def _live_shared(name: str, block: Mapping[str, Any], holders: Sequence[str] = ()) -> Resource:
    """A shared block as plans compare it; `holders`, the agents it is attached to, for a removal to name."""
    metadata = dict(block.get("metadata") or {})
    protected = metadata.get(PROTECT_KEY) is True
    return Resource(
        address_of(SHARED, name),
        SHARED,
        name,
        {**_live_block_attributes(block), "protect": protected},
        id=block["id"],
        protected=protected,
        state={"metadata": metadata, "others": sorted(holders)},
        marked_by=fleet_of(block),  # always this fleet's (found by its marks): two fleets' shared blocks stay apart
    )


def _undeclared_shared(reader: LiveReader, declared: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The fleet's shared blocks it no longer declares, found where they are attached (to any agent on the server),
    each label once, the oldest block first."""
    found: dict[str, dict[str, Any]] = {}
    path, params = AGENTS
    for agent in reader.list_all(path, **params):
        for block in agent.get("blocks") or []:
            label = block.get("label") or ""
            if label not in declared and shared_by(reader.owner, block):
                found.setdefault(label, block)
    return found


def _attached(agent: Mapping[str, Any], recorded: Resource, owner: Owner) -> dict[str, Any] | None:
    """The block a record entry names, if it is still attached to the agent: by id, or, for an attachment
    recorded without one, the owner's shared block of that label."""
    for block in agent.get("blocks") or []:
        if recorded.id == block["id"]:
            return dict(block)
        unnamed = recorded.id is None and recorded.kind == ATTACHMENT
        if unnamed and block.get("label") == recorded.name and shared_by(owner, block):
            return dict(block)
    return None


def _removal(live: Resource) -> Change:
    """The removal of a block or an attachment the file no longer declares. Detaching is lossless and applies by
    default; deleting a block deletes memory (agents may have written it), so it waits for `--prune`. The value
    is masked: whether its line said `sensitive: true` is gone with the line."""
    change = compare(None, live)
    if live.kind == ATTACHMENT:
        return change
    masked = replace(change, sensitive=frozenset({"value"}))
    others = live.state.get("others") or []
    if live.kind == BLOCK and others:
        return replace(masked, detail=f"detached only: {_agents_named(others)} {_verb(others)} it too, so not deleted")
    size = len(str(live.attributes.get("value") or ""))
    holds = f"a memory block of {size} characters the agents may have written"
    if live.kind == SHARED and others:
        holds += f"; deleting it detaches it from {_agents_named(others)}"
    return replace(masked, held="prune", detail=holds)


def _agents_named(names: Sequence[str]) -> str:
    return ("agent " if len(names) == 1 else "agents ") + ", ".join(names)


def _verb(names: Sequence[str]) -> str:
    return "holds" if len(names) == 1 else "hold"


def _remove(change: Change, session: ApplySession) -> None:
    """Detach an attachment, or an own block other agents hold too; delete any other block. Letta detaches a
    deleted block from every agent, so a shared block's removal and its attachments' may run in either order:
    what is gone already (404) counts as removed."""
    if change.kind == ATTACHMENT or (change.kind == BLOCK and change.state.get("others")):
        agent_id = session.id_of(change.parent or "")
        try:
            session.client.patch(f"/v1/agents/{agent_id}/core-memory/blocks/detach/{change.id}")
        except LettaAPIError as error:
            if error.status != 404:  # Letta answers 404 for a block not attached (any more)
                raise
        return
    session.delete(f"/v1/blocks/{change.id}")


def _sync(change: Change, session: ApplySession) -> Mapping[str, Any]:
    """Write the synced fields (value, description, limit) and a new label (`moved`) that differ; nothing when none
    do."""
    before, after = change.before or {}, change.after or {}
    updates = {
        key: after[key] for key in (*SYNCED_FIELDS, "label") if key in after and before.get(key) != after.get(key)
    }
    if not updates:
        return {"id": change.id}
    return session.client.patch(f"/v1/blocks/{change.id}", json=updates)


def _block_body(change: Change) -> dict[str, Any]:
    """A block's fields as Letta's create requests take them (`POST /v1/blocks/`, or inline in an agent's)."""
    after = change.after or {}
    body = {"label": change.name, "value": after.get("value", "")}
    for key in ("description", "limit"):
        if after.get(key) is not None:
            body[key] = after[key]
    return body


def _create_body(change: Change, owner: Owner, **marker: Any) -> dict[str, Any]:
    return {**_block_body(change), "metadata": owner.metadata(**marker)}


def _made_inline(child: Change, session: ApplySession, agent: str) -> RideAlongCheck:
    """The check of a block made inside its agent's create request: the agent the server made holds a block of
    its label, whose id the agent's record then names."""

    def check(answer: Mapping[str, Any]) -> str | None:
        for block in answer.get("blocks") or []:
            if block.get("label") == child.name:
                session.record_id(child.address, block["id"])
                return None
        return f"the server created agent {agent} without block '{child.name}'"

    return check
