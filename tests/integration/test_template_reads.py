"""What a template plan's narrowed read rests on, against the real dev server (Letta 0.16.8): `query_text` keeps
every agent whose name contains it, whatever the case, reading `_` as any one character (so a glob's literal
prefix finds a superset of the names the glob matches), and the server says it is a 0.16 release."""

from __future__ import annotations

from lettafleet.plugins.backends.letta_v1.server import searches_names_within
from tests.integration.test_templates_rollout import made_by_the_application, prefix


def names_found(client, text: str, prefix: str) -> set[str]:
    return {agent["name"] for agent in client.list_all("/v1/agents/", query_text=text) if prefix in agent["name"]}


def test_query_text_keeps_every_agent_whose_name_contains_it_whatever_the_case(letta_server, client, prefix):
    first = made_by_the_application(client, f"{prefix}-user-1")["name"]
    middle = made_by_the_application(client, f"{prefix}-old-user-2")["name"]

    assert searches_names_within(client.server_info())
    assert names_found(client, f"{prefix}-user-", prefix) == {first}
    assert names_found(client, f"{prefix}-USER-".upper(), prefix) == {first}
    assert names_found(client, "old-user-2", prefix) == {middle}  # anywhere in the name, not only at its start
    assert names_found(client, f"{prefix}_user_", prefix) == {first}  # `_` is any one character: still a superset


__all__ = ["prefix"]  # the fixture: a unique prefix, whose agents are deleted afterwards
