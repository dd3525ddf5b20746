"""What a GitHub Actions runner reads as workflow commands in a step's output, for tests only: lines broken at
`\r\n`, `\r` or `\n`; `::name ...::data` after leading blanks, or `##[name ...]` anywhere in a line; nothing
between `::stop-commands::TOKEN` and `::TOKEN::` (https://docs.github.com/actions/reference/workflow-commands)."""

from __future__ import annotations

import re


def workflow_commands(log: str) -> list[str]:
    """Every line of `log` that the runner would run as a command, as it reads it."""
    commands: list[str] = []
    stopped_by: str | None = None
    for line in re.split(r"\r\n|\r|\n", log):
        stripped = line.lstrip()
        name = stripped[2:].split("::", 1)[0].split(" ", 1)[0] if stripped.startswith("::") else None
        if stopped_by is not None:
            if name == stopped_by and stripped.count("::") >= 2:
                stopped_by = None
            continue
        if name is not None and stripped.count("::") >= 2:
            if name == "stop-commands":
                stopped_by = stripped.split("::", 2)[2]
                continue
            commands.append(stripped)
        elif "##[" in line:
            commands.append(line)
    return commands
