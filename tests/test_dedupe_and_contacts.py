from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from dedupe.fingerprint import fingerprint
from dedupe.store import MemoryDedupeStore
from normalizer._contacts import phone_to_e164
from service.logs import MaskingFilter, mask_id, mask_phone
from tests.fakes import FrozenClock


async def test_dedupe_remembers_within_the_window_only() -> None:
    clock = FrozenClock()
    store = MemoryDedupeStore(clock, timedelta(seconds=60))
    await store.remember("wechat:1", "rec-1", clock.now())
    clock.advance(59)
    assert await store.seen("wechat:1") == "rec-1"
    assert await store.seen("wechat:2") is None
    clock.advance(2)
    assert await store.seen("wechat:1") is None


async def test_dedupe_is_bounded() -> None:
    clock = FrozenClock()
    store = MemoryDedupeStore(clock, timedelta(hours=1), max_keys=3)
    for n in range(5):
        await store.remember(f"k{n}", f"r{n}", clock.now())
    assert len(store) == 3 and await store.seen("k0") is None and await store.seen("k4") == "r4"


def test_fingerprint_folds_width_case_and_spacing_only() -> None:
    base = fingerprint("tel:+8613812345678", "A1", "水壶 漏水 ABC")
    assert fingerprint("tel:+8613812345678", "A1", "  水壶\n漏水　ａｂｃ ") == base
    assert fingerprint("tel:+8613812345678", "A2", "水壶 漏水 ABC") != base
    assert fingerprint("tel:+8613900000000", "A1", "水壶 漏水 ABC") != base
    assert fingerprint("tel:+8613812345678", "A1", "水壶 没漏水 ABC") != base


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13812345678", "+8613812345678"),
        ("138 1234 5678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("008613812345678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
        ("021-6123 4567", "+862161234567"),
        ("(010) 8888 6666", "+861088886666"),
        ("+852 9123 4567", "+85291234567"),
        ("+86 021 6123 4567", "+862161234567"),
        ("12345", None),
        ("phone me", None),
        ("", None),
        (None, None),
    ],
)
def test_phone_numbers_become_e164(raw: str | None, e164: str | None) -> None:
    assert phone_to_e164(raw) == e164


def test_masking_helpers() -> None:
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_id("wechat:oyORnuP8q7ou2gfYjqLzSIWZf0rs") == "wechat:oyOR…f0rs"
    assert mask_id("tel:+8613812345678") == "tel:+86138****5678"


def test_log_lines_never_carry_a_full_phone_number_or_openid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.masking")
    logger.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("customer %s called from %s", "oyORnuP8q7ou2gfYjqLzSIWZf0rs", "13812345678")
        logger.info("raw +8613900112233 in a message")
    assert "13812345678" not in caplog.text and "13900112233" not in caplog.text
    assert "oyORnuP8q7ou2gfYjqLzSIWZf0rs" not in caplog.text
    assert "138****5678" in caplog.text and "oyOR…f0rs" in caplog.text
