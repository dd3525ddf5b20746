"""Shared blocks on the App Server, one copy per agent: what a plan says of a copy its agent edited, of a change to
the shared block, and of a detach; and App Server secrets' drift, shown without a value."""

from __future__ import annotations

from lettafleet.core import Action, Resource
from lettafleet.plugins.backends.app_server.secrets import AppServerSecretHandler
from lettafleet.plugins.backends.app_server.shared_files import (
    ATTACHMENT,
    SharedFileHandler,
    copy_id,
    path_in,
)

ADDRESS = "agent.support.shared_block.policy"


def declared(value: str, *, owned: bool) -> Resource:
    attributes = {"value": value, "description": "the policy", "agent_owned": owned}
    return Resource(ADDRESS, ATTACHMENT, "policy", attributes, parent="agent.support", state={"agent": "support"})


def copy(value: str, *, edited: bool) -> Resource:
    values = {"value": value, "description": "the policy"}
    state = {"agent": "support", "path": "policy.md", "edited": edited, "agent_id": "agent-local-1", "layout": "v2"}
    return Resource(ADDRESS, ATTACHMENT, "policy", values, parent="agent.support", id="policy.md#x", state=state)


def test_a_new_copy_says_each_agent_gets_its_own():
    change = SharedFileHandler().diff(declared("Be kind.", owned=True), None)

    assert change.action is Action.CREATE
    assert "agent support's own copy" in change.detail and "no shared memory" in change.detail


def test_a_changed_shared_block_updates_a_copy_that_follows_the_file():
    change = SharedFileHandler().diff(declared("New rule.", owned=False), copy("Old rule.", edited=False))

    assert change.action is Action.UPDATE and change.after == {"value": "New rule.", "description": "the policy"}
    assert "follows the shared block" in change.detail and not change.drift


def test_an_edited_copy_that_follows_the_file_is_drift_named_by_its_agent_and_overwritten():
    change = SharedFileHandler().diff(declared("Rule.", owned=False), copy("Mine.", edited=True))

    assert change.action is Action.UPDATE
    assert change.detail.startswith("drift: agent support edited its copy (policy.md) since lettafleet wrote it")
    assert "apply overwrites it" in change.detail


def test_an_edited_agent_owned_copy_is_drift_apply_leaves_as_it_is():
    change = SharedFileHandler().diff(declared("Rule.", owned=True), copy("Mine.", edited=True))

    assert change.action is Action.NO_OP
    assert (
        change.drift and "agent support edited its copy" in change.drift and "kept (agent_owned: true)" in change.drift
    )


def test_an_agent_owned_copy_nobody_edited_is_no_change_whatever_the_file_says_now():
    change = SharedFileHandler().diff(declared("Rule two.", owned=True), copy("Rule one.", edited=False))

    assert change.action is Action.NO_OP and not change.drift


def test_detaching_deletes_a_copy_as_written_and_holds_an_edited_one_for_prune():
    plain = SharedFileHandler().diff(None, copy("Rule.", edited=False))
    edited = SharedFileHandler().diff(None, copy("Mine.", edited=True))

    assert plain.action is Action.DELETE and not plain.held and "value" in plain.sensitive
    assert edited.action is Action.DELETE and edited.held == "prune" and "edited its copy" in edited.detail


def test_a_copys_id_names_its_path_and_changes_with_its_value_not_a_description_the_server_filled_in():
    one = copy_id("system/policy.md", {"value": "A", "description": "d"})

    assert path_in(one) == "system/policy.md"
    assert one != copy_id("system/policy.md", {"value": "B", "description": "d"})
    assert one == copy_id("system/policy.md", {"value": "A", "description": "Memory block policy"})


def test_a_secret_changed_on_the_server_is_an_update_that_shows_no_value():
    handler = AppServerSecretHandler()
    address = "agent.support.secret.API_KEY"
    desired = Resource(address, "secret", "API_KEY", {"value": "from-file"}, sensitive=frozenset({"value"}))
    live = Resource(address, "secret", "API_KEY", {"value": "changed"}, sensitive=frozenset({"value"}))

    change = handler.diff(desired, live)

    assert (
        change.action is Action.UPDATE
        and change.detail == "the server's value differs from the file's (neither is shown)"
    )
    assert change.to_json()["before"] == {"value": "(sensitive)"} and change.to_json()["after"] == {
        "value": "(sensitive)"
    }
