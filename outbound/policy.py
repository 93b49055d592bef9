"""When a notification may go out: quiet hours, provider rate limits and the retry policy.

* Quiet hours hold SMS (not WeChat or e-mail, which do not ring a phone)
  between ``start`` and ``end`` in the customers' time zone, except for
  exempt priorities (P1) and nodes (``overdue_warning``): a held message is
  due at the end of the quiet hours, not dropped.
* :class:`RateLimit` is a token bucket per provider, taken before each call,
  so the gateway stays under the provider's limit instead of learning it from
  a refusal. It is per process: with several replicas, divide the rate.
* :data:`RETRY_NOTIFICATION` is the retry policy as a tenacity value. The
  dispatcher does not sleep in tenacity's loop: a failed job goes back to the
  durable queue, due after the policy's wait, so waiting survives restarts
  and holds no worker. :func:`next_wait` asks the policy for one decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from connectors.errors import ChannelRateLimited, ChannelUnavailable
from connectors.retry import wait_retry_after
from outbound.settings import NotificationSettings, QuietHours


def quiet_until(now: datetime, quiet: QuietHours) -> datetime | None:
    """The end of the quiet hours ``now`` falls in, or None outside them."""
    local = now.astimezone(ZoneInfo(quiet.timezone))
    start = local.replace(hour=quiet.start.hour, minute=quiet.start.minute, second=0, microsecond=0)
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    clock = local.time()
    if quiet.start <= quiet.end:  # e.g. 12:00–14:00 within one day
        return end if start <= local < end else None
    if clock >= quiet.start:  # evening part: quiet until tomorrow's end
        return end + timedelta(days=1)
    if clock < quiet.end:  # morning part
        return end
    return None


def retry_policy(settings: NotificationSettings) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type((ChannelUnavailable, ChannelRateLimited)),
        wait=wait_retry_after(
            wait_exponential_jitter(
                multiplier=settings.retry_initial_seconds, max=settings.retry_max_seconds, jitter=1
            )
        ),
        stop=stop_after_attempt(settings.max_attempts),
        reraise=True,
    )


#: The defaults' policy: 8 rounds, 2 s doubling up to 5 min, Retry-After honoured.
RETRY_NOTIFICATION = retry_policy(NotificationSettings())


def next_wait(policy: AsyncRetrying, rounds: int, error: BaseException) -> float | None:
    """Seconds to wait before round ``rounds + 1`` after ``error``; None to give up."""
    state = RetryCallState(policy, None, (), {})
    state.attempt_number = rounds
    state.set_exception((type(error), error, None))
    if not policy.retry(state) or policy.stop(state):
        return None
    return float(policy.wait(state))


class RateLimit:
    """A token bucket: ``rate`` calls per second, ``burst`` at once."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Take one token, waiting for it if needed; returns how long it waited."""
        async with self._lock:  # callers queue in order, nobody starves
            waited = 0.0
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                pause = (1 - self._tokens) / self.rate
                waited += pause
                await self._sleep(pause)  # type: ignore[misc]
