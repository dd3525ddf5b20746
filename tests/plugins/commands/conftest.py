"""The mocked Letta API every command test starts from: one agent, `support-agent`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from tests.plugins.commands.mocked_letta import BASE, agent


@pytest.fixture
def letta() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get("/v1/agents/").respond(json=[agent()])
        yield mock
