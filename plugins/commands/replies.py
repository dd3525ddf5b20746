"""Showing a streamed reply: the assistant's text as it arrives, and (verbose) its reasoning and tool calls."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rich_click as click

from lettafleet.plugins.commands.histories import message_text, tool_calls


def stream_error(event: Mapping[str, Any]) -> str:
    """What an `error_message` event of a reply stream says, and what to check."""
    said = event.get("detail")
    detail = f" ({said})" if said and said != event.get("message") else ""
    return (
        f"{event.get('error_type', 'error')}: {event.get('message')}{detail}. Check the "
        "agent's model settings (`lettafleet describe agent`)."
    )


def approval_note(event: Mapping[str, Any]) -> str:
    """What `send` says about a tool the agent asked to run on the App Server's host, and what it decided."""
    call = f"{event.get('tool_name')}({event.get('arguments')})"
    if event.get("approved"):
        return f"note: approved (--approve-tools): the agent ran {call} on the App Server's host."
    return (
        f"note: refused: the agent asked to run {call} on the App Server's host; it did not run. "
        "Pass --approve-tools to let it."
    )


@dataclass
class ReplyStep:
    """One non-text step of a reply (reasoning, a tool call, its result), gathered from its streamed pieces."""

    key: tuple[str, str]  # (message id, message type)
    tool: str = ""
    text: str = ""

    def line(self) -> str:
        kind = self.key[1].removesuffix("_message")
        return f"[{kind}] {self.tool}({self.text})" if self.tool else f"[{kind}] {self.text.strip()}"


class ReplyPrinter:
    """Shows a streamed reply: the assistant's text as it arrives (stdout); with verbose, the rest on stderr."""

    def __init__(self, *, as_json: bool, verbose: bool) -> None:
        self.as_json, self.verbose = as_json, verbose
        self.errors: list[str] = []
        self._open_line = False
        self._step: ReplyStep | None = None

    def show(self, event: Mapping[str, Any]) -> None:
        kind = event.get("message_type")
        if kind == "ping":
            return  # keep-alives, not part of the reply
        if kind == "error_message":
            self.errors.append(stream_error(event))
        if self.as_json:
            click.echo(json.dumps(event))
            return
        if kind == "approval_decision":  # an App Server agent asked to run a tool on the server's host
            self._flush_step()
            self._end_line()
            click.echo(approval_note(event), err=True)
            return
        if kind == "assistant_message":
            self._flush_step()
            click.echo(message_text(event), nl=False)
            sys.stdout.flush()
            self._open_line = True
        elif kind == "stop_reason" and event.get("stop_reason") not in ("end_turn", None):
            self._flush_step()
            self._end_line()
            click.echo(f"note: the agent stopped: {event['stop_reason']}", err=True)
        elif kind == "usage_statistics" and self.verbose:
            self._flush_step()
            self._end_line()
            steps = f" in {event['step_count']} step(s)" if event.get("step_count") is not None else ""
            click.echo(f"[usage] {event.get('total_tokens')} tokens{steps}", err=True)  # App Servers count no steps
        elif self.verbose and kind in ("reasoning_message", "tool_call_message", "tool_return_message"):
            self._add_to_step(event)

    def finish(self) -> None:
        self._flush_step()
        self._end_line()

    def _add_to_step(self, event: Mapping[str, Any]) -> None:
        # Token streaming splits a step into many events with one message id: the tool name comes once, the
        # arguments (or the reasoning) in pieces.
        key = (str(event.get("id")), str(event.get("message_type")))
        if self._step is None or self._step.key != key:
            self._flush_step()
            self._step = ReplyStep(key)
        if key[1] == "tool_call_message":
            for call in tool_calls(event)[:1]:
                self._step.tool = self._step.tool or call.get("name") or ""
                self._step.text += call.get("arguments") or ""
        else:
            self._step.text += message_text(event)

    def _flush_step(self) -> None:
        if self._step is not None:
            self._end_line()
            click.echo(self._step.line(), err=True)
        self._step = None

    def _end_line(self) -> None:
        if self._open_line:
            click.echo("")
            self._open_line = False
