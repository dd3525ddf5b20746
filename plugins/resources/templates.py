"""Templates: settings a fleet applies to every live agent a selector matches (a name glob and/or tags), agents
lettafleet did not make and never creates or deletes. lettactl's `apply --match GLOB` reads the file's first agent
as one (docs/templates.md).

A template changes only what it declares. On each agent it changed it keeps a record, in the agent's metadata under
`lettafleet_templates`, of the shared blocks it attached and the tags it added: a line taken out of the template is
undone only where that record says the template did it, never what the application or the agent added.
A change can be rolled out to a sample first, then promoted (template_rollout.py).
"""

from __future__ import annotations

import fnmatch
import math
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lettafleet.core import (
    Action,
    ApplySession,
    Change,
    Fleet,
    LettaAPIError,
    LiveReader,
    Note,
    Plan,
    PlanOption,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    attributes,
    boolean,
    compare,
    hookimpl,
    integer,
    is_managed,
    mapping_list,
    string,
    string_list,
    text_source,
)
from lettafleet.plugins.backends.letta_v1.reads import AGENTS, AGENTS_WITH_SECRETS, AGENTS_WITH_TOOLS
from lettafleet.plugins.resources.agents import AGENT, ENDPOINT_FIELDS, NAME_PATTERN
from lettafleet.plugins.resources.blocks import SHARED, block_fields, block_problems, shared_by
from lettafleet.plugins.resources.secrets import secrets_schema
from lettafleet.plugins.resources.template_blocks import (
    BLOCKS,
    SEEDED,
    apply_blocks,
    block_differences,
    block_ids,
    block_specs,
    edited_blocks,
    label_problems,
    left_unattached,
    live_blocks,
    recorded_values,
    sensitive_blocks,
    wanted_blocks,
)
from lettafleet.plugins.resources.template_blocks import wanted_here as wanted_blocks_here
from lettafleet.plugins.resources.template_record import (
    HELD,
    Applied,
    digest,
    mark_tag,
    marked,
    read_applied,
    record_key,
    records_of,
    removed_templates,
    with_applied,
)
from lettafleet.plugins.resources.template_rollout import (
    SHOWN_SAMPLE,
    Rollout,
    option_problems,
    promotion_problem,
    rollout_options,
    rollout_order,
    settings_digest,
)
from lettafleet.plugins.resources.template_secrets import (
    SECRETS,
    live_secrets,
    recorded_secrets,
    secret_differences,
    secrets_of,
    secrets_request,
    unset_problems,
    wanted_secrets,
)
from lettafleet.plugins.resources.template_secrets import wanted_here as wanted_secrets_here
from lettafleet.plugins.resources.tools import KIND as TOOL
from lettafleet.plugins.resources.tools import TemplateTools, declared_tools

TEMPLATE = "template"
TEMPLATED = "templated_agent"
SAMPLE = 5  # agents named in a template's line of the plan; the JSON plan has every one
# What a template manages on each agent it matches, as plan attributes: the agent's own fields, then the lists it
# adds to (shared blocks attached, tags).
FIELDS = ("description", "system", "model", "context_window")
# The keys of a lettactl agent that template mode (`--match`) applies, and those that matter only when an agent is
# created (a template never creates one). Any other key would change live agents in ways templates do not manage
# yet: refused at its line, rather than silently skipped.
MATCH_KEYS = {
    "name",
    "description",
    "system_prompt",
    "llm_config",
    "shared_blocks",
    "tags",
    "tools",
    "memory_blocks",
    "secrets",
}
CREATE_ONLY_KEYS = {
    *("embedding", "embedding_config", "include_base_tools", "include_base_tool_rules", "reasoning"),
    *("first_message", "disable_base_prompt", "protect"),
}


# -- the fleet file ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredTemplate:
    """One template as the file declares it, in the `templates:` shape whichever way it was written, with where
    each of its keys stands in the file (for lettactl's `--match`, in the file's first agent)."""

    data: Mapping[str, Any]
    at: tuple[str | int, ...]
    from_match: bool = False

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def address(self) -> str:
        return address_of(TEMPLATE, self.name)

    def where(self, key: str) -> tuple[str | int, ...]:
        """The path of `key` in the file: a `--match` template's added tags are its agent's `tags:`."""
        if self.from_match:
            return (*self.at, {"add_tags": "tags", "match": "name"}.get(key, key))
        return (*self.at, key)


def declared_templates(fleet: Fleet) -> Iterator[DeclaredTemplate]:
    """The file's templates: those under `templates:`, then, in template mode (`--match GLOB`), its first agent."""
    for index, template in enumerate(fleet.data.get("templates") or ()):
        yield DeclaredTemplate(template, ("templates", index))
    agents = fleet.data.get("agents") or ()
    if fleet.match is not None and agents:
        yield DeclaredTemplate(_as_template(agents[0], fleet.match), ("agents", 0), from_match=True)


def _as_template(agent: Mapping[str, Any], glob: str) -> dict[str, Any]:
    """A lettactl agent read as a template for every live agent whose name matches `glob`: its `tags` are added."""
    template: dict[str, Any] = {key: agent[key] for key in MATCH_KEYS - {"tags"} if key in agent}
    if "tags" in agent:
        template["add_tags"] = agent["tags"]
    return {**template, "match": glob}


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    handler = TemplateHandler()
    return [
        ResourceKind(TEMPLATE, "templates", "settings applied to every live agent a selector matches", handler=handler),
        ResourceKind(
            TEMPLATED,
            "templated agents",
            "a live agent a template matches, with what the template manages on it",
            listed=False,
            handler=handler,
        ),
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    template = {
        "name": string(required=True, regex=NAME_PATTERN),
        "match": string(empty=False),
        "tags": string_list(),
        "description": string(),
        "system_prompt": {"type": "dict", "schema": {**text_source(), "sensitive": boolean()}},
        "llm_config": {
            "type": "dict",
            "schema": {
                "model": string(required=True, empty=False),
                "context_window": integer(min=1000, max=10_000_000),
            },
        },
        "shared_blocks": string_list(),
        "memory_blocks": mapping_list(block_fields()),
        "secrets": secrets_schema(),
        "add_tags": string_list(),
    }
    return [SchemaFragment({"templates": mapping_list(template)})]


@hookimpl
def lettafleet_plan_options() -> Iterable[PlanOption]:
    return rollout_options()


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems: list[Problem] = option_problems(fleet.options, len(list(declared_templates(fleet))))
    shared = {block["name"] for block in fleet.data.get("shared_blocks") or ()}
    seen: set[str] = set()
    if fleet.match is not None and not fleet.data.get("agents"):
        problems.append(Problem((), "--match needs a file with agents: its first agent is the template", ""))
    for template in declared_templates(fleet):
        if template.name in seen:
            problems.append(Problem(template.where("name"), f"template '{template.name}' is declared twice", ""))
        seen.add(template.name)
        problems += _template_problems(fleet, template, shared)
    return problems


def _template_problems(fleet: Fleet, template: DeclaredTemplate, shared: set[str]) -> list[Problem]:
    data = template.data
    problems: list[Problem] = []
    if "match" not in data and "tags" not in data:
        problems.append(
            Problem(
                template.where("name"),
                f"template '{template.name}' selects no agents",
                "add `match: GLOB` (agent names) and/or `tags: [...]` (tags every matched agent carries)",
            )
        )
    if "system_prompt" in data:
        problems += fleet.text_problems(data["system_prompt"], template.where("system_prompt"))
    for index, name in enumerate(data.get("shared_blocks") or ()):
        if name not in shared:
            problems.append(
                Problem(
                    (*template.where("shared_blocks"), index),
                    f"shared block '{name}' is not declared under the top-level shared_blocks",
                    f"declared shared blocks: {', '.join(sorted(shared)) or 'none'}",
                )
            )
    for index, block in enumerate(data.get("memory_blocks") or ()):
        problems += block_problems(fleet, block, (*template.where("memory_blocks"), index))
    problems += label_problems(data, template.at)
    if template.from_match:
        problems += _match_mode_problems(fleet, template)
    return problems


def _match_mode_problems(fleet: Fleet, template: DeclaredTemplate) -> list[Problem]:
    """The first agent's keys a `--match` template does not apply: those that matter only at creation are noted,
    the others refused at their line (a template would otherwise leave them undone without a word)."""
    agent = fleet.data["agents"][0]
    found: list[Problem] = []
    for key in agent:
        if key in MATCH_KEYS:
            continue
        if key in CREATE_ONLY_KEYS:
            found.append(Note((*template.at, key), f"{key} is not applied by --match: a template creates no agent"))
            continue
        found.append(
            Problem(
                (*template.at, key),
                f"{key} is not applied by templates yet (--match applies description, system_prompt, llm_config, "
                "shared_blocks, tools, memory_blocks, secrets and tags)",
                "remove it from the first agent to use --match, or apply without --match",
            )
        )
    for endpoint in ENDPOINT_FIELDS:
        if endpoint in (agent.get("llm_config") or {}):
            found.append(
                Problem(
                    (*template.at, "llm_config", endpoint),
                    f"llm_config.{endpoint} is not applied by templates: a template sets a model by its handle",
                    "keep `model` (a handle) and `context_window`, or apply without --match",
                )
            )
    return found


# -- plan and apply ------------------------------------------------------------------------------------------------


def _wanted(fleet: Fleet, template: DeclaredTemplate) -> dict[str, Any]:
    """The settings a template manages, as each matched agent's plan attributes: only those it declares."""
    data = template.data
    llm = data.get("llm_config") or {}
    return (
        dict(
            attributes(
                description=data.get("description"),
                system=fleet.text(data["system_prompt"]).strip() if "system_prompt" in data else None,
                model=llm.get("model"),
                context_window=llm.get("context_window"),
                shared_blocks=sorted(data["shared_blocks"]) if "shared_blocks" in data else None,
                tags=sorted(data["add_tags"]) if "add_tags" in data else None,
                tools=_tool_names(fleet, template) if "tools" in data else None,
            )
        )
        | wanted_blocks(fleet, data)
        | wanted_secrets(data, template.at)
    )


def matches(template: Mapping[str, Any], agent: Mapping[str, Any]) -> bool:
    """Whether a template's selector takes a live agent: its name matches the glob (case-sensitively) and it
    carries every tag named. An agent lettafleet made is a fleet's, never a template's."""
    glob = template.get("match")
    if glob is not None and not fnmatch.fnmatchcase(str(agent.get("name") or ""), glob):
        return False
    return set(template.get("tags") or ()) <= set(agent.get("tags") or ()) and not is_managed(agent)


def _sensitive(data: Mapping[str, Any]) -> frozenset[str]:
    """What plans mask on each matched agent: the prompt or block values marked `sensitive`, and every secret."""
    prompt = bool((data.get("system_prompt") or {}).get("sensitive"))
    masked = {"system": prompt, BLOCKS: sensitive_blocks(data), SECRETS: "secrets" in data}
    return frozenset(attribute for attribute, hidden in masked.items() if hidden)


def _tool_names(fleet: Fleet, template: DeclaredTemplate) -> list[str]:
    """The names of the tools a template attaches (`tools/*` expanded; the tools plugin defines them)."""
    return sorted({tool.name for tool in declared_tools(fleet, TemplateTools(template.data, template.at))})


@dataclass(frozen=True)
class Attachable:
    """Something a template attaches by name (a shared block, a tool): how plans word it and where Letta attaches
    it to an agent (`/v1/agents/{id}/PATH/attach/{item_id}`)."""

    noun: str
    path: str


ATTACHABLE = {"shared_blocks": Attachable("shared block", "core-memory/blocks"), "tools": Attachable("tool", "tools")}


def _live_settings(
    agent: Mapping[str, Any], wanted: Mapping[str, Any], theirs: Attached, done: Applied
) -> dict[str, Any]:
    """The agent's values of what the template manages. Of what it attaches and the tags, only those the template
    declares or its record says it added: anything else the agent has is not the template's to show or take."""
    llm = agent.get("llm_config") or {}
    live: dict[str, Any] = {
        "description": agent.get("description"),
        "system": (agent.get("system") or "").strip(),
        "model": llm.get("handle") or agent.get("model"),
        "context_window": llm.get("context_window"),
    }
    found = {key: live[key] for key in FIELDS if key in wanted}
    for attribute in ATTACHABLE:
        recorded = done.ids(attribute)
        if attribute in wanted or recorded:
            names = set(wanted.get(attribute) or ()) | set(recorded)
            ids = theirs.ids.get(attribute) or set()
            found[attribute] = sorted(
                name for name in names if name in (theirs.named.get(attribute) or set()) or recorded.get(name) in ids
            )
    if "tags" in wanted or done.tags:
        mine = set(wanted.get("tags") or ()) | set(done.tags)
        found["tags"] = sorted(tag for tag in agent.get("tags") or () if tag in mine)
    return found | live_blocks(agent, wanted, done)


@dataclass(frozen=True)
class Attached:
    """What one agent has attached, of each ATTACHABLE: the ids, and the names the template wants that it has as
    the template would attach them (the fleet's shared block of that label, a tool of that name)."""

    ids: Mapping[str, set[str]]
    named: Mapping[str, set[str]]


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What a change to one matched agent does, in words people count: `system prompt`, `attach shared block
    policies`, `remove tag beta`."""
    said = {"system": "system prompt", "context_window": "context window"}
    found = [said.get(key, key) for key in FIELDS if key in after and before.get(key) != after[key]]
    worded = [(key, item.noun, ("attach", "detach")) for key, item in ATTACHABLE.items()]
    for key, noun, verbs in [*worded, ("tags", "tag", ("add", "remove"))]:
        old, new = set(before.get(key) or ()), set(after.get(key) or ())
        found += [f"{verbs[0]} {noun} {name}" for name in sorted(new - old)]
        found += [f"{verbs[1]} {noun} {name}" for name in sorted(old - new)]
    found += block_differences(before, after) + secret_differences(before, after)
    if before.get("carried") and after.get("carried") is False:
        found.append("forget its record")
    return found


class TemplateHandler(ResourceHandler):
    """A template is one line of the plan summing up its matched agents; each matched agent is a change of its
    own (`templated_agent`, not listed one by one) that apply makes like any other, concurrently."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[ApplySession, dict[str, threading.Lock]] = weakref.WeakKeyDictionary()

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for template in declared_templates(fleet):
            data = template.data
            selector = attributes(match=data.get("match"), tags=sorted(data["tags"]) if "tags" in data else None)
            settings = _wanted(fleet, template)
            yield Resource(
                template.address,
                TEMPLATE,
                template.name,
                {**selector, "settings": settings},
                depends_on=(
                    *(address_of(SHARED, name) for name in settings.get("shared_blocks") or ()),
                    *(address_of(TOOL, name) for name in settings.get("tools") or ()),
                ),
                source=template.at,
                sensitive=_sensitive(data),
                state={"rollout": Rollout.from_options(fleet.options), "block_specs": block_specs(fleet, data)},
            )

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [AGENTS] if desired else []

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """A template's model must be one the server offers, and no agent may be matched by two templates that set
        the same thing (each apply would undo the other's): both checked before anything is written."""
        problems = _overlaps(reader, desired) + _promotion_problems(reader, desired)
        for template in desired:
            problems += unset_problems(template.attributes["settings"])
        using = [template for template in desired if "model" in template.attributes["settings"]]
        if not using:
            return problems
        offered = sorted(item["handle"] for item in reader.get("/v1/models/") if item.get("handle"))
        return problems + [
            Problem(
                (*template.source, "llm_config", "model"),
                f"model handle '{template.attributes['settings']['model']}' is not offered by {reader.client.base_url}",
                f"use one of: {', '.join(offered) or 'none registered'}",
            )
            for template in using
            if template.attributes["settings"]["model"] not in offered
        ]

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        """Each template as it reaches the server (how many agents it matches), and each agent it matches, with
        what the template manages on it as it is now and, in `state`, as the template wants it; and each template
        taken out of the file that left a record on agents, with what it put there to take back."""
        declared = {resource.name for resource in fleet if resource.kind == AGENT}
        agents = [agent for agent in _templated_agents(reader, desired) if agent["name"] not in declared]
        seen = _seen(reader, desired, agents)
        found: list[Resource] = []
        for template in desired:
            reached = [agent for agent in agents if matches(template.attributes, agent)]
            children = list(_reached(reader, template, reached, _with_left(reader, template, reached, seen)))
            state: dict[str, Any] = {"reached": [_summed(child) for child in children]}
            children, state["rollout"] = _rolled_out(template, children)
            found += children
            found.append(replace(template, state=state))
        return _crowded(found + _removed(reader, desired, agents, seen))

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is not None and desired.kind == TEMPLATE:
            return _template_change(desired, live)
        assert live is not None  # a matched agent is found live only: the template wants of it what `state` says
        if live.kind == TEMPLATE:
            return _removed_template_change(live)
        wanted = replace(live, attributes=live.state["wanted"], sensitive=live.sensitive)
        change = compare(wanted, live)
        changes = differences(change.before or {}, change.after or {})
        edited = set(edited_by_hand(live.attributes, live.state["applied"]))
        said = [f"{what} (edited by hand since the template set it)" if what in edited else what for what in changes]
        return replace(change, detail="; ".join(said))

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        """One matched agent: detach what the template took out, write its fields and its record in one update,
        then attach what it added (an attach that fails is attached again by the next apply: the record names it).
        An agent several templates change is changed by one at a time, each from the agent as it is then."""
        agent_id = str(change.id)
        if not change.state.get("crowded"):
            _change_agent(change, session, change.state)
            return None
        with self._lock_of(session, agent_id):
            now = session.client.get(f"/v1/agents/{agent_id}", include=["agent.tags", "agent.secrets"])
            as_now = {"metadata": dict(now.get("metadata") or {}), "tags": list(now.get("tags") or ())}
            _change_agent(change, session, {**as_now, "secrets": secrets_of(now)})
        return None

    def _lock_of(self, session: ApplySession, agent_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(session, {}).setdefault(agent_id, threading.Lock())

    def wave(self, change: Change) -> int:
        """A promoted agent's batch (`--promote`): each batch starts once the one before it succeeded."""
        return int(change.state.get("wave", 0))

    def recompiles(self, change: Change, plan: Plan) -> Iterable[str]:
        """A matched agent's conversations are recompiled when its system prompt or shared blocks changed."""
        if change.kind == TEMPLATED and {"system", "shared_blocks", BLOCKS, SEEDED} & set(change.changed_fields()):
            return [change.address]
        return []


def _overlaps(reader: LiveReader, templates: Sequence[Resource]) -> list[Problem]:
    """Each later template that sets something an earlier one sets too on an agent both match, at its line."""
    if len(templates) < 2:
        return []
    path, params = AGENTS
    agents = reader.list_everything(path, **params)
    problems = []
    for index, later in enumerate(templates):
        for earlier in templates[:index]:
            both = set(later.attributes["settings"]) & set(earlier.attributes["settings"])
            shared = [a["name"] for a in agents if matches(earlier.attributes, a) and matches(later.attributes, a)]
            if both and shared:
                problems.append(
                    Problem(
                        later.source,
                        f"template '{later.name}' and template '{earlier.name}' both set "
                        f"{', '.join(sorted(both))} on {len(shared)} agent(s), such as {shared[0]}: each apply "
                        "would undo the other",
                        "narrow one selector (`match:`, `tags:`) so that no agent is matched by both",
                    )
                )
    return problems


def _templated_agents(reader: LiveReader, desired: Sequence[Resource]) -> list[dict[str, Any]]:
    """The agents templates may reach: every agent while the file declares templates; else, for a named fleet, the
    agents carrying its templates' mark (what a template taken out of the file left); else none."""
    path, params = AGENTS
    if desired:
        return reader.list_everything(path, **params)
    mark = mark_tag(reader.owner.fleet)
    return reader.list_all(path, **{**params, "tags": [mark]}) if mark else []


@dataclass(frozen=True)
class Seen:
    """What a plan read beside the agents for the templates, by agent id: each agent's tools and secrets."""

    tools: Mapping[str, Sequence[Mapping[str, Any]]]
    secrets: Mapping[str, Mapping[str, Any]]
    left: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)  # see `left_unattached`


def _seen(reader: LiveReader, desired: Sequence[Resource], agents: Sequence[Mapping[str, Any]]) -> Seen:
    tools = _read_beside(reader, desired, agents, "tools", AGENTS_WITH_TOOLS)
    secrets = _read_beside(reader, desired, agents, SECRETS, AGENTS_WITH_SECRETS)
    return Seen(
        {agent_id: list(agent.get("tools") or ()) for agent_id, agent in tools.items()},
        {agent_id: secrets_of(agent) for agent_id, agent in secrets.items()},
    )


def _read_beside(
    reader: LiveReader, desired: Sequence[Resource], agents: Sequence[Mapping[str, Any]], key: str, read: Read
) -> dict[str, Mapping[str, Any]]:
    """The agents of a read with one more relation (by id), read only when a template declares `key` or a record
    says one set it: agents' tools and secrets are large, and not in the plan's first read of agents."""
    declared = any(key in template.attributes["settings"] for template in desired)
    recorded = any(
        isinstance(entry, Mapping) and entry.get(key) for agent in agents for entry in records_of(agent).values()
    )
    if not (declared or recorded):
        return {}
    path, params = read
    mark = mark_tag(reader.owner.fleet)
    rows = (
        reader.list_everything(path, **params)
        if desired or not mark
        else reader.list_all(path, **{**params, "tags": [mark]})
    )
    return {str(agent["id"]): agent for agent in rows}


def _with_left(reader: LiveReader, template: Resource, agents: Sequence[Mapping[str, Any]], seen: Seen) -> Seen:
    """`seen`, with the blocks an apply of this template made and was stopped before attaching."""
    labels = set(template.state.get("block_specs") or {})
    if not labels:
        return seen
    left = left_unattached(reader, record_key(template.name, reader.owner.fleet), labels, agents)
    return replace(seen, left=left)


def _reached(
    reader: LiveReader,
    template: Resource,
    agents: Sequence[Mapping[str, Any]],
    seen: Seen,
    *,
    removed: bool = False,
    others: Sequence[Resource] = (),
) -> Iterator[Resource]:
    """The agents a template matches, each at its own address under the template (of several of one name, the
    others after the first by name and id)."""
    names: set[str] = set()
    for agent in agents:
        name = str(agent["name"])
        own = name if name not in names else f"{name}~{agent['id']}"
        names.add(name)
        yield _matched(reader, template, agent, own, seen, removed=removed, others=others)


def _matched(
    reader: LiveReader,
    template: Resource,
    agent: Mapping[str, Any],
    own: str,
    seen: Seen,
    *,
    removed: bool = False,
    others: Sequence[Resource] = (),
) -> Resource:
    """One agent a template matches (or, `removed`, carries the record of a template taken out of the file: what
    `others`, the templates declared, attach or add there stays), at its address `own` under the template: what the
    template manages on it now, and in `state` what the template wants of it and its record."""
    wanted = template.attributes["settings"]
    key = record_key(template.name, reader.owner.fleet)
    done = read_applied(agent, key)
    held = seen.secrets.get(str(agent["id"])) or {}
    live = _live_settings(agent, wanted, _attached(reader, agent, wanted, seen), done) | live_secrets(
        held, wanted, done
    )
    here = _wanted_here(wanted, done) | wanted_secrets_here(wanted, done)
    if removed:
        kept = _wanted_by_others(reader, agent, others)
        here = {key: _kept(names, kept.get(key, set())) for key, names in live.items()}
        live["carried"], here["carried"] = True, False
    return Resource(
        address_of(AGENT, own, template.address),
        TEMPLATED,
        own,
        live,
        parent=template.address,
        depends_on=template.depends_on,
        id=agent["id"],
        sensitive=template.sensitive,
        state={
            "wanted": here,
            "applied": done,
            "key": key,
            "fleet": reader.owner.fleet,
            "removed": removed,
            "block_specs": template.state.get("block_specs") or {},
            "block_ids": block_ids(agent) if BLOCKS in here else {},
            "secrets": held,
            "left_unattached": seen.left.get(str(agent["id"])) or {},
            "metadata": dict(agent.get("metadata") or {}),
            "tags": list(agent.get("tags") or ()),
        },
    )


def _attached(reader: LiveReader, agent: Mapping[str, Any], wanted: Mapping[str, Any], seen: Seen) -> Attached:
    """What the agent has attached of what templates attach: a shared block counts as the template's when it is
    the fleet's shared block of that label, a tool when it has that name."""
    blocks = agent.get("blocks") or ()
    tools = seen.tools.get(str(agent["id"])) or ()
    return Attached(
        ids={"shared_blocks": {str(b.get("id")) for b in blocks}, "tools": {str(t.get("id")) for t in tools}},
        named={
            "shared_blocks": {
                str(block.get("label"))
                for block in blocks
                if block.get("label") in (wanted.get("shared_blocks") or ()) and shared_by(reader.owner, block)
            },
            "tools": {str(tool.get("name")) for tool in tools if tool.get("name") in (wanted.get("tools") or ())},
        },
    )


def _removed(
    reader: LiveReader, desired: Sequence[Resource], agents: Sequence[Mapping[str, Any]], seen: Seen
) -> list[Resource]:
    """Each template of this (named) fleet taken out of the file whose record some agents still carry: a line of
    its own, and on each of those agents the removal of what the record says the template put there."""
    declared = {template.name for template in desired}
    carrying: dict[str, list[Mapping[str, Any]]] = {}
    for agent in agents:
        for name in removed_templates(agent, reader.owner.fleet, declared):
            carrying.setdefault(name, []).append(agent)
    found: list[Resource] = []
    for name, holders in sorted(carrying.items()):
        template = Resource(address_of(TEMPLATE, name), TEMPLATE, name, {"settings": {}})
        children = list(_reached(reader, template, holders, seen, removed=True, others=desired))
        found += [*children, replace(template, state={"reached": [_summed(child) for child in children]})]
    return found


def _wanted_by_others(
    reader: LiveReader, agent: Mapping[str, Any], templates: Sequence[Resource]
) -> dict[str, set[str]]:
    """What the declared templates matching an agent attach or add there, by attribute: a template taken out of the
    file leaves it (as when a template is renamed), where the one declared finds it in place."""
    found: dict[str, set[str]] = {}
    for template in templates:
        if matches(template.attributes, agent):
            for key in (*ATTACHABLE, "tags", BLOCKS, SECRETS):
                found.setdefault(key, set()).update(template.attributes["settings"].get(key) or ())
    return found


def _kept(names: Any, kept: set[str]) -> Any:
    """Of what a template taken out of the file put on an agent (a list of names, or blocks by label), what a
    declared template puts there too."""
    if isinstance(names, Mapping):
        return {label: value for label, value in names.items() if label in kept}
    return sorted(set(names) & kept)


def _crowded(found: list[Resource]) -> list[Resource]:
    """The agents' changes, each marked `crowded` when more than one template changes the same agent: their
    updates of its record and tags must then run one at a time (each rewrites the whole metadata and tag list)."""
    per_agent = Counter(resource.id for resource in found if resource.kind == TEMPLATED)
    return [
        replace(resource, state={**resource.state, "crowded": True})
        if resource.kind == TEMPLATED and per_agent[resource.id] > 1
        else resource
        for resource in found
    ]


def _rolled_out(template: Resource, children: list[Resource]) -> tuple[list[Resource], dict[str, Any] | None]:
    """The matched agents this run changes, and what the template's line says of the rollout: with `--sample`
    only the sample (marked as sampled where it changes), with `--promote` every agent in its batch."""
    rollout: Rollout = template.state["rollout"]
    if not (rollout.sample or rollout.promote):
        return children, None
    by_id = {str(child.id): child for child in children}
    ordered = [by_id[agent_id] for agent_id in rollout_order(_key_of(children), list(by_id))]
    changing = [child for child in ordered if differences(child.attributes, child.state["wanted"])]
    if rollout.promote:
        batches = [_in_batch(child, 1 + index // rollout.batch_size) for index, child in enumerate(changing)]
        return batches, {
            "mode": "promote",
            "batch_size": rollout.batch_size,
            "batches": math.ceil(len(changing) / rollout.batch_size),
        }
    sample = ordered[: rollout.sample_size(len(ordered))]
    mark = settings_digest(template.attributes["settings"])
    to_change = {child.address for child in changing}
    marked = [_sampled(child, mark) if child.address in to_change else child for child in sample]
    left = len(to_change - {child.address for child in sample})
    return marked, {"mode": "sample", "size": rollout.sample, "agents": [child.name for child in sample], "left": left}


def _key_of(children: Sequence[Resource]) -> str:
    return str(children[0].state["key"]) if children else ""


def _sampled(child: Resource, mark: str) -> Resource:
    """A sampled agent that changes: its record is to say which change the sample applied (`sampled`)."""
    done: Applied = child.state["applied"]
    live = {**child.attributes, **({"sampled": done.sampled} if done.sampled else {})}
    return replace(child, attributes=live, state={**child.state, "wanted": {**child.state["wanted"], "sampled": mark}})


def _in_batch(child: Resource, batch: int) -> Resource:
    return replace(child, state={**child.state, "wave": batch})


def _promotion_problems(reader: LiveReader, templates: Sequence[Resource]) -> list[Problem]:
    """With `--promote`: each template whose sample does not hold its change (none applied, or changed since)."""
    promoted = [template for template in templates if template.state["rollout"].promote]
    if not promoted:
        return []
    path, params = AGENTS
    agents = reader.list_everything(path, **params)
    problems = []
    for template in promoted:
        mark = settings_digest(template.attributes["settings"])
        key = record_key(template.name, reader.owner.fleet)
        marked = [a for a in agents if matches(template.attributes, a) and read_applied(a, key).sampled == mark]
        seen = _seen(reader, [template], marked)
        held = [_matched(reader, template, agent, str(agent["name"]), seen) for agent in marked]
        drifted = [child.name for child in held if _summed(child)["changes"]]
        problem = promotion_problem(template.name, template.source, len(marked), drifted)
        problems += [problem] if problem else []
    return problems


def _wanted_here(wanted: Mapping[str, Any], done: Applied) -> dict[str, Any]:
    """What the template wants of one agent: its settings, and no longer what its record says it added and it no
    longer declares (an empty list, so that the plan shows it taken away)."""
    here = dict(wanted)
    for attribute in ATTACHABLE:
        if done.ids(attribute) and attribute not in here:
            here[attribute] = []
    if done.tags and "tags" not in here:
        here["tags"] = []
    return here | wanted_blocks_here(wanted, done)


def _summed(child: Resource) -> dict[str, Any]:
    """A matched agent as its template's line counts it: its name, what would change on it, and which of those
    someone edited by hand since the template set them."""
    changes = differences(child.attributes, child.state["wanted"])
    edited = [what for what in edited_by_hand(child.attributes, child.state["applied"]) if what in changes]
    return {"name": child.name, "changes": changes, "edited": edited}


def _template_change(desired: Resource, live: Resource | None) -> Change:
    """The template's line: how many agents it matches and what would change on how many, with a sample; loud
    (drift) when it matches none, since a misspelt selector would otherwise apply nothing without a word."""
    reached = (live.state if live else {}).get("reached", [])
    changing = [agent for agent in reached if agent["changes"]]
    summary = {
        "matched": len(reached),
        "changing": len(changing),
        "current": len(reached) - len(changing),
        "changes": _counted(what for agent in changing for what in agent["changes"]),
        "edited_by_hand": _counted(what for agent in changing for what in agent["edited"]),
        "sample": [agent["name"] for agent in changing[:SAMPLE]],
    }
    rollout = (live.state if live else {}).get("rollout")
    if rollout:
        summary["rollout"] = rollout
    selector = _selector(desired.attributes)
    drift = None
    if not reached:
        drift = (
            f"no live agent matches {selector} (agents lettafleet made are never matched): check the selector; "
            "apply changes nothing"
        )
    return Change(
        address=desired.address,
        kind=TEMPLATE,
        name=desired.name,
        action=Action.NO_OP,
        before=summary,
        after=summary,
        depends_on=desired.depends_on,
        drift=drift,
        detail=_told(summary, selector),
    )


def _removed_template_change(live: Resource) -> Change:
    """The line of a template taken out of the file: the agents that carry its record, and what comes off them."""
    reached = live.state["reached"]
    changing = [agent for agent in reached if agent["changes"]]
    summary: dict[str, Any] = {
        "removed": True,
        "carrying": len(reached),
        "changing": len(changing),
        "changes": _counted(what for agent in changing for what in agent["changes"]),
        "sample": [agent["name"] for agent in changing[:SAMPLE]],
    }
    what = ", ".join(f"{name} ({count:,})" for name, count in summary["changes"].items())
    text = (
        f"taken out of the file: {len(reached):,} {'agent carries' if len(reached) == 1 else 'agents carry'} what it "
        "put there; "
        f"{len(changing):,} would change: {what}. Their prompt and model stay as the template last set them"
    )
    if summary["sample"]:
        more = len(changing) - len(summary["sample"])
        text += ". For example: " + ", ".join(summary["sample"]) + (f" and {more:,} more" if more > 0 else "")
    return Change(live.address, TEMPLATE, live.name, Action.NO_OP, summary, summary, detail=text)


def _counted(what: Iterable[str]) -> dict[str, int]:
    """How many of each, the most first."""
    return dict(sorted(Counter(what).items(), key=lambda item: (-item[1], item[0])))


def _selector(template: Mapping[str, Any]) -> str:
    parts = [f"`{template['match']}`"] if "match" in template else []
    if template.get("tags"):
        parts.append("tags " + ", ".join(f"`{tag}`" for tag in template["tags"]))
    return " with ".join(parts)


def _told(summary: Mapping[str, Any], selector: str) -> str:
    """`1,000 agents match `user-*`; 988 would change: system prompt (988), attach shared block policies (212);
    12 already current. For example: user-0001, user-0002, ...`"""
    what = ", ".join(f"{name} ({count:,})" for name, count in summary["changes"].items())
    text = f"{summary['matched']:,} agent{'s' * (summary['matched'] != 1)} match {selector}"
    if summary["changing"]:
        text += f"; {summary['changing']:,} would change: {what}"
    if summary["edited_by_hand"]:
        edited = ", ".join(f"{name} ({count:,})" for name, count in summary["edited_by_hand"].items())
        text += f" (edited by hand since the template set it, and set back: {edited})"
    text += f"; {summary['current']:,} already current"
    if summary["sample"]:
        more = summary["changing"] - len(summary["sample"])
        text += ". For example: " + ", ".join(summary["sample"]) + (f" and {more:,} more" if more > 0 else "")
    return text + _rollout_told(summary.get("rollout"))


def _rollout_told(rollout: Mapping[str, Any] | None) -> str:
    """What this run does of the rollout, and what to run next."""
    if not rollout:
        return ""
    if rollout["mode"] == "promote":
        return (
            f". Promoting to the rest (the sample holds the change) in {rollout['batches']:,} batch(es) of at most "
            f"{rollout['batch_size']:,}"
        )
    names = rollout["agents"]
    shown = ", ".join(names[:SHOWN_SAMPLE]) + (
        f" and {len(names) - SHOWN_SAMPLE:,} more" if len(names) > SHOWN_SAMPLE else ""
    )
    return (
        f". Sample ({rollout['size']}, {len(names):,} agent{'s' * (len(names) != 1)}): {shown or 'none'}. The other "
        f"{rollout['left']:,} that would change stay as they are: check the sample, then `lettafleet apply --promote`"
    )


def _prompt_set(change: Change, done: Applied) -> str:
    """The digest the record keeps of the prompt: of the one this change sets, else the one recorded, while the
    template manages the prompt (a prompt the agent had already is not recorded: no write for it)."""
    after = change.after or {}
    if "system" not in after:
        return ""
    return digest(after["system"]) if "system" in change.changed_fields() else done.prompt


def edited_by_hand(live: Mapping[str, Any], done: Applied) -> list[str]:
    """What the template set on an agent and someone changed since (the prompt, by the record's digest): drift the
    plan counts apart, which apply sets back."""
    prompt = done.prompt and "system" in live and digest(live["system"]) != done.prompt
    return ["system prompt"] * bool(prompt) + edited_blocks(live, done)


def _added_tags(change: Change) -> list[str]:
    before, after = set((change.before or {}).get("tags") or ()), set((change.after or {}).get("tags") or ())
    return sorted(after - before)


def _request(change: Change, tags: Sequence[str]) -> dict[str, Any]:
    """The agent update for the fields that changed; its tags in full, as Letta replaces them: the agent's own
    (`tags`), with what the template adds and without what it takes out."""
    after, changed = change.after or {}, set(change.changed_fields())
    body: dict[str, Any] = {key: after[key] for key in ("description", "system", "model") if key in changed}
    if "context_window" in changed:
        body["context_window_limit"] = after["context_window"]
    if "tags" in changed:
        removed = set((change.before or {}).get("tags") or ()) - set(after["tags"])
        kept = [tag for tag in tags if tag not in removed]
        body["tags"] = kept + [tag for tag in _added_tags(change) if tag not in kept]
    return body


def _change_agent(change: Change, session: ApplySession, agent: Mapping[str, Any]) -> None:
    """Detach what the template took out, write the agent's fields, secrets, record and mark in one update (from
    its `metadata`, `tags` and `secrets` as `agent` has them now), then attach what the template added."""
    agent_id = str(change.id)
    metadata, tags, secrets = agent["metadata"], agent["tags"], agent["secrets"]
    done: Applied = change.state["applied"]
    held: dict[str, dict[str, str]] = {attribute: dict(done.ids(attribute)) for attribute in HELD}
    attach: list[tuple[Attachable, str]] = []
    for attribute, item in ATTACHABLE.items():
        old, new = _names_in(change.before, attribute), _names_in(change.after, attribute)
        for name in sorted(old - new):
            _detach(session, agent_id, item, held[attribute].pop(name))
        for name in sorted(new - old):
            held[attribute][name] = _id_to_attach(change, session, attribute, name)
            attach.append((item, held[attribute][name]))
    to_attach, values = apply_blocks(change, session, held["memory_blocks"])
    attach += [(ATTACHABLE["shared_blocks"], ident) for ident in to_attach]
    fields = _request(change, tags) | secrets_request(change, session, secrets)
    now = Applied() if change.state.get("removed") else _now_applied(change, held, values, list(secrets))
    if now != done:
        fields["metadata"] = with_applied(metadata, change.state["key"], now)
        marks = marked(fields.get("tags", tags), fields["metadata"], change.state["fleet"])
        if marks != list(fields.get("tags", tags)):
            fields["tags"] = marks
    if fields:
        session.client.patch(f"/v1/agents/{agent_id}", json=fields)
    for item, ident in attach:
        session.client.patch(f"/v1/agents/{agent_id}/{item.path}/attach/{ident}")


def _names_in(values: Mapping[str, Any] | None, attribute: str) -> set[str]:
    return set((values or {}).get(attribute) or ())


def _now_applied(
    change: Change, held: Mapping[str, Mapping[str, str]], values: Mapping[str, str], secrets: Sequence[str]
) -> Applied:
    """The record this change leaves: what the template attached, the tags it added and still declares, and the
    digests of what it set."""
    done: Applied = change.state["applied"]
    after = change.after or {}
    kept = {
        attribute: {name: ident for name, ident in ids.items() if name in _names_in(after, attribute)}
        if attribute in ATTACHABLE
        else ids
        for attribute, ids in held.items()
    }
    tags = tuple(sorted({*(t for t in done.tags if t in set(after.get("tags") or ())), *_added_tags(change)}))
    made = {label: ident for label, ident in kept["memory_blocks"].items() if label in (after.get(BLOCKS) or {})}
    return Applied(
        {**kept, "memory_blocks": made},
        tags,
        _prompt_set(change, done),
        after.get("sampled") or done.sampled,
        recorded_secrets(change, done, secrets),
        recorded_values(change, done, values),
    )


def _id_to_attach(change: Change, session: ApplySession, attribute: str, name: str) -> str:
    """The server id of what the template attaches by `name`: the fleet's shared block, or the tool (which the
    tools plugin found on the server, or made in this apply)."""
    return session.id_of(address_of(SHARED if attribute == "shared_blocks" else TOOL, name))


def _detach(session: ApplySession, agent_id: str, item: Attachable, item_id: str) -> None:
    try:
        session.client.patch(f"/v1/agents/{agent_id}/{item.path}/detach/{item_id}")
    except LettaAPIError as error:
        if error.status != 404:  # Letta answers 404 for something not attached (any more): detached either way
            raise
