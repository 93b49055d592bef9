"""What dedupe, identity and linking keep between records, and the contracts of the stores.

Three pieces of state, each with an embedded default (one process) and a
Redis implementation (several replicas behind a load balancer):

* :class:`DedupeStore`, exact redeliveries: a source message is taken in once.
* :class:`IdentityMap`, one customer across channels: channel keys
  (``tel:+86…``, ``wechat:<openid>``, ``order:<id>``…) linked into a person,
  each link with its evidence and time.
* :class:`LinkIndex`, the recent records' evidence (:class:`Entry`), looked up
  by the keys it was filed under (order ids, person, phone tails, text
  sketch), so a new report finds the open incident it repeats.

Every method may raise :class:`~connectors.errors.StateUnavailable`; the
webhook is then answered 503 and the platform retries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol


class DedupeStore(Protocol):
    async def claim(self, key: str, record_id: str) -> str | None:
        """Take the message ``key`` in as ``record_id``.

        None: this process goes on and writes it to its outbox. Otherwise the
        record_id it was already taken in as (a redelivery). A shared store
        holds a short claim until :meth:`remember` or :meth:`release`, and a
        second replica receiving the same retry meanwhile waits for the first.
        """
        ...

    async def remember(self, key: str, record_id: str, at: datetime) -> None:
        """The outbox holds ``record_id``: recognise ``key`` for the window from ``at``."""
        ...

    async def release(self, key: str, record_id: str) -> None:
        """The outbox write failed: drop this process's claim, so a redelivery is taken in."""
        ...


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """One key of a person, and why it belongs to them."""

    key: str
    person: str
    evidence: str
    record_id: str
    at: datetime


class IdentityMap(Protocol):
    async def resolve(
        self, keys: Sequence[str], evidence: str, record_id: str, at: datetime
    ) -> str:
        """The person the ``keys`` belong to, linking them all to that person.

        ``keys`` are strong evidence of one person (a record's channel key
        and what the channel vouches for: a verified phone, a member id, an
        order id with a known buyer); the first is the record's own key. A
        person's id is the first key it was ever seen under, so it never
        changes when a key joins; when keys of two people meet, the older
        person absorbs the younger. Never called with names or nicknames.
        """
        ...

    async def links(self, person: str) -> list[IdentityLink]:
        """Every key of ``person`` with its evidence, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class Entry:
    """What the linker remembers of one record, for the window.

    ``at`` is epoch seconds; ``root`` the record_id of the incident's first
    record (itself when it opened the incident); ``key`` the record's channel
    key and ``kind`` its kind (``wechat``, ``tel``, ``email``…), so two
    different keys of one kind are known to be two people; ``items`` the
    product nouns it names, ``faults`` its item·symptom pairs (``充电宝·鼓胀``),
    which the batch signal counts; ``mentions`` channel keys named in its words
    (``weibo:<uid>`` in a refund's text).
    """

    record_id: str
    root: str
    at: float
    channel: str
    kind: str
    person: str
    category: str
    product: str | None = None
    orders: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    masked: tuple[str, ...] = ()
    tails: tuple[str, ...] = ()
    sketch: tuple[int, ...] = ()
    batch: str | None = None
    key: str = ""
    items: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    lookups: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Entry:
        data: dict[str, Any] = json.loads(text)
        for name in (
            "orders",
            "phones",
            "masked",
            "tails",
            "sketch",
            "items",
            "faults",
            "mentions",
            "lookups",
        ):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)


#: Lookups many reports share (a text sketch value, a fault, a phone tail): an index keeps
#: only the newest ``WEAK_PER_LOOKUP`` entries under each, the others ``per_lookup`` (64).
WEAK = ("h:", "f:", "t:")
WEAK_PER_LOOKUP = 16


class LinkIndex(Protocol):
    async def candidates(self, lookups: Sequence[str], since: float) -> list[Entry]:
        """Entries filed under any of ``lookups`` at or after ``since``, newest first.

        Each lookup yields at most its most recent entries (a bounded list),
        so a common text shingle cannot make one lookup scan the whole window.
        """
        ...

    async def add(self, entry: Entry) -> None:
        """File ``entry`` under its ``lookups``; it expires after the window."""
        ...

    async def close(self, record_id: str, at: datetime) -> None:
        """The incident ``record_id`` (a root) was resolved: a new report opens a new one."""
        ...

    async def closed(self, roots: Sequence[str]) -> set[str]:
        """Which of ``roots`` are resolved incidents."""
        ...
