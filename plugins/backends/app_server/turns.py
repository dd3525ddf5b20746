"""One turn of an App Server agent: a user message in, its reply out as it streams, and every request of the
agent to run a tool on the server's host answered by lettafleet (refused unless the user allowed tools).

The runtime is started in the server's `strict` permission mode, where every tool call asks first: the server's
own default (`unrestricted`) would run any tool, a shell command included, without asking anyone.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import CONNECTION_CLOSED, AppServerTimeout, Frame

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
) -> Iterator[Frame]:
    """Send `text` to the agent in `conversation_id` (`default`: its own) and yield the reply as Letta's streaming
    messages (what V1 streams), with an `approval_decision` event for each tool the agent asked to run."""
    runtime = {"agent_id": agent_id, "conversation_id": conversation_id}
    with app.listening() as events:
        app.start_runtime(agent_id, conversation_id, mode=ASKS_EVERY_TOOL)
        app.send_input(runtime, {"kind": "create_message", "messages": [{"role": "user", "content": text}]})
        try:
            yield from _reply(app, runtime, events, approve_tools, idle_timeout)
        except KeyboardInterrupt:
            app.abort_turn(runtime)  # the server would go on with the turn, and with its tools
            raise


def _reply(
    app: AppServerClient,
    runtime: Mapping[str, Any],
    events: queue.SimpleQueue[Frame],
    approve_tools: bool,
    idle_timeout: float,
) -> Iterator[Frame]:
    while True:
        frame = _next_event(events, idle_timeout)
        if frame.get("type") == CONNECTION_CLOSED:
            yield {"message_type": ERROR, "error_type": "connection_closed", "message": frame.get("error")}
            return
        if not _in_scope(frame, runtime):
            continue
        kind = frame.get("type")
        if kind == "control_request":
            yield _answer(app, runtime, ToolRequest.of(frame), approve_tools)
        elif kind == "stream_delta":
            yield from _streamed(frame.get("delta") or {})
        elif kind == "turn_finished":
            if frame.get("error"):
                yield {"message_type": ERROR, "error_type": str(frame.get("stop_reason")), "message": frame["error"]}
            return


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
    if delta.get("type") == "message":
        yield {key: value for key, value in delta.items() if key != "type"}
    elif delta.get("message_type") == "loop_error" and delta.get("is_terminal"):
        yield {"message_type": ERROR, "error_type": str(delta.get("stop_reason")), "message": delta.get("message")}
