"""Which Letta server a client talks to, as a plan's header names it: its public URL, the version it reports and
the project lettafleet works in. Each backend's client learns it its own way, before any write."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerInfo:
    """A Letta server as a plan names it: its public URL, the version it reports (None when it reports none) and
    the project lettafleet works in (None: the server's default)."""

    url: str
    version: str | None = None
    project: str | None = None

    def describe(self) -> str:
        """`http://127.0.0.1:8283 (Letta 0.16.8, project support)`: how plans and errors name the server."""
        return f"{self.url} ({self.facts()})"

    def facts(self) -> str:
        """`Letta 0.16.8, project support`: what the server said it is, and the project."""
        facts = [f"Letta {self.version}" if self.version else "version unknown"]
        if self.project:
            facts.append(f"project {self.project}")
        return ", ".join(facts)
