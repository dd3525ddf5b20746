"""Reading the memory files a plan compares at the cost of one file read each. `list_memory` runs several git
commands per agent on the server (about 90 ms of its CPU, 18 s for 200 agents); `read_memory_file` only reads
the working tree (about 3 ms). Where the files to compare are known, they are read one by one; where they are
not, or one cannot be parsed here exactly as `list_memory` parses it, the agent's memory is listed instead."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lettafleet.core import LiveReader
from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerError
from lettafleet.plugins.backends.app_server.fleet_connection import app_of

MEMORY_READS = 32  # agents whose files are read at once (pipelined on the one socket)
# What JavaScript's String.prototype.trim removes (the server trims with it; Python's strip() differs at the edges).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
FRONTMATTER = re.compile(r"\A---\n([\s\S]*?)\n---(?:\n([\s\S]*))?\Z")  # the server's, anchored as in JavaScript
BLOCK_SCALAR = re.compile(r"[|>][+-]?")

Entry = dict[str, Any]  # as `list_memory` gives one: relative_path, description, content


def file_alone(reader: LiveReader, agent_id: str, path: str) -> Entry | None:
    """The file at `path` as `list_memory` would give it, read alone once per plan; None when it is not there or
    is more than this reads (the caller lists the agent's memory then)."""

    def read() -> Entry | None:
        found = read_each(app_of(reader.client), agent_id, [path])
        return found[0] if found else None

    entry: Entry | None = reader.derived(("app_server", "memory file", agent_id, path), read)
    return entry


def read_each(app: AppServerClient, agent_id: str, paths: Sequence[str]) -> list[Entry] | None:
    """The files at `paths`, one read each, as `list_memory` would give them; None when one is missing or its
    frontmatter is more than this reads (the caller lists the agent's memory then)."""
    entries = []
    for path in paths:
        try:
            raw = app.read_memory_file(agent_id, path)
        except AppServerError:
            return None  # gone (the agent removed it), or unreadable: the listing says which
        parsed = parsed_memory_file(raw)
        if parsed is None:
            return None
        description, content = parsed
        entries.append({"relative_path": path, "description": description, "content": content})
    return entries


def parsed_memory_file(raw: str) -> tuple[str | None, str] | None:
    """(description, content) of a memory file as `list_memory` gives them, for frontmatter of one-line
    `key: value` pairs (what lettafleet and the server write); None when a key opens a list or a block scalar."""
    text = raw.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    match = FRONTMATTER.match(text)
    if match is None:
        return None, text  # no frontmatter: the whole text, untrimmed, as the server gives it
    keys: dict[str, str] = {}
    for line in match.group(1).split("\n"):
        colon = line.find(":")
        if line != line.lstrip(JS_WHITESPACE) or colon <= 0:
            continue  # the server skips an indented line (with no list open) and a line with no key
        value = line[colon + 1 :].strip(JS_WHITESPACE)
        if not value or BLOCK_SCALAR.fullmatch(value):
            return None  # a list or a block scalar follows: left to the server's parser
        keys[line[:colon].strip(JS_WHITESPACE)] = value
    return keys.get("description"), (match.group(2) or "").strip(JS_WHITESPACE)
