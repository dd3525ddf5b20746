"""Secrets: the environment variables an agent's tools read, declared as lettactl declares them, per agent
(`secrets:`) and for every agent (`global-secrets:`), each `{from_env: VAR}` or `{value: ...}`.

Only their names ever show: every value is masked in plans, logs and comments. Letta replaces an agent's
whole set of secrets on each update, so an agent's secrets are one resource, planned as the complete set it
will have: the declared ones, and those already on the server that the fleet does not name, unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lettafleet.core import (
    AGENTS_WITH_SECRETS,
    Action,
    ApplySession,
    Change,
    Exported,
    Fleet,
    LiveReader,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    RideAlongCheck,
    SchemaFragment,
    boolean,
    compare,
    hookimpl,
    string,
)
from lettafleet.plugins.resources.agents import AGENT, agent_address, declared_agents, live_agents

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
            KIND,
            "secret sets",
            "an agent's secrets: environment variables for its tools",
            named_in_plan=False,
            handler=SecretSetHandler(),
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
    places: list[tuple[tuple[str | int, ...], Any]] = [((GLOBAL,), fleet.data.get(GLOBAL, {}))]
    places += [((*agent.at, "secrets"), agent.data.get("secrets", {})) for agent in declared_agents(fleet)]
    for place, declared in places:
        seen: dict[str, str] = {}
        for name in declared:
            first = seen.setdefault(name.upper(), name)
            if first != name:
                problems.append(
                    Problem((*place, name), f"secret '{name}' is '{first}' again: names are upper-cased", "keep one")
                )
    return problems


class SecretSetHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        fleet_wide = _resolved(fleet.data.get(GLOBAL, {}), (GLOBAL,))
        for agent in declared_agents(fleet):
            own = _resolved(agent.data.get("secrets", {}), (*agent.at, "secrets"))
            values = {**fleet_wide, **own}
            if not values:
                continue
            yield Resource(
                f"{agent.address}.secrets",
                KIND,
                "secrets",
                values,
                parent=agent.address,
                source=(*agent.at, "secrets") if own else (GLOBAL,),
                sensitive=frozenset(values),
            )

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Every environment variable must be set, except where the fleet keeps the server's value and there is one."""
        unset = [
            (resource, name, value)
            for resource in desired
            for name, value in resource.attributes.items()
            if isinstance(value, Unset)
        ]
        if not unset:
            return []
        on_server = {
            agent_address(agent_name): {secret["key"] for secret in agent.get("secrets") or []}
            for agent_name, agent in live_agents(reader, AGENTS_WITH_SECRETS).items()
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
                    + (
                        ""
                        if value.preserve_existing
                        else ", or add `preserve_existing: true` to keep the server's value"
                    ),
                )
            )
        return problems

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [AGENTS_WITH_SECRETS] if desired else []

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        wanted = {resource.parent for resource in desired}
        if not wanted:
            return []
        found = []
        for name, agent in live_agents(reader, AGENTS_WITH_SECRETS).items():
            parent = agent_address(name)
            if parent in wanted:
                values = {secret["key"]: secret.get("value") for secret in agent.get("secrets") or []}
                found.append(
                    Resource(
                        f"{parent}.secrets",
                        KIND,
                        "secrets",
                        values,
                        parent=parent,
                        id=agent["id"],
                        sensitive=frozenset(values),
                    )
                )
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """The complete set the agent will have: what the server has, with the declared secrets over it. Unset
        secrets that may be kept are left as the server has them."""
        if desired is None:
            return compare(None, live)
        declared = {name: value for name, value in desired.attributes.items() if not isinstance(value, Unset)}
        complete = {**(live.attributes if live else {}), **declared}
        change = compare(replace(desired, attributes=complete, sensitive=frozenset(complete)), live)
        if change.action is Action.CREATE and not complete:
            return replace(change, action=Action.NO_OP)
        return change

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        """A new agent gets its secrets in its create request."""
        if parent.kind != AGENT:
            return None
        request["secrets"] = dict(child.after or {})
        names = sorted(request["secrets"])

        def check(answer: Mapping[str, Any]) -> str | None:
            have = {secret.get("key") for secret in answer.get("secrets") or []}
            missing = [name for name in names if name not in have]
            return f"the server created agent {parent.name} without secrets {', '.join(missing)}" if missing else None

        return check

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        agent_id = session.id_of(change.parent or "")
        session.client.patch(f"/v1/agents/{agent_id}", json={"secrets": dict(change.after or {})})
        return None  # the answer holds every secret's value: none of it is kept

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Names only, never values: each secret is read from the environment variable of its name, and the
        server's value is kept while that variable is unset."""
        wanted = {agent["id"] for agent in agents}
        path, params = AGENTS_WITH_SECRETS
        for agent in reader.list_all(path, **params):
            names = sorted(secret["key"] for secret in agent.get("secrets") or [])
            if agent["id"] in wanted and names:
                secrets = {name: {"from_env": name, "preserve_existing": True} for name in names}
                yield Exported("secrets", secrets, agent["name"])


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
