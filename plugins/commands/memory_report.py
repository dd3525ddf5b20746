"""`report memory` (lettactl's): per agent, how much of its context window its compiled memory blocks and system
prompt take, and how full each block is, from one listing of the agents; nothing is sent to a model."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rich_click as click

from lettafleet.core import (
    Column,
    Connection,
    PluginCommand,
    context_threshold_option,
    estimated_tokens,
    hookimpl,
    make_client,
    output_option,
    print_records,
    reports_errors,
    server_options,
)
from lettafleet.plugins.backends.letta_v1.reads import AGENTS
from lettafleet.plugins.commands import app_server_reads as on_app_server
from lettafleet.plugins.commands.agent_lookup import NotFoundError, find_agent
from lettafleet.plugins.commands.app_server_lookup import app_server_of, find_app_agent, users_agents
from lettafleet.plugins.commands.export import wanted_tags
from lettafleet.plugins.resources.compiled_memory import compiled_memory_characters

WITH_BLOCKS = ["agent.blocks", "agent.tags"]


@dataclass(frozen=True)
class MemoryUse:
    """One agent's compiled memory and system prompt, in characters, against its context window (in tokens)."""

    agent: Mapping[str, Any]
    memory_characters: int
    prompt_characters: int
    window: int | None

    @classmethod
    def of(cls, agent: Mapping[str, Any]) -> MemoryUse:
        window = (agent.get("llm_config") or {}).get("context_window") or agent.get("context_window_limit")
        return cls(
            agent,
            compiled_memory_characters(agent.get("blocks") or []),
            len(agent.get("system") or ""),
            window if isinstance(window, int) else None,
        )

    @property
    def tokens(self) -> int:
        return estimated_tokens(self.memory_characters + self.prompt_characters)

    @property
    def percent(self) -> float | None:
        return round(100 * self.tokens / self.window, 1) if self.window else None

    def record(self, threshold: float) -> dict[str, Any]:
        """What `-o json` says of the agent (and the table shows)."""
        return {
            "agent": self.agent.get("name"),
            "agent_id": self.agent["id"],
            "context_window": self.window,
            "memory_characters": self.memory_characters,
            "prompt_characters": self.prompt_characters,
            "memory_tokens": estimated_tokens(self.memory_characters),
            "prompt_tokens": estimated_tokens(self.prompt_characters),
            "estimated_tokens": self.tokens,
            "percent": self.percent,
            "over_threshold": self.percent is not None and self.percent > 100 * threshold,
            "blocks": [block_fill(block) for block in self.agent.get("blocks") or []],
        }


def block_fill(block: Mapping[str, Any]) -> dict[str, Any]:
    """One block's size against its limit, in characters (lettactl's fill percentage)."""
    size, limit = len(block.get("value") or ""), block.get("limit")
    return {
        "label": block.get("label"),
        "block_id": block.get("id"),
        "characters": size,
        "limit": limit,
        "percent_full": round(100 * size / limit, 1) if limit else None,
    }


def fullest_block(record: Mapping[str, Any]) -> str | None:
    filled = [block for block in record["blocks"] if block["percent_full"] is not None]
    if not filled:
        return None
    fullest = max(filled, key=lambda block: block["percent_full"])
    return f"{fullest['label']} {fullest['percent_full']:.0f}%"


def used(record: Mapping[str, Any]) -> str:
    if record["percent"] is None:
        return "window unknown"
    return f"{record['percent']:.0f}%" + (" !" if record["over_threshold"] else "")


COLUMNS = (
    Column("AGENT", lambda r: r["agent"]),
    Column("BLOCKS", lambda r: len(r["blocks"])),
    Column("MEMORY", lambda r: f"{r['memory_tokens']:,}"),
    Column("PROMPT", lambda r: f"{r['prompt_tokens']:,}"),
    Column("WINDOW", lambda r: f"{r['context_window']:,}" if r["context_window"] else None),
    Column("USED", used),
    Column("FULLEST BLOCK", fullest_block),
)


def chosen_agents(
    client: Connection, agent: str | None, everything: bool, match: str | None, tags: Sequence[str]
) -> list[dict[str, Any]]:
    """The agents asked for, each with its blocks: one by name or id, or every agent whose name matches and
    that carries every tag, from one paged listing."""
    app = app_server_of(client)
    if app is not None:  # memory is the agents' files, read for the chosen agents only
        return on_app_server.agents_with_memory(
            app,
            [find_app_agent(app, agent)]
            if agent
            else matching(users_agents(app), client.base_url, everything, match, tags),
        )
    if agent:
        return [find_agent(client, agent, include=WITH_BLOCKS)]
    path, params = AGENTS
    return matching(client.list_all(path, **params), client.base_url, everything, match, tags)


def matching(
    agents: list[dict[str, Any]], base_url: str, everything: bool, match: str | None, tags: Sequence[str]
) -> list[dict[str, Any]]:
    """The agents whose name matches `match` and that carry every tag; none is an error unless `--all`."""
    chosen = [
        found
        for found in agents
        if fnmatch.fnmatchcase(found.get("name") or "", match or "*") and set(tags) <= set(found.get("tags") or [])
    ]
    if not chosen and not everything:
        asked = " and ".join([f"--match '{match}'"] * bool(match) + [f"--tags {','.join(tags)}"] * bool(tags))
        raise NotFoundError(
            f"no agent on {base_url} matches {asked} ({len(agents)} agent{'s' if len(agents) != 1 else ''} "
            "there). "
            "List them with `lettafleet get agents`; quote a pattern so the shell leaves it alone."
        )
    return chosen


def summary(records: Sequence[Mapping[str, Any]], threshold: float) -> str:
    over = [record["agent"] for record in records if record["over_threshold"]]
    unknown = sum(1 for record in records if record["percent"] is None)
    said = f"{len(records)} agent{'s' if len(records) != 1 else ''}; {len(over)} over {100 * threshold:.0f}% of the "
    said += "context window" + (f": {', '.join(over)}" if over else "") + "."
    if unknown:
        said += f" {unknown} without a known context window."
    return said + " Tokens are estimated from the text's length (about 4 characters each)."


@click.command("memory", short_help="Each agent's memory blocks and prompt against its context window.")
@click.argument("agent", required=False)
@click.option("--all", "everything", is_flag=True, help="Every agent on the server.")
@click.option("--match", metavar="GLOB", help="Only agents whose name matches this pattern ('user-*').")
@click.option(
    "--tags",
    metavar="TAG[,TAG]",
    multiple=True,
    help="Only agents carrying every one of these tags (comma-separated, repeatable).",
)
@context_threshold_option(
    "Mark agents whose memory and prompt take more than this share of their context window (`plan` warns at "
    "the same share)."
)
@server_options
@output_option("table", "json")
@reports_errors
def report_memory(
    agent: str | None,
    everything: bool,
    match: str | None,
    tags: tuple[str, ...],
    context_threshold: float,
    base_url: str,
    output: str,
) -> None:
    """Per agent: its memory blocks (as Letta compiles them) and system prompt, in estimated tokens, against its
    context window, and its fullest block against the block's limit. Agents over --context-threshold are marked `!`.

    Name one AGENT (name or id), or choose with --all, --match or --tags. One listing of the agents, whatever
    their number; nothing is sent to a model. Tool definitions and messages also take room in the window and
    are not counted here.
    """
    wanted = wanted_tags(tags)
    if agent and (everything or match or wanted):
        raise click.UsageError("name one AGENT, or choose agents with --all, --match or --tags, not both.")
    if not (agent or everything or match or wanted):
        raise click.UsageError("name an AGENT, or choose agents with --all, --match GLOB or --tags TAG.")
    with make_client(base_url) as client:
        agents = chosen_agents(client, agent, everything, match, wanted)
    threshold = context_threshold / 100
    records = [MemoryUse.of(found).record(threshold) for found in agents]
    if output == "json":
        document = {"threshold_percent": context_threshold, "agents": records}
        click.echo(json.dumps(document, indent=2))
        return
    print_records(records, COLUMNS, output, empty="No agents on the server.")
    if records:
        click.echo(summary(records, threshold))


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(report_memory, verb="report")]
