"""A template's safe rollout: `--sample N` applies its change to a deterministic sample of the agents it matches
and stops; `--promote` rolls the same change to the rest in batches, only while the sampled agents still hold it
(docs/templates.md, "Rolling out a change").

The sample is the first N matched agents ordered by a digest of the template's entry and the agent's id: the same
agents on every run, whatever order the server lists them in. Each sampled agent's template record keeps a digest
of the settings the sample applied (`sampled`); promote finds the sample by it, so it needs no state of its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lettafleet.core import PlanOption, Problem

SAMPLE_OPTION = "sample"
PROMOTE_OPTION = "promote"
CANARY_OPTION = "canary"  # `--canary --promote` promotes canary copies (plugins/resources/canary.py), no template
BATCH_OPTION = "batch_size"
DEFAULT_BATCH_SIZE = 100
SHOWN_SAMPLE = 50  # sampled agents named in the text plan; the JSON plan names every one
_SIZE = re.compile(r"(\d+)(%?)")


@dataclass(frozen=True)
class Rollout:
    """How this run rolls a template's change out: to a sample of `size` agents (`"5"` or `"5%"`), promoted to
    the rest in batches of `batch_size`, or neither (every matched agent at once, as a plain apply does)."""

    sample: str | None = None
    promote: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Rollout:
        return cls(
            options.get(SAMPLE_OPTION),
            bool(options.get(PROMOTE_OPTION)) and not options.get(CANARY_OPTION),
            int(options.get(BATCH_OPTION) or DEFAULT_BATCH_SIZE),
        )

    def sample_size(self, matched: int) -> int:
        """How many of `matched` agents the sample takes: a count, or a percentage rounded up (at least one)."""
        found = _SIZE.fullmatch(self.sample or "")
        if found is None or not matched:
            return 0
        number, percent = int(found.group(1)), found.group(2)
        wanted = max(1, math.ceil(matched * number / 100)) if percent else number
        return min(wanted, matched)


def rollout_options() -> Iterable[PlanOption]:
    """`--sample N`, `--promote` and `--batch-size`, made on first use: the engine loads no command-line library."""
    import rich_click as click

    def size(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
        if value is not None and not (_SIZE.fullmatch(value) and int(value.rstrip("%")) > 0):
            raise click.BadParameter(f"{value!r} is not a sample size: give a count such as 10 or a share such as 5%.")
        return value

    sample = click.Option(
        ["--sample", SAMPLE_OPTION],
        metavar="N|N%",
        callback=size,
        help="Apply a template's change to a deterministic sample of the agents it matches (a count, or a share "
        "such as 5%) and stop; the others stay as they are until `apply --promote` (docs/templates.md).",
    )
    promote = click.Option(
        ["--promote", PROMOTE_OPTION],
        is_flag=True,
        help="Roll a template's change to the agents the sample left, in batches, only if every sampled agent "
        "still holds it. Run it again to continue a promotion that was stopped.",
    )
    batch = click.Option(
        ["--batch-size", BATCH_OPTION],
        type=click.IntRange(1, 100_000),
        default=DEFAULT_BATCH_SIZE,
        show_default=True,
        help="With --promote: agents per batch; a batch starts only when every change before it succeeded.",
    )
    return [PlanOption(sample), PlanOption(promote), PlanOption(batch, commands=("apply",))]


def option_problems(options: Mapping[str, Any], templates: int) -> list[Problem]:
    """`--sample` and `--promote` together, or either without a template to roll out."""
    rollout = Rollout.from_options(options)
    if rollout.sample and rollout.promote:
        return [
            Problem(
                (),
                "--sample and --promote cannot be given together",
                "apply to a sample first (`--sample N`), check it, then run `apply --promote`",
            )
        ]
    if (rollout.sample or rollout.promote) and not templates:
        given = "--sample" if rollout.sample else "--promote"
        return [Problem((), f"{given} rolls out a template's change, and this file declares no template", "")]
    return []


def settings_digest(settings: Mapping[str, Any]) -> str:
    """The digest a sampled agent's record keeps of the change it got (never the settings: a prompt may be
    sensitive); promote compares it with the template's settings now."""
    # `default=repr`: a secret whose variable is unset (refused before anything is written) still has a digest.
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=repr).encode("utf-8")).hexdigest()


def rollout_order(key: str, agent_ids: Sequence[str]) -> list[str]:
    """The agents' ids in rollout order: by a digest of the template's entry and the id, so the order (and the
    sample, its head) is the same on every run and spread over the agents whatever their names."""
    return sorted(agent_ids, key=lambda agent_id: hashlib.sha256(f"{key}\n{agent_id}".encode()).hexdigest())


def promotion_problem(template: str, at: tuple[str | int, ...], marked: int, drifted: Sequence[str]) -> Problem | None:
    """Why `--promote` refuses a template: no sample of its change was applied, or sampled agents no longer hold
    it (changed back or edited since); None when every sampled agent holds it."""
    if not marked:
        return Problem(
            at,
            f"--promote: no agent template '{template}' matches holds a sample of its change as the file declares it "
            "now",
            "apply it to a sample first (`lettafleet apply --sample N`), check those agents, then `apply --promote`",
        )
    if drifted:
        names = ", ".join(drifted[:20]) + (f" and {len(drifted) - 20} more" if len(drifted) > 20 else "")
        return Problem(
            at,
            f"--promote refused: {len(drifted)} of the {marked} sampled agent(s) of template '{template}' no longer "
            f"hold its change: {names}. Nothing was promoted",
            "see what changed on them; `lettafleet apply --sample N` applies the change to the sample again",
        )
    return None
