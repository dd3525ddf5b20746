"""App Server agents: name, description, system prompt, model (checked against `list_models` first), context window
and tags. Ownership is carried by tags (the server drops `metadata`); the server's own tags are kept."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from lettafleet.core import (
    MARK_PREFIX,
    Action,
    Adoption,
    Ambiguity,
    ApplySession,
    Change,
    Connection,
    Exported,
    Fleet,
    LettaError,
    LiveReader,
    Problem,
    Recorded,
    Resource,
    ResourceHandler,
    attributes,
    compare,
    exported_text_source,
    fleet_tagged,
    is_tagged_managed,
    read_record,
    with_record,
)
from lettafleet.core.letta.ownership import is_ownership_tag
from lettafleet.plugins.backends.app_server.client import SERVER_OWNED_TAGS, AppServerClient
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.resources.agents import AGENT, agent_address, declared_agents, one_fleet

# attribute -> the field of `agent_create` / `agent_update` that sets it
REQUEST_KEYS = {
    "name": "name",  # only a rename (`moved:`) changes it
    "description": "description",
    "system": "system",
    "model": "model",
    "context_window": "context_window_limit",
    "compaction_settings": "compaction_settings",
}
PROTECT_TAG = f"{MARK_PREFIX}protect"  # an agent applied with `protect: true`, as a protected tool is marked
# The agent's secret that holds the record of what the fleet made under it (docs/removing.md, "On the App Server").
RECORD_SECRET = "LETTAFLEET_RECORD"
# The compaction settings a fleet file declares (its schema's keys the server keeps); the server adds others.
COMPACTION_KEYS = ("mode", "clip_chars", "sliding_window_percentage", "prompt", "prompt_acknowledgement", "model")
AGENTS_READ = ("app_server", "agents")  # the key of the one read of every agent a plan shares
RECORD_READS = 32  # records read at once (one request each, pipelined on the one socket)


def every_agent(reader: LiveReader) -> list[dict[str, Any]]:
    """Every agent on the App Server, read once per plan however many handlers ask."""
    agents: list[dict[str, Any]] = reader.derived(AGENTS_READ, lambda: app_of(reader.client).list_agents())
    return agents


def agents_by_name(reader: LiveReader) -> dict[str, list[dict[str, Any]]]:
    """The server's agents by exact name (the server's list ignores `name`, and names are not unique), the fleet's
    own first, then in the server's order."""

    def grouped() -> dict[str, list[dict[str, Any]]]:
        named: dict[str, list[dict[str, Any]]] = {}
        for agent in every_agent(reader):
            named.setdefault(str(agent.get("name")), []).append(agent)
        owns = reader.owner.owns_tagged
        return {name: sorted(agents, key=lambda a: not owns(a.get("tags"))) for name, agents in named.items()}

    named: dict[str, list[dict[str, Any]]] = reader.derived(("app_server", "agents by name"), grouped)
    return named


def _desired_attributes(fleet: Fleet, agent: Mapping[str, Any]) -> Mapping[str, Any]:
    llm = agent["llm_config"]
    return attributes(
        fleet=fleet.name,
        protect=bool(agent.get("protect")),
        description=agent.get("description"),
        system=fleet.text(agent["system_prompt"]).strip(),
        tags=sorted(agent.get("tags", [])) if "tags" in agent else None,
        model=llm["model"],
        context_window=llm.get("context_window"),
        compaction_settings=dict(agent["compaction_settings"]) if "compaction_settings" in agent else None,
    )


def _live_attributes(agent: Mapping[str, Any]) -> Mapping[str, Any]:
    tags = agent.get("tags") or []
    return {
        "fleet": fleet_tagged(tags) if is_tagged_managed(tags) else None,
        "protect": PROTECT_TAG in tags,
        "description": agent.get("description"),
        "system": (agent.get("system") or "").strip(),
        "tags": _declarable_tags(tags),
        "model": agent.get("model"),
        "context_window": (agent.get("model_settings") or {}).get("context_window_limit"),
        "compaction_settings": dict(agent.get("compaction_settings") or {}),
    }


def _declarable_tags(tags: Iterable[str]) -> list[str]:
    """The tags a fleet file declares: without lettafleet's marks and the server's own."""
    return sorted(tag for tag in tags if not is_ownership_tag(tag) and tag not in SERVER_OWNED_TAGS)


def secrets_of(reader: LiveReader, agent_id: str) -> dict[str, str]:
    """The agent's secrets with their values (its record among them), read once per plan by whoever asks first."""
    found: dict[str, str] = reader.derived(
        ("app_server", "secrets", agent_id), lambda: app_of(reader.client).secret_values(agent_id)
    )
    return found


def read_app_record(reader: LiveReader, agent_id: str) -> tuple[Recorded, ...] | None:
    """The record the agent's `LETTAFLEET_RECORD` secret holds (None: it has none), read once per plan."""

    def read() -> tuple[Recorded, ...] | None:
        value = secrets_of(reader, agent_id).get(RECORD_SECRET)
        try:
            return read_record({"metadata": json.loads(value)}) if value else None
        except ValueError:  # edited by hand into something else: as if there were none
            return None

    found: tuple[Recorded, ...] | None = reader.derived(("app_server", "record", agent_id), read)
    return found


def write_app_record(app: AppServerClient, agent_id: str, record: Sequence[Recorded]) -> None:
    """Keep the record in the agent's secret: on the server, out of the agent's context, across restarts."""
    app.apply_secrets(agent_id, set_values={RECORD_SECRET: json.dumps(with_record({}, record), sort_keys=True)})


def _live_agent(agent: Mapping[str, Any], record: tuple[Recorded, ...] | None) -> Resource:
    tags = agent.get("tags") or []
    return Resource(
        address=agent_address(str(agent["name"])),
        kind=AGENT,
        name=str(agent["name"]),
        attributes=_live_attributes(agent),
        id=str(agent["id"]),
        state={"tags": list(tags)},
        tags=frozenset(_declarable_tags(tags)),
        marked_by=fleet_tagged(tags) if is_tagged_managed(tags) else None,
        record=record,
        protected=PROTECT_TAG in tags,
    )


class ReadsAhead(Protocol):
    """A handler of this backend whose reads of one agent can start once the agent's record is read."""

    def read_ahead(
        self, reader: LiveReader, address: str, agent: Mapping[str, Any], fleet: Sequence[Resource]
    ) -> None: ...


class AppServerAgentHandler(ResourceHandler):
    """Agents on the App Server. One the fleet made (by its tags) and no longer declares is removed only with
    `--prune`, and only by a named fleet. Each keeps the record of what the fleet made under it in a secret.
    `ahead`: the handlers whose reads of an agent start as soon as its record is read (its memory files), so a
    plan's reads of many agents flow on the socket without waiting for every record first."""

    records_children = True

    def __init__(self, ahead: Sequence[ReadsAhead] = ()) -> None:
        self._ahead = tuple(ahead)

    def live_by_name(self, reader: LiveReader) -> dict[str, list[dict[str, Any]]]:
        return agents_by_name(reader)

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        for agent in declared_agents(fleet):
            yield Resource(
                address=agent.address,
                kind=AGENT,
                name=agent.name,
                attributes=_desired_attributes(fleet, agent.data),
                source=agent.at,
                sensitive=frozenset({"system"}) if agent.data["system_prompt"].get("sensitive") else frozenset(),
                protected=bool(agent.data.get("protect")),
                tags=frozenset(agent.data.get("tags", [])),
            )

    def agent_names(self, desired: Sequence[Resource]) -> Iterable[str]:
        return [resource.name for resource in desired]

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Every model handle must be one the server lists: the server itself accepts any."""
        if not desired:
            return []
        app_of(reader.client).ask_server_info_ahead()  # the plan's header names the server: asked alongside
        offered = sorted(str(m["handle"]) for m in app_of(reader.client).list_models() if m.get("handle"))
        return [
            Problem(
                (*agent.source, "llm_config", "model"),
                f"model handle '{agent.attributes['model']}' is not offered by {reader.client.base_url}",
                f"use one of: {', '.join(offered) or 'none: connect a provider to the App Server first'}",
            )
            for agent in desired
            if agent.attributes["model"] not in offered
        ]

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource | Ambiguity]:
        wanted = {resource.name for resource in desired}
        owner = reader.owner
        chosen = [
            (name, agents)
            for name, agents in agents_by_name(reader).items()
            if name in wanted or (owner.named and owner.owns_tagged(agents[0].get("tags")))
        ]  # declared, or made by the fleet and declared no more: a removal

        def read(found: tuple[str, list[dict[str, Any]]]) -> tuple[Recorded, ...] | None:
            record = read_app_record(reader, str(found[1][0]["id"]))
            for handler in self._ahead:
                with contextlib.suppress(LettaError):  # read again by its handler, which reports what failed
                    handler.read_ahead(reader, agent_address(found[0]), found[1][0], fleet)
            return record

        with ThreadPoolExecutor(max_workers=RECORD_READS) as pool:
            records = list(pool.map(read, chosen))
        for (name, agents), record in zip(chosen, records, strict=True):
            yield _live_agent(agents[0], record)
            if name in wanted and len(agents) > 1:
                yield _same_name(name, agents)

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is None and live is not None:
            return replace(compare(None, live), held="prune", detail="an agent holds its memory and messages")
        if desired is None or live is None or "compaction_settings" not in desired.attributes:
            return compare(desired, live)
        # Of the compaction settings, only the keys the file names are compared: the server fills in the rest.
        declared, held = desired.attributes["compaction_settings"], live.attributes.get("compaction_settings") or {}
        seen = {**live.attributes, "compaction_settings": {key: held.get(key) for key in declared}}
        return compare(desired, replace(live, attributes=seen))

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        app = app_of(session.client)
        if change.action is Action.DELETE:
            app.delete_agent(str(change.id))
            return None
        after = change.after or {}
        if change.action is Action.CREATE:
            body = {"name": change.name, **_request_fields(after), "tags": _tags(after, [], session)}
            created = session.create_by(change, body, app.create_agent)  # new memory files ride along
            intended = session.intended_record(change.address)
            if intended:  # a kill before the record after is written still leaves what was to be made known
                write_app_record(app, str(created["id"]), intended)
            return created
        changed = {key: after.get(key) for key in change.changed_fields()}
        fields = _request_fields(changed)
        current = list(change.state.get("tags") or [])
        if {"fleet", "tags", "protect"} & set(changed):
            fields["tags"] = _tags(after, current, session)
        return app.update_agent(str(change.id), fields, current_tags=current)

    def remember(self, change: Change, record: Sequence[Recorded], session: ApplySession) -> None:
        write_app_record(app_of(session.client), str(session.id_of(change.address)), record)

    def adopt(self, reader: LiveReader, agent: Mapping[str, Any]) -> Iterable[Adoption]:
        """The tags lettafleet puts on the agents it makes (the server keeps no metadata), the agent's others kept."""
        tags = list(agent.get("tags") or [])
        if is_tagged_managed(tags):
            return []
        agent_id, marked = str(agent["id"]), [*_declarable_tags(tags), *reader.owner.tags()]

        def write(connection: Connection) -> object:
            return app_of(connection).update_agent(agent_id, {"tags": marked}, current_tags=tags)

        return [Adoption(f"agent {agent['name']} ({agent_id})", write=write)]

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """The keys the App Server has, as the plan compares them; tags without lettafleet's marks or the server's."""
        fleet = one_fleet(agents, lambda agent: fleet_tagged(agent.get("tags") or []))
        if fleet:
            yield Exported("fleet", fleet)
        for agent in agents:
            yield from _exported_agent(agent)


def _exported_agent(agent: Mapping[str, Any]) -> Iterator[Exported]:
    name, live = str(agent["name"]), _live_attributes(agent)
    if live["description"] is not None:
        yield Exported("description", live["description"], name)
    prompt, files = exported_text_source(live["system"], f"prompts/{name}.md")
    yield Exported("system_prompt", prompt, name, files)
    yield Exported("llm_config", attributes(model=live["model"], context_window=live["context_window"]), name)
    if live["tags"]:
        yield Exported("tags", live["tags"], name)
    compaction = {key: value for key, value in live["compaction_settings"].items() if key in COMPACTION_KEYS}
    if compaction:
        yield Exported("compaction_settings", compaction, name)
    if live["protect"]:
        yield Exported("protect", True, name)


def _request_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `agent_create`/`agent_update` body fields for some agent attributes."""
    return {REQUEST_KEYS[key]: value for key, value in values.items() if key in REQUEST_KEYS and value is not None}


def _tags(after: Mapping[str, Any], current: Sequence[str], session: ApplySession) -> list[str]:
    """The declared tags (else the agent's own), with the applying fleet's ownership tags and its protection (the
    server drops `metadata`, where V1 keeps it)."""
    own = list(after["tags"]) if after.get("tags") is not None else _declarable_tags(current)
    return [*own, *session.owner.tags(), *([PROTECT_TAG] if after.get("protect") else [])]


def _same_name(name: str, agents: Sequence[Mapping[str, Any]]) -> Ambiguity:
    ids = tuple(str(agent["id"]) for agent in agents)
    return Ambiguity(
        agent_address(name),
        f"{len(agents)} agents are named {name} ({', '.join(ids)}); the plan uses {ids[0]}",
        ids,
        ids[0],
        "delete or rename the others on the App Server",
    )
