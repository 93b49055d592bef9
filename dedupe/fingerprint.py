"""Content fingerprints: the same complaint told twice gives the same fingerprint.

Exact redeliveries are caught by ``record_id``; the fingerprint is for linking
the same incident reported again (a later issue). It is a pure function of who
complained, about which order, and what they said, with width, case and
whitespace differences folded away.
"""

from __future__ import annotations

import hashlib
import unicodedata


def normalize_text(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())


def fingerprint(customer_id: str, order_id: str | None, description: str) -> str:
    material = "\x1f".join((customer_id, order_id or "", normalize_text(description)))
    return "sha256:" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]
