"""The timer queue both shells serve, and the virtual clock that fires it in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoter.clock import TimerQueue, VirtualClock


def test_due_timers_come_out_in_deadline_then_arming_order() -> None:
    q = TimerQueue()
    q.arm("c", 30)
    q.arm("a", 10)
    q.arm("b", 10)
    q.arm("d", 40)
    assert q.next_at() == 10
    assert q.pop_due(30) == [(10, "a"), (10, "b"), (30, "c")]
    assert len(q) == 1
    assert "d" in q
    assert q.pop_due(39) == []


def test_arming_a_key_again_replaces_its_deadline() -> None:
    q = TimerQueue()
    q.arm("k", 10)
    q.arm("k", 50)
    assert q.next_at() == 50
    assert q.pop_due(49) == []
    assert q.pop_due(50) == [(50, "k")]
    assert q.next_at() is None


def test_a_cancelled_timer_never_fires_and_cancel_says_whether_it_was_armed() -> None:
    q = TimerQueue()
    q.arm("a", 10)
    q.arm("b", 20)
    assert q.cancel("a") is True
    assert q.cancel("a") is False
    assert q.next_at() == 20
    assert q.pop_due(100) == [(20, "b")]


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 1_000),
                          st.booleans()), max_size=60))
def test_the_queue_fires_what_a_plain_dict_of_deadlines_says(
    ops: list[tuple[str, int, bool]],
) -> None:
    q, model = TimerQueue(), {}
    for key, at, cancel in ops:
        if cancel:
            assert q.cancel(key) == (model.pop(key, None) is not None)
        else:
            q.arm(key, at)
            model[key] = at
    assert q.next_at() == (min(model.values()) if model else None)
    fired = q.pop_due(1_000)
    assert sorted(fired) == sorted((at, key) for key, at in model.items())
    assert [at for at, _ in fired] == sorted(at for at, _ in fired)
    assert len(q) == 0


def test_virtual_clock_stands_at_each_deadline_as_it_fires() -> None:
    clock = VirtualClock(start_ns=100)
    clock.timers.arm("late", 300)
    clock.timers.arm("early", 150)
    seen = []
    for key in clock.run_until(250):
        seen.append((key, clock.now_ns()))
    assert seen == [("early", 150)]
    assert clock.now_ns() == 250
    assert clock.timers.next_at() == 300


def test_a_timer_armed_while_firing_is_fired_in_its_turn() -> None:
    clock = VirtualClock(start_ns=0)
    clock.timers.arm("a", 10)
    clock.timers.arm("c", 40)
    seen = []
    for key in clock.run_until(50):
        seen.append((key, clock.now_ns()))
        if key == "a":
            clock.timers.arm("b", 20)  # before "c": must come before it
            clock.timers.arm("past", 5)  # already due: fires now, time does not go back
    assert seen == [("a", 10), ("past", 10), ("b", 20), ("c", 40)]
    assert clock.now_ns() == 50


def test_virtual_clock_never_goes_back() -> None:
    clock = VirtualClock(start_ns=100)
    with pytest.raises(ValueError, match="cannot go back"):
        list(clock.run_until(99))
