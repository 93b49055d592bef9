"""Replay protection for signed webhooks whose signature does not cover everything.

A timestamp window alone lets a captured request be sent again within the
window, and where the signature leaves the body out (WeChat's plaintext mode
signs only token, timestamp and nonce) with another body. :class:`ReplayGuard`
remembers each signature seen within the window together with a digest of its
body:

* the same signature with the same body is a platform redelivery (WeChat
  resends a push it got no answer to): let through, dedupe absorbs it, so a
  complaint whose first delivery hit a 503 is never refused on its retry;
* the same signature with another body is a replay: refused as ``replayed_nonce``.

Keying on the signature rather than on the nonce also catches a swap of the
timestamp and nonce values, which WeChat's sorted signature cannot tell apart.
Only authenticated requests are remembered, so strangers cannot fill it; it
is bounded all the same (``max_entries``, oldest first). It lives in one
process: several gateway instances behind a balancer each keep their own.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from datetime import timedelta

from connectors.errors import InvalidSignature
from service.clock import Clock


class ReplayGuard:
    def __init__(self, clock: Clock, window: timedelta, max_entries: int = 1_000_000) -> None:
        self._clock = clock
        self._window = window.total_seconds()
        self._max_entries = max_entries
        # signature -> (body digest, forget at); insertion order is time order
        self._seen: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, signature: str, body: bytes) -> None:
        """Remember ``signature`` with ``body``; refuse it if it came before with another body."""
        now = self._clock.now().timestamp()
        self._forget_expired(now)
        digest = hashlib.blake2b(body, digest_size=16).digest()
        seen = self._seen.get(signature)
        if seen is not None:
            if seen[0] != digest:
                raise InvalidSignature(
                    "this signature was already used with another body", "replayed_nonce"
                )
            return
        self._seen[signature] = (digest, now + 2 * self._window)
        if len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)

    def _forget_expired(self, now: float) -> None:
        seen = self._seen
        while seen:
            oldest = next(iter(seen.values()))
            if oldest[1] > now:
                return
            seen.popitem(last=False)
