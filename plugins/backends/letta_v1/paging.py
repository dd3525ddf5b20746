"""Reading a whole collection page by page: from its start, and from its end at the same time once it proves longer
than a page, until the two readings meet.

Letta pages a list with an `after` cursor, so one reading sends its requests one after another: a 5,000-agent list
is five or more round trips, each waiting for the server to serialise its page. Reading the other end in the opposite
order at the same time halves the round trips the list waits for, and lets a server with several workers serialise
two pages at once. A list shorter than a page costs what it always did: a page and the empty page that proves its
end; a list of one to two pages may cost one page more, read from the other end while the first reading finishes.

It relies on `order=desc` listing exactly the reverse of `order=asc`: Letta orders by (created_at, id) both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Item = dict[str, Any]
# One page: (limit, after cursor, query parameters) -> the items. Raises what the client raises.
PageReader = Callable[[int, str | None, dict[str, Any]], list[Item]]
OPPOSITE = {"asc": "desc", "desc": "asc"}
# Letta's lists answer pages of 50 when no `limit` is given: a server capping `limit` below its own default page
# would cut its own default answers short, so a page shorter than this (and than the limit asked) is taken as the
# end by the reads that ask for it (a plan's reads by name, tag or agent: see core/letta/reads.py AgentScope).
SMALLEST_CAP = 50


class CursorGone(Exception):
    """The server answered that the item a cursor names is gone (Letta answers 404): another client deleted it."""


class Reading:
    """One direction of a list: the items read so far (in this direction's order) and where the next page starts."""

    def __init__(self, read_page: PageReader, limit: int, params: dict[str, Any]) -> None:
        self._read_page = read_page
        self.limit = limit
        self.params = params
        self.items: list[Item] = []
        self.ids: set[str] = set()
        self.after: str | None = None
        self.ended = False

    def next_page(self) -> list[Item]:
        """Read the next page and return it. An empty page ends this reading, and so does a page of nothing new (a
        server that ignores `after` answers the same page again)."""
        while True:
            try:
                page = self._read_page(self.limit, self.after, self.params)
            except CursorGone:
                if self.after is None:
                    raise
                self.after = _cursor_before(self.items, self.after)  # go on from the item before the deleted one
                continue
            fresh = [item for item in page if item["id"] not in self.ids]
            if not fresh:
                self.ended = True
                return []
            self.items.extend(fresh)
            self.ids.update(item["id"] for item in fresh)
            self.after = page[-1]["id"]
            return page


def read_every_page(
    read_page: PageReader, limit: int, params: dict[str, Any], *, short_page_ends: bool = False
) -> list[Item]:
    """Every item of a collection, in the order `params` asks for.

    A short page does not prove the end: hosted Letta caps `limit` at a value it does not publish, so only an empty
    page ends a reading (as in Letta's own SDK). A list in a given `order` that fills its first page, or shows a
    second, is also read from its end, in the opposite order, until the two readings share an item or one of them
    ends; the items of the end reading are then put after the start reading's, in the order asked for.
    `short_page_ends`: a first page shorter than both `limit` and SMALLEST_CAP is the whole list (one request for
    a narrow read, such as the agents of one name)."""
    forward = Reading(read_page, limit, params)
    first = forward.next_page()
    if short_page_ends and len(first) < min(limit, SMALLEST_CAP):
        return forward.items
    opposite = OPPOSITE.get(str(params.get("order")))
    if opposite is None or forward.ended:
        return _to_the_end(forward)
    if len(first) < limit and not forward.next_page():  # the end, or a capping server's page: a second page tells
        return forward.items
    backward = Reading(read_page, len(first), {**params, "order": opposite})
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lettafleet-list-end") as other_end:
        while not (forward.ended or backward.ended or not forward.ids.isdisjoint(backward.ids)):
            from_the_end = other_end.submit(backward.next_page)
            forward.next_page()
            from_the_end.result()
            if _ignores_order(forward, backward):
                return _to_the_end(forward)
    return forward.items + [item for item in reversed(backward.items) if item["id"] not in forward.ids]


def _to_the_end(reading: Reading) -> list[Item]:
    while not reading.ended:
        reading.next_page()
    return reading.items


def _ignores_order(forward: Reading, backward: Reading) -> bool:
    """Whether the end reading's first item is one the start reading has, and not the newest it has read: the
    server ignores `order` for this list (comparing with the first item alone would miss it when that item was
    deleted between the two first pages)."""
    if len(forward.items) < 2 or not backward.items:
        return False
    newest = backward.items[0]["id"]
    return newest in forward.ids and newest != forward.items[-1]["id"]


def _cursor_before(items: list[Item], gone: str) -> str | None:
    """The id of the item read just before `gone`; None (from the start) when there is none."""
    ids = [item["id"] for item in items]
    position = ids.index(gone) if gone in ids else len(ids)
    return ids[position - 1] if position > 0 else None
