"""Duplicate detection: exact redeliveries now, linked repeat reports later."""

from dedupe.fingerprint import fingerprint
from dedupe.store import DedupeStore, MemoryDedupeStore

__all__ = ["DedupeStore", "MemoryDedupeStore", "fingerprint"]
