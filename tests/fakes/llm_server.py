"""A stand-in for the LLM provider behind Letta: a tiny OpenAI-compatible HTTP server on 127.0.0.1.

Only the model provider is faked; the Letta server stays real. Letta calls an agent's model through the OpenAI
chat-completions protocol at `llm_config.model_endpoint` (and embeddings at `embedding_endpoint`), so an agent
whose config points here gets deterministic answers: the reply to a user message "hello" is "Echo: hello".
Every request is recorded, so tests can check what Letta sent (and so what each conversation's model saw).

What Letta 0.16.8 sends, found by logging it (`python -m tests.fakes.llm_server` prints each request):
- `POST /v1/chat/completions` with `stream: true` and `stream_options.include_usage`, for every agent step.
- letta_v1_agent (the default type, what fleets create): tools conversation_search, memory_insert and
  memory_replace, `tool_choice: "auto"`; no send_message: plain assistant text is the reply and ends the turn.
- memgpt_agent / memgpt_v2_agent: send_message offered, `tool_choice: "required"`, inner thoughts in a
  `thinking` argument that must come before `message` for the reply to stream.
- Compaction (summarize / compact) asks the agent's own model without tools and without streaming.
- No /v1/embeddings or /v1/models call was seen (no archival memory in these tests); both are answered.
- Model names starting with o1/o3/o4/gpt-5 would switch Letta to the Responses API, hence `fake-echo-model`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

MODEL = "fake-echo-model"
EMBEDDING_MODEL = "fake-embedding"
EMBEDDING_DIM = 32
REPLY_PREFIX = "Echo: "
SUMMARY_PREFIX = "Summary of the conversation so far: "
SEND_MESSAGE = "send_message"
# A user message "run: COMMAND" makes the stand-in ask to run COMMAND with the App Server's shell tool (Letta Code
# offers it as `Bash`), so that tests can see what the server does with a tool call on its host.
RUN_PREFIX = "run: "
SHELL_TOOL = "Bash"
# Letta Code wraps what the user typed in system reminders (device, agent); they are not the user's words.
SYSTEM_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    body: dict[str, Any]

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.body.get("tools") or []]

    @property
    def last_user_text(self) -> str:
        return last_user_text(self.body.get("messages") or [])


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return user_words(message_text(message))
    return ""


def user_words(text: str) -> str:
    """What the user typed: older Letta agent types wrap it as JSON {"type": "user_message", "message": ...};
    Letta Code puts system reminders around it."""
    text = SYSTEM_REMINDER.sub("", text)
    try:
        wrapped = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(wrapped, dict) and isinstance(wrapped.get("message"), str):
        return wrapped["message"].strip()
    return text.strip()


def plan_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message for one chat-completions request: a send_message call, or text.

    Letta's default agent type (letta_v1_agent) offers no send_message and takes plain text as the reply; older
    types (memgpt_agent, memgpt_v2_agent) offer it with tool_choice "required". After a tool result the turn is
    over, so the answer is text. A request without tools is a summarization: it gets a summary of the user's words.
    """
    messages = body.get("messages") or []
    tools = {tool["function"]["name"]: tool["function"] for tool in body.get("tools") or []}
    if not tools:
        said = [user_words(message_text(m)) for m in messages if m.get("role") == "user"]
        return {"role": "assistant", "content": SUMMARY_PREFIX + " | ".join(said)[-500:]}
    if messages and messages[-1].get("role") == "tool":
        return {"role": "assistant", "content": "Done."}
    said = last_user_text(messages)
    if said.startswith(RUN_PREFIX) and SHELL_TOOL in tools:
        return tool_call_reply(SHELL_TOOL, {"command": said.removeprefix(RUN_PREFIX), "description": "as asked"})
    reply = FakeLLM.reply_to(said)
    if SEND_MESSAGE not in tools:
        return {"role": "assistant", "content": reply}
    # memgpt agents put their inner thoughts in a `thinking` argument that comes first; Letta's token streaming
    # shows the message only after it.
    properties = (tools[SEND_MESSAGE].get("parameters") or {}).get("properties") or {}
    arguments = {key: "Echoing the user." for key in properties if key != "message"}
    arguments["message"] = reply
    return tool_call_reply(SEND_MESSAGE, arguments)


def tool_call_reply(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """An assistant message that calls one tool."""
    call = {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": tool, "arguments": json.dumps(arguments)},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    prompt = sum(len(message_text(m)) for m in body.get("messages") or []) // 4 + 1
    completion = len(json.dumps(message)) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}
        ],
        "usage": usage(body, message),
    }


def completion_chunks(body: dict[str, Any], message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The same answer as server-sent chunks: role, content or tool-call deltas, finish reason, then usage."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or MODEL,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        arguments = call["function"]["arguments"]
        for start in range(0, len(arguments), 16):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 16]}}]})
    text = message.get("content") or ""
    for start in range(0, len(text), 16):
        yield chunk({"content": text[start : start + 16]})
    yield chunk({}, "tool_calls" if message.get("tool_calls") else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": usage(body, message)}


def embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(dim)]


class FakeLLM:
    """The running stand-in: `base_url` goes into an agent's `model_endpoint`; `requests` lists what it got."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def reply_to(text: str) -> str:
        """What the agent answers to a user message `text`."""
        return REPLY_PREFIX + text

    def record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(path, body))

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path.endswith("/chat/completions")]

    def llm_config(self, context_window: int = 32000) -> dict[str, Any]:
        """An agent's `llm_config` (fleet-file form) that points at this stand-in."""
        return {
            "model": MODEL,
            "model_endpoint_type": "openai",
            "model_endpoint": self.base_url,
            "context_window": context_window,
        }

    def fleet_yaml(self, indent: str = "    ") -> str:
        """The `llm_config` and `embedding_config` keys of a fleet-file agent that uses this stand-in."""
        lines = ["llm_config:", *(f"  {k}: {v}" for k, v in self.llm_config().items()), "embedding_config:"]
        lines += [f"  {k}: {v}" for k, v in self.embedding_config().items()]
        return "".join(f"{indent}{line}\n" for line in lines)

    def embedding_config(self) -> dict[str, Any]:
        return {
            "embedding_endpoint_type": "openai",
            "embedding_endpoint": self.base_url,
            "embedding_model": EMBEDDING_MODEL,
            "embedding_dim": EMBEDDING_DIM,
        }


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the OpenAI SDK expects

        def log_message(self, format: str, *args: Any) -> None:  # the test output stays quiet
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": MODEL, "object": "model", "created": 0, "owned_by": "lettafleet-tests"},
                            {"id": EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "lettafleet-tests"},
                        ],
                    },
                )
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                return
            fake.record(self.path, body)
            if self.path.endswith("/chat/completions"):
                message = plan_reply(body)
                if body.get("stream"):
                    self._sse(completion_chunks(body, message))
                else:
                    self._json(200, completion(body, message))
            elif self.path.endswith("/embeddings"):
                inputs = body.get("input")
                texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
                dim = int(body.get("dimensions") or EMBEDDING_DIM)
                self._json(
                    200,
                    {
                        "object": "list",
                        "model": body.get("model") or EMBEDDING_MODEL,
                        "data": [
                            {"object": "embedding", "index": i, "embedding": embedding(str(t), dim)}
                            for i, t in enumerate(texts)
                        ],
                        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
                    },
                )
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, chunks: Iterator[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in [*(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks), "data: [DONE]\n\n"]:
                data = event.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """A running stand-in LLM provider for the whole test session."""
    fake = FakeLLM().start()
    try:
        yield fake
    finally:
        fake.stop()


if __name__ == "__main__":  # run by hand while exploring what Letta sends: requests are printed as they come
    import sys

    running = FakeLLM()
    original = running.record

    def print_and_record(path: str, body: dict[str, Any]) -> None:
        original(path, body)
        print(json.dumps({"path": path, "body": body}), flush=True)

    running.record = print_and_record  # type: ignore[method-assign]
    running.start()
    print(f"fake LLM at {running.base_url}", file=sys.stderr, flush=True)
    running._thread.join()
