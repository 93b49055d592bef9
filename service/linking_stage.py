"""The linking stage: after triage, before the outbox, say who the customer is and what it repeats.

:class:`dedupe.linking.Linker` decides; this stage writes its verdict into
the record (schema 1.1): ``customer.id`` becomes the person's stable id (the
channel's key stays in ``contacts``), ``dedupe.duplicate_of``/``reason``/
``score`` name the incident repeated, ``dedupe.batch`` the cluster of
customers reporting the same fault. By the policy a second contact about an
open incident is at least P2 and a batch signal is P1; the reason is added
to ``triage.reasons`` in the supervisor's words.
"""

from __future__ import annotations

from dedupe.linking import Link, Linker
from schemas import ComplaintRecord
from schemas.record import Dedupe, Priority, Triage

_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


class LinkingStage:
    def __init__(self, linker: Linker) -> None:
        self.linker = linker

    async def apply(self, record: ComplaintRecord) -> ComplaintRecord:
        return written(record, await self.linker.link(record))


def written(record: ComplaintRecord, link: Link) -> ComplaintRecord:
    """``record`` with the linker's verdict in it."""
    priority: Priority = record.priority
    reasons: list[str] = []
    if link.batch is not None:
        product = record.product.sku or record.product.name
        reasons.append(f"P1: 批量问题「{product}」{link.batch_customers} 位顾客报告同一故障")
        priority = "P1"
    if link.repeated and link.duplicate_of and _RANK[priority] > _RANK["P2"]:
        reasons.append(f"P2: 重复投诉（{link.reason}，首次记录 {link.duplicate_of[:8]}）")
        priority = "P2"
    triage = record.triage
    if reasons and triage is not None:
        # the deciding reasons first: the priority now comes from them
        triage = Triage(reasons=(*reasons, *triage.reasons), ruleset_version=triage.ruleset_version)
    # a channel that knows the record belongs to another (a call's recording) has the last word
    known = record.dedupe.duplicate_of
    customer = record.customer
    if link.person != customer.id:
        customer = customer.model_copy(update={"id": link.person})
    return record.model_copy(
        update={
            "customer": customer,
            "priority": priority,
            "triage": triage,
            "dedupe": Dedupe(
                fingerprint=record.dedupe.fingerprint,
                duplicate_of=known or link.duplicate_of,
                reason="渠道标注" if known else link.reason,
                score=1.0 if known else link.score,
                batch=link.batch,
            ),
        }
    )
