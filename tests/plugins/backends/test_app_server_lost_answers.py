"""Requests in flight when the App Server's socket drops, or whose answer never comes, against a scripted server:
each fails promptly with a LettaError naming its own request and saying that it may have landed, and a memory
write that got no answer is not "restored" (it may have landed; a refused one is)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lettafleet.plugins.backends.app_server.client import AppServerClient
from lettafleet.plugins.backends.app_server.connection import AppServerConnectionError, AppServerTimeout
from tests.fakes.scripted_ws_server import Frame, scripted_server

IN_FLIGHT = 6


def test_every_request_in_flight_when_the_socket_drops_fails_at_once_naming_itself() -> None:
    def close_once_all_arrived(frame: Frame, send: Any) -> None:
        """Answers nothing; once every request is on the wire, the connection goes."""
        if len(server.frames) == IN_FLIGHT:
            raise RuntimeError("the server goes away")

    with scripted_server(close_once_all_arrived) as server, AppServerClient(server.url, timeout=30) as client:

        def one(index: int) -> BaseException | None:
            try:
                if index % 2:
                    client.write_memory_file(f"agent-{index}", "persona.md", "---\nname: persona\n---\nHi.")
                else:
                    client.retrieve_agent(f"agent-{index}")
            except AppServerConnectionError as error:
                return error
            return None

        started = time.monotonic()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            running = [pool.submit(one, index) for index in range(IN_FLIGHT)]
            errors = [future.result() for future in running]
        took = time.monotonic() - started

    assert took < 5, f"requests in flight waited {took:.1f} s for a socket that was gone"
    assert all(isinstance(error, AppServerConnectionError) for error in errors), errors
    said = sorted(str(error).split(":")[0] for error in errors)
    assert said == sorted(
        ["the App Server did not answer write_memory_file"] * 3 + ["the App Server did not answer agent_retrieve"] * 3
    )
    assert all("may have landed" in str(error) and "lettafleet plan" in str(error) for error in errors)


def test_a_memory_write_without_an_answer_fails_after_one_timeout_and_is_left_as_it_may_have_landed() -> None:
    with scripted_server(lambda frame, send: None) as server, AppServerClient(server.url, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(AppServerTimeout, match=r"did not answer write_memory_file: no answer within 0\.5 s"):
            client.write_memory_file("agent-1", "persona.md", "---\nname: persona\n---\nHi.")
        took = time.monotonic() - started

    assert took < 1.0, took  # not a second wait for a restore that could undo a write that landed
    assert [frame["type"] for frame in server.frames] == ["write_memory_file"]
