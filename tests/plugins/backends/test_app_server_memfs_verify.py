"""`memory.verify` on the App Server: after the apply that first writes an agent's section files, a missing file or
a smoke prompt left without a reply fails that agent's apply loudly, and a passed check is kept in its record."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from lettafleet.core import ApplyError, compare
from lettafleet.plugins.backends.app_server import memfs
from lettafleet.plugins.resources.memfs import verify_resource

AGENT = "agent.support"


def verify_change(**checks: Any) -> Any:
    files = [SimpleNamespace(path="system/policies.md"), SimpleNamespace(path="notes.md")]
    return compare(verify_resource(AGENT, "support", {"verify": checks}, files), None)


class Session:
    def __init__(self) -> None:
        self.client = object()
        self.recorded: dict[str, str] = {}

    def id_of(self, address: str) -> str:
        assert address == AGENT
        return "agent-1"

    def record_id(self, address: str, value: str) -> None:
        self.recorded[address] = value


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The agent's memory files (path -> text) and the events its turn streams, as the handler reads them."""
    state = SimpleNamespace(files={"system/policies.md": "x", "notes.md": "y"}, events=[], turns=0)
    monkeypatch.setattr(memfs, "app_of", lambda client: object())
    monkeypatch.setattr(memfs, "_read_raw", lambda app, agent_id, path: state.files.get(path))

    def run_turn(app: object, agent_id: str, conversation: str, text: str, *, approve_tools: bool) -> Iterator[Any]:
        assert (agent_id, conversation, approve_tools) == ("agent-1", "default", False)
        state.turns += 1
        yield from state.events

    monkeypatch.setattr(memfs, "run_turn", run_turn)
    return state


def test_a_passed_check_is_kept_in_the_agents_record(server: SimpleNamespace) -> None:
    server.events = [{"message_type": "assistant_message", "content": "hello"}]
    session = Session()
    memfs.AppServerMemorySwitch().apply(verify_change(smoke_prompt="hi"), session)  # type: ignore[arg-type]
    assert session.recorded == {f"{AGENT}.memory_mode.verify": memfs.PASSED} and server.turns == 1


def test_a_missing_file_fails_the_agents_apply_naming_it_and_no_turn_is_made(server: SimpleNamespace) -> None:
    del server.files["notes.md"]
    session = Session()
    with pytest.raises(ApplyError, match=r"agent.support: memory.verify failed .*its memory lacks notes.md"):
        memfs.AppServerMemorySwitch().apply(verify_change(smoke_prompt="hi"), session)  # type: ignore[arg-type]
    assert session.recorded == {} and server.turns == 0


@pytest.mark.parametrize(
    ("events", "says"),
    [
        ([], "smoke_prompt got no reply from the agent"),
        ([{"message_type": "error_message", "message": "the model is down"}], "smoke_prompt got no reply: the model"),
        ([{"message_type": "reasoning_message", "reasoning": "hm"}], "smoke_prompt got no reply from the agent"),
    ],
)
def test_a_smoke_prompt_without_a_reply_fails_the_agents_apply(
    server: SimpleNamespace, events: list[dict[str, Any]], says: str
) -> None:
    server.events = events
    session = Session()
    with pytest.raises(ApplyError, match=f"agent.support: memory.verify failed .*{says}"):
        memfs.AppServerMemorySwitch().apply(verify_change(smoke_prompt="hi"), session)  # type: ignore[arg-type]
    assert session.recorded == {}
