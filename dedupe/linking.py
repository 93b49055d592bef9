"""The same customer, the same incident: who a record is from and which open incident it repeats.

For each new record, in arrival order, the :class:`Linker`

1. resolves the person (:class:`~dedupe.state.IdentityMap`) from the keys the
   channel vouches for: its own key, a phone the channel verified (a call's
   caller number, a member's phone at the counter), a structured order id
   (whose buyer is then known). Never a name or a nickname.
2. looks up the recent entries sharing an order id, the person, a phone tail,
   a text sketch or the product (:class:`~dedupe.state.LinkIndex`), and
   weighs each as evidence that the record repeats that entry's incident,
   strongest first: the same order id; the same person; a phone number or
   tail in the text matching a call; similar words. Near misses are refused:
   a different order of the same customer, an incident already resolved,
   different items of one order, a question before a purchase, two different
   accounts of one channel posting the same text.
3. counts the different customers reporting the same fault of the same
   product in the window: from ``batch_customers`` on, the record carries
   the cluster's id (a batch signal, P1 by the policy).

The record is still published; ``dedupe.duplicate_of`` names the incident's
first record, so a ticket system attaches it instead of opening a new ticket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from dedupe.evidence import (
    lookups,
    mentions_in,
    order_key,
    phone_number,
    same_order,
    similarity,
    sketch,
    text_numbers,
)
from dedupe.items import faults_in, items_in
from dedupe.state import Entry, IdentityMap, LinkIndex
from schemas import ComplaintRecord
from triage.text import simplify

#: Channels whose ``contacts.phone`` is the customer's own, verified number (caller id).
VERIFIED_PHONE_CHANNELS = ("phone", "store")
#: Key kinds that are one per contact, not one per person: never proof of two people.
_UNKNOWN_KINDS = frozenset({"call"})


@dataclass(frozen=True, slots=True)
class LinkSettings:
    #: Weak evidence (words alone, a phone tail) and the batch signal look back this far.
    window: timedelta = timedelta(days=7)
    #: Strong evidence (the order id, the same customer) finds an unresolved incident this old.
    open_window: timedelta = timedelta(days=30)
    #: Messages of one customer this close together are one complaint told in parts.
    burst: timedelta = timedelta(minutes=30)
    #: Estimated Jaccard similarity of the words above which two reports tell the same story.
    similar_text: float = 0.5
    #: Similarity that, with other evidence, says two reports are about the same problem.
    related_text: float = 0.25
    batch_customers: int = 3
    verified_phone_channels: tuple[str, ...] = VERIFIED_PHONE_CHANNELS


@dataclass(frozen=True, slots=True)
class Link:
    """What the linker concluded about one record."""

    person: str
    duplicate_of: str | None = None
    reason: str | None = None
    score: float | None = None
    batch: str | None = None
    batch_customers: int = 0
    #: a second contact about the incident (not a message of the same burst): P2 by the policy
    repeated: bool = False


def _kind(key: str) -> str:
    return key.split(":", 1)[0]


def vouched_keys(record: ComplaintRecord, verified_phone_channels: Sequence[str]) -> list[str]:
    """The keys the channel vouches for as one person, the record's own key first."""
    keys = [record.customer.id]
    phone = record.customer.contacts.phone
    if phone and record.channel in verified_phone_channels:
        keys.append(f"tel:{phone}")
    if record.product.order_id:
        keys.append(f"order:{order_key(record.product.order_id)}")
    return list(dict.fromkeys(keys))


def entry_of(record: ComplaintRecord, person: str) -> Entry:
    """The evidence ``record`` offers, filed under its lookups (root and batch still open)."""
    words_only = simplify(record.description)
    orders, phones, masked, tails = text_numbers(words_only, simplified=True)
    if record.product.order_id:
        orders.add(order_key(record.product.order_id))
    own = phone_number(record.customer.contacts.phone)
    if own:
        phones.add(own)
    product = record.product.sku or record.product.name
    words = sketch(words_only, simplified=True)
    with_name = (
        f"{words_only} {simplify(record.product.name)}" if record.product.name else words_only
    )
    items = items_in(with_name, simplified=True)
    faults = faults_in(with_name, simplified=True)
    mentions = mentions_in(words_only, simplified=True) - {record.customer.id}
    return Entry(
        record_id=record.record_id,
        root=record.record_id,
        at=record.received_at.timestamp(),
        channel=record.channel,
        kind=_kind(record.customer.id),
        person=person,
        category=record.category.code,
        product=product,
        orders=tuple(sorted(orders)),
        phones=tuple(sorted(phones)),
        masked=tuple(sorted(masked)),
        tails=tuple(sorted(tails)),
        sketch=words,
        key=record.customer.id,
        items=tuple(sorted(items)),
        faults=tuple(sorted(faults)),
        mentions=tuple(sorted(mentions)),
        lookups=lookups(
            person=person,
            keys=(record.customer.id, *sorted(mentions)),
            orders=orders,
            phones=phones,
            masked=masked,
            tails=tails,
            text_sketch=words,
            product=product,
            faults=faults,
        ),
    )


class Linker:
    def __init__(
        self, identity: IdentityMap, index: LinkIndex, settings: LinkSettings | None = None
    ) -> None:
        self.identity = identity
        self.index = index
        self.settings = settings or LinkSettings()

    async def link(self, record: ComplaintRecord) -> Link:
        settings = self.settings
        keys = vouched_keys(record, settings.verified_phone_channels)
        evidence = f"{record.channel}: " + " + ".join(_kind(key) for key in keys)
        person = await self.identity.resolve(keys, evidence, record.record_id, record.received_at)
        entry = entry_of(record, person)
        since = entry.at - max(settings.window, settings.open_window).total_seconds()
        found = [
            c
            for c in await self.index.candidates(entry.lookups, since)
            if c.record_id != entry.record_id and c.at <= entry.at
        ]
        strong, weak = _worth_weighing(entry, found)
        roots = sorted({c.root for c in strong} | {c.root for c in weak})
        closed = await self.index.closed(roots) if roots else set()
        best = self._best(entry, strong, closed)
        if best is None or best[0] < _KNOWN_CUSTOMER:  # words alone may still tell
            best = self._best(entry, weak, closed, best)
        batch, customers = self._batch(entry, found, best[2] if best else None)
        root = best[2].root if best else entry.record_id
        filed = _completed(entry, best[2], root, batch) if best else replace(entry, batch=batch)
        await self.index.add(filed)
        if best is None:
            return Link(person=person, batch=batch, batch_customers=customers)
        score, reason, matched = best
        return Link(
            person=person,
            duplicate_of=root,
            reason=reason,
            score=round(score, 2),
            batch=batch,
            batch_customers=customers,
            # one message in parts, a mail sent twice, a call back: one contact; else a second
            repeated=not (
                matched.person == entry.person
                and entry.at - matched.at <= settings.burst.total_seconds()
            ),
        )

    def _best(
        self,
        entry: Entry,
        candidates: list[Entry],
        closed: set[str],
        best: tuple[float, str, Entry] | None = None,
    ) -> tuple[float, str, Entry] | None:
        """The strongest verdict among ``candidates`` (newest first), else ``best``."""
        linked: set[str] = set()  # incidents already found: their older reports add nothing
        for candidate in candidates:
            if candidate.root in closed or candidate.root in linked:
                continue
            verdict = self._weigh(entry, candidate)
            if verdict is None:
                continue
            linked.add(candidate.root)
            if best is None or verdict[0] > best[0]:
                best = (verdict[0], verdict[1], candidate)
                if verdict[0] >= _STRONGEST:
                    break  # nothing weighs more than the same order
        return best

    def _weigh(self, new: Entry, old: Entry) -> tuple[float, str] | None:
        """How strongly ``new`` repeats ``old``'s incident, and why; None when it does not."""
        settings = self.settings
        if new.product and old.product and new.product != old.product:
            return None  # another product, or another item of one order
        shared_order = any(same_order(a, b) for a in new.orders for b in old.orders)
        if shared_order:
            exact = bool(set(new.orders) & set(old.orders))
            return (_STRONGEST, "同一订单号") if exact else (0.9, "同一订单号（少一位）")
        if new.orders and old.orders:
            return None  # a different order: a different incident
        gap = new.at - old.at
        in_burst = gap <= settings.burst.total_seconds()
        who = _same_customer(new, old)
        if who is not None and in_burst:  # one complaint told in several messages
            return 0.9, f"同一顾客 {max(1, round(gap / 60))} 分钟内再次联系"
        if new.items and old.items and not set(new.items) & set(old.items):
            return None  # about another product
        if old.category == "other" and new.category != "other" and not in_burst:
            return None  # a question first, a complaint later: not the same incident
        recent = gap <= settings.window.total_seconds()
        if who is not None:
            if recent or self._related(new, old):
                return 0.85, who
            return None
        if not recent:
            return None
        two_people = new.kind == old.kind and new.kind not in _UNKNOWN_KINDS
        if _masked_match(new, old) or _masked_match(old, new):
            return (0.8, "文中掩码号码与来电一致") if self._related(new, old) else None
        if not two_people and (_tail_match(new, old) or _tail_match(old, new)):
            return (0.7, "文中手机尾号与来电一致") if self._related(new, old) else None
        if not two_people:
            similar = similarity(new.sketch, old.sketch, at_least=settings.similar_text)
            if similar >= settings.similar_text:
                return similar, f"文字相似（{similar:.2f}）"
        return None

    def _related(self, new: Entry, old: Entry) -> bool:
        """About the same thing: the category, a product noun, or words somewhat alike."""
        related_text = self.settings.related_text
        return (
            (new.category == old.category and new.category != "other")
            or bool(set(new.items).intersection(old.items))
            or similarity(new.sketch, old.sketch, at_least=related_text) >= related_text
        )

    def _batch(
        self, new: Entry, found: list[Entry], incident: Entry | None
    ) -> tuple[str | None, int]:
        """The batch the record belongs to and how many customers it has, once it is one.

        A batch: different customers (people, not reports: a customer's repeat
        counts once) naming the same fault (an item and a symptom) within the
        window, of the same product where both give a SKU.
        """
        if not new.faults:
            return None, 0
        horizon = new.at - self.settings.window.total_seconds()
        same_fault = [
            c
            for c in found
            if c.at >= horizon
            and set(c.faults) & set(new.faults)
            and not (c.product and new.product and c.product != new.product)
            and c.person != new.person
            and (incident is None or c.root != incident.root)
        ]
        customers = {new.person, *(c.person for c in same_fault)}
        if len(customers) < self.settings.batch_customers:
            return None, len(customers)
        named = [c.batch for c in same_fault if c.batch]
        if named:
            return named[0], len(customers)
        first = min(same_fault, key=lambda c: c.at)
        fault = sorted(set(first.faults) & set(new.faults))[0]
        return f"batch:{fault}:{first.record_id[:8]}", len(customers)


#: Lookups that name the customer, an order or a phone: every candidate they find is weighed.
_STRONG = ("o:", "p:", "k:")
_STRONGEST = 0.95
#: A verdict this strong (the order, the customer) is not overruled by words alone.
_KNOWN_CUSTOMER = 0.85
#: Candidates found only by similar words (or only by a shared fault), newest first, weighed.
_WEAK_LIMIT = 12


def _worth_weighing(new: Entry, found: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """The candidates to weigh: all that share a strong lookup, and the newest few others.

    Common words put many reports under one sketch value; weighing them all
    would make a popular complaint cost more the more often it is made.
    """
    strong_lookups = {lookup for lookup in new.lookups if lookup.startswith(_STRONG)}
    strong: list[Entry] = []
    weak: list[Entry] = []
    for candidate in found:  # newest first
        if strong_lookups.intersection(candidate.lookups):
            strong.append(candidate)
        elif len(weak) < _WEAK_LIMIT:
            weak.append(candidate)
    return strong, weak


def _completed(entry: Entry, matched: Entry, root: str, batch: str | None) -> Entry:
    """``entry`` as filed once linked: its root, its batch, and full order ids.

    An order id that lost its last digit is replaced by the full one it
    matched: a shortened id fits both of two neighbouring orders; once it is
    known to be one of them, a report of the neighbour must not link through it.
    """
    full = {
        short: whole
        for short in entry.orders
        for whole in matched.orders
        if len(whole) == len(short) + 1 and same_order(short, whole)
    }
    if not full:
        return replace(entry, root=root, batch=batch)
    orders = tuple(sorted({full.get(order, order) for order in entry.orders}))
    extra = tuple(f"o:{whole}" for whole in full.values())
    return replace(
        entry,
        root=root,
        batch=batch,
        orders=orders,
        lookups=tuple(dict.fromkeys(entry.lookups + extra)),
    )


def _same_customer(new: Entry, old: Entry) -> str | None:
    """Why the two reports are known to come from one customer, or None."""
    if new.person == old.person:
        return "同一顾客再次联系"
    if set(new.phones) & set(old.phones):
        return "文中电话号码与来电一致"
    if (new.key and new.key in old.mentions) or (old.key and old.key in new.mentions):
        return "文中提到的账号与来信一致"
    return None


def _masked_match(text_side: Entry, caller: Entry) -> bool:
    """A masked number in one report (138****5120) fits the full number of the other."""
    return any(
        phone.startswith(mask[:3]) and phone.endswith(mask[-4:])
        for mask in text_side.masked
        for phone in caller.phones
    )


def _tail_match(text_side: Entry, caller: Entry) -> bool:
    """A phone tail in one report fits the other's number, and no masked number says otherwise."""
    return any(
        phone.endswith(tail)
        and not any(
            mask.endswith(tail) and not phone.startswith(mask[:3]) for mask in text_side.masked
        )
        for tail in text_side.tails
        for phone in caller.phones
    )
