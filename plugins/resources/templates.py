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
import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
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
from lettafleet.plugins.backends.letta_v1.reads import AGENTS
from lettafleet.plugins.resources.agents import AGENT, ENDPOINT_FIELDS, NAME_PATTERN
from lettafleet.plugins.resources.blocks import SHARED, shared_by
from lettafleet.plugins.resources.template_rollout import (
    SHOWN_SAMPLE,
    Rollout,
    option_problems,
    promotion_problem,
    rollout_options,
    rollout_order,
    settings_digest,
)

TEMPLATE = "template"
TEMPLATED = "templated_agent"
RECORD_KEY = "lettafleet_templates"
SAMPLE = 5  # agents named in a template's line of the plan; the JSON plan has every one
# What a template manages on each agent it matches, as plan attributes: the agent's own fields, then the lists it
# adds to (shared blocks attached, tags).
FIELDS = ("description", "system", "model", "context_window")
# The keys of a lettactl agent that template mode (`--match`) applies, and those that matter only when an agent is
# created (a template never creates one). Any other key would change live agents in ways templates do not manage
# yet: refused at its line, rather than silently skipped.
MATCH_KEYS = {"name", "description", "system_prompt", "llm_config", "shared_blocks", "tags"}
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
                "shared_blocks and tags)",
                "remove it from the first agent to use --match, or apply without --match",
            )
        )
    for field in ENDPOINT_FIELDS:
        if field in (agent.get("llm_config") or {}):
            found.append(
                Problem(
                    (*template.at, "llm_config", field),
                    f"llm_config.{field} is not applied by templates: a template sets a model by its handle",
                    "keep `model` (a handle) and `context_window`, or apply without --match",
                )
            )
    return found


# -- plan and apply ------------------------------------------------------------------------------------------------


def _wanted(fleet: Fleet, data: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a template manages, as each matched agent's plan attributes: only those it declares."""
    llm = data.get("llm_config") or {}
    return dict(
        attributes(
            description=data.get("description"),
            system=fleet.text(data["system_prompt"]).strip() if "system_prompt" in data else None,
            model=llm.get("model"),
            context_window=llm.get("context_window"),
            shared_blocks=sorted(data["shared_blocks"]) if "shared_blocks" in data else None,
            tags=sorted(data["add_tags"]) if "add_tags" in data else None,
        )
    )


@dataclass(frozen=True)
class Applied:
    """What a template did to one agent, as its record there says: the shared blocks it attached (label: id) and
    the tags it added, the only ones ever taken away again when a line leaves the template; and a digest of the
    system prompt it set, which tells a prompt edited by hand since then."""

    blocks: Mapping[str, str]
    tags: tuple[str, ...]
    prompt: str = ""
    sampled: str = ""  # the digest of the settings a sample (`--sample`) applied here, which `--promote` looks for

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"shared_blocks": dict(sorted(self.blocks.items())), "tags": sorted(self.tags)}
        if self.prompt:
            entry["system_sha256"] = self.prompt
        return {**entry, "sampled": self.sampled} if self.sampled else entry

    @property
    def empty(self) -> bool:
        return not (self.blocks or self.tags or self.prompt or self.sampled)


def digest(prompt: str) -> str:
    """The digest a record keeps of a prompt (trimmed, as plans compare it): the prompt itself may be sensitive."""
    return hashlib.sha256(prompt.strip().encode("utf-8")).hexdigest()


def record_key(template: str, fleet: str | None) -> str:
    """The template's entry in an agent's `lettafleet_templates`: a named fleet's templates stay apart from
    another fleet's of the same name."""
    return f"{fleet}/{template}" if fleet else template


def read_applied(agent: Mapping[str, Any], key: str) -> Applied:
    """The record of the template `key` on a live agent; empty when it has none (or it was edited by hand into
    something else: the record only ever narrows what a template takes away)."""
    records = (agent.get("metadata") or {}).get(RECORD_KEY)
    entry = records.get(key) if isinstance(records, Mapping) else None
    if not isinstance(entry, Mapping):
        return Applied({}, ())
    blocks, tags, prompt = entry.get("shared_blocks"), entry.get("tags"), entry.get("system_sha256")
    sampled = entry.get("sampled")
    return Applied(
        {str(k): str(v) for k, v in blocks.items() if isinstance(v, str)} if isinstance(blocks, Mapping) else {},
        tuple(str(tag) for tag in tags) if isinstance(tags, list) else (),
        prompt if isinstance(prompt, str) else "",
        sampled if isinstance(sampled, str) else "",
    )


def matches(template: Mapping[str, Any], agent: Mapping[str, Any]) -> bool:
    """Whether a template's selector takes a live agent: its name matches the glob (case-sensitively) and it
    carries every tag named. An agent lettafleet made is a fleet's, never a template's."""
    glob = template.get("match")
    if glob is not None and not fnmatch.fnmatchcase(str(agent.get("name") or ""), glob):
        return False
    return set(template.get("tags") or ()) <= set(agent.get("tags") or ()) and not is_managed(agent)


def _live_settings(
    agent: Mapping[str, Any], wanted: Mapping[str, Any], owner_blocks: set[str], done: Applied
) -> dict[str, Any]:
    """The agent's values of what the template manages. Of the shared blocks and tags, only those the template
    declares or its record says it added: anything else the agent has is not the template's to show or take."""
    llm = agent.get("llm_config") or {}
    live: dict[str, Any] = {
        "description": agent.get("description"),
        "system": (agent.get("system") or "").strip(),
        "model": llm.get("handle") or agent.get("model"),
        "context_window": llm.get("context_window"),
    }
    found = {key: live[key] for key in FIELDS if key in wanted}
    if "shared_blocks" in wanted or done.blocks:
        attached = {block.get("id") for block in agent.get("blocks") or ()}
        labels = set(wanted.get("shared_blocks") or ()) | set(done.blocks)
        found["shared_blocks"] = sorted(
            label for label in labels if label in owner_blocks or done.blocks.get(label) in attached
        )
    if "tags" in wanted or done.tags:
        mine = set(wanted.get("tags") or ()) | set(done.tags)
        found["tags"] = sorted(tag for tag in agent.get("tags") or () if tag in mine)
    return found


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What a change to one matched agent does, in words people count: `system prompt`, `attach shared block
    policies`, `remove tag beta`."""
    said = {"system": "system prompt", "context_window": "context window"}
    found = [said.get(key, key) for key in FIELDS if key in after and before.get(key) != after[key]]
    for key, noun in (("shared_blocks", "shared block"), ("tags", "tag")):
        old, new = set(before.get(key) or ()), set(after.get(key) or ())
        verbs = ("attach", "detach") if key == "shared_blocks" else ("add", "remove")
        found += [f"{verbs[0]} {noun} {name}" for name in sorted(new - old)]
        found += [f"{verbs[1]} {noun} {name}" for name in sorted(old - new)]
    return found


class TemplateHandler(ResourceHandler):
    """A template is one line of the plan summing up its matched agents; each matched agent is a change of its
    own (`templated_agent`, not listed one by one) that apply makes like any other, concurrently."""

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for template in declared_templates(fleet):
            data = template.data
            selector = attributes(match=data.get("match"), tags=sorted(data["tags"]) if "tags" in data else None)
            yield Resource(
                template.address,
                TEMPLATE,
                template.name,
                {**selector, "settings": _wanted(fleet, data)},
                depends_on=tuple(address_of(SHARED, name) for name in data.get("shared_blocks") or ()),
                source=template.at,
                sensitive=frozenset({"system"}) if (data.get("system_prompt") or {}).get("sensitive") else frozenset(),
                state={"rollout": Rollout.from_options(fleet.options)},
            )

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [AGENTS] if desired else []

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """A template's model must be one the server offers, and no agent may be matched by two templates that set
        the same thing (each apply would undo the other's): both checked before anything is written."""
        problems = _overlaps(reader, desired) + _promotion_problems(reader, desired)
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
        what the template manages on it as it is now and, in `state`, as the template wants it."""
        if not desired:
            return []  # a fleet without templates reads no more agents than its own
        declared = {resource.name for resource in fleet if resource.kind == AGENT}
        path, params = AGENTS
        agents = [agent for agent in reader.list_everything(path, **params) if agent["name"] not in declared]
        found: list[Resource] = []
        for template in desired:
            reached = [agent for agent in agents if matches(template.attributes, agent)]
            children = list(_reached(reader, template, reached))
            state: dict[str, Any] = {"reached": [_summed(child) for child in children]}
            children, state["rollout"] = _rolled_out(template, children)
            found += children
            found.append(replace(template, state=state))
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is not None and desired.kind == TEMPLATE:
            return _template_change(desired, live)
        assert live is not None  # a matched agent is found live only: the template wants of it what `state` says
        wanted = replace(live, attributes=live.state["wanted"], sensitive=live.sensitive)
        change = compare(wanted, live)
        changes = differences(change.before or {}, change.after or {})
        edited = set(edited_by_hand(live.attributes, live.state["applied"]))
        said = [f"{what} (edited by hand since the template set it)" if what in edited else what for what in changes]
        return replace(change, detail="; ".join(said))

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        """One matched agent: detach what the template took out, write its fields and its record in one update,
        then attach what it added (an attach that fails is attached again by the next apply: the record names it)."""
        before, after = change.before or {}, change.after or {}
        agent_id = change.id
        done: Applied = change.state["applied"]
        old, new = set(before.get("shared_blocks") or ()), set(after.get("shared_blocks") or ())
        for label in sorted(old - new):
            _detach(session, str(agent_id), done.blocks[label])
        attach = {label: session.id_of(address_of(SHARED, label)) for label in sorted(new - old)}
        now = Applied(
            {**{label: ident for label, ident in done.blocks.items() if label in new}, **attach},
            tuple(sorted({*(t for t in done.tags if t in set(after.get("tags") or ())), *_added_tags(change)})),
            _prompt_set(change, done),
            after.get("sampled") or done.sampled,
        )
        fields = _request(change)
        if now != done:
            fields["metadata"] = _with_applied(change.state["metadata"], change.state["key"], now)
        if fields:
            session.client.patch(f"/v1/agents/{agent_id}", json=fields)
        for block_id in attach.values():
            session.client.patch(f"/v1/agents/{agent_id}/core-memory/blocks/attach/{block_id}")
        return None

    def wave(self, change: Change) -> int:
        """A promoted agent's batch (`--promote`): each batch starts once the one before it succeeded."""
        return int(change.state.get("wave", 0))

    def recompiles(self, change: Change, plan: Plan) -> Iterable[str]:
        """A matched agent's conversations are recompiled when its system prompt or shared blocks changed."""
        if change.kind == TEMPLATED and {"system", "shared_blocks"} & set(change.changed_fields()):
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


def _reached(reader: LiveReader, template: Resource, agents: Sequence[Mapping[str, Any]]) -> Iterator[Resource]:
    """The agents a template matches, each at its own address under the template (of several of one name, the
    others after the first by name and id)."""
    seen: set[str] = set()
    for agent in agents:
        name = str(agent["name"])
        own = name if name not in seen else f"{name}~{agent['id']}"
        seen.add(name)
        yield _matched(reader, template, agent, own)


def _matched(reader: LiveReader, template: Resource, agent: Mapping[str, Any], own: str) -> Resource:
    """One agent a template matches, at its address `own` under the template: what the template manages on it
    now, and in `state` what the template wants of it and its record."""
    wanted = template.attributes["settings"]
    key = record_key(template.name, reader.owner.fleet)
    owner_blocks = {
        str(block.get("label"))
        for block in agent.get("blocks") or ()
        if block.get("label") in (wanted.get("shared_blocks") or ()) and shared_by(reader.owner, block)
    }
    done = read_applied(agent, key)
    return Resource(
        address_of(AGENT, own, template.address),
        TEMPLATED,
        own,
        _live_settings(agent, wanted, owner_blocks, done),
        parent=template.address,
        depends_on=template.depends_on,
        id=agent["id"],
        sensitive=template.sensitive,
        state={
            "wanted": _wanted_here(wanted, done),
            "applied": done,
            "key": key,
            "metadata": dict(agent.get("metadata") or {}),
            "tags": list(agent.get("tags") or ()),
        },
    )


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
        drifted = [
            str(agent["name"])
            for agent in marked
            if _summed(_matched(reader, template, agent, str(agent["name"])))["changes"]
        ]
        problem = promotion_problem(template.name, template.source, len(marked), drifted)
        problems += [problem] if problem else []
    return problems


def _wanted_here(wanted: Mapping[str, Any], done: Applied) -> dict[str, Any]:
    """What the template wants of one agent: its settings, and no longer what its record says it added and it no
    longer declares (an empty list, so that the plan shows it taken away)."""
    here = dict(wanted)
    if done.blocks and "shared_blocks" not in here:
        here["shared_blocks"] = []
    if done.tags and "tags" not in here:
        here["tags"] = []
    return here


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
    return ["system prompt"] if done.prompt and "system" in live and digest(live["system"]) != done.prompt else []


def _added_tags(change: Change) -> list[str]:
    before, after = set((change.before or {}).get("tags") or ()), set((change.after or {}).get("tags") or ())
    return sorted(after - before)


def _request(change: Change) -> dict[str, Any]:
    """The agent update for the fields that changed; its tags in full, as Letta replaces them: the agent's own,
    with what the template adds and without what it takes out."""
    after, changed = change.after or {}, set(change.changed_fields())
    body: dict[str, Any] = {key: after[key] for key in ("description", "system", "model") if key in changed}
    if "context_window" in changed:
        body["context_window_limit"] = after["context_window"]
    if "tags" in changed:
        removed = set((change.before or {}).get("tags") or ()) - set(after["tags"])
        kept = [tag for tag in change.state["tags"] if tag not in removed]
        body["tags"] = kept + [tag for tag in _added_tags(change) if tag not in kept]
    return body


def _with_applied(metadata: Mapping[str, Any], key: str, applied: Applied) -> dict[str, Any]:
    """The agent's metadata with this template's record as `applied` says (gone when it added nothing), every other
    key, and every other template's record, kept."""
    records = dict(metadata.get(RECORD_KEY) or {})
    records.pop(key, None)
    if not applied.empty:
        records[key] = applied.to_json()
    return {**metadata, RECORD_KEY: records}


def _detach(session: ApplySession, agent_id: str, block_id: str) -> None:
    try:
        session.client.patch(f"/v1/agents/{agent_id}/core-memory/blocks/detach/{block_id}")
    except LettaAPIError as error:
        if error.status != 404:  # Letta answers 404 for a block not attached (any more): detached either way
            raise
