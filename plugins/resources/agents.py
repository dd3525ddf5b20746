"""Agents: name, description, system prompt, model, embedding, tags, compaction settings, and the keys Letta reads
only when it creates an agent (`CREATE_ONLY`).

Every other built-in kind hangs under an agent, so this module is also the public API of the agent kind, for any
plugin whose kind is nested under agents (docs/plugins.md): `agent_address`, `declared_agents`, `live_agents` and
`agents_named` (the one policy for which of several agents of one name is meant).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from lettafleet.core import (
    PROTECT_KEY,
    Action,
    Adoption,
    Ambiguity,
    ApplySession,
    Change,
    ContextUse,
    Exported,
    ExportError,
    Fleet,
    FleetPlugins,
    LettaAPIError,
    LiveReader,
    Note,
    Owner,
    Plan,
    Problem,
    Read,
    Recorded,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    attributes,
    boolean,
    compare,
    exported_text_source,
    fleet_of,
    hookimpl,
    integer,
    is_managed,
    is_ownership_tag,
    not_supported_yet,
    read_record,
    refused,
    string,
    string_list,
    text_source,
    with_record,
)
from lettafleet.plugins.backends.letta_v1.reads import AGENTS
from lettafleet.plugins.resources.agent_removal import KeptBlock, plan_agent_removal, remove_agent
from lettafleet.plugins.resources.canary import CANARY_KEY, Canary, copy_of
from lettafleet.plugins.resources.compiled_memory import MEMORY_CLOSING, MEMORY_OPENING, compiled_memory_characters

# The tag that switches an agent's git-backed memory on (hosted Letta's `git-memory-enabled`): the memfs plugin's
# (`memory.mode`), never declared, compared or removed with the agent's own tags.
GIT_MEMORY_TAG = "git-memory-enabled"

AGENT = "agent"
SYSTEM = "system_message"  # the message Letta puts first in every history; nobody wrote it
COPY_MARK = "~"  # `agent.support~agent-1234`: the address of a copy of agent support the plan deletes
NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"
# llm_config keys beyond the handle and context window; given any of them, the whole config goes to the server.
ENDPOINT_FIELDS = (
    "model_endpoint_type",
    "model_endpoint",
    "provider_name",
    "max_tokens",
    "temperature",
    "put_inner_thoughts_in_kwargs",
)
# Keys used once, when lettafleet creates the agent, and never compared afterwards: Letta 0.16.8 takes the first
# two and `reasoning` only in its create request (it answers `reasoning` only for models that can reason, and
# never reports it back), and `first_message` is a message sent to the new agent. Each why, for the notes.
CREATE_ONLY = {
    "include_base_tools": "Letta attaches its base tools when it creates the agent",
    "include_base_tool_rules": "Letta sets its base tool rules when it creates the agent",
    "reasoning": "Letta 0.16.8 takes it at creation, only for models that can reason, and never reports it back",
    "first_message": "it is sent once, to the agent lettafleet has just created",
}
CREATE_ONLY_HINT = {
    "include_base_tools": "to change an existing agent's tools, list them under `tools:`",
    "include_base_tool_rules": "to change an existing agent, delete it and apply again (its messages go with it)",
    "reasoning": "to change an existing agent, delete it and apply again (its messages go with it)",
    "first_message": "to talk to an existing agent, use `lettafleet send AGENT MESSAGE`",
}
COMPACTION_MODES = ["all", "sliding_window", "self_compact_all", "self_compact_sliding_window"]
LETTACTL_WEB_TOOLS = "web_search, fetch_webpage"  # what lettactl >= 1.1.1 attaches when `tools:` is omitted
EMBEDDING_FIELDS = (
    "embedding_endpoint_type",
    "embedding_endpoint",
    "embedding_model",
    "embedding_dim",
    "embedding_chunk_size",
)


# -- the agent kind's public API, for kinds nested under agents ----------------------------------------------------


def agent_address(name: str) -> str:
    """`agent.support-agent`: the address of an agent, and the parent of everything declared under it."""
    return address_of(AGENT, name)


@dataclass(frozen=True)
class DeclaredAgent:
    """One agent of a valid fleet: its data (after the schema), its place in the file, and its address."""

    index: int
    data: Mapping[str, Any]
    canary_of: str | None = None  # with `--canary`: the name of the agent this is a copy of

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def address(self) -> str:
        return agent_address(self.name)

    @property
    def at(self) -> tuple[str, int]:
        """Where the agent stands in the fleet file, for `Problem` and `Resource.source` paths."""
        return ("agents", self.index)


def declared_agents(fleet: Fleet) -> Iterator[DeclaredAgent]:
    """Every agent the fleet declares, in file order. In lettactl's template mode (`--match`, `Fleet.match`) the
    first agent of the file is a template (plugins/resources/templates.py), not an agent. A canary deploy
    (`--canary`) declares each as its copy, `CANARY-NAME`, with all it holds: its first message is not sent."""
    canary = Canary.from_options(fleet.options)
    for index, agent in enumerate(fleet.data.get("agents") or ()):
        if index == 0 and fleet.match is not None:
            continue
        if canary.deploys:
            yield DeclaredAgent(index, _canary_copy(agent, canary), canary_of=agent["name"])
        else:
            yield DeclaredAgent(index, agent)


def _canary_copy(agent: Mapping[str, Any], canary: Canary) -> dict[str, Any]:
    """A declared agent as its canary copy: named with the prefix, never protected (nor its blocks: `--cleanup`
    deletes it whole), and no first message sent."""
    copy = {key: value for key, value in agent.items() if key not in ("first_message", "protect")}
    if "memory_blocks" in agent:
        copy["memory_blocks"] = [{**block, "protect": False} for block in agent["memory_blocks"]]
    return {**copy, "name": canary.copy_name(agent["name"])}


def agents_named(reader: LiveReader, read: Read = AGENTS) -> dict[str, list[dict[str, Any]]]:
    """Live agents grouped by name, the one meant first. Letta allows two agents of one name: the one the
    reader's fleet made is meant (of several it made, the one used most: see `used_most_first`), then any
    lettafleet manages, then the oldest (the agent kind reports every name held by more than one, and proposes
    deleting the fleet's other copies)."""

    def grouped() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        path, params = read
        for agent in reader.list_all(path, **params):  # oldest first
            found.setdefault(agent["name"], []).append(agent)
        return {name: used_most_first(reader, meant_first(agents, reader.owner)) for name, agents in found.items()}

    named: dict[str, list[dict[str, Any]]] = reader.derived(("agents_named", repr(read)), grouped)
    return named


@runtime_checkable
class ListsAgentsByName(Protocol):
    """An agent handler that lists a backend's live agents by name, the one meant first: how commands that choose
    agents by name (`export`, `import`) read them on whatever backend they talk to."""

    def live_by_name(self, reader: LiveReader) -> dict[str, list[dict[str, Any]]]: ...


def agents_by_name_on(manager: FleetPlugins, reader: LiveReader) -> dict[str, list[dict[str, Any]]]:
    """The live agents by name, as the agent handler of `manager` (serving the reader's backend) lists them."""
    handler = manager.handler(AGENT)
    if not isinstance(handler, ListsAgentsByName):
        raise ExportError(f"the agents plugin of {reader.client.base_url} cannot list agents by name")
    return handler.live_by_name(reader)


def live_agents(reader: LiveReader, read: Read = AGENTS) -> dict[str, dict[str, Any]]:
    """Live agents by name: of several with one name, the one `agents_named` puts first."""
    return {name: agents[0] for name, agents in agents_named(reader, read).items()}


def meant_first(agents: Sequence[dict[str, Any]], owner: Owner | None = None) -> list[dict[str, Any]]:
    """Agents of one name (oldest first), the one meant first: `owner`'s, then lettafleet's own, then the oldest.
    Plans and commands that take an agent's name resolve it by this one rule. The same (read-only) agents, not
    copies: a plan of thousands of agents holds each once."""
    return sorted(agents, key=lambda agent: (not (owner and owner.owns(agent)), not is_managed(agent)))


@dataclass(frozen=True)
class Use:
    """How much an agent holds that people made by talking to it: its messages (system messages aside, at most
    MESSAGE_PAGE per history) and its conversations."""

    messages: int
    conversations: int


MESSAGE_PAGE = 1000


def use_of(reader: LiveReader, agent: Mapping[str, Any]) -> Use:
    """The messages of the agent's own history and of its conversations that were ever sent one (a read each)."""
    conversations = reader.list_all("/v1/conversations/", agent_id=agent["id"])
    histories = [reader.get(f"/v1/agents/{agent['id']}/messages", conversation_id="default", limit=MESSAGE_PAGE)]
    histories += [
        reader.get(f"/v1/conversations/{conversation['id']}/messages", limit=MESSAGE_PAGE)
        for conversation in conversations
        if conversation.get("last_message_at")
    ]
    messages = sum(1 for history in histories for message in history if message.get("message_type") != SYSTEM)
    return Use(messages, len(conversations))


def used_most_first(reader: LiveReader, agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agents of one name in `meant_first` order, with the copies the reader's fleet made (there first) reordered:
    the one with the most messages, then conversations, then the oldest. The rest are the copies a plan deletes."""
    own = [agent for agent in agents if reader.owner.owns(agent)]
    if len(own) < 2:
        return agents
    ranked = sorted(own, key=lambda agent: _most_used(use_of(reader, agent)))  # stable: the oldest of equals first
    return ranked + agents[len(own) :]


def _most_used(use: Use) -> tuple[int, int]:
    return (-use.messages, -use.conversations)


def described(agent: Mapping[str, Any]) -> str:
    """An agent's id as messages name it: with whether lettafleet manages it."""
    return str(agent["id"]) + (" (managed by lettafleet)" if is_managed(agent) else "")


# -- the plugin --------------------------------------------------------------------------------------------------


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [
        ResourceKind(
            AGENT,
            "agents",
            "a Letta agent, matched by name",
            named_in_plan=False,
            renamed_as="name",
            handler=AgentHandler(),
        )
    ]


# The rules of an `embedding_config:` mapping: an agent's, and an archive's (which takes the same).
EMBEDDING_CONFIG = {
    "embedding_endpoint_type": string(required=True, empty=False),
    "embedding_endpoint": string(empty=False),
    "embedding_model": string(required=True, empty=False),
    "embedding_dim": integer(required=True, min=1),
    "embedding_chunk_size": integer(min=1),
}


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    llm_config = {
        "model": string(required=True, empty=False),
        "context_window": integer(min=1000, max=10_000_000),
        "model_endpoint_type": string(empty=False),
        "model_endpoint": string(empty=False),
        "provider_name": string(empty=False),
        "max_tokens": integer(min=1),
        "temperature": {"type": "float", "coerce": "float", "min": 0.0, "max": 2.0},  # the range OpenAI takes
        "put_inner_thoughts_in_kwargs": {"type": "boolean", "coerce": "boolean"},
    }
    agent = {
        "name": string(required=True, regex=NAME_PATTERN),
        "description": string(),
        "system_prompt": {
            "type": "dict",
            "required": True,
            "schema": {**text_source(), "sensitive": {"type": "boolean", "coerce": "boolean"}},
        },
        "llm_config": {"type": "dict", "required": True, "schema": llm_config},
        "embedding": string(empty=False, excludes="embedding_config"),
        "embedding_config": {"type": "dict", "excludes": "embedding", "schema": EMBEDDING_CONFIG},
        "tags": string_list(),
        "protect": {"type": "boolean", "coerce": "boolean"},
        **_lettactl_agent_keys(),
    }
    return [SchemaFragment({"agents": {"type": "list", "minlength": 1, "schema": {"type": "dict", "schema": agent}}})]


def _lettactl_agent_keys() -> dict[str, Any]:
    """lettactl's agent keys beyond the core ones: those lettafleet takes, and those it refuses at their line."""
    compaction = {
        "mode": string(allowed=COMPACTION_MODES),
        "clip_chars": integer(min=1),
        "sliding_window_percentage": {"type": "float", "coerce": "float", "min": 0.0, "max": 1.0},
        "prompt": string(empty=False),
        "prompt_acknowledgement": boolean(),
        "model": string(empty=False),
        "model_settings": not_supported_yet("name the summarizing model by its handle, with `model:`"),
    }
    return {
        "include_base_tools": boolean(),
        "include_base_tool_rules": boolean(),
        "first_message": string(empty=False),
        "reasoning": boolean(),
        "compaction_settings": {"type": "dict", "schema": compaction},
        "disable_base_prompt": boolean(),  # lettactl drops it too; a note says so
        "lettabot": refused(
            "is not supported: LettaBot was deprecated by Letta in April 2026",
            "remove `lettabot:` and configure the bot where it runs now; lettactl only kept it in agent metadata",
        ),
    }


def _lettactl_notes(agent: DeclaredAgent) -> list[Problem]:
    """Where lettafleet reads a lettactl key differently (create-only keys, an ignored key); `memory:` is the
    memfs plugin's (plugins/resources/memfs.py)."""
    data, at = agent.data, agent.at
    found: list[Problem] = [
        Note((*at, key), f"{key} is used only when lettafleet creates the agent: {why}", CREATE_ONLY_HINT[key])
        for key, why in CREATE_ONLY.items()
        if key in data
    ]
    if "disable_base_prompt" in data:
        found.append(
            Note(
                (*at, "disable_base_prompt"),
                "disable_base_prompt is ignored: the system prompt is sent as written",
                "remove the key, or keep it for lettactl",
            )
        )
    return found


def _no_web_tools(fleet: Fleet) -> list[Problem]:
    """One note for the file, at its first agent without `tools:`: lettactl >= 1.1.1 gives such agents its web
    tools, lettafleet gives them none."""
    bare = [agent for agent in declared_agents(fleet) if "tools" not in agent.data]
    if not bare:
        return []
    names = ", ".join(f"'{agent.name}'" for agent in bare[:3]) + (", ..." if len(bare) > 3 else "")
    return [
        Note(
            (*bare[0].at, "name"),
            f"{len(bare)} agent(s) without `tools:` ({names}) get no web tools from lettafleet; lettactl adds "
            f"{LETTACTL_WEB_TOOLS}",
            f"add `tools: [{LETTACTL_WEB_TOOLS}]` to keep lettactl's behaviour, or `tools: []` for none",
        )
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems: list[Problem] = _no_web_tools(fleet)
    written = fleet.document.data if isinstance(fleet.document.data, Mapping) else {}
    if not {"agents", "templates"} & set(written):  # as written: a key the schema refused has its own error
        problems.append(
            Problem(
                (), "the fleet file declares no `agents:`", "declare agents, or `templates:` for agents it did not make"
            )
        )
    seen: dict[str, int] = {}
    for declared in declared_agents(fleet):
        agent, at, index = declared.data, declared.at, declared.index
        if agent["name"] in seen:
            problems.append(
                Problem(
                    (*at, "name"),
                    f"agent name '{agent['name']}' is used twice (first by agents[{seen[agent['name']]}])",
                    "agent names must be unique",
                )
            )
        seen.setdefault(agent["name"], index)
        problems.extend(fleet.text_problems(agent["system_prompt"], (*at, "system_prompt")))
        problems.extend(_lettactl_notes(declared))
        for tag in agent.get("tags", []):
            if "," in tag:
                problems.append(Problem((*at, "tags"), f"tag '{tag}' contains a comma", "use one tag per list item"))
            elif is_ownership_tag(tag):
                problems.append(
                    Problem(
                        (*at, "tags"),
                        f"tag '{tag}' is spelled as lettafleet's own marks are "
                        "(`managed_by:lettafleet`, `lettafleet-...`)",
                        "rename or remove it: lettafleet puts those tags itself (`fleet: NAME` marks a fleet's agents)",
                    )
                )
    return problems


def _desired_attributes(fleet: Fleet, agent: Mapping[str, Any]) -> Mapping[str, Any]:
    llm = agent["llm_config"]
    explicit_llm = any(field in llm for field in ENDPOINT_FIELDS)
    return attributes(
        fleet=fleet.name,
        protect=bool(agent.get("protect")),
        description=agent.get("description"),
        system=fleet.text(agent["system_prompt"]).strip(),
        tags=sorted(agent.get("tags", [])) if "tags" in agent else None,
        model=None if explicit_llm else llm["model"],
        llm_config={key: llm[key] for key in ("model", *ENDPOINT_FIELDS) if key in llm} if explicit_llm else None,
        context_window=llm.get("context_window"),
        embedding=agent.get("embedding"),
        embedding_config=dict(agent["embedding_config"]) if "embedding_config" in agent else None,
        compaction_settings=dict(agent["compaction_settings"]) if "compaction_settings" in agent else None,
        **{key: agent[key] for key in CREATE_ONLY if key in agent},
    )


# (attribute, where the server lists what it offers, where the handle stands in an agent, what to call it)
HANDLE_CHECKS = (
    ("model", "/v1/models/", ("llm_config", "model"), "model"),
    ("embedding", "/v1/models/embedding", ("embedding",), "embedding"),
)


class AgentHandler(ResourceHandler):
    """Agents keep the record of what the fleet made under them (`remember`); an agent the fleet made and no
    longer declares is removed only with `--prune`, and only by a fleet with a name (an unnamed fleet cannot tell
    its agents from another unnamed fleet's)."""

    records_children = True

    def live_by_name(self, reader: LiveReader) -> dict[str, list[dict[str, Any]]]:
        return agents_named(reader)

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        canary = Canary.from_options(fleet.options)
        for agent in declared_agents(fleet):
            yield Resource(
                address=agent.address,
                kind=AGENT,
                name=agent.name,
                attributes={**_desired_attributes(fleet, agent.data), **attributes(canary_of=agent.canary_of)},
                source=agent.at,
                state={"canary": canary},
                sensitive=frozenset({"system"}) if agent.data["system_prompt"].get("sensitive") else frozenset(),
                protected=bool(agent.data.get("protect")),
                tags=frozenset(agent.data.get("tags", [])),
            )

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Every model and embedding handle must be one the server offers: checked before anything is written.
        (An agent another named fleet made is refused by core, from its live side's `marked_by`.)"""
        problems: list[Problem] = []
        for attribute, listing, place, noun in HANDLE_CHECKS:
            using = [agent for agent in desired if attribute in agent.attributes]
            if not using:
                continue
            offered = sorted(item["handle"] for item in reader.get(listing) if item.get("handle"))
            for agent in using:
                handle = agent.attributes[attribute]
                if handle not in offered:
                    problems.append(
                        Problem(
                            (*agent.source, *place),
                            f"{noun} handle '{handle}' is not offered by {reader.client.base_url}",
                            f"use one of: {', '.join(offered) or 'none registered'}",
                        )
                    )
        return problems

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [AGENTS]  # also with nothing declared: a named fleet's agents may all have been removed

    def agent_names(self, desired: Sequence[Resource]) -> Iterable[str]:
        """The declared agents' names, and with `--cleanup` their copies' too."""
        canary = _canary_of_run(desired)
        return [
            name
            for resource in desired
            for name in (resource.name, *([canary.copy_name(resource.name)] if canary.cleans else []))
        ]

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        wanted = {resource.name for resource in desired}
        canary = _canary_of_run(desired)
        named = agents_named(reader)
        for name, agents in named.items():
            if name in wanted:
                yield _live_agent(agents[0])
                yield from _copies(reader, name, agents)
            elif not reader.owner.owns(agents[0]):
                continue
            elif copy_of(agents[0]) is not None:
                if _cleaned_up(agents[0], canary, reader.owner, wanted):
                    yield _live_agent(agents[0])  # a canary copy `--cleanup` deletes
            elif reader.owner.named and not canary.deploys:
                yield _live_agent(agents[0])  # the fleet made it and declares it no more: a removal
        if reader.scope is not None and not canary.deploys and _marked_before_tags(reader, named):
            yield from _untagged_removals(reader, set(named))

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if live is not None and COPY_MARK in live.address:
            return _copy_removal(live)
        if desired is None and live is not None and CANARY_KEY in live.state:
            return compare(None, live, detail=f"a canary copy of agent {live.state[CANARY_KEY]} (--cleanup)")
        if desired is None and live is not None:
            return replace(compare(None, live), held="prune", detail="an agent holds its memory and messages")
        if desired is None or live is None:
            return compare(desired, live)
        # Only what the fleet declares is compared; of an explicit config, only the keys it names; what Letta reads
        # only at creation, never.
        desired = replace(desired, attributes={k: v for k, v in desired.attributes.items() if k not in CREATE_ONLY})
        seen = dict(live.attributes)
        for config in ("llm_config", "embedding_config", "compaction_settings"):
            if config in desired.attributes:
                seen[config] = {key: seen[config].get(key) for key in desired.attributes[config]}
        return compare(desired, replace(live, attributes=seen))

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        after = change.after or {}
        if change.action is Action.DELETE:
            _delete_agent(change, session)
            return None
        if change.action is Action.CREATE:
            # The record of what is made with it rides along: should the apply be killed before writing it, the
            # next plan knows which of the agent's children were made for the file.
            intended = session.intended_record(change.address)
            metadata = with_record(_marks(change, session), intended) if intended else _marks(change, session)
            body: dict[str, Any] = {"name": change.name, "metadata": metadata, **_request_fields(after)}
            if session.owner.tag:
                body["tags"] = _tags(change, session)
            created = session.create(change, "/v1/agents/", body)
            if "first_message" in after:
                message = {"role": "user", "content": after["first_message"]}
                session.client.post(f"/v1/agents/{created['id']}/messages", json={"messages": [message]})
            return created
        changed = {key: after.get(key) for key in change.changed_fields()}
        fields = _request_fields(changed, context=after)
        if {"fleet", "protect", CANARY_KEY} & set(changed):
            fields["metadata"] = _marks(change, session)
        if {"fleet", "tags"} & set(changed):
            fields["tags"] = _tags(change, session)
        answer: Mapping[str, Any] | None = session.client.patch(f"/v1/agents/{change.id}", json=fields)
        return answer

    def context_use(self, change: Change, changes: Mapping[str, Change]) -> Iterable[ContextUse]:
        """An agent holds its context window, whose size it alone knows (as declared, else as the server has it):
        its system prompt once applied, and its compiled memory as it is now, every block counted (the blocks
        plugin adds what the plan changes in it)."""
        if change.removes:
            return
        values = {**(change.before or {}), **{k: v for k, v in (change.after or {}).items() if v is not None}}
        window = values.get("context_window")
        memory_now = change.state.get("memory_characters", len(MEMORY_OPENING) + len(MEMORY_CLOSING))
        yield ContextUse(
            change.address,
            len(str(values.get("system") or "")) + memory_now,
            window=window if isinstance(window, int) else None,
            remedy="Shorten its system prompt or memory blocks, or raise llm_config.context_window.",
        )

    def recompiles(self, change: Change, plan: Plan) -> Iterable[str]:
        """An agent's conversations are recompiled when its system prompt changed."""
        return [change.address] if change.action is Action.UPDATE and "system" in change.changed_fields() else []

    def remember(self, change: Change, record: Sequence[Recorded], session: ApplySession) -> None:
        agent_id = session.id_of(change.address)
        session.client.patch(f"/v1/agents/{agent_id}", json={"metadata": with_record(_marks(change, session), record)})

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        fleet = one_fleet(agents)
        if fleet:
            yield Exported("fleet", fleet)  # its agents, shared blocks and tools carry its name: the plan finds them
        for agent in agents:
            yield from _exported_agent(agent)

    def adopt(self, reader: LiveReader, agent: Mapping[str, Any]) -> Iterable[Adoption]:
        """The marks lettafleet puts on the agents it creates, added to the agent's own metadata."""
        if is_managed(agent):
            return []
        metadata = {**(agent.get("metadata") or {}), **reader.owner.metadata()}
        body: dict[str, Any] = {"metadata": metadata}
        if reader.owner.tag:  # a named fleet's agents carry its tag too: how its plans find them among thousands
            body["tags"] = [*(agent.get("tags") or []), reader.owner.tag]
        return [Adoption(f"agent {agent['name']} ({agent['id']})", f"/v1/agents/{agent['id']}", body)]


def _delete_agent(change: Change, session: ApplySession) -> None:
    """Delete an agent the fleet made (pruned, or a copy) with the blocks the fleet made for it and its
    conversations' isolated copies, read from the agent as it is now: Letta would leave them as orphans."""
    try:  # its blocks with their tags (an agent read shows none), which mark the blocks made in its create request
        blocks = session.client.get(f"/v1/agents/{change.id}/core-memory/blocks")
    except LettaAPIError as error:
        if error.status == 404:
            return  # deleted already: a removal is done either way
        raise
    agent = {"id": change.id, "name": change.name, "metadata": change.state.get("metadata") or {}, "blocks": blocks}
    remove_agent(session.client, plan_agent_removal(session.client, agent, keeps=_not_made_for(agent, session.owner)))


def _not_made_for(agent: Mapping[str, Any], owner: Owner) -> KeptBlock:
    """Which of the agent's blocks a fleet deleting it keeps: all but those it made for the agent, which carry its
    marks (metadata with the agent's name, or, made inside the agent's create request, tags) or its record names."""
    recorded = {entry.id for entry in read_record(agent) or () if entry.id}

    def keeps(block: Mapping[str, Any]) -> str | None:
        marked = owner.owns(block) and "agent" in (block.get("metadata") or {})
        if marked or owner.owns_tagged(block.get("tags")) or block["id"] in recorded:
            return None
        return "the fleet did not make it for this agent"

    return keeps


def one_fleet(
    agents: Sequence[Mapping[str, Any]], fleet_of: Callable[[Mapping[str, Any]], str | None] = fleet_of
) -> str | None:
    """The named fleet every exported agent belongs to (None: none of them carries a fleet name), as `fleet_of`
    reads an agent's. A fleet file is one fleet: agents of several fleets (or of one and of none) could not plan
    "No changes" from one file."""
    fleets: dict[str | None, list[str]] = {}
    for agent in agents:
        fleets.setdefault(fleet_of(agent), []).append(str(agent["name"]))
    if len(fleets) < 2:
        return next(iter(fleets), None)
    groups = "; ".join(
        f"{f'fleet {fleet!r}' if fleet else 'no fleet name'}: {', '.join(sorted(names)[:3])}"
        + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        for fleet, names in sorted(fleets.items(), key=lambda item: item[0] or "")
    )
    raise ExportError(
        f"the agents chosen belong to {len(fleets)} fleets ({groups}), and a fleet file is one fleet: export each "
        "fleet's agents apart (name them, or choose them with --tags)"
    )


def _exported_agent(agent: Mapping[str, Any]) -> Iterator[Exported]:
    """What the agent diff compares: description, system prompt (a file when long), tags, model and embedding."""
    name = str(agent["name"])
    live = _live_attributes(agent)
    if agent.get("description") is not None:
        yield Exported("description", agent["description"], name)
    prompt, files = exported_text_source(live["system"], f"prompts/{name}.md")
    yield Exported("system_prompt", prompt, name, files)
    llm = agent.get("llm_config") or {}
    model = {"model": live["model"]} if live["model"] else {"model": llm.get("model"), **live["llm_config"]}
    yield Exported("llm_config", {**model, **attributes(context_window=live["context_window"])}, name)
    if live["embedding"]:
        yield Exported("embedding", live["embedding"], name)
    elif live["embedding_config"]:
        yield Exported("embedding_config", live["embedding_config"], name)
    if live["tags"]:
        yield Exported("tags", live["tags"], name)
    if live["protect"]:
        yield Exported("protect", True, name)


def _copies(reader: LiveReader, name: str, agents: list[dict[str, Any]]) -> Iterator[Resource | Ambiguity]:
    """Of several agents of one declared name (`agents_named` order): the other copies the fleet made, each a
    removal at its own address (`agent.NAME~ID`); those it did not make are reported, and left alone."""
    kept, others = agents[0], agents[1:]
    for copy in (agent for agent in others if reader.owner.owns(agent)):
        use = use_of(reader, copy)
        resource = _live_agent(copy)
        yield replace(
            resource,
            address=f"{resource.address}{COPY_MARK}{copy['id']}",
            name=f"{name}{COPY_MARK}{copy['id']}",
            state={
                **resource.state,
                "copy_of": kept["id"],
                "messages": use.messages,
                "conversations": use.conversations,
            },
        )
    strangers = [agent for agent in others if not reader.owner.owns(agent)]
    if strangers:
        yield _same_name(name, [kept, *strangers])


def _copy_removal(live: Resource) -> Change:
    """A copy the fleet made of an agent it declares: deleted, keeping the copy the plan uses; held for `--prune`
    when the copy has messages."""
    messages, conversations = live.state["messages"], live.state["conversations"]
    holds = f"{messages} message(s) and {conversations} conversation(s)"
    change = compare(None, live, detail=f"a copy of the agent this fleet made; it holds {holds}")
    kept = f"the plan keeps {live.state['copy_of']}"
    change = replace(change, detail=f"{change.detail}; {kept}")
    return replace(change, held="prune") if messages else change


def _same_name(name: str, agents: list[dict[str, Any]]) -> Ambiguity:
    """Several agents of one name (one made by hand, or by another fleet): the plan uses the first, says which."""
    return Ambiguity.first_of(
        agent_address(name),
        f"{len(agents)} agents are named '{name}'",
        [agent["id"] for agent in agents],
        "delete the agents that should not be there (`lettafleet delete agent ID --force`), or rename them, then "
        "plan again",
        chosen="lettafleet's own first, then the oldest",
        shown=[described(agent) for agent in agents],
    )


def _live_agent(agent: Mapping[str, Any]) -> Resource:
    """An agent as plans compare it, with its record, its protection and its metadata (kept by every write)."""
    name = str(agent["name"])
    original = copy_of(agent)
    return Resource(
        agent_address(name),
        AGENT,
        name,
        {**_live_attributes(agent), **attributes(canary_of=original)},
        id=agent["id"],
        protected=_protected(agent),
        record=read_record(agent),
        state={
            "metadata": dict(agent.get("metadata") or {}),
            "tags": _own_tags(agent),
            "git_memory": GIT_MEMORY_TAG in (agent.get("tags") or []),
            "memory_characters": compiled_memory_characters(agent.get("blocks") or []),
            **({CANARY_KEY: original} if original else {}),
        },
        tags=frozenset(_own_tags(agent)),
        marked_by=fleet_of(agent),
    )


def _canary_of_run(desired: Sequence[Resource]) -> Canary:
    """What this run does with canary copies, as the declared agents carry it (none declared: a plain run)."""
    return next((resource.state["canary"] for resource in desired if "canary" in resource.state), Canary())


def _cleaned_up(agent: Mapping[str, Any], canary: Canary, owner: Owner, declared: set[str]) -> bool:
    """Whether `--cleanup` deletes this canary copy the fleet made: one named with the run's prefix, of any agent
    for a named fleet, of an agent it declares for a fleet without a name (whose marks another such fleet shares)."""
    original = copy_of(agent)
    return (
        canary.cleans
        and original is not None
        and agent["name"] == canary.copy_name(original)
        and (owner.named or original in declared)
    )


def _protected(agent: Mapping[str, Any]) -> bool:
    return (agent.get("metadata") or {}).get(PROTECT_KEY) is True


def _marks(change: Change, session: ApplySession) -> dict[str, Any]:
    """The agent's metadata with the fleet's marks and its protection as the plan leaves them: what the server
    had (or what this apply created it with), every other key kept."""
    created = session.created_metadata(change.address)
    metadata = dict(created or change.state.get("metadata") or {})
    metadata.pop(PROTECT_KEY, None)
    after = change.after or {}
    marks = session.owner.metadata(
        **({PROTECT_KEY: True} if after.get("protect") else {}),
        **({CANARY_KEY: after[CANARY_KEY]} if after.get(CANARY_KEY) else {}),
    )
    return {**metadata, **marks}


def _marked_before_tags(reader: LiveReader, named: Mapping[str, list[dict[str, Any]]]) -> bool:
    """Whether the fleet has an agent marked before the ownership tag: its agents it no longer declares may lack
    the tag too, so a plan reading only the fleet's agents would miss them."""
    owner = reader.owner
    return owner.named and any(
        owner.owns(agent) and owner.tag not in (agent.get("tags") or []) for a in named.values() for agent in a
    )


def _untagged_removals(reader: LiveReader, seen: set[str]) -> Iterator[Resource]:
    """The agents the fleet made before the ownership tag and no longer declares, from a read of every agent on
    the server: once, until the apply of this plan tags the fleet's agents (its removals or their `fleet` mark)."""
    path, params = AGENTS
    found: dict[str, list[dict[str, Any]]] = {}
    for agent in reader.list_everything(path, **params):
        if agent["name"] not in seen:
            found.setdefault(agent["name"], []).append(agent)
    for agents in found.values():
        first = meant_first(agents, reader.owner)[0]
        if reader.owner.owns(first) and copy_of(first) is None:
            yield _live_agent(first)


def _tags(change: Change, session: ApplySession) -> list[str]:
    """The agent's tags as the plan leaves them (the declared ones, else those it has), with the ownership tag of
    the applying fleet when it has a name: how a later plan finds the agent among thousands (core/letta/reads.py)."""
    after = change.after or {}
    tags = list(after["tags"]) if "tags" in after else list(change.state.get("tags") or [])
    switched = [GIT_MEMORY_TAG] if change.state.get("git_memory") else []  # the memfs plugin's, kept as it is
    return [*tags, *switched, *([session.owner.tag] if session.owner.tag else [])]


def _own_tags(agent: Mapping[str, Any]) -> list[str]:
    """The agent's tags without lettafleet's ownership mark and the git memory switch (the memfs plugin's, set
    and taken off by `memory.mode`): those a fleet file declares, exports and scopes by."""
    return sorted(tag for tag in agent.get("tags") or [] if not is_ownership_tag(tag) and tag != GIT_MEMORY_TAG)


def _marked_fleet(agent: Mapping[str, Any]) -> str | None:
    """The fleet whose marks the agent carries in full: a named fleet's agent made before the ownership tag shows
    no fleet, so the next apply writes the tag (its metadata and tags), and later plans find it by the tag."""
    name = fleet_of(agent)
    return name if name is None or Owner(name).tag in (agent.get("tags") or []) else None


def _live_attributes(agent: Mapping[str, Any]) -> Mapping[str, Any]:
    llm = agent.get("llm_config") or {}
    embedding = agent.get("embedding_config") or {}
    return {
        "fleet": _marked_fleet(agent),
        "protect": _protected(agent),
        "description": agent.get("description"),
        "system": (agent.get("system") or "").strip(),
        "tags": _own_tags(agent),
        "model": llm.get("handle") or agent.get("model"),
        "llm_config": {key: llm.get(key) for key in ("model", *ENDPOINT_FIELDS) if llm.get(key) is not None},
        "context_window": llm.get("context_window"),
        "embedding": embedding.get("handle") or agent.get("embedding"),
        "embedding_config": {key: embedding.get(key) for key in EMBEDDING_FIELDS if embedding.get(key) is not None},
        "compaction_settings": dict(agent.get("compaction_settings") or {}),
    }


REQUEST_KEYS = (
    *("name", "description", "system", "tags", "model", "embedding", "embedding_config", "compaction_settings"),
    *("include_base_tools", "include_base_tool_rules", "reasoning"),  # first_message is a message, sent after
)


def _request_fields(values: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Letta request fields for some agent attributes (context: all desired attributes, for updates)."""
    context = context or values
    body: dict[str, Any] = {}
    for key in REQUEST_KEYS:
        if key in values:
            body[key] = values[key]
    if "llm_config" in values or ("context_window" in values and "llm_config" in context):
        llm = dict(context["llm_config"])
        llm.setdefault("model_endpoint_type", "openai")
        llm["context_window"] = context.get("context_window", 8192)
        body["llm_config"] = llm
    elif "context_window" in values:
        body["context_window_limit"] = values["context_window"]
    return body
