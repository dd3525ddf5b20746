"""`lettafleet health`: is the server up, which version, and how many agents, blocks, tools and folders it holds."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import rich_click as click

from lettafleet.core import (
    Connection,
    LettaAPIError,
    PluginCommand,
    hookimpl,
    make_client,
    output_option,
    print_fields,
    reports_errors,
    server_options,
)
from lettafleet.plugins.commands import app_server_reads as on_app_server
from lettafleet.plugins.commands.app_server_lookup import app_server_of

# Each is one request to Letta's count endpoint; a server without one (hosted Letta's folders) shows no count.
COUNTED = ("agents", "blocks", "tools", "folders")


def count_of(client: Connection, collection: str) -> int | None:
    try:
        count = client.get(f"/v1/{collection}/count")
    except LettaAPIError:
        return None
    return count if isinstance(count, int) else None


def health_record(client: Connection) -> dict[str, Any]:
    answer = client.get("/v1/health/")  # an unreachable server raises here: a one-line error, exit 1
    return {
        "server": client.base_url,
        "status": answer.get("status"),
        "version": answer.get("version"),
        "counts": {collection: count_of(client, collection) for collection in COUNTED},
    }


@click.command("health")
@server_options
@output_option("text", "json")
@reports_errors
def health(base_url: str, output: str) -> None:
    """Check the server: status and version (`GET /v1/health/`), then its numbers of agents, blocks, tools and
    folders (an App Server: its version and number of agents). Exits 1 when the server is unreachable or not ok."""
    with make_client(base_url) as client:
        app = app_server_of(client)
        record = on_app_server.health_record(app) if app is not None else health_record(client)
    healthy = record["status"] == "ok"
    if output == "json":
        click.echo(json.dumps(record, indent=2))
    else:
        counts = record["counts"]
        print_fields(
            [
                ("Server", record["server"]),
                ("Status", record["status"]),
                ("Version", record["version"]),
                *((name.capitalize(), n) for name, n in counts.items()),  # None shows as "-"
            ]
        )
    if not healthy:
        click.echo(f"error: the server at {record['server']} answered status '{record['status']}', not 'ok'.", err=True)
        sys.exit(1)


@hookimpl
def lettafleet_commands() -> Iterable[PluginCommand]:
    return [PluginCommand(health)]
