"""Agents: name, description, system prompt, model, embedding and tags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    Ambiguity,
    ApplySession,
    Change,
    Fleet,
    LiveReader,
    Problem,
    Resource,
    ResourceKind,
    SchemaFragment,
    address_of,
    attributes,
    compare,
    hookimpl,
    integer,
    string,
    string_list,
    text_source,
)
from lettafleet.plugins.resources.server_reads import AGENTS, agents_named, described, managed_metadata

KIND = "agent"
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
EMBEDDING_FIELDS = (
    "embedding_endpoint_type",
    "embedding_endpoint",
    "embedding_model",
    "embedding_dim",
    "embedding_chunk_size",
)


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [ResourceKind(KIND, "agents", "a Letta agent, matched by name", named_in_plan=False)]


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
    embedding_config = {
        "embedding_endpoint_type": string(required=True, empty=False),
        "embedding_endpoint": string(empty=False),
        "embedding_model": string(required=True, empty=False),
        "embedding_dim": integer(required=True, min=1),
        "embedding_chunk_size": integer(min=1),
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
        "embedding_config": {"type": "dict", "excludes": "embedding", "schema": embedding_config},
        "tags": string_list(),
    }
    return [
        SchemaFragment(
            {"agents": {"type": "list", "required": True, "minlength": 1, "schema": {"type": "dict", "schema": agent}}}
        )
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, agent in enumerate(fleet.data["agents"]):
        at = ("agents", index)
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
        for tag in agent.get("tags", []):
            if "," in tag:
                problems.append(Problem((*at, "tags"), f"tag '{tag}' contains a comma", "use one tag per list item"))
    return problems


@hookimpl
def lettafleet_desired(fleet: Fleet) -> Iterable[Resource]:
    for index, agent in enumerate(fleet.data["agents"]):
        yield Resource(
            address=address_of(KIND, agent["name"]),
            kind=KIND,
            name=agent["name"],
            attributes=_desired_attributes(fleet, agent),
            source=("agents", index),
            sensitive=frozenset({"system"}) if agent["system_prompt"].get("sensitive") else frozenset(),
        )


def _desired_attributes(fleet: Fleet, agent: Mapping[str, Any]) -> Mapping[str, Any]:
    llm = agent["llm_config"]
    explicit_llm = any(field in llm for field in ENDPOINT_FIELDS)
    return attributes(
        description=agent.get("description"),
        system=fleet.text(agent["system_prompt"]).strip(),
        tags=sorted(agent.get("tags", [])) if "tags" in agent else None,
        model=None if explicit_llm else llm["model"],
        llm_config={key: llm[key] for key in ("model", *ENDPOINT_FIELDS) if key in llm} if explicit_llm else None,
        context_window=llm.get("context_window"),
        embedding=agent.get("embedding"),
        embedding_config=dict(agent["embedding_config"]) if "embedding_config" in agent else None,
    )


# (attribute, where the server lists what it offers, where the handle stands in an agent, what to call it)
HANDLE_CHECKS = (
    ("model", "/v1/models/", ("llm_config", "model"), "model"),
    ("embedding", "/v1/models/embedding", ("embedding",), "embedding"),
)


@hookimpl
def lettafleet_preflight(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
    """Every model and embedding handle must be one the server offers: checked before anything is written."""
    agents = [resource for resource in desired if resource.kind == KIND]
    problems: list[Problem] = []
    for attribute, listing, place, noun in HANDLE_CHECKS:
        using = [agent for agent in agents if attribute in agent.attributes]
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


@hookimpl
def lettafleet_live_reads(desired: Sequence[Resource]) -> Iterable[tuple[str, dict[str, Any]]]:
    return [AGENTS] if any(resource.kind == KIND for resource in desired) else []


@hookimpl
def lettafleet_read_live(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Resource | Ambiguity]:
    wanted = {resource.name for resource in desired if resource.kind == KIND}
    for name, agents in agents_named(reader).items():
        if name not in wanted:
            continue
        used = agents[0]
        yield Resource(address_of(KIND, name), KIND, name, _live_attributes(used), id=used["id"])
        if len(agents) > 1:
            yield _same_name(name, agents)


def _same_name(name: str, agents: list[dict[str, Any]]) -> Ambiguity:
    """Several agents of one name (a race, a cap, one made by hand): the plan uses the first, says which."""
    return Ambiguity.first_of(
        address_of(KIND, name),
        f"{len(agents)} agents are named '{name}'",
        [agent["id"] for agent in agents],
        "delete the agents that should not be there (`lettafleet delete agent ID --force`), or rename them, then "
        "plan again",
        chosen="lettafleet's own first, then the oldest",
        shown=[described(agent) for agent in agents],
    )


def _live_attributes(agent: Mapping[str, Any]) -> Mapping[str, Any]:
    llm = agent.get("llm_config") or {}
    embedding = agent.get("embedding_config") or {}
    return {
        "description": agent.get("description"),
        "system": (agent.get("system") or "").strip(),
        "tags": sorted(agent.get("tags") or []),
        "model": llm.get("handle") or agent.get("model"),
        "llm_config": {key: llm.get(key) for key in ("model", *ENDPOINT_FIELDS) if llm.get(key) is not None},
        "context_window": llm.get("context_window"),
        "embedding": embedding.get("handle") or agent.get("embedding"),
        "embedding_config": {key: embedding.get(key) for key in EMBEDDING_FIELDS if embedding.get(key) is not None},
    }


@hookimpl
def lettafleet_diff(desired: Resource | None, live: Resource | None) -> Change | None:
    model = desired or live
    if model is None or model.kind != KIND:
        return None
    if desired is None or live is None:
        return compare(desired, live)
    # Only what the fleet declares is compared; of an explicit config, only the keys it names.
    seen = dict(live.attributes)
    for config in ("llm_config", "embedding_config"):
        if config in desired.attributes:
            seen[config] = {key: seen[config].get(key) for key in desired.attributes[config]}
    return compare(desired, replace(live, attributes=seen))


@hookimpl
def lettafleet_apply(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    if change.kind != KIND:
        return None
    after = change.after or {}
    if change.action.value == "create":
        body: dict[str, Any] = {"name": change.name, "metadata": managed_metadata(), **_request_fields(after)}
        return session.create(change, "/v1/agents/", body)
    changed = {key: after.get(key) for key in change.changed_fields()}
    return session.client.patch(f"/v1/agents/{change.id}", json=_request_fields(changed, context=after))


def _request_fields(values: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Letta request fields for some agent attributes (context: all desired attributes, for updates)."""
    context = context or values
    body: dict[str, Any] = {}
    for key in ("description", "system", "tags", "model", "embedding", "embedding_config"):
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
