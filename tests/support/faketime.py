"""Injected time for tests: a clock that only moves when something sleeps on it."""

import asyncio


class FakeTime:
    """``clock()`` returns ``now``; ``await sleep(s)`` advances ``now`` by ``s`` at once."""

    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self.now = start
        self.wall_offset = wall - start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wallclock(self) -> float:
        return self.now + self.wall_offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)
