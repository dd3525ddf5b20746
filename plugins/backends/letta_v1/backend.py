"""The V1 REST backend: Letta's `/v1/...` HTTP API, self-hosted (0.16.x) or hosted, for http:// and https://
URLs. It holds every kind the built-in resource plugins declare, so its capability table lists nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from lettafleet.core import Backend, ServerSettings, hookimpl
from lettafleet.plugins.backends.letta_v1.conversations import V1Recompiler
from lettafleet.plugins.backends.letta_v1.locks import IdentityLocks
from lettafleet.plugins.backends.letta_v1.reads import V1PlanReads

if TYPE_CHECKING:
    from lettafleet.plugins.backends.letta_v1.client import LettaClient

NAME = "Letta V1 REST"


def connect(settings: ServerSettings) -> LettaClient:
    """The V1 client for the server the settings name (no request is sent until one is asked for)."""
    from lettafleet.plugins.backends.letta_v1.client import LettaClient  # httpx, only to talk V1 REST

    return LettaClient(
        settings.base_url,
        allow_insecure_http=settings.allow_insecure_http,
        project=settings.project,
        project_id=settings.project_id,
        rate_limit_patience=settings.rate_limit_patience,
    )


@hookimpl
def lettafleet_backends() -> Iterable[Backend]:
    return [
        Backend(
            NAME, ("http", "https"), connect, recompiler=V1Recompiler(), locks=IdentityLocks, plan_reads=V1PlanReads()
        )
    ]
