"""One turn of an App Server agent: a user message in, its reply out as it streams, and every request of the
agent to run a tool on the server's host answered by lettafleet (refused unless the user allowed tools).

The runtime is started in the server's `strict` permission mode, where every tool call asks first: the server's
own default (`unrestricted`) would run any tool, a shell command included, without asking anyone.
"""

from __future__ import annotations

import contextlib
import json
import queue
import uuid
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import (
    CONNECTION_CLOSED,
    AppServerError,
    AppServerTimeout,
    Frame,
)

ASKS_EVERY_TOOL = "strict"
# A turn may wait on a slow model or a long tool: this is the longest silence between two events, not the turn.
IDLE_TIMEOUT_S = 300.0
# What the agent is told when a tool call is refused (it becomes the tool's result).
REFUSAL = (
    "lettafleet refused to run this tool on the App Server's host: `lettafleet send` runs tools only when the user "
    "passes --approve-tools."
)
# Events of ours in the stream (lettafleet's, not the server's): one per approval request, and a failed turn.
APPROVAL_DECISION = "approval_decision"
ERROR = "error_message"
CANCELLED = "cancelled"  # the stop reason of a turn `abort_message` stopped


@dataclass(frozen=True)
class ToolRequest:
    """An approval request of the server: the agent wants to run `tool` with `arguments` on the server's host."""

    request_id: str
    tool: str
    arguments: Mapping[str, Any]
    tool_call_id: str

    @classmethod
    def of(cls, frame: Frame) -> ToolRequest:
        asked = frame.get("request") or {}
        arguments = asked.get("input")
        return cls(
            str(frame.get("request_id")),
            str(asked.get("tool_name") or "?"),
            arguments if isinstance(arguments, dict) else {},
            str(asked.get("tool_call_id") or ""),
        )

    def decision(self, approved: bool) -> Frame:
        """The event `send` shows (and prints as JSON) for this request."""
        return {
            "message_type": APPROVAL_DECISION,
            "tool_call_id": self.tool_call_id,
            "tool_name": self.tool,
            "arguments": json.dumps(self.arguments),
            "approved": approved,
        }


def run_turn(
    app: AppServerClient,
    agent_id: str,
    conversation_id: str,
    text: str,
    *,
    approve_tools: bool,
    idle_timeout: float = IDLE_TIMEOUT_S,
) -> Generator[Frame, None, None]:
    """Send `text` to the agent in `conversation_id` (`default`: its own) and yield the reply as Letta's streaming
    messages (what V1 streams), with an `approval_decision` event for each tool the agent asked to run."""
    runtime = {"agent_id": agent_id, "conversation_id": conversation_id}
    # The server queues a message while the conversation is busy (another turn, or one just interrupted), and
    # queues only messages that carry an id of their own; the id then says when the message's turn starts.
    message = {"role": "user", "content": text, "client_message_id": f"lettafleet-{uuid.uuid4().hex}"}
    with app.listening() as events:
        app.start_runtime(agent_id, conversation_id, mode=ASKS_EVERY_TOOL)
        accepted = app.send_input(runtime, {"kind": "create_message", "messages": [message]})
        frames = _scoped(events, runtime, idle_timeout)
        finished = False
        try:
            if accepted.get("disposition") == "queued":
                yield from _wait_for_turn(frames, message["client_message_id"])
            yield from _reply(app, runtime, frames, approve_tools)
            finished = True
        finally:
            if not finished:  # Ctrl-C, or no longer waited for: the server would go on, and with its tools
                with contextlib.suppress(AppServerError):
                    app.abort_turn(runtime)


def _scoped(events: queue.SimpleQueue[Frame], runtime: Mapping[str, Any], idle_timeout: float) -> Iterator[Frame]:
    """The events about this conversation (events of every runtime share the socket), and the socket's end."""
    while True:
        frame = _next_event(events, idle_timeout)
        if frame.get("type") == CONNECTION_CLOSED or _in_scope(frame, runtime):
            yield frame


def _wait_for_turn(frames: Iterator[Frame], message_id: str) -> Iterator[Frame]:
    """Skip the turn running before ours: wait until the server takes our message off its queue."""
    for frame in frames:
        if frame.get("type") == CONNECTION_CLOSED:
            yield _error("connection_closed", frame.get("error"))
            return
        taken_off = frame.get("removed") if frame.get("type") == "update_queue" else None
        for removed in taken_off or ():
            if removed.get("client_message_id") == message_id:
                if removed.get("disposition") != "dequeued":
                    yield _error("cancelled", "the server cancelled the message before the agent read it")
                return


def _reply(app: AppServerClient, runtime: Mapping[str, Any], frames: Iterator[Frame], approve: bool) -> Iterator[Frame]:
    failed = False  # the server says a failure up to three times (the model's error, the loop's, the turn's)
    for frame in frames:
        kind = frame.get("type")
        if kind == CONNECTION_CLOSED:
            yield _error("connection_closed", frame.get("error"))
            return
        if kind == "control_request":
            yield _answer(app, runtime, ToolRequest.of(frame), approve)
        elif kind == "stream_delta":
            for event in _streamed(frame.get("delta") or {}):
                if event.get("message_type") != ERROR or not failed:
                    yield event
                failed = failed or event.get("message_type") == ERROR
        elif kind == "turn_finished":
            if frame.get("error") and not failed:
                yield _error(str(frame.get("stop_reason")), frame["error"])
            elif frame.get("stop_reason") == CANCELLED:  # stopped from elsewhere (`cancel-messages`), said as V1 does
                yield {"message_type": "stop_reason", "stop_reason": CANCELLED}
            return


def _error(kind: str, message: object) -> Frame:
    return {"message_type": ERROR, "error_type": kind, "message": message}


def _next_event(events: queue.SimpleQueue[Frame], idle_timeout: float) -> Frame:
    try:
        return events.get(timeout=idle_timeout)
    except queue.Empty:
        raise AppServerTimeout(
            "input", f"the agent's turn sent nothing for {idle_timeout:g} s; its messages so far are kept"
        ) from None


def _in_scope(frame: Frame, runtime: Mapping[str, Any]) -> bool:
    """Whether an event is about this conversation (events of every runtime share the socket)."""
    scope = frame.get("runtime") or {}
    return all(scope.get(key) == value for key, value in runtime.items())


def _answer(app: AppServerClient, runtime: Mapping[str, Any], request: ToolRequest, approve: bool) -> Frame:
    decision: dict[str, Any] = {"behavior": "allow"} if approve else {"behavior": "deny", "message": REFUSAL}
    app.send_input(runtime, {"kind": "approval_response", "request_id": request.request_id, "decision": decision})
    return request.decision(approve)


def _streamed(delta: Frame) -> Iterator[Frame]:
    """A delta as V1 streams it: Letta's own messages pass (without the envelope's `type`), a loop error becomes
    an `error_message`; the server's lifecycle notes (tool start/end, retries) are not part of the reply."""
    if delta.get("type") == "message" and not _not_the_reply(delta):
        yield {key: value for key, value in delta.items() if key != "type"}
    elif delta.get("message_type") == "loop_error" and delta.get("is_terminal"):
        yield _error(str(delta.get("stop_reason")), delta.get("message"))


def _not_the_reply(delta: Frame) -> bool:
    """Our own message echoed back, and the pause for an approval that lettafleet answers itself."""
    kind = delta.get("message_type")
    return kind == "user_message" or (kind == "stop_reason" and delta.get("stop_reason") == "requires_approval")
