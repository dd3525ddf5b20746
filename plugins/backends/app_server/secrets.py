"""An agent's `secrets:` on the App Server, by `secret_apply` (the server upper-cases names). Values are never
shown: `secret_list` returns them, so every one read is masked. The agent's `LETTAFLEET_RECORD` secret holds the
fleet's record (docs/removing.md): it is no user secret, never shown, compared or removed as one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    Action,
    ApplySession,
    Change,
    Exported,
    LiveReader,
    Problem,
    Read,
    Resource,
    RideAlongCheck,
)
from lettafleet.plugins.backends.app_server.agents import RECORD_READS, RECORD_SECRET, agents_by_name, secrets_of
from lettafleet.plugins.backends.app_server.fleet_connection import app_of
from lettafleet.plugins.resources.agents import agent_address
from lettafleet.plugins.resources.secrets import KIND, VALUE, SecretHandler

CHANGED_ON_SERVER = "the server's value differs from the file's (neither is shown)"


class AppServerSecretHandler(SecretHandler):
    """`secrets:` as on V1, written with `secret_apply`: one request per agent sets and unsets this plan's
    secrets, and leaves the agent's others (set by hand, or the record) as they are."""

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """The record's secret name is lettafleet's own; then V1's checks (an unset environment variable)."""
        reserved = [
            Problem(
                resource.source,
                f"secret {RECORD_SECRET} is where lettafleet keeps the agent's record on the App Server",
                "give the secret another name",
            )
            for resource in desired
            if resource.name == RECORD_SECRET
        ]
        return reserved or list(super().preflight(reader, desired))

    def secrets_on_server(self, reader: LiveReader, agents: set[str]) -> dict[str, dict[str, Any]]:
        """The secrets of `agents` (addresses) that exist, by address, without the record: one read each, sent
        together on the one socket (and shared with the read of the agents' records)."""
        found = {
            address: str(matched[0]["id"])
            for name, matched in agents_by_name(reader).items()
            if (address := agent_address(name)) in agents
        }
        with ThreadPoolExecutor(max_workers=RECORD_READS) as pool:
            read = list(pool.map(lambda agent_id: secrets_of(reader, agent_id), found.values()))
        return {
            address: {name: value for name, value in secrets.items() if name != RECORD_SECRET}
            for address, secrets in zip(found, read, strict=True)
        }

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return []  # no REST reads: the secrets are read per agent, over the protocol

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """As on V1; a value changed on the server says so, without either value."""
        change = super().diff(desired, live)
        if change.action is Action.UPDATE and live is not None:
            return replace(change, detail=CHANGED_ON_SERVER)
        return change

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        return None  # `agent_create` drops `secrets`: they are set once the agent exists

    def write_agent_secrets(self, agent: str, session: ApplySession) -> None:
        """This plan's secret changes of `agent`, in one `secret_apply`: the server sets and unsets those names
        only, so secrets set by hand stay."""
        set_values: dict[str, str] = {}
        unset: list[str] = []
        for change in session.plan.children(agent):
            if change.kind != KIND or not change.changes_something:
                continue
            if change.removes:
                unset.append(change.name)
            else:
                set_values[change.name] = str((change.after or {})[VALUE])
        app_of(session.client).apply_secrets(session.id_of(agent), set_values=set_values, unset=unset)

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Names only, as on V1: each read from the environment variable of its name, the server's value kept
        while that variable is unset."""
        for agent in agents:
            names = sorted(name for name in secrets_of(reader, str(agent["id"])) if name != RECORD_SECRET)
            if names:
                secrets = {name: {"from_env": name, "preserve_existing": True} for name in names}
                yield Exported("secrets", secrets, str(agent["name"]))
