"""Retry policies for calls to platforms, as named tenacity values.

``RETRY_TRANSIENT`` retries what :mod:`connectors.errors` calls transient:
:class:`ChannelUnavailable` with exponential backoff and jitter, and
:class:`ChannelRateLimited` after the ``retry_after`` the platform asked for
(or the backoff when it named none). :class:`ChannelAuthError` and every
other error are not retried: more tries would not help. The attempts are
bounded; whoever runs the call (the poll runner, a notifier's queue) decides
what happens after the last one. Copy a policy with ``sleep=`` to record the
waits in tests instead of waiting.
"""

from __future__ import annotations

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from connectors.errors import ChannelRateLimited, ChannelUnavailable

#: A platform that asks for a longer pause than this is waited for this long.
MAX_RETRY_AFTER_SECONDS = 300.0


class wait_retry_after(wait_base):  # named like tenacity's own waits
    """Wait what a :class:`ChannelRateLimited` asked for, else fall back to ``fallback``."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, ChannelRateLimited) and error.retry_after is not None:
            return min(max(0.0, float(error.retry_after)), MAX_RETRY_AFTER_SECONDS)
        return float(self.fallback(retry_state))


RETRY_TRANSIENT = AsyncRetrying(
    retry=retry_if_exception_type((ChannelUnavailable, ChannelRateLimited)),
    wait=wait_retry_after(wait_exponential_jitter(initial=1, max=60, jitter=1)),
    stop=stop_after_attempt(4),
    reraise=True,
)
