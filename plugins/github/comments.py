"""The sticky plan comment: one per fleet file on a pull request, found again by a hidden marker that carries the
fleet path and the hash of the reviewed plan."""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from lettafleet.core import COMMENT_LIMIT, Change, Plan, inline_code
from lettafleet.plugins.github.api import GitHubAPI

# The marker counts only where lettafleet writes it: at the very start of the comment.
_MARKER = re.compile(r"<!-- lettafleet-plan (?P<fields>[^>]*?) -->")
# Who writes the comments when the action runs with the default GITHUB_TOKEN.
DEFAULT_COMMENT_AUTHOR = "github-actions[bot]"
# Where the apply result starts in a comment; everything after it is replaced by the next result.
STATUS_MARKER = "<!-- lettafleet-status -->"
# Per-resource fingerprints say what differs when the hashes do; past this size the marker carries none.
MAX_FINGERPRINTS_SIZE = 4_000


@dataclass(frozen=True)
class PlanMarker:
    """What a plan comment remembers of the reviewed plan: its fleet, its hash (None: the plan failed), and a
    fingerprint per top-level resource to say what differs when a later plan does not match."""

    fleet: str
    sha256: str | None
    fingerprints: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_plan(cls, fleet: str, plan: Plan) -> PlanMarker:
        return cls(fleet=fleet, sha256=plan.sha256, fingerprints=fingerprints(plan))

    def render(self) -> str:
        fields = [f"fleet={quote(normalized_fleet(self.fleet), safe='/')}"]
        if self.sha256:
            fields.append(f"sha256={self.sha256}")
        packed = _pack(self.fingerprints)
        if packed and len(packed) <= MAX_FINGERPRINTS_SIZE:
            fields.append(f"resources={packed}")
        return f"<!-- lettafleet-plan {' '.join(fields)} -->"

    @classmethod
    def find(cls, body: str) -> PlanMarker | None:
        found = _MARKER.match(body)
        if not found:
            return None
        values = dict(item.split("=", 1) for item in found["fields"].split() if "=" in item)
        if "fleet" not in values:
            return None
        return cls(
            fleet=unquote(values["fleet"]),
            sha256=values.get("sha256"),
            fingerprints=_unpack(values.get("resources", "")),
        )


def normalized_fleet(path: str) -> str:
    """`./fleets//a.yaml` and `fleets/a.yaml` name the same fleet."""
    return posixpath.normpath(path.replace("\\", "/"))


def fingerprints(plan: Plan) -> dict[str, str]:
    """A short hash of every change under each top-level resource, keyed by that resource's address."""
    groups: dict[str, list[Change]] = {}
    parents = {change.address: change.parent for change in plan.changes}
    for change in plan.changes:
        root = change.address
        while parent := parents.get(root):
            root = parent
        groups.setdefault(root, []).append(change)
    return {
        root: hashlib.sha256(json.dumps([c.to_json() for c in changes], sort_keys=True).encode()).hexdigest()[:12]
        for root, changes in groups.items()
    }


def differences(reviewed: PlanMarker, plan: Plan) -> list[str]:
    """Markdown list items saying which top-level resources plan differently from the reviewed plan."""
    if not reviewed.fingerprints:
        return [
            "the reviewed plan recorded no per-resource fingerprints (it was too large), so only its hash "
            "can be compared"
        ]
    now = fingerprints(plan)
    lines = []
    for address in sorted(set(now) | set(reviewed.fingerprints)):
        if address not in reviewed.fingerprints:
            lines.append(f"{inline_code(address)} is new in the plan since the review")
        elif address not in now:
            lines.append(f"{inline_code(address)} was in the reviewed plan and is not any more")
        elif now[address] != reviewed.fingerprints[address]:
            lines.append(f"{inline_code(address)} plans differently now")
    return lines or ["the same resources plan the same way, but the plan as a whole differs"]


def with_status(body: str, status: str) -> str:
    """`body` with its previous apply result (if any) replaced by `status`."""
    base = body.split(STATUS_MARKER, 1)[0].rstrip("\n")
    return f"{base}\n\n{STATUS_MARKER}\n{status.strip()}\n"


def status_room(body: str) -> int:
    """How many bytes an apply result may take so that `with_status(body, ...)` stays under GitHub's limit."""
    base = body.split(STATUS_MARKER, 1)[0].rstrip("\n")
    return COMMENT_LIMIT - len(base.encode("utf-8")) - len(STATUS_MARKER) - 256


def written_by(comment: Mapping[str, Any], login: str) -> bool:
    """Whether GitHub names `login` as the comment's author (logins are compared as GitHub does: ignoring case).
    A `name[bot]` login is an app's, and must come with GitHub's own word that the author is a bot: a login that
    merely looks like one never counts."""
    user = comment.get("user") or {}
    author = user.get("login") if isinstance(user, Mapping) else None
    if not isinstance(author, str) or author.casefold() != login.casefold():
        return False
    return not login.endswith("[bot]") or user.get("type") == "Bot"


def comment_author(comment: Mapping[str, Any]) -> str:
    user = comment.get("user")
    return str(user.get("login") or "(unknown)") if isinstance(user, Mapping) else "(unknown)"


class StickyComments:
    """The plan comments on one pull request, read once (all pages) and written back one per fleet file.

    Only comments written by `author` (the identity the action comments as) count: anyone can post a comment that
    carries a plan marker, and a plan is reviewed only in lettafleet's own comment. The others are kept in
    `ignored`, so the job can say so; lettafleet never edits them."""

    def __init__(self, github: GitHubAPI, number: int, author: str = DEFAULT_COMMENT_AUTHOR) -> None:
        self.github = github
        self.number = number
        self.author = author
        self.ignored: list[dict[str, Any]] = []
        self._by_fleet: dict[str, dict[str, Any]] = {}
        for comment in github.issue_comments(number):
            marker = PlanMarker.find(comment.get("body") or "")
            if marker is None:
                continue
            if not written_by(comment, author):
                self.ignored.append(comment)
                continue
            # The oldest comment for a fleet is the sticky one; a later copy (a race of two jobs) is left alone.
            self._by_fleet.setdefault(normalized_fleet(marker.fleet), comment)

    def find(self, fleet: str) -> dict[str, Any] | None:
        return self._by_fleet.get(normalized_fleet(fleet))

    def reviewed_plan(self, fleet: str) -> PlanMarker | None:
        comment = self.find(fleet)
        return PlanMarker.find(comment.get("body") or "") if comment else None

    def upsert(self, fleet: str, body: str) -> dict[str, Any]:
        """Update the fleet's comment, or create it if there is none yet."""
        existing = self.find(fleet)
        if existing is not None:
            written = self.github.update_comment(existing["id"], body)
        else:
            written = self.github.create_comment(self.number, body)
        self._by_fleet[normalized_fleet(fleet)] = written
        return written


def _pack(values: Mapping[str, str]) -> str:
    if not values:
        return ""
    # base64 of compressed JSON: compact, and free of `--` and `>`, which would end the HTML comment.
    raw = json.dumps(dict(values), sort_keys=True, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def _unpack(packed: str) -> dict[str, str]:
    if not packed:
        return {}
    try:
        values = json.loads(zlib.decompress(base64.b64decode(packed, validate=True)))
    except (ValueError, zlib.error):
        return {}  # a marker edited by hand: compare hashes only
    return {str(key): str(value) for key, value in values.items()} if isinstance(values, dict) else {}
