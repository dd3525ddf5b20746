"""A stand-in for hosted Letta (the Letta API at api.letta.com), for tests only: a proxy on 127.0.0.1 in front of
the real Letta 0.16.8 dev server that answers the way hosted Letta differs from it. Hosted Letta cannot be reached
from here, so what lettafleet does for it is proven against this stand-in, never against the service itself.

Each difference reproduced is a documented one (see /work/shared/letta-landscape.md and docs/hosted-letta.md):

- list pages are capped (at 100 items unless a test asks for fewer) whatever `limit` asks (letta-python "cap v1
  limit query params"; hosted Letta does not publish the cap): a page shorter than `limit` is not the end of the
  list;
- isolated conversation blocks are gone (2026-04-23): `isolated_block_labels` is refused on conversation create
  and `isolated_block_ids` is absent from every conversation;
- the folders API answers 400 (2026-07-17);
- every API request names its project in an `X-Project` (or `X-Project-Id`) header, or is refused with 400;
- agents carry `tags` only when `include=agent.tags` asks for them (and then, as 0.16.8 does, only the named
  relations: the real server behind already answers so);
- `GET /v1/health/` reports a version that is not 0.16.8.

Everything else is the real server's own answer. Built on the fault proxy's machinery (tests/fakes/fault_proxy.py),
so faults can be injected on top.

    with running_hosted_letta(letta_url) as hosted:
        run lettafleet against hosted.url with --project hosted.project ...
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.fakes.fault_proxy import FaultProxy, json_answer

HOSTED_VERSION = "1.12.1"  # any version but 0.16.x; the stand-in's own, not one hosted Letta published
PAGE_CAP = 100
PROJECT = "fleet-tests"
MISSING_PROJECT = "No project given: send the X-Project header (the project's slug) or X-Project-Id with every request."
FOLDERS_GONE = "The folders API is no longer supported. Use the filesystem of the Letta Agent SDK instead."


class HostedLettaStandIn(FaultProxy):
    """The stand-in's state: its URL, the project it expects, and what it refused or reshaped (`seen`)."""

    def __init__(self, upstream: str, project: str = PROJECT, page_cap: int = PAGE_CAP) -> None:
        super().__init__(upstream)
        self.project = project
        self.cap = page_cap
        self.seen: Counter[str] = Counter()  # e.g. "no project", "folders", "isolated labels", "tags hidden"

    def page_cap(self) -> int | None:
        """Hosted Letta's cap, whatever faults a test adds on top (a `list_limit` among them caps lower still)."""
        asked = self.faults.list_limit
        return self.cap if asked is None else min(self.cap, asked)

    def answer_instead(self, method: str, target: str, headers: dict[str, str], body: bytes) -> httpx.Response | None:
        path = urlsplit(target).path
        if path.rstrip("/") == "/v1/health":
            return json_answer(200, {"version": HOSTED_VERSION, "status": "ok"})
        sent = {name.lower(): value for name, value in headers.items()}
        if not (sent.get("x-project") or sent.get("x-project-id")):
            self.seen["no project"] += 1
            return json_answer(400, {"detail": MISSING_PROJECT})
        if path.startswith("/v1/folders"):
            self.seen["folders"] += 1
            return json_answer(400, {"detail": FOLDERS_GONE})
        if method == "POST" and path.rstrip("/") == "/v1/conversations" and b"isolated_block_labels" in body:
            self.seen["isolated labels"] += 1
            refused = {"loc": ["body", "isolated_block_labels"], "msg": "Extra inputs are not permitted"}
            return json_answer(422, {"detail": [{**refused, "type": "extra_forbidden"}]})
        return None

    def rewrite(self, method: str, target: str, status: int, payload: bytes) -> bytes:
        parts = urlsplit(target)
        segments = parts.path.strip("/").split("/")
        # Conversations and agents themselves (a list, or one by id), not what hangs under them.
        if status >= 400 or not payload or segments[1:2] not in (["conversations"], ["agents"]) or len(segments) > 3:
            return payload
        try:
            answer = json.loads(payload)
        except ValueError:
            return payload
        items = answer if isinstance(answer, list) else [answer]
        if segments[1] == "conversations":
            for item in items:
                if isinstance(item, dict):
                    item.pop("isolated_block_ids", None)
        elif method == "GET" and "agent.tags" not in parse_qs(parts.query).get("include", []):
            for item in items:
                if isinstance(item, dict) and item.pop("tags", None) is not None:
                    self.seen["tags hidden"] += 1
        return json.dumps(answer).encode()


@contextmanager
def running_hosted_letta(
    upstream: str, project: str = PROJECT, page_cap: int = PAGE_CAP
) -> Iterator[HostedLettaStandIn]:
    """The stand-in for hosted Letta in front of `upstream` on a free port of 127.0.0.1, its list pages capped at
    `page_cap` items, stopped when the block ends. Faults go on top: `stand_in.faults = Faults(refuse=0.2)`."""
    stand_in = HostedLettaStandIn(upstream, project, page_cap)
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()
