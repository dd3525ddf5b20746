"""Providers: the BYOK model providers a fleet declares (top-level `providers:`), each with its API key from
`{from_env: VAR}` or `{value: ...}`, as lettactl declares them; keys are masked in plans, logs and comments.

Letta 0.16.8 keeps no metadata on a provider, so nothing marks the ones a fleet made. `prune_missing_providers:
true` therefore plans the deletion of every BYOK provider the file does not declare (as lettactl does), each shown
in the plan; Letta's base providers (from its environment) are never touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lettafleet.core import (
    Action,
    ApplySession,
    Change,
    Fleet,
    LiveReader,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    address_of,
    attributes,
    boolean,
    hookimpl,
    secret,
    string,
)

KIND = "provider"
PROVIDERS: Read = ("/v1/providers/", {})
BYOK = "byok"
KEYS = ("api_key", "access_key")  # given as {from_env | value}; sensitive
SETTINGS = ("provider_type", "base_url", "region", "api_version")
PRUNE = "prune_missing_providers"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # an environment variable's name


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    return [ResourceKind(KIND, "providers", "a BYOK model provider", handler=ProviderHandler())]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    key = secret(
        {
            "type": "dict",
            "schema": {
                "from_env": string(empty=False, regex=VARIABLE_PATTERN, excludes="value", required=True),
                "value": string(empty=False, excludes="from_env", required=True),
            },
        }
    )
    provider = {
        "name": string(required=True, empty=False),
        "provider_type": string(required=True, empty=False),
        "api_key": {**key, "required": True},
        "access_key": key,
        "base_url": string(empty=False),
        "region": string(empty=False),
        "api_version": string(empty=False),
    }
    return [
        SchemaFragment({"providers": {"type": "list", "schema": {"type": "dict", "schema": provider}}}),
        SchemaFragment({PRUNE: boolean()}),
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    """Names are unique. `from_env` is checked when planning: validating needs no environment."""
    problems = []
    names: set[str] = set()
    for index, entry in enumerate(fleet.data.get("providers") or []):
        at = ("providers", index)
        if entry["name"] in names:
            problems.append(Problem((*at, "name"), f"provider '{entry['name']}' is declared twice", "keep one"))
        names.add(entry["name"])
    return problems


def _unset_keys(entry: Mapping[str, Any], at: tuple[Any, ...]) -> list[Problem]:
    """A problem for each key whose `from_env` variable is not set."""
    variables = {key: (entry.get(key) or {}).get("from_env") for key in KEYS}
    return [
        Problem(
            (*at, key, "from_env"),
            f"provider '{entry['name']}': environment variable {variable} is not set",
            "set it for this command",
        )
        for key, variable in variables.items()
        if variable and variable not in os.environ
    ]


def _key(source: Mapping[str, Any] | None) -> str | None:
    if not source:
        return None
    return source["value"] if "value" in source else os.environ.get(source["from_env"])


class ProviderHandler(ResourceHandler):
    def __init__(self) -> None:
        self._prune = False

    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        self._prune = bool(fleet.data.get(PRUNE))
        for index, entry in enumerate(fleet.data.get("providers") or []):
            values = attributes(
                **{key: entry.get(key) for key in SETTINGS}, **{key: _key(entry.get(key)) for key in KEYS}
            )
            yield Resource(
                address_of(KIND, entry["name"]),
                KIND,
                entry["name"],
                values,
                source=("providers", index),
                sensitive=frozenset(KEYS),
                state={"unset": _unset_keys(entry, ("providers", index))},
            )

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Every `from_env` key is set."""
        return [problem for resource in desired for problem in resource.state.get("unset") or []]

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [PROVIDERS] if desired or self._prune else []

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        """The declared providers Letta has; with `prune_missing_providers`, also every BYOK one not declared."""
        if not desired and not self._prune:
            return []
        wanted = {resource.address for resource in desired}
        path, params = PROVIDERS
        found = []
        for provider in reader.list_all(path, **params):
            if provider.get("provider_category") != BYOK:
                continue
            live = _live(provider, reader)
            if live.address in wanted or self._prune:
                found.append(live)
        return found

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.action is Action.DELETE:
            session.delete(f"/v1/providers/{change.id}")
            return None
        after = dict(change.after or {})
        session.client.hide(*(str(after[key]) for key in KEYS if after.get(key)))
        if change.action is Action.CREATE:
            answer = session.client.post("/v1/providers/", json={"name": change.name, **after})
            session.record_id(change.address, answer["id"])
        else:
            body = {key: value for key, value in after.items() if key != "provider_type"}
            answer = session.client.patch(f"/v1/providers/{change.id}", json=body)
        return {key: value for key, value in answer.items() if key not in (*KEYS, "api_key_enc", "access_key_enc")}


def _live(provider: Mapping[str, Any], reader: LiveReader) -> Resource:
    """A provider as plans compare it. 0.16.8 answers its keys in `*_enc` (in clear on a server with no
    encryption key); they are masked from now on."""
    keys = {key: provider.get(f"{key}_enc") or provider.get(key) for key in KEYS}
    reader.client.hide(*(value for value in keys.values() if isinstance(value, str)))
    values = {**{key: provider.get(key) for key in SETTINGS}, **keys}
    name = str(provider.get("name"))
    return Resource(address_of(KIND, name), KIND, name, values, id=provider["id"], sensitive=frozenset(KEYS))
