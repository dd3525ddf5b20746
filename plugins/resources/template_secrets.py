"""A template's `secrets:`: environment variables for the tools of every matched agent, as an agent's `secrets:`
declares them (docs/templates.md). Only their names ever show. A secret the template set on an agent lacking it is
recorded, and only such a one is removed when the line leaves the template; one the agent had is the application's.
Letta replaces an agent's whole set of secrets on each update: the set is sent whole, in the agent's one update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lettafleet.core import ApplySession, Change, Problem
from lettafleet.plugins.resources.secrets import Unset, resolved
from lettafleet.plugins.resources.template_record import Applied

SECRETS = "secrets"  # plan attribute: name -> value, always sensitive


def wanted_secrets(data: Mapping[str, Any], at: tuple[str | int, ...]) -> dict[str, Any]:
    """The secrets a template sets, by upper-cased name (a value, or Unset: refused before anything is written)."""
    if "secrets" not in data:
        return {}
    return {SECRETS: {name: declared.value for name, declared in resolved(data["secrets"], (*at, "secrets")).items()}}


def unset_problems(settings: Mapping[str, Any]) -> list[Problem]:
    """A secret whose environment variable is not set: a template sets the value it declares on every agent."""
    problems = []
    for name, value in (settings.get(SECRETS) or {}).items():
        if isinstance(value, Unset):
            problems.append(
                Problem(
                    value.at,
                    f"secret {name}: environment variable {value.variable} is not set",
                    "set it for this command (a template sets its value on every agent it matches, so "
                    "`preserve_existing` keeps nothing here)",
                )
            )
    return problems


def secrets_of(agent: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's secrets, name -> value, from a read of agents with `agent.secrets`."""
    return {str(secret.get("key")): secret.get("value") for secret in agent.get("secrets") or ()}


def live_secrets(held: Mapping[str, Any], wanted: Mapping[str, Any], done: Applied) -> dict[str, Any]:
    """The agent's values of the secrets the template declares or its record says it set."""
    names = set(wanted.get(SECRETS) or {}) | set(done.secrets)
    if SECRETS not in wanted and not done.secrets:
        return {}
    return {SECRETS: {name: held[name] for name in sorted(names) if name in held}}


def wanted_here(wanted: Mapping[str, Any], done: Applied) -> dict[str, Any]:
    """No longer the secrets the record says the template set and it no longer declares."""
    return {SECRETS: {}} if done.secrets and SECRETS not in wanted else {}


def secret_differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """`set secret API_KEY`, `remove secret API_KEY`: names only, never a value."""
    old, new = before.get(SECRETS) or {}, after.get(SECRETS) or {}
    found = [f"set secret {name}" for name in sorted(new) if name not in old or old[name] != new[name]]
    return found + [f"remove secret {name}" for name in sorted(set(old) - set(new)) if SECRETS in after]


def secrets_request(change: Change, session: ApplySession, held: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's whole set of secrets as this change leaves it (`held`: its set now), for its one update; {}
    when the secrets do not change."""
    if SECRETS not in change.changed_fields():
        return {}
    old, new = (change.before or {}).get(SECRETS) or {}, (change.after or {}).get(SECRETS) or {}
    session.client.hide(*(value for value in [*held.values(), *new.values()] if isinstance(value, str)))
    kept = {name: value for name, value in held.items() if name not in set(old) - set(new)}
    return {SECRETS: {**kept, **new}}


def recorded_secrets(change: Change, done: Applied, held: Sequence[str]) -> tuple[str, ...]:
    """The names the record keeps: those it set before and still declares, and those this change set on an agent
    that did not have them (`held`: the names the agent had)."""
    declared = set((change.after or {}).get(SECRETS) or {})
    return tuple(sorted({name for name in done.secrets if name in declared} | (declared - set(held))))
