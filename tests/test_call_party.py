"""Caller and callee numbers as call-centre systems log them, to (E.164, extension)."""

from __future__ import annotations

import phonenumbers
import pytest

from normalizer._contacts import call_party_to_e164, phone_to_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # mobiles, in every prefix spelling
        ("13812345678", ("+8613812345678", None)),
        ("+8613812345678", ("+8613812345678", None)),
        ("008613812345678", ("+8613812345678", None)),
        ("8613812345678", ("+8613812345678", None)),
        ("+86 138-1234-5678", ("+8613812345678", None)),
        ("013812345678", ("+8613812345678", None)),  # out-of-town mobile with a toll 0
        # Asterisk clid, SIP and tel URIs
        ('"Zhang San" <13812345678>', ("+8613812345678", None)),
        ('"张三" <13812345678>', ("+8613812345678", None)),
        ('"" <13812345678>', ("+8613812345678", None)),
        ("sip:13812345678@10.0.0.1", ("+8613812345678", None)),
        ("sip:+8613812345678@ims.example.cn;user=phone", ("+8613812345678", None)),
        ("tel:+86-21-6123-4567", ("+862161234567", None)),
        # landlines with their area code
        ("02161234567", ("+862161234567", None)),
        ("021-61234567", ("+862161234567", None)),
        ("(021) 6123 4567", ("+862161234567", None)),
        ("021-6123-4567", ("+862161234567", None)),  # dashes inside a number are not extensions
        ("0755-8888 6666", ("+8675588886666", None)),
        ("+86 21 6123 4567", ("+862161234567", None)),
        ("862161234567", ("+862161234567", None)),
        # 400 and 800 service numbers
        ("4008123123", ("+864008123123", None)),
        ("400-812-3123", ("+864008123123", None)),
        ("400 812 3123", ("+864008123123", None)),
        ("8008101234", ("+868008101234", None)),
        ("800-810-1234", ("+868008101234", None)),
        # extensions
        ("021-61234567-8001", ("+862161234567", "8001")),
        ("02161234567,8001", ("+862161234567", "8001")),
        ("02161234567,,8001", ("+862161234567", "8001")),
        ("02161234567 ext 8001", ("+862161234567", "8001")),
        ("02161234567 ext. 8001", ("+862161234567", "8001")),
        ("02161234567 EXT8001", ("+862161234567", "8001")),
        ("02161234567x8001", ("+862161234567", "8001")),
        ("02161234567#8001", ("+862161234567", "8001")),
        ("021-61234567转8001", ("+862161234567", "8001")),
        ("021-61234567 分机 8001", ("+862161234567", "8001")),
        ("400-812-3123转8001", ("+864008123123", "8001")),
        ('"李四" <021-61234567-8001>', ("+862161234567", "8001")),
        ("０２１－６１２３４５６７，８００１", ("+862161234567", "8001")),
        # full-width digits fold; digits of other scripts are refused
        ("１３８１２３４５６７８", ("+8613812345678", None)),
        ("＋８６　１３８　１２３４　５６７８", ("+8613812345678", None)),
        ("١٣٨١٢٣٤٥٦٧٨", (None, None)),
        ("१३८१२३४५६७८", (None, None)),
        ("02161234567 ext ٨٠٠١", (None, None)),
        # international callers
        ("+1 415 555 2671", ("+14155552671", None)),
        ("0085291234567", ("+85291234567", None)),
        # not a reachable number
        ("1001", (None, None)),
        ("8001", (None, None)),
        ('"Queue" <8001>', (None, None)),
        ("sip:1001@pbx.local", (None, None)),
        ("95588", (None, None)),
        ("61234567", (None, None)),  # local number without its area code
        ("anonymous", (None, None)),
        ("Anonymous", (None, None)),
        ('"Anonymous" <anonymous>', (None, None)),
        ("unknown", (None, None)),
        ("", (None, None)),
        ("   ", (None, None)),
        ('"" <>', (None, None)),
        (None, (None, None)),
        ("ext 8001", (None, None)),
        ("1001-2", (None, None)),
        ("+86000000000000", (None, None)),
        ("call me 13812345678", (None, None)),
        ("+", (None, None)),
        ("( )", (None, None)),
    ],
)
def test_call_party_to_e164(raw: str | None, expected: tuple[str | None, str | None]) -> None:
    assert call_party_to_e164(raw) == expected


def test_an_extension_is_never_returned_without_a_number() -> None:
    assert call_party_to_e164("12345 ext 8001") == (None, None)
    assert call_party_to_e164("1001-8001") == (None, None)


def test_phonenumbers_itself_accepts_400_and_800_numbers() -> None:
    """call_party_to_e164 relies on this instead of a rule of its own; a metadata change shows here."""
    shared_cost = phonenumbers.parse("4008123123", "CN")
    toll_free = phonenumbers.parse("8008101234", "CN")
    assert phonenumbers.is_valid_number(shared_cost)
    assert phonenumbers.number_type(shared_cost) == phonenumbers.PhoneNumberType.SHARED_COST
    assert phonenumbers.is_valid_number(toll_free)
    assert phonenumbers.number_type(toll_free) == phonenumbers.PhoneNumberType.TOLL_FREE
    assert not phonenumbers.is_valid_number(phonenumbers.parse("400812312", "CN"))


def test_phone_to_e164_is_unchanged_for_call_centre_spellings() -> None:
    """The store channel's function keeps its stricter rules: no clid, no extensions."""
    assert phone_to_e164('"Zhang San" <13812345678>') is None
    assert phone_to_e164("021-61234567-8001") is None
    assert phone_to_e164("13812345678") == "+8613812345678"
