"""Secrets: the environment variables an agent's tools read, declared as lettactl declares them, per agent
(`secrets:`) and for every agent (`global-secrets:`), each `{from_env: VAR}` or `{value: ...}`.

Only their names ever show: every value is masked in plans, logs and comments. Letta replaces an agent's
whole set of secrets on each update, so an agent's secrets are one resource, planned as the complete set it
will have: the declared ones, and those already on the server that the fleet does not name, unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lettafleet.core import (
    Action,
    ApplySession,
    Change,
    Fleet,
    LiveReader,
    Problem,
    Resource,
    ResourceKind,
    SchemaFragment,
    address_of,
    boolean,
    compare,
    hookimpl,
    string,
)
from lettafleet.plugins.resources.server_reads import AGENTS_WITH_SECRETS, agents_by_name

KIND = "secret_set"
GLOBAL = "global-secrets"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


@dataclass(frozen=True)
class Unset:
    """A secret whose environment variable is not set while planning. It stops the plan, unless the fleet
    says to keep whatever the server has (`preserve_existing: true`)."""

    variable: str
    preserve_existing: bool
    at: tuple[Any, ...]


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [
        ResourceKind(
            KIND, "secret sets", "an agent's secrets: environment variables for its tools", named_in_plan=False
        )
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    source = {
        "type": "dict",
        "schema": {
            "from_env": string(empty=False, regex=NAME_PATTERN, excludes="value", required=True),
            "value": string(excludes="from_env", required=True),
            "preserve_existing": boolean(),
        },
    }
    secrets = {"type": "dict", "keysrules": {"type": "string", "regex": NAME_PATTERN}, "valuesrules": source}
    return [SchemaFragment({GLOBAL: secrets}), SchemaFragment({"secrets": secrets}, at=("agents",))]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    """Names are upper-cased, as lettactl does: two names that differ only in case are one secret."""
    problems = []
    places = [((GLOBAL,), fleet.data.get(GLOBAL, {}))]
    places += [(("agents", i, "secrets"), agent.get("secrets", {})) for i, agent in enumerate(fleet.data["agents"])]
    for place, declared in places:
        seen: dict[str, str] = {}
        for name in declared:
            first = seen.setdefault(name.upper(), name)
            if first != name:
                problems.append(
                    Problem((*place, name), f"secret '{name}' is '{first}' again: names are upper-cased", "keep one")
                )
    return problems


@hookimpl
def lettafleet_desired(fleet: Fleet) -> Iterable[Resource]:
    fleet_wide = _resolved(fleet.data.get(GLOBAL, {}), (GLOBAL,))
    for index, agent in enumerate(fleet.data["agents"]):
        own = _resolved(agent.get("secrets", {}), ("agents", index, "secrets"))
        values = {**fleet_wide, **own}
        if not values:
            continue
        agent_address = address_of("agent", agent["name"])
        yield Resource(
            f"{agent_address}.secrets",
            KIND,
            "secrets",
            values,
            parent=agent_address,
            source=("agents", index, "secrets") if own else (GLOBAL,),
            sensitive=frozenset(values),
        )


def _resolved(declared: Mapping[str, Mapping[str, Any]], place: tuple[Any, ...]) -> dict[str, Any]:
    """Each secret's value: its `value`, or its environment variable's, or Unset when that is not set."""
    values: dict[str, Any] = {}
    for name, source in declared.items():
        if "value" in source:
            values[name.upper()] = source["value"]
            continue
        variable = source["from_env"]
        found = os.environ.get(variable)
        values[name.upper()] = (
            found if found is not None else Unset(variable, bool(source.get("preserve_existing")), (*place, name))
        )
    return values


@hookimpl
def lettafleet_preflight(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
    """Every environment variable must be set, except where the fleet keeps the server's value and there is one."""
    unset = [
        (resource, name, value)
        for resource in desired
        if resource.kind == KIND
        for name, value in resource.attributes.items()
        if isinstance(value, Unset)
    ]
    if not unset:
        return []
    on_server = {
        address_of("agent", agent_name): {secret["key"] for secret in agent.get("secrets") or []}
        for agent_name, agent in agents_by_name(reader, AGENTS_WITH_SECRETS).items()
    }
    problems = []
    for resource, name, value in unset:
        if value.preserve_existing and name in on_server.get(resource.parent or "", set()):
            continue
        problems.append(
            Problem(
                value.at,
                f"secret {name}: environment variable {value.variable} is not set"
                + (" and the server has no value to keep" if value.preserve_existing else ""),
                "set it for this command"
                + ("" if value.preserve_existing else ", or add `preserve_existing: true` to keep the server's value"),
            )
        )
    return problems


@hookimpl
def lettafleet_live_reads(desired: Sequence[Resource]) -> Iterable[tuple[str, dict[str, Any]]]:
    return [AGENTS_WITH_SECRETS] if any(resource.kind == KIND for resource in desired) else []


@hookimpl
def lettafleet_read_live(reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Resource]:
    wanted = {resource.parent for resource in desired if resource.kind == KIND}
    if not wanted:
        return []
    found = []
    for name, agent in agents_by_name(reader, AGENTS_WITH_SECRETS).items():
        agent_address = address_of("agent", name)
        if agent_address in wanted:
            values = {secret["key"]: secret.get("value") for secret in agent.get("secrets") or []}
            found.append(
                Resource(
                    f"{agent_address}.secrets",
                    KIND,
                    "secrets",
                    values,
                    parent=agent_address,
                    id=agent["id"],
                    sensitive=frozenset(values),
                )
            )
    return found


@hookimpl
def lettafleet_diff(desired: Resource | None, live: Resource | None) -> Change | None:
    """The complete set the agent will have: what the server has, with the declared secrets over it. Unset
    secrets that may be kept are left as the server has them."""
    model = desired or live
    if model is None or model.kind != KIND:
        return None
    if desired is None:
        return compare(None, live)
    declared = {name: value for name, value in desired.attributes.items() if not isinstance(value, Unset)}
    complete = {**(live.attributes if live else {}), **declared}
    change = compare(replace(desired, attributes=complete, sensitive=frozenset(complete)), live)
    if change.action is Action.CREATE and not complete:
        return replace(change, action=Action.NO_OP)
    return change


@hookimpl
def lettafleet_ride_along(
    parent: Change, child: Change, request: dict[str, Any], session: ApplySession
) -> Callable[[Mapping[str, Any]], str | None] | None:
    """A new agent gets its secrets in its create request."""
    if parent.kind != "agent" or child.kind != KIND:
        return None
    request["secrets"] = dict(child.after or {})
    names = sorted(request["secrets"])

    def check(answer: Mapping[str, Any]) -> str | None:
        have = {secret.get("key") for secret in answer.get("secrets") or []}
        missing = [name for name in names if name not in have]
        return f"the server created agent {parent.name} without secrets {', '.join(missing)}" if missing else None

    return check


@hookimpl
def lettafleet_apply(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    if change.kind != KIND:
        return None
    agent_id = session.id_of(change.parent or "")
    session.client.patch(f"/v1/agents/{agent_id}", json={"secrets": dict(change.after or {})})
    return {"id": agent_id}  # the answer holds every secret's value: none of it is kept
