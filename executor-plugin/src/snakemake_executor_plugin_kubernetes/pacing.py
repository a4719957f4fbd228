"""When the executor's next status round starts, and which rounds do the periodic work.

Snakemake's status loop runs a round, then awaits the executor's `sleep()`. A round reads
only the watch cache, so a job seen ending starts the next one early: Snakemake hears of it
within a fraction of a second, whatever --seconds-between-status-checks says. Work that is
meant to happen at that interval (patching the Secret's owners) stays at the interval: a
round woken early skips it until the interval has passed since it was last done.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

# An early round starts no sooner than this after the last one, nor sooner than
# EARLY_ROUND_COST_FACTOR times that round's own duration: with thousands of active jobs
# each round is a pass over all of them, and this keeps that work under a fifth of one core.
EARLY_ROUND_MIN_GAP = 0.5
EARLY_ROUND_COST_FACTOR = 4
SLEEP_TICK = 0.1


class RoundPacing:
    """The pace of status rounds; `clock` and `sleep` are injectable for tests."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        *,
        min_gap: float = EARLY_ROUND_MIN_GAP,
        cost_factor: float = EARLY_ROUND_COST_FACTOR,
        tick: float = SLEEP_TICK,
    ):
        self._clock = clock
        self._sleep = sleep
        self._min_gap = min_gap
        self._cost_factor = cost_factor
        self._tick = tick
        self.last_round_seconds = 0.0
        self.woken_early = False  # whether the last wait ended early, for a job's ending
        self._round_started = 0.0
        self._periodic_done_at = 0.0

    def start_round(self, interval: float) -> bool:
        """Note a round's start; True if the periodic work is due in it: always in a round
        that came at the interval, in an early one only once `interval` has passed since
        that work was last done."""
        now = self._round_started = self._clock()
        due = not self.woken_early or now - self._periodic_done_at >= interval
        if due:
            self._periodic_done_at = now
        self.woken_early = False
        return due

    def end_round(self) -> None:
        """Note the end of a full round: its duration spaces out the next early one."""
        self.last_round_seconds = self._clock() - self._round_started

    async def wait(
        self, seconds: float, ending_seen: Callable[[], bool], waiting: Callable[[], bool]
    ) -> None:
        """Wait up to `seconds`, checked every tick: end early once `ending_seen()` and the
        earliest start of an early round has come, at once when `waiting()` turns false."""
        now = self._clock()
        deadline = now + seconds
        earliest = now + max(self._min_gap, self._cost_factor * self.last_round_seconds)
        while waiting() and (remaining := deadline - now) > 0:
            if ending_seen() and now >= earliest:
                self.woken_early = True
                return
            await self._sleep(min(remaining, self._tick))
            now = self._clock()
