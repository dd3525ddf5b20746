"""Setup commands whose output goes to a log file, and the end of a log for an error message; a secret in either
is masked by lettafleet's one masker."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lettafleet.core import SecretMasker
from lettafleet.plugins.devserver.home import DevServerError


def log_tail(log: Path, lines: int = 25, *, secret: str | None = None) -> str:
    """The last `lines` lines of `log`, with `secret` masked in every form a program may have printed it."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return SecretMasker([secret])("\n".join(text.splitlines()[-lines:]))


def run_logged(
    command: Sequence[str],
    *,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    secret: str | None = None,
    **popen_options: Any,
) -> None:
    """Run a setup command with its output appended to `log` (`secret` masked); raise with its tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    mask = SecretMasker([secret])
    with log.open("ab") as out:
        out.write(mask(f"\n$ {' '.join(command)}\n").encode())
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                **popen_options,
            )
        except OSError as error:
            raise DevServerError(f"Could not run {command[0]}: {error}") from error
        assert process.stdout is not None
        # Copied line by line, so that the log can be followed while a long install runs.
        for line in process.stdout:
            # surrogateescape: bytes that are not UTF-8 pass through unchanged.
            out.write(mask(line.decode(errors="surrogateescape")).encode(errors="surrogateescape"))
            out.flush()
        returncode = process.wait()
    if returncode != 0:
        raise DevServerError(
            f"`{mask(' '.join([Path(command[0]).name, *command[1:3]]))}` failed (exit {returncode}). "
            f"Last lines of {log}:\n{log_tail(log, secret=secret)}"
        )
