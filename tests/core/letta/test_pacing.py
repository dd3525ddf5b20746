"""The pacer: a refusal holds every thread back as long as the server asks, the number of requests in flight
halves on a refusal and grows back as answers come, and a refused request waits for as long as there is progress."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import pytest

from lettafleet.core.letta.pacing import FIRST_PAUSE, Pacer, PaceSummary, PacingGaveUp
from tests.fakes.pacer_time import FakeTime


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def test_a_retry_after_holds_back_every_thread_not_only_the_refused_one() -> None:
    pacer = Pacer(ceiling=8)
    refused_at = time.monotonic()
    pacer.refused(0.4)
    sent_at: list[float] = []

    def another_request() -> None:
        with pacer.turn():
            sent_at.append(time.monotonic())

    threads = [threading.Thread(target=another_request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent_at) == 4
    assert min(sent_at) - refused_at >= 0.4


def test_a_refusal_halves_the_requests_in_flight_and_answers_add_back_one_per_round() -> None:
    pacer = Pacer(ceiling=8)
    pacer.refused(0.0)
    assert pacer.limit == 4
    pacer.refused(0.0)
    assert pacer.limit == 2
    for _ in range(2):
        pacer.answered()
    assert pacer.limit == 3
    for _ in range(3 + 4 + 5 + 6):
        pacer.answered()
    assert pacer.limit == 7
    for _ in range(50):
        pacer.answered()
    assert pacer.limit == 8  # never past the ceiling
    for _ in range(10):
        pacer.refused(0.0)
    assert pacer.limit == 1  # never below one


def test_the_refusals_of_requests_sent_together_slow_down_once_not_once_each(fake_time: FakeTime) -> None:
    pacer = fake_time.pacer(ceiling=8)
    with ExitStack() as in_flight:  # eight requests on their way when the server starts refusing
        sent = [in_flight.enter_context(pacer.turn()) for _ in range(8)]
    for sent_at in sent:
        pacer.refused(None, sent_at)
    assert pacer.limit == 4  # halved once, not down to one
    with pacer.turn() as later:
        pass
    assert sum(fake_time.waited) <= 1.5 * FIRST_PAUSE  # the first pause, not one grown eight times over
    pacer.refused(None, later)  # sent after the slowdown: a new signal
    assert pacer.limit == 2


def test_a_request_sent_before_the_slowdown_still_waits_for_its_own_retry_after(fake_time: FakeTime) -> None:
    pacer = fake_time.pacer(ceiling=8)
    with pacer.turn() as first, pacer.turn() as second:
        pass
    pacer.refused(None, first)
    pacer.refused(5.0, second)
    assert pacer.limit == 4
    with pacer.turn():
        pass
    assert sum(fake_time.waited) == pytest.approx(5.0)


def test_no_more_requests_are_in_flight_than_the_limit() -> None:
    pacer = Pacer(ceiling=2)
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def request() -> None:
        nonlocal in_flight, most
        with pacer.turn():
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            time.sleep(0.05)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 2


def test_a_refused_request_waits_as_long_as_the_server_asks_even_far_past_a_minute(fake_time: FakeTime) -> None:
    pacer = fake_time.pacer(patience=600)
    for _ in range(9):  # nine refusals asking for 30 s each: 270 s without an answer, within the patience
        with pacer.turn():
            pass
        pacer.refused(30.0)
    with pacer.turn():
        pass
    pacer.answered()
    assert sum(fake_time.waited) == pytest.approx(270.0)


def test_a_server_that_refuses_everything_for_the_patience_is_given_up_on(fake_time: FakeTime) -> None:
    pacer = fake_time.pacer(patience=60)
    with pytest.raises(PacingGaveUp) as caught:
        while True:
            with pacer.turn():
                pass
            pacer.refused(7.0)
    assert "refused every request for 56 s; it asked to wait 7 s more" in str(caught.value)
    assert "--rate-limit-patience" in str(caught.value)


def test_an_answer_in_between_restarts_the_patience(fake_time: FakeTime) -> None:
    pacer = fake_time.pacer(patience=60)
    for _ in range(20):  # refusals asking for 40 s, each followed by an answer: never 60 s of refusals in a row
        with pacer.turn():
            pass
        pacer.refused(40.0)
        pacer.answered()
    assert sum(fake_time.waited) == pytest.approx(19 * 40.0)  # the last pause held nothing back


def test_a_stop_gives_up_a_wait_for_the_server_at_once() -> None:
    stop = threading.Event()
    pacer = Pacer()
    pacer.stops_with(stop)
    pacer.refused(30.0)
    stop.set()
    started = time.monotonic()
    with pytest.raises(PacingGaveUp, match="stopped"), pacer.turn():
        pass
    assert time.monotonic() - started < 1.0


def test_a_measure_says_how_many_requests_went_at_what_concurrency_and_how_long_they_were_held(
    fake_time: FakeTime,
) -> None:
    pacer = fake_time.pacer(ceiling=8)
    finish = pacer.measure()
    for status in ("refused", "refused", "answered", "answered", "answered"):
        with pacer.turn():
            fake_time.now += 1.0
        if status == "refused":
            pacer.refused(2.0)
        else:
            pacer.answered()
    summary = finish()
    assert summary == PaceSummary(requests=5, seconds=pytest.approx(9.0), refusals=2, paused=4.0, lowest=2, highest=8)
    assert summary.per_second == pytest.approx(5 / 9)
    assert summary.describe() == (
        "Rate: 5 requests in 9.0 s (0.6/s), 2 to 8 at once; 2 refused (429/503), paused 4.0 s."
    )
