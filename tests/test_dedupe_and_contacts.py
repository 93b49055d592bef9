from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from connectors.errors import MalformedPayload
from dedupe.fingerprint import fingerprint
from dedupe.store import MemoryDedupeStore
from normalizer._contacts import phone_to_e164
from normalizer.store import StoreNormalizer
from schemas import ComplaintRecord, Contacts, RawEvent
from service.logs import MaskingFilter, mask_id, mask_phone, mask_text
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
        # typed on a Chinese keyboard: full-width digits, plus, space, hyphen, parentheses
        ("１３８１２３４５６７８", "+8613812345678"),
        ("+86１３８１２３４５６７８", "+8613812345678"),
        ("＋８６　１３８－１２３４－５６７８", "+8613812345678"),
        ("（０２１）６１２３　４５６７", "+862161234567"),
        # digits of other scripts are not folded: they would be a look-alike customer
        ("+86١٣٨١٢٣٤٥٦٧٨", None),
        ("+86۱۳۸۱۲۳۴۵۶۷۸", None),
        ("१३८१२३४५६७८", None),
        ("138١٢٣٤٥٦٧٨", None),
        # shaped like a number, but no such number exists
        ("+86000000000000", None),
        ("00000000000", None),
        ("+86 1234567", None),
        ("+1 555 0100", None),
    ],
)
def test_phone_numbers_become_e164(raw: str | None, e164: str | None) -> None:
    assert phone_to_e164(raw) == e164


def store_event(customer: dict[str, str], n: int = 1) -> RawEvent:
    body = {"submission_id": f"S-{n}", "store_id": "SH01", "customer": customer, "text": "漏水"}
    at = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    return RawEvent("store", f"S-{n}", at, body, b"{}", "application/json", f"S-{n}")


def test_one_phone_is_one_customer_however_the_clerk_typed_it() -> None:
    spellings = ["13812345678", "+86１３８１２３４５６７８", "＋８６　１３８－１２３４－５６７８"]
    records = [
        StoreNormalizer().normalize(store_event({"phone": phone}, n))
        for n, phone in enumerate(spellings)
    ]
    assert all(isinstance(r, ComplaintRecord) for r in records)
    assert {r.customer.id for r in records if isinstance(r, ComplaintRecord)} == {
        "tel:+8613812345678"
    }


@pytest.mark.parametrize("phone", ["+86١٣٨١٢٣٤٥٦٧٨", "+86000000000000"])
def test_a_phone_that_is_no_real_number_is_refused(phone: str) -> None:
    with pytest.raises(MalformedPayload) as refused:
        StoreNormalizer().normalize(store_event({"phone": phone}))
    assert refused.value.reason == "invalid_field"


@pytest.mark.parametrize("phone", ["+86١٣٨١٢٣٤٥٦٧٨", "+86１３８１２３４５６７８"])
def test_the_record_takes_ascii_digits_only_in_a_phone(phone: str) -> None:
    with pytest.raises(ValidationError):
        Contacts(phone=phone)


def test_masking_helpers() -> None:
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_id("wechat:oyORnuP8q7ou2gfYjqLzSIWZf0rs") == "wechat:oyOR…f0rs"
    assert mask_id("tel:+8613812345678") == "tel:+86138****5678"


def test_an_id_is_masked_after_its_scheme_even_when_it_has_colons() -> None:
    masked = mask_id("member:110101198801011234:a")
    assert masked == "member:1101…34:a"
    assert "19880101" not in masked


def test_mask_text_masks_phones_as_typed_and_customer_ids() -> None:
    body = (
        '{"phone": "１３８１２３４５６７８", "alt": "+86 139-0011-2233", '
        '"id": "member:110101198801011234:a", "tel": "tel:+8613700001111", '
        '"openid": "wechat:oyORnuP8q7ou2gfYjqLzSIWZf0rs"}'
    )
    masked = mask_text(body)
    for secret in ("１２３４", "0011", "19880101", "0000", "nuP8q7ou2gfYjqLzSIWZ"):
        assert secret not in masked
    assert "１３８****５６７８" in masked and "+86 139-****-2233" in masked
    assert "member:1101…34:a" in masked and "tel:+86137****1111" in masked


def test_mask_text_leaves_ordinary_log_lines_and_masked_values_alone() -> None:
    for line in (
        "listening on http://127.0.0.1:8080 since 2026-11-23T10:15:00Z",
        "order 12012345678 published",
        "customer tel:+86138****5678 member:1101…34:a wechat:oyOR…f0rs",
    ):
        assert mask_text(line) == line


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
