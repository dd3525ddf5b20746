"""What a GitHub Actions job gives a step and takes back: the event, step outputs, the job summary, annotations."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lettafleet.core import SecretMasker
from lettafleet.plugins.github.api import DEFAULT_API_URL

# Environment variables whose values must never reach a log, a job summary or a comment.
SECRET_VARIABLES = ("LETTA_API_KEY", "GITHUB_TOKEN")


class ActionsEnvironmentError(Exception):
    """The step does not run where it should (not in GitHub Actions, or a variable it needs is missing)."""


@dataclass(frozen=True)
class ActionsEnvironment:
    """The variables GitHub Actions sets for a step (https://docs.github.com/actions/reference/variables)."""

    event_name: str
    event: Mapping[str, Any]
    repository: str
    sha: str
    api_url: str = DEFAULT_API_URL
    server_url: str = "https://github.com"
    run_id: str = ""
    token: str = ""
    output_file: Path | None = None
    summary_file: Path | None = None
    temp_dir: Path | None = None
    mask: SecretMasker = field(default_factory=SecretMasker)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ActionsEnvironment:
        environ = os.environ if environ is None else environ
        missing = [name for name in ("GITHUB_EVENT_NAME", "GITHUB_REPOSITORY") if not environ.get(name)]
        if missing:
            raise ActionsEnvironmentError(
                f"{' and '.join(missing)} not set: `lettafleet github` runs inside a GitHub Actions job. "
                "Outside one, use `lettafleet plan --output markdown` and `lettafleet apply`."
            )
        return cls(
            event_name=environ["GITHUB_EVENT_NAME"],
            event=_read_event(environ.get("GITHUB_EVENT_PATH", "")),
            repository=environ["GITHUB_REPOSITORY"],
            sha=environ.get("GITHUB_SHA", ""),
            api_url=environ.get("GITHUB_API_URL") or DEFAULT_API_URL,
            server_url=environ.get("GITHUB_SERVER_URL") or "https://github.com",
            run_id=environ.get("GITHUB_RUN_ID", ""),
            token=environ.get("GITHUB_TOKEN", ""),
            output_file=_optional_path(environ.get("GITHUB_OUTPUT")),
            summary_file=_optional_path(environ.get("GITHUB_STEP_SUMMARY")),
            temp_dir=_optional_path(environ.get("RUNNER_TEMP")),
            mask=SecretMasker(environ.get(name) for name in SECRET_VARIABLES),
        )

    @property
    def pull_request_number(self) -> int | None:
        """The pull request this run is for (`pull_request` and `pull_request_target` events), if any."""
        pull_request = self.event.get("pull_request")
        if isinstance(pull_request, Mapping) and isinstance(pull_request.get("number"), int):
            return pull_request["number"]
        return None

    @property
    def run_url(self) -> str | None:
        if not self.run_id:
            return None
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"

    def set_outputs(self, values: Mapping[str, str]) -> None:
        """Step outputs, in the multi-line form so that any value (several paths, one per line) arrives whole."""
        if self.output_file is None:
            return
        with self.output_file.open("a", encoding="utf-8") as out:
            for name, value in values.items():
                delimiter = f"lettafleet_{secrets.token_hex(8)}"
                out.write(f"{name}<<{delimiter}\n{self.mask(value)}\n{delimiter}\n")

    def add_summary(self, markdown: str) -> None:
        if self.summary_file is None:
            return
        with self.summary_file.open("a", encoding="utf-8") as out:
            out.write(self.mask(markdown).rstrip("\n") + "\n\n")


def annotation(level: str, message: str, title: str = "lettafleet") -> str:
    """A workflow command (`::warning title=...::message`) that shows the message on the run's page."""
    escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::{level} title={title}::{escaped}"


# Printable ASCII on lines ending in `\n`: text that, without `::` or `##[`, no runner can read as a command.
_PLAIN_LOG_TEXT = re.compile(r"[ -~\n]*")


def log_text(text: str) -> str:
    """Text for the job log that cannot run a workflow command, whatever a fleet file or a server put in it.

    The runner reads a command from any line (it breaks lines at `\\r` too) that starts with `::` after blanks,
    or holds `##[`. Text that could contains none is printed between `::stop-commands::TOKEN` and `::TOKEN::`,
    as GitHub documents for untrusted output; the random token cannot be guessed, so nothing in between
    resumes commands early."""
    if _PLAIN_LOG_TEXT.fullmatch(text) and "::" not in text and "##[" not in text:
        return text
    token = secrets.token_hex(16)
    return f"::stop-commands::{token}\n{text}\n::{token}::"


def _read_event(path: str) -> Mapping[str, Any]:
    if not path:
        return {}
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ActionsEnvironmentError(f"cannot read the event payload GITHUB_EVENT_PATH={path}: {error}") from None
    return event if isinstance(event, dict) else {}


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
