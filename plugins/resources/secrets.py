"""Secrets: the environment variables an agent's tools read, declared as lettactl declares them, per agent
(`secrets:`) and for every agent (`global-secrets:`), each `{from_env: VAR}` or `{value: ...}`.

Only their names ever show: every value is masked in plans, logs and comments. Each secret of an agent is one
resource (`agent.support.secret.API_KEY`), so the agent's record names the secrets the fleet set: a name removed
from the file is deleted from the agent, and a secret set by hand is never touched. Letta replaces an agent's
whole set of secrets on each update, so the first of an agent's secret changes to run writes them all, in one
request: the set on the server, with this plan's changes made to it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lettafleet.core import (
    ApplyError,
    ApplySession,
    Change,
    Exported,
    Fleet,
    LettaError,
    LiveReader,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    RideAlongCheck,
    SchemaFragment,
    address_of,
    boolean,
    compare,
    hookimpl,
    string,
)
from lettafleet.core import secret as holding_secrets  # `secret` names a declared secret here
from lettafleet.plugins.backends.letta_v1.reads import AGENTS_WITH_SECRETS
from lettafleet.plugins.resources.agents import AGENT, DeclaredAgent, agent_address, declared_agents, live_agents

KIND = "secret"
GLOBAL = "global-secrets"
PRESERVED = "preserve_secrets"  # lettactl's key: names lettafleet never removes from an agent
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
VALUE = "value"  # a secret resource's one attribute, always sensitive


@dataclass(frozen=True)
class Unset:
    """A secret whose environment variable is not set while planning. It stops the plan, unless the fleet
    says to keep whatever the server has (`preserve_existing: true`)."""

    variable: str
    preserve_existing: bool
    at: tuple[Any, ...]


@dataclass(frozen=True)
class Declared:
    """One secret as the fleet gives it to an agent: its value (or Unset), its place, and its protection."""

    value: Any
    at: tuple[Any, ...]
    protect: bool


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [
        ResourceKind(
            KIND,
            "secrets",
            "a secret of an agent: an environment variable for its tools",
            handler=SecretHandler(),
        )
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    secrets = secrets_schema()
    preserved = {"type": "list", "schema": string(empty=False, regex=NAME_PATTERN)}
    return [
        SchemaFragment({GLOBAL: secrets, PRESERVED: preserved}),
        SchemaFragment({"secrets": secrets}, at=("agents",)),
    ]


def secrets_schema() -> dict[str, Any]:
    """The rules of a `secrets:` map. Public, for kinds that set secrets too (templates)."""
    source = {
        "type": "dict",
        "schema": {
            "from_env": string(empty=False, regex=NAME_PATTERN, excludes="value", required=True),
            "value": string(excludes="from_env", required=True),
            "preserve_existing": boolean(),
            "protect": boolean(),
        },
    }
    names = {"type": "string", "regex": NAME_PATTERN}
    found: dict[str, Any] = holding_secrets({"type": "dict", "keysrules": names, "valuesrules": source})
    return found


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


def secret_address(agent: str, name: str) -> str:
    """`agent.support.secret.API_KEY`."""
    return address_of(KIND, name, agent)


def declared_secrets(fleet: Fleet, agent: DeclaredAgent) -> dict[str, Declared]:
    """The agent's secrets by upper-cased name: the fleet-wide ones, with the agent's own over them."""
    fleet_wide = resolved(fleet.data.get(GLOBAL, {}), (GLOBAL,))
    return {**fleet_wide, **resolved(agent.data.get("secrets", {}), (*agent.at, "secrets"))}


@dataclass
class _AgentWrite:
    """One agent's secrets in one apply: written once, by the first of its secret changes to run."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    error: str | None = None


class SecretHandler(ResourceHandler):
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._writes: weakref.WeakKeyDictionary[ApplySession, dict[str, _AgentWrite]] = weakref.WeakKeyDictionary()

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        """Each declared secret; one named in `preserve_secrets` is protected, so the agent's record keeps it
        protected and its removal from the file is held, as `protect: true` holds it."""
        preserved = {name.upper() for name in fleet.data.get(PRESERVED, [])}
        for agent in declared_agents(fleet):
            for name, secret in declared_secrets(fleet, agent).items():
                yield Resource(
                    secret_address(agent.address, name),
                    KIND,
                    name,
                    {VALUE: secret.value},
                    parent=agent.address,
                    source=secret.at,
                    sensitive=frozenset({VALUE}),
                    protected=secret.protect or name in preserved,
                )

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Every environment variable must be set, except where the fleet keeps the server's value and there is one."""
        unset = [resource for resource in desired if isinstance(resource.attributes[VALUE], Unset)]
        if not unset:
            return []
        on_server = self.secrets_on_server(reader, {resource.parent or "" for resource in unset})
        problems = []
        for resource in unset:
            value: Unset = resource.attributes[VALUE]
            if value.preserve_existing and resource.name in on_server.get(resource.parent or "", {}):
                continue
            problems.append(
                Problem(
                    value.at,
                    f"secret {resource.name}: environment variable {value.variable} is not set"
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

    def secrets_on_server(self, reader: LiveReader, agents: set[str]) -> dict[str, dict[str, Any]]:
        """The live agents' secrets (name -> value), by the agent's address (at least those of `agents`): what a
        backend's own handler reads its way."""
        return _on_server(reader)

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [AGENTS_WITH_SECRETS] if desired else []

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        """The declared secrets the agents have; the others on the server are nobody's business here."""
        if not desired:
            return []
        on_server = self.secrets_on_server(reader, {resource.parent or "" for resource in desired})
        return [
            _live(resource.parent or "", resource.name, on_server[resource.parent or ""][resource.name])
            for resource in desired
            if resource.name in on_server.get(resource.parent or "", {})
        ]

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource]:
        """Recorded secrets no longer declared, where the agent still has them (one deleted by hand is gone)."""
        on_server = self.secrets_on_server(reader, {secret.parent or "" for secret in recorded})
        return [
            replace(
                _live(secret.parent or "", secret.name, on_server[secret.parent or ""][secret.name]),
                protected=secret.protected,
            )
            for secret in recorded
            if secret.name in on_server.get(secret.parent or "", {})
        ]

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """A removal shows no value either. A secret whose variable is unset and whose server value may stay is
        left as the server has it."""
        if desired is None and live is not None:
            return replace(compare(None, live), sensitive=live.sensitive)
        if desired is not None and isinstance(desired.attributes[VALUE], Unset):
            return compare(replace(desired, attributes=dict(live.attributes) if live else {}), live)
        return compare(desired, live)

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        """A new agent gets its secrets in its create request."""
        if parent.kind != AGENT:
            return None
        request.setdefault("secrets", {})[child.name] = (child.after or {})[VALUE]

        def check(answer: Mapping[str, Any]) -> str | None:
            if child.name in {secret.get("key") for secret in answer.get("secrets") or []}:
                return None
            return f"the server created agent {parent.name} without secret {child.name}"

        return check

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        """The agent's whole set, written by the first of its secret changes; the others share its outcome."""
        agent = change.parent or ""
        with self._guard:
            write = self._writes.setdefault(session, {}).setdefault(agent, _AgentWrite())
        with write.lock:
            if not write.done:
                write.done = True
                try:
                    self.write_agent_secrets(agent, session)
                except (ApplyError, LettaError) as error:
                    write.error = session.client.mask(str(error))
                for sibling in session.plan.children(agent):  # written in the same request: reported with it
                    if sibling.kind == KIND and sibling.changes_something and sibling.address != change.address:
                        session.sent_with(sibling.address, change.address, write.error)
        if write.error:
            raise ApplyError(write.error)
        return None  # the answer holds every secret's value: none of it is kept

    def write_agent_secrets(self, agent: str, session: ApplySession) -> None:
        """Write this plan's secret changes of `agent` (an address), all in one request."""
        _write_set(agent, session)

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


def _write_set(agent: str, session: ApplySession) -> None:
    """Read the agent's secrets as they are now, make this plan's secret changes to them, and write the set:
    secrets set by hand (never in the plan) stay as they are."""
    agent_id = session.id_of(agent)
    current = session.client.get(f"/v1/agents/{agent_id}", include=["agent.secrets"])
    secrets = {secret["key"]: secret.get("value") for secret in current.get("secrets") or []}
    session.client.hide(*(value for value in secrets.values() if isinstance(value, str)))
    for change in session.plan.children(agent):
        if change.kind != KIND or not change.changes_something:
            continue
        if change.removes:
            secrets.pop(change.name, None)
        else:
            secrets[change.name] = (change.after or {})[VALUE]
    session.client.patch(f"/v1/agents/{agent_id}", json={"secrets": secrets})


def _on_server(reader: LiveReader) -> dict[str, dict[str, Any]]:
    """Each live agent's secrets (name -> value), by the agent's address."""
    return {
        agent_address(name): {secret["key"]: secret.get("value") for secret in agent.get("secrets") or []}
        for name, agent in live_agents(reader, AGENTS_WITH_SECRETS).items()
    }


def _live(agent: str, name: str, value: Any) -> Resource:
    return Resource(secret_address(agent, name), KIND, name, {VALUE: value}, parent=agent, sensitive=frozenset({VALUE}))


def resolved(declared: Mapping[str, Mapping[str, Any]], place: tuple[Any, ...]) -> dict[str, Declared]:
    """Each secret's value by upper-cased name: its `value`, or its environment variable's, or Unset when that is
    not set. Public, for templates' secrets too."""
    values: dict[str, Declared] = {}
    for name, source in declared.items():
        at, protect = (*place, name), bool(source.get("protect"))
        if "value" in source:
            values[name.upper()] = Declared(source["value"], at, protect)
            continue
        variable = source["from_env"]
        found = os.environ.get(variable)
        value = found if found is not None else Unset(variable, bool(source.get("preserve_existing")), at)
        values[name.upper()] = Declared(value, at, protect)
    return values
