"""Fixtures for the resource plugins' unit tests: a fake Letta server behind respx, and a fleet file planned and
applied against it through the engine's entry points (load_fleet, plan_fleet, apply_plan) only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pluggy
import pytest
import respx

from lettafleet.core.engine.applying import ApplyReport, apply_plan
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.model import Plan
from lettafleet.core.engine.planning import plan_fleet
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from tests.fakes.letta_api import BASE_URL, FakeLetta


@pytest.fixture
def letta() -> Iterator[FakeLetta]:
    """The fake server; every request the client sends goes to it, and any other HTTP fails the test."""
    fake = FakeLetta()
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        router.route().mock(side_effect=fake.answer)
        yield fake


@dataclass
class FleetRun:
    """A fleet file planned and applied against the fake server, as `lettafleet plan` and `apply` would."""

    letta: FakeLetta
    manager: pluggy.PluginManager
    write_fleet: Callable[..., Path]

    def load(self, text: str, files: dict[str, str] | None = None, *, match: str | None = None) -> Fleet:
        return load_fleet(self.write_fleet(text, files=files), self.manager, match=match)

    def plan(self, text: str, files: dict[str, str] | None = None, *, match: str | None = None) -> Plan:
        with self._client() as client:
            return plan_fleet(self.load(text, files, match=match), client, self.manager)

    def apply(self, plan: Plan) -> ApplyReport:
        self.letta.writes.clear()  # what a test looks at is what this apply sent
        with self._client() as client:
            return apply_plan(plan, client, self.manager, parallelism=1)

    @staticmethod
    def actions(plan: Plan) -> dict[str, str]:
        """Every change's action by address: what the plan's summary shows a user."""
        return {change.address: change.action.value for change in plan.changes}

    @staticmethod
    def results(report: ApplyReport) -> dict[str, tuple[str, str]]:
        """Every change's (status, message) by address: what apply prints."""
        return {result.address: (result.status, result.message) for result in report.results}

    def _client(self) -> LettaClient:
        # No retries: an error the fake answers reaches the plugin at once.
        return LettaClient(BASE_URL, api_key="", retries=0)


@pytest.fixture
def fleet(letta: FakeLetta, manager: pluggy.PluginManager, write_fleet: Callable[..., Path]) -> FleetRun:
    return FleetRun(letta, manager, write_fleet)
