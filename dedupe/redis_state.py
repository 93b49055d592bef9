"""Dedupe, identity and linking state shared by several gateway replicas through Redis.

:class:`RedisState` holds one connection pool (opened from a ``redis://`` URL,
with short timeouts) and hands out the three stores of :mod:`dedupe.state`:

* :class:`RedisDedupeStore`: ``<prefix>d:<key>`` holds ``pending:<record_id>:<token>``
  for a short claim (set only if absent, with a TTL, by a small Lua script that
  returns what is there otherwise), then ``done:<record_id>`` for the dedupe
  window. A replica that finds another's claim polls until it is done, released
  or expired, and after ``wait_seconds`` gives up with :class:`StateUnavailable`.
* :class:`RedisIdentityMap`: ``<prefix>i:k:<key>`` names the person of a key;
  the hash ``<prefix>i:p:<person>`` holds the person's first-seen time
  (``first``, epoch seconds) and one JSON link row per key (``k:<key>``).
  :meth:`~RedisIdentityMap.resolve` is one Lua script, so replicas resolving
  overlapping keys at once still end with one person.
* :class:`RedisLinkIndex`: entries as JSON under ``<prefix>l:e:<record_id>``,
  postings as sorted sets ``<prefix>l:x:<lookup>`` (score: the entry's time)
  trimmed to their newest ``per_lookup`` members, resolved incidents under
  ``<prefix>l:c:<record_id>``; all of it expires with the window.

Identity has no expiry: it is a durable map, and Redis only keeps it across a
restart if the operator turns persistence on (AOF, ``appendfsync everysec``, or
RDB snapshots). Running Redis without it loses every link on a restart; the
dedupe and link state would merely be re-learnt (within one window).

The identity script touches keys it finds while running (the persons' hashes),
so it needs a single Redis (or a primary with replicas), not Redis Cluster.

Every call raises :class:`~connectors.errors.StateUnavailable` when Redis cannot
be reached, times out (about one second), refuses the credentials or refuses
writes. The URL is shown masked (``redis://***@host:6379/0``) in every message
and ``repr``: it may hold a password.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as redis
import redis.exceptions as rx
from pydantic import SecretStr
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from connectors.errors import StateUnavailable
from dedupe.state import WEAK, WEAK_PER_LOOKUP, Entry, IdentityLink
from service.clock import Clock, SystemClock

#: Errors that mean "Redis cannot serve us now", as opposed to a bug in a command.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # also refused credentials, LOADING, too many connections
    rx.TimeoutError,
    rx.ReadOnlyError,  # a replica after a failover
    rx.OutOfMemoryError,
    rx.TryAgainError,
    rx.ClusterDownError,
    OSError,
    TimeoutError,
)
#: Replies that refuse writes for a while (failed RDB save, too few replicas).
_REFUSING = ("MISCONF", "NOREPLICAS", "MASTERDOWN")


def masked_url(url: str) -> str:
    """``url`` without its credentials or query: safe for a message, a log line or a repr."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unreadable Redis URL>"
    userinfo = "***@" if "@" in parts.netloc else ""
    host = f"[{host}]" if ":" in host else host
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{userinfo}{host}{port}{parts.path}{query}"


def _secrets_of(url: str) -> list[str]:
    """Every form of a password (and user) the URL holds, to scrub from driver messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.password or "", parts.username or ""]
    found += parse_qs(parts.query).get("password", [])
    found += [unquote(value) for value in found]
    return sorted({value for value in found if len(value) >= 3}, key=len, reverse=True)


def _text(value: bytes | str) -> str:
    """A reply as text (the client decodes replies; its types allow bytes too)."""
    return value.decode() if isinstance(value, bytes) else value


class RedisState:
    """One Redis connection pool and the three stores on it: ``dedupe``, ``identity``, ``index``.

    No I/O happens here: the first command connects; call :meth:`ping` at
    start-up and :meth:`aclose` at shutdown. ``prefix`` namespaces every key
    (several gateways may share one Redis). ``connect_timeout`` and ``timeout``
    (seconds) bound connecting and each command, so an unreachable Redis turns
    into :class:`StateUnavailable` within about a second. A broken pooled
    connection (Redis restarted) is retried once at once; a timeout is not.
    ``dedupe_window`` and ``link_window`` are how long a message key, and a
    record's linking entry, are remembered; ``claim_seconds`` and
    ``wait_seconds`` are described in :class:`RedisDedupeStore`.
    """

    def __init__(
        self,
        url: str | SecretStr,
        *,
        prefix: str = "cgw:",
        dedupe_window: timedelta = timedelta(days=1),
        link_window: timedelta = timedelta(days=7),
        claim_seconds: float = 5.0,
        wait_seconds: float = 3.0,
        per_lookup: int = 64,
        weak_per_lookup: int = WEAK_PER_LOOKUP,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        self.prefix = prefix
        self.clock: Clock = clock or SystemClock()
        self._where = masked_url(raw)
        self._secrets = _secrets_of(raw)
        try:
            self.client: redis.Redis = redis.Redis.from_url(
                raw,
                decode_responses=True,
                socket_connect_timeout=connect_timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(rx.ConnectionError,)),
            )
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {self._where}: {self._scrub(exc)}") from None
        self.dedupe = RedisDedupeStore(
            self, dedupe_window, claim_seconds=claim_seconds, wait_seconds=wait_seconds
        )
        self.identity = RedisIdentityMap(self)
        self.index = RedisLinkIndex(
            self, link_window, per_lookup=per_lookup, weak_per_lookup=weak_per_lookup
        )

    def __repr__(self) -> str:
        return f"RedisState({self._where!r}, prefix={self.prefix!r})"

    async def ping(self) -> None:
        """For ``/readyz``: return if Redis answers, else :class:`StateUnavailable` with why."""
        with self.unavailable("ping"):
            await self.client.ping()

    async def aclose(self) -> None:
        await self.client.aclose()

    @contextmanager
    def unavailable(self, doing: str) -> Iterator[None]:
        """Turn the driver's connection, timeout and write-refused errors into StateUnavailable."""
        try:
            yield
        except _UNREACHABLE as exc:
            raise self._error(doing, exc) from None
        except rx.ResponseError as exc:
            if not str(exc).startswith(_REFUSING):
                raise
            raise self._error(doing, exc) from None

    def _error(self, doing: str, exc: BaseException) -> StateUnavailable:
        reason = self._scrub(exc) or type(exc).__name__
        return StateUnavailable(f"Redis at {self._where} unavailable ({doing}): {reason}")

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def remaining_ms(self, at: float, window: timedelta) -> int:
        """Milliseconds until ``at`` (epoch seconds) leaves the window; 0 or less: already out."""
        left = at + window.total_seconds() - self.clock.now().timestamp()
        return math.ceil(left * 1000)


# -- exact redeliveries --------------------------------------------------------------------

_DONE = "done:"
_PENDING = "pending:"
#: Claim the key unless someone holds it; return what they hold (nil: claimed).
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
#: Delete the key only if it still holds this claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDedupeStore:
    """:class:`~dedupe.state.DedupeStore` shared by replicas (see the module docstring).

    A claim lasts ``claim_seconds`` unless :meth:`remember` or :meth:`release` ends
    it first; a process that dies while holding one delays a redelivery by at
    most that long. A replica finding another's claim polls every 20 ms and
    gives up after ``wait_seconds`` with :class:`StateUnavailable` (so the
    webhook answers 503 and the platform retries). Each claim carries a random
    token kept in this object, so :meth:`release` never drops another
    replica's claim (only one of this object's, if it took the same key twice
    and the first claim expired).

    A claim sent just as Redis stopped answering may still be applied when it
    resumes: it then holds the key for ``claim_seconds`` (a redelivery waits
    or gets a 503 meanwhile), never longer.
    """

    POLL_SECONDS = 0.02
    FORGET_AFTER = 1024

    def __init__(
        self,
        state: RedisState,
        window: timedelta,
        *,
        claim_seconds: float = 5.0,
        wait_seconds: float = 3.0,
    ) -> None:
        self._state = state
        self._window = window
        self._claim_ms = math.ceil(claim_seconds * 1000)
        self._wait_seconds = wait_seconds
        #: key -> (our claim, when it expires on the monotonic clock)
        self._claims: dict[str, tuple[str, float]] = {}
        self._claim = state.client.register_script(_CLAIM)
        self._release = state.client.register_script(_RELEASE)

    def _name(self, key: str) -> str:
        return f"{self._state.prefix}d:{key}"

    def _hold(self, key: str, mine: str) -> None:
        """Note our claim; forget expired ones a caller never ended, so they cannot pile up."""
        now = time.monotonic()
        if len(self._claims) >= self.FORGET_AFTER:
            self._claims = {k: v for k, v in self._claims.items() if v[1] > now}
        self._claims[key] = (mine, now + self._claim_ms / 1000)

    async def claim(self, key: str, record_id: str) -> str | None:
        mine = f"{_PENDING}{record_id}:{secrets.token_hex(8)}"
        deadline = time.monotonic() + self._wait_seconds
        while True:
            with self._state.unavailable("claim"):
                held = await self._claim(keys=[self._name(key)], args=[mine, self._claim_ms])
            if held is None or held == mine:  # == mine: the reply was lost and the script re-run
                self._hold(key, mine)
                return None
            if held.startswith(_DONE):
                return str(held[len(_DONE) :])
            if time.monotonic() >= deadline:
                raise StateUnavailable("another replica is taking this message in; retry later")
            await asyncio.sleep(self.POLL_SECONDS)

    async def remember(self, key: str, record_id: str, at: datetime) -> None:
        ttl_ms = self._state.remaining_ms(at.timestamp(), self._window)
        if ttl_ms <= 0:  # already out of the window: a redelivery would be taken in anyway
            await self.release(key, record_id)
            return
        self._claims.pop(key, None)
        with self._state.unavailable("remember"):
            await self._state.client.set(self._name(key), f"{_DONE}{record_id}", px=ttl_ms)

    async def release(self, key: str, record_id: str) -> None:
        mine, _ = self._claims.get(key, ("", 0.0))
        if not mine.startswith(f"{_PENDING}{record_id}:"):
            return
        with self._state.unavailable("release"):
            await self._release(keys=[self._name(key)], args=[mine])
        self._claims.pop(key, None)


# -- identity ------------------------------------------------------------------------------

#: KEYS: the ``i:k:`` keys of the call's keys; ARGV: prefix, evidence, record_id,
#: ISO time, epoch time, then the keys themselves. Returns the person.
_RESOLVE = """
local prefix, evidence, record_id, stamp, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local function home_of(person) return prefix .. 'i:p:' .. person end
local winner, winner_first = false, 0
local found, seen = {}, {}
for i = 1, #KEYS do
  local person = redis.call('GET', KEYS[i])
  if person and not seen[person] then
    seen[person] = true
    table.insert(found, person)
    local first = tonumber(redis.call('HGET', home_of(person), 'first')) or tonumber(at)
    if not winner or first < winner_first or (first == winner_first and person < winner) then
      winner, winner_first = person, first
    end
  end
end
if not winner then
  winner = ARGV[6]
  redis.call('HSET', home_of(winner), 'first', at)
end
local home = home_of(winner)
local merged = '; merged by ' .. evidence .. ' (' .. record_id .. ')'
for _, person in ipairs(found) do
  if person ~= winner then
    local fields = redis.call('HGETALL', home_of(person))
    for j = 1, #fields, 2 do
      local field = fields[j]
      if string.sub(field, 1, 2) == 'k:' then
        local row = cjson.decode(fields[j + 1])
        row['evidence'] = row['evidence'] .. merged
        redis.call('HSET', home, field, cjson.encode(row))
        redis.call('SET', prefix .. 'i:k:' .. string.sub(field, 3), winner)
      end
    end
    redis.call('DEL', home_of(person))
  end
end
local row = cjson.encode({evidence = evidence, record_id = record_id, at = stamp})
for i = 1, #KEYS do
  if not redis.call('GET', KEYS[i]) then
    redis.call('SET', KEYS[i], winner)
    redis.call('HSET', home, 'k:' .. ARGV[5 + i], row)
  end
end
return winner
"""


class RedisIdentityMap:
    """:class:`~dedupe.state.IdentityMap` shared by replicas; never expires (see the module).

    As in the embedded map, one link row per key: a key keeps the evidence,
    record and time it was first linked by, and when its person is absorbed
    by an older one its evidence gains ``; merged by <evidence> (<record_id>)``.
    The absorbed person's id then has no links of its own.
    """

    def __init__(self, state: RedisState) -> None:
        self._state = state
        self._resolve = state.client.register_script(_RESOLVE)

    async def resolve(
        self, keys: Sequence[str], evidence: str, record_id: str, at: datetime
    ) -> str:
        unique = list(dict.fromkeys(keys))
        if not unique:
            raise ValueError("resolve needs at least the record's own key")
        prefix = self._state.prefix
        args = [prefix, evidence, record_id, at.isoformat(), repr(at.timestamp()), *unique]
        with self._state.unavailable("resolve"):
            person = await self._resolve(keys=[f"{prefix}i:k:{k}" for k in unique], args=args)
        return str(person)

    async def links(self, person: str) -> list[IdentityLink]:
        with self._state.unavailable("links"):
            fields = await self._state.client.hgetall(f"{self._state.prefix}i:p:{person}")
        found = []
        for name, text in fields.items():
            field = _text(name)
            if field.startswith("k:"):
                row: dict[str, Any] = json.loads(text)
                at = datetime.fromisoformat(row["at"])
                found.append(IdentityLink(field[2:], person, row["evidence"], row["record_id"], at))
        return sorted(found, key=lambda link: (link.at, link.key))


# -- linking -------------------------------------------------------------------------------


#: KEYS: the entry, then its postings; ARGV: the entry's JSON, its TTL (ms), its record_id,
#: its time, the window's start, the window (ms), then each posting's length (KEYS[i] has
#: ARGV[5 + i]).
_ADD = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(tonumber(ARGV[5 + i]) + 1))
  redis.call('PEXPIRE', KEYS[i], ARGV[6])
end
return #KEYS - 1
"""


class RedisLinkIndex:
    """:class:`~dedupe.state.LinkIndex` shared by replicas (see the module docstring).

    :meth:`add` is one Lua script (the entry and all its postings together,
    atomically, in one round trip: about four times cheaper for the gateway
    than a MULTI of four commands per lookup); :meth:`candidates` is two round
    trips (the postings, then the entries). Postings older than the window are
    dropped on each add; an entry whose key expired is skipped.
    """

    def __init__(
        self,
        state: RedisState,
        window: timedelta,
        *,
        per_lookup: int = 64,
        weak_per_lookup: int = WEAK_PER_LOOKUP,
    ) -> None:
        self._state = state
        self._window = window
        self._per_lookup = per_lookup
        self._weak_per_lookup = weak_per_lookup
        self._add = state.client.register_script(_ADD)

    def _limit(self, lookup: str) -> int:
        return self._weak_per_lookup if lookup.startswith(WEAK) else self._per_lookup

    def _entry(self, record_id: str) -> str:
        return f"{self._state.prefix}l:e:{record_id}"

    def _posting(self, lookup: str) -> str:
        return f"{self._state.prefix}l:x:{lookup}"

    def _closed(self, record_id: str) -> str:
        return f"{self._state.prefix}l:c:{record_id}"

    async def add(self, entry: Entry) -> None:
        ttl_ms = self._state.remaining_ms(entry.at, self._window)
        if ttl_ms <= 0:
            return
        window = self._window.total_seconds()
        horizon = self._state.clock.now().timestamp() - window
        lookups = list(dict.fromkeys(entry.lookups))
        keys = [self._entry(entry.record_id)]
        keys += [self._posting(lookup) for lookup in lookups]
        args: list[str | int] = [entry.to_json(), ttl_ms, entry.record_id, repr(entry.at)]
        args += [repr(horizon), math.ceil(window * 1000)]
        args += [self._limit(lookup) for lookup in lookups]
        with self._state.unavailable("add"):
            await self._add(keys=keys, args=args)

    async def candidates(self, lookups: Sequence[str], since: float) -> list[Entry]:
        unique = list(dict.fromkeys(lookups))
        if not unique:
            return []
        client = self._state.client
        with self._state.unavailable("candidates"):
            async with client.pipeline(transaction=False) as pipe:
                for lookup in unique:
                    pipe.zrevrangebyscore(
                        self._posting(lookup),
                        "+inf",
                        repr(since),
                        start=0,
                        num=self._limit(lookup),
                    )
                postings: list[list[str]] = await pipe.execute()
            record_ids = list(dict.fromkeys(rid for posting in postings for rid in posting))
            if not record_ids:
                return []
            texts = await client.mget([self._entry(r) for r in record_ids])
        entries = [Entry.from_json(text) for text in texts if text is not None]
        fresh = [entry for entry in entries if entry.at >= since]
        return sorted(fresh, key=lambda entry: (entry.at, entry.record_id), reverse=True)

    async def close(self, record_id: str, at: datetime) -> None:
        ttl_ms = self._state.remaining_ms(at.timestamp(), self._window)
        if ttl_ms <= 0:
            return
        with self._state.unavailable("close"):
            await self._state.client.set(self._closed(record_id), at.isoformat(), px=ttl_ms)

    async def closed(self, roots: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(roots))
        if not unique:
            return set()
        with self._state.unavailable("closed"):
            marks = await self._state.client.mget([self._closed(root) for root in unique])
        return {root for root, mark in zip(unique, marks, strict=True) if mark is not None}
