"""The triage stage: between the normalizer and the outbox, label each record and say why.

The rules (:mod:`triage`) read the customer's words and the channel's data
(tier, order amount); this stage merges their verdict with what the channel
itself said, because the channel's own data counts:

* category: the channel's, when it named one (a store clerk's form), else the rules';
* priority: the higher of the rules' and the channel's explicit one (the
  normalizers leave ``P3`` when the channel says nothing, so ``P3`` from a
  channel does not hold the rules' ``P4`` up);
* expectations: the channel's and the voiced ones together.

The result carries ``triage.reasons`` and the ruleset's version (schema 1.1).
"""

from __future__ import annotations

from schemas import ComplaintRecord
from schemas.record import Category, Triage
from triage.engine import Triage as Rules

_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


class TriageStage:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def apply(self, record: ComplaintRecord) -> ComplaintRecord:
        verdict = self.rules.triage(record)
        reasons = list(verdict.reasons)
        priority = verdict.priority
        if record.priority != "P3" and _RANK[record.priority] < _RANK[priority]:
            priority = record.priority
            reasons.append(f"{priority}: 渠道标注 {record.priority}")
        category = record.category
        if category.code == "other":
            category = Category(code=verdict.category_code, label=verdict.category_label)
        expectations = tuple(sorted({*record.expectations, *verdict.expectations}))
        return record.model_copy(
            update={
                "category": category,
                "priority": priority,
                "expectations": expectations,
                "triage": Triage(reasons=tuple(reasons), ruleset_version=verdict.ruleset_version),
            }
        )
