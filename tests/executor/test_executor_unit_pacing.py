"""The pace of status rounds (pacing.RoundPacing) on a fake clock: no wall time passes."""

from __future__ import annotations

import asyncio

import pytest

from snakemake_executor_plugin_kubernetes.pacing import (
    EARLY_ROUND_COST_FACTOR,
    EARLY_ROUND_MIN_GAP,
    RoundPacing,
)


class FakeClock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def pacing(clock: FakeClock, **kw: float) -> RoundPacing:
    return RoundPacing(clock, clock.sleep, **kw)


def wait(
    clock: FakeClock,
    pace: RoundPacing,
    seconds: float,
    ending_at: float | None = None,
    stop_at: float | None = None,
) -> None:
    """One wait; a job's ending is seen from ``ending_at``, shutdown from ``stop_at``."""
    asyncio.run(
        pace.wait(
            seconds,
            ending_seen=lambda: ending_at is not None and clock() >= ending_at,
            waiting=lambda: stop_at is None or clock() < stop_at,
        )
    )


def test_without_an_ending_the_wait_lasts_the_interval_in_ticks() -> None:
    clock = FakeClock()
    pace = pacing(clock, tick=0.25)
    wait(clock, pace, 1.6)
    assert clock.sleeps == [0.25] * 6 + [pytest.approx(0.1)]  # the last one only the rest
    assert clock.now == pytest.approx(1001.6) and not pace.woken_early


def test_an_ending_wakes_the_round_no_sooner_than_the_minimum_gap() -> None:
    clock = FakeClock()
    pace = pacing(clock, tick=0.25)
    wait(clock, pace, 3600, ending_at=clock.now)  # seen at once, as the last round ended
    assert pace.woken_early
    assert clock.now - 1000.0 == EARLY_ROUND_MIN_GAP == 0.5


def test_a_long_round_spaces_out_the_next_early_one() -> None:
    clock = FakeClock()
    pace = pacing(clock, tick=0.25)
    pace.start_round(interval=3600)
    clock.now += 1.5  # a round over many active jobs
    pace.end_round()
    assert pace.last_round_seconds == 1.5
    started = clock.now
    wait(clock, pace, 3600, ending_at=started)
    assert pace.woken_early and clock.now - started == EARLY_ROUND_COST_FACTOR * 1.5
    # An ending seen later than the earliest start wakes the round at the next tick.
    started = clock.now
    wait(clock, pace, 3600, ending_at=started + 10.1)
    assert clock.now - started == 10.25


def test_shutdown_ends_the_wait_at_once() -> None:
    clock = FakeClock()
    pace = pacing(clock, tick=0.25)
    wait(clock, pace, 3600, stop_at=clock.now + 0.5)
    assert clock.now == 1000.5 and not pace.woken_early
    wait(clock, pace, 3600, stop_at=clock.now)
    assert clock.now == 1000.5


def test_periodic_work_stays_at_the_interval_when_rounds_come_early() -> None:
    clock = FakeClock()
    pace = pacing(clock, tick=0.25)
    interval = 10.0
    due: list[tuple[float, bool]] = []

    def round_then_wait(ending_at: float | None) -> None:
        due.append((clock.now - 1000.0, pace.start_round(interval)))
        pace.end_round()
        wait(clock, pace, interval, ending_at=ending_at)

    round_then_wait(ending_at=None)  # t=0, a round at the interval
    round_then_wait(ending_at=clock.now + 2)  # t=10
    round_then_wait(ending_at=clock.now + 3)  # t=12, woken early
    round_then_wait(ending_at=clock.now + 5)  # t=15, woken early
    round_then_wait(ending_at=None)  # t=20, woken early: the interval has passed since t=10
    round_then_wait(ending_at=None)  # t=30, at the interval again
    assert due == [(0, True), (10, True), (12, False), (15, False), (20, True), (30, True)]


def test_the_defaults_are_the_documented_figures() -> None:
    clock = FakeClock()
    pace = pacing(clock)
    wait(clock, pace, 3600, ending_at=clock.now)
    assert clock.now - 1000.0 == pytest.approx(EARLY_ROUND_MIN_GAP)
    assert clock.sleeps == [pytest.approx(0.1)] * 5
