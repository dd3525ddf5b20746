"""The context-window warnings of a plan, through a throwaway plugin's kinds: core adds up what each change puts
into a holder's window, knowing no kind, and warns only for holders the plan touches that would pass the share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lettafleet.core import ContextUse, ResourceHandler, ResourceKind, hookimpl
from lettafleet.core.engine.context_budget import context_warnings
from lettafleet.core.engine.model import Action, Change, Plan
from lettafleet.core.engine.plugin_manager import get_plugin_manager


class Room(ResourceHandler):
    """A room holds a window of `window` tokens and says what it holds now (`text`, its notes' included)."""

    def context_use(self, change: Change, changes: Mapping[str, Change]) -> Iterable[ContextUse]:
        after = change.after or change.before or {}
        yield ContextUse(change.address, len(after["text"]), window=after["window"], remedy="Use a bigger room.")


class Note(ResourceHandler):
    """A note adds its text to the window of the room it is in; one taken out takes its text away."""

    def context_use(self, change: Change, changes: Mapping[str, Change]) -> Iterable[ContextUse]:
        now = len((change.before or {}).get("text", ""))
        then = len((change.after or {}).get("text", ""))
        yield ContextUse(change.parent or "", then - now)


class Plugin:
    @hookimpl
    def lettafleet_kinds(self):
        return [ResourceKind("room", "rooms", handler=Room()), ResourceKind("note", "notes", handler=Note())]


def room(name: str, action: Action, window: int = 100, text: str = "") -> Change:
    values = {"text": text, "window": window}
    return Change(f"room.{name}", "room", name, action, values, values)


def note(
    room_name: str, label: str, characters: int, action: Action = Action.CREATE, held: str | None = None
) -> Change:
    values = {"text": "x" * characters}
    before = None if action is Action.CREATE else values
    after = None if action is Action.DELETE else values
    address = f"room.{room_name}.note.{label}"
    return Change(address, "note", label, action, before, after, parent=f"room.{room_name}", held=held)


def warnings_of(*changes: Change, threshold: float = 0.8) -> dict[str, str]:
    plan = Plan.build("fleet.yaml", "http://letta.test", changes)
    manager = get_plugin_manager(extra_plugins=[Plugin()])
    return {warning.address: str(warning) for warning in context_warnings(plan, manager, threshold)}


def test_a_holder_whose_parts_add_up_past_the_share_is_warned_about_with_its_plugins_remedy():
    # 4 characters a token: 200 + 160 characters are 90 tokens of a 100-token window.
    warned = warnings_of(room("a", Action.NO_OP, text="x" * 200), note("a", "n1", 160))
    assert list(warned) == ["room.a"]
    assert warned["room.a"].startswith("Warning: room.a would fill 90% of its context window (about 90 of 100 tokens")
    assert "over 80%" in warned["room.a"] and "Use a bigger room." in warned["room.a"]
    assert "--context-threshold PERCENT" in warned["room.a"]


def test_below_the_share_or_with_a_higher_threshold_nothing_is_said():
    assert warnings_of(room("a", Action.NO_OP, text="x" * 200), note("a", "n1", 100)) == {}  # 75 tokens
    assert warnings_of(room("a", Action.NO_OP, text="x" * 200), note("a", "n1", 160), threshold=0.95) == {}


def test_a_full_holder_the_plan_does_not_touch_is_not_warned_about():
    assert warnings_of(room("a", Action.NO_OP, text="x" * 440), note("a", "n1", 40, Action.NO_OP)) == {}


def test_what_the_plan_removes_no_longer_counts_unless_the_removal_is_held_back():
    # The room holds 600 characters now, 400 of them the note's; without it, 50 of 100 tokens.
    assert warnings_of(room("a", Action.UPDATE, text="x" * 600), note("a", "n1", 400, Action.DELETE)) == {}
    held = note("a", "n1", 400, Action.DELETE, held="prune")
    assert list(warnings_of(room("a", Action.UPDATE, text="x" * 600), held)) == ["room.a"]


def test_a_holder_no_handler_gives_a_window_for_is_not_judged():
    assert warnings_of(note("elsewhere", "n1", 10_000)) == {}
