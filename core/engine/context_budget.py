"""How much of a context window what a plan declares would take once applied, and the warnings `plan` prints when
that is more than a threshold. Plugins say what each change of their kinds puts into which resource's context
window (`ResourceHandler.context_use`); this only adds it up, knowing no kind."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from lettafleet.core.engine.model import Change, ContextWarning, Plan
from lettafleet.core.engine.plugin_manager import FleetPlugins

DEFAULT_CONTEXT_THRESHOLD = 0.8  # warn when what is declared would take more than this share of a window
CHARS_PER_TOKEN = 4  # English text in the tokenizers Letta's models use (the dev server's counts agree)


def estimated_tokens(characters: int) -> int:
    """Roughly how many tokens `characters` characters of text take: no tokenizer is loaded, no model asked."""
    return math.ceil(characters / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ContextUse:
    """What one change does to the context window of the resource at address `holder`: the `characters` of text
    (as the server compiles it) it adds there once applied, negative when it takes some away. The holder's own
    handler gives what the window holds now besides, its size (`window`, in tokens) and the `remedy`, what to do
    when it is too full: the sum over a plan is what the window will hold."""

    holder: str
    characters: int = 0
    window: int | None = None
    remedy: str = ""


def context_warnings(
    plan: Plan, manager: FleetPlugins, threshold: float = DEFAULT_CONTEXT_THRESHOLD
) -> tuple[ContextWarning, ...]:
    """A warning for each holder a change of the plan touches whose context would then take more than `threshold`
    of its window (a holder whose window no handler gives is not judged)."""
    changes: Mapping[str, Change] = plan.by_address()
    characters: Counter[str] = Counter()
    windows: dict[str, ContextUse] = {}
    touched: set[str] = set()
    for change in plan.changes:
        if change.held:
            continue  # planned, never applied
        for use in manager.handler(change.kind).context_use(change, changes):
            characters[use.holder] += use.characters
            if use.window:
                windows[use.holder] = use
            if change.changes_something:
                touched.add(use.holder)
    warnings = []
    for holder in sorted(touched & set(windows)):
        tokens, use = estimated_tokens(characters[holder]), windows[holder]
        if use.window and tokens > threshold * use.window:
            warnings.append(ContextWarning(holder, tokens, use.window, threshold, use.remedy))
    return tuple(warnings)


def with_context_warnings(plan: Plan, manager: FleetPlugins, threshold: float = DEFAULT_CONTEXT_THRESHOLD) -> Plan:
    """The plan, carrying its context warnings."""
    return dataclasses.replace(plan, context_warnings=context_warnings(plan, manager, threshold))
