"""WeChat's published test vectors (shared/reference/channels.md §1.3), through the connector."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import WebhookRequest
from connectors.errors import InvalidSignature
from connectors.wechat import WeChatConnector, WeChatSettings
from normalizer.base import NotAComplaint
from normalizer.wechat import WeChatNormalizer
from service.senders import wechat_signature
from tests.fakes import FrozenClock

SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_APP_ID = "wx2c2769f8efd9abc2"

TV_WX_2 = {
    "timestamp": "1409735669",
    "nonce": "1320562132",
    "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
    "encrypt": "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=",
    "plaintext": b"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>",
    "msg_id": "6054768590064713728",
}
TV_WX_3 = {
    "timestamp": "1410349438",
    "nonce": "298025754",
    "msg_signature": "003fee52ecc56afb46c00b5c7721be87860ce785",
    "encrypt": "mfBCs65c67CeJw22u4VT2TD73q5H06+ocrAIxswCaeZ/d/Lw0msSZFHY0teqgSYiI1zR2gD2DKrB3TIrmX/liNSDrGqS8jSI/WPeKB5VPr7Ezr7gomZAyGCwJSgT1TRFWPfONGJMxuj2nk4faTuspAuVIFQ6SHwZuJBZC7mcJp7Cgr9cUhATQWDbOPaE7ukZBTV2YqyzH+UI2AK+J1S47cE79k1RX8t0hcTz/O0hlK8DGXKnvYv88qKQcI7z4iaajqHfRVZKBNyOODabs+It+ZfM3dWTeFcPgDbGtIEnpt/EDtuuA/zMvtkaKdHdswPnVZQ+xdwbYr3ldGvfT8HlEYEgkgKaThxTFobVlwzu2ZkXCjicbP3xdr15Iq48ObgzPpqYuZ3IEoyggZDKClquk0u0orMck4GTF/XyE8yGzc4=",
    "plaintext": b"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1410349438</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6057404712141979648</MsgId>\n</xml>",
    "msg_id": "6057404712141979648",
}
NOW = datetime(2026, 11, 23, 2, 15, tzinfo=UTC)


def connector(at: object, **settings: object) -> WeChatConnector:
    """A connector whose clock reads the vector's own timestamp ``at`` (Unix seconds).

    The published vectors carry fixed timestamps from 2014–2024; under any other
    clock they are, rightly, refused as stale.
    """
    clock = FrozenClock(datetime.fromtimestamp(int(str(at)), UTC))
    return WeChatConnector(WeChatSettings.model_validate(settings), clock)


def request(method: str, query: dict[str, str], body: bytes = b"") -> WebhookRequest:
    return WebhookRequest(method, query, {}, body, NOW)


# -- TV-WX-1: the plaintext URL check --------------------------------------------------


async def test_url_check_echoes_echostr_with_the_published_signature() -> None:
    query = {
        "signature": "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff",
        "timestamp": "1410685589",
        "nonce": "test",
        "echostr": "hello-wechat",
    }
    reply = await connector("1410685589", token="test").handle(request("GET", query))
    assert reply.answer is not None and reply.answer.body == b"hello-wechat"


async def test_url_check_refuses_the_published_negative_signature() -> None:
    query = {
        "signature": "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe",
        "timestamp": "1410685589",
        "nonce": "test",
        "echostr": "hello-wechat",
    }
    with pytest.raises(InvalidSignature) as caught:
        await connector("1410685589", token="test").handle(request("GET", query))
    assert caught.value.status == 403


# -- TV-WX-2 / TV-WX-3: the official samples, compatible and safe mode ----------------


def compat_body(vector: dict[str, object]) -> bytes:
    return bytes(vector["plaintext"]).replace(  # type: ignore[call-overload]
        b"</xml>", f"<Encrypt><![CDATA[{vector['encrypt']}]]></Encrypt></xml>".encode()
    )


def safe_body(vector: dict[str, object]) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
        f"<Encrypt><![CDATA[{vector['encrypt']}]]></Encrypt></xml>"
    ).encode()


def encrypted_query(vector: dict[str, object], with_plain_signature: bool) -> dict[str, str]:
    query = {
        "timestamp": str(vector["timestamp"]),
        "nonce": str(vector["nonce"]),
        "encrypt_type": "aes",
        "msg_signature": str(vector["msg_signature"]),
    }
    if with_plain_signature:
        query["signature"] = wechat_signature("spamtest", query["timestamp"], query["nonce"])
    return query


@pytest.mark.parametrize("vector", [TV_WX_2, TV_WX_3], ids=["TV-WX-2", "TV-WX-3"])
@pytest.mark.parametrize("body", [compat_body, safe_body], ids=["compatible", "safe"])
@pytest.mark.parametrize("plain_signature", [True, False], ids=["both-signatures", "msg-only"])
async def test_official_sample_decrypts_to_the_published_plaintext(
    vector: dict[str, object], body: object, plain_signature: bool
) -> None:
    wx = connector(
        vector["timestamp"], token="spamtest", encoding_aes_key=SAMPLE_KEY, app_id=SAMPLE_APP_ID
    )
    reply = await wx.handle(request("POST", encrypted_query(vector, plain_signature), body(vector)))  # type: ignore[operator]
    (event,) = reply.events
    assert event.body == vector["plaintext"]
    assert event.source_key == vector["msg_id"] == event.message_id
    record = WeChatNormalizer().normalize(event)
    assert not isinstance(record, NotAComplaint)
    assert record.description == "abcdteT"
    assert record.customer.contacts.wechat_openid == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"


async def test_tampered_ciphertext_is_refused_by_msg_signature() -> None:
    wx = connector(
        TV_WX_2["timestamp"], token="spamtest", encoding_aes_key=SAMPLE_KEY, app_id=SAMPLE_APP_ID
    )
    tampered = dict(TV_WX_2, encrypt="A" + str(TV_WX_2["encrypt"])[1:])
    with pytest.raises(InvalidSignature) as caught:
        await wx.handle(request("POST", encrypted_query(TV_WX_2, False), safe_body(tampered)))
    assert caught.value.reason == "bad_signature"


async def test_message_for_another_app_id_is_refused() -> None:
    wx = connector(
        TV_WX_2["timestamp"],
        token="spamtest",
        encoding_aes_key=SAMPLE_KEY,
        app_id="wx0000000000000000",
    )
    with pytest.raises(InvalidSignature) as caught:
        await wx.handle(request("POST", encrypted_query(TV_WX_2, False), safe_body(TV_WX_2)))
    assert caught.value.reason == "app_id_mismatch"


async def test_previous_aes_key_still_decrypts_during_a_key_change() -> None:
    wx = connector(
        TV_WX_2["timestamp"],
        token="spamtest",
        encoding_aes_key="Z" * 43,
        previous_encoding_aes_key=SAMPLE_KEY,
        app_id=SAMPLE_APP_ID,
    )
    reply = await wx.handle(request("POST", encrypted_query(TV_WX_2, False), safe_body(TV_WX_2)))
    assert reply.events[0].body == TV_WX_2["plaintext"]


# -- TV-WX-5: safe-mode URL check answers the decrypted echostr -----------------------


async def test_safe_mode_url_check_answers_the_decrypted_echostr() -> None:
    wx = connector(
        "1409659589",
        token="QDG6eK",
        encoding_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        app_id="wx5823bf96d3bd56c7",
    )
    query = {
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
    }
    reply = await wx.handle(request("GET", query))
    assert reply.answer is not None and reply.answer.body == b"1616140317555161061"


# -- TV-WX-7: an all-zero key and an event with no MsgId ------------------------------


async def test_component_event_vector_decrypts_and_is_not_a_complaint() -> None:
    wx = connector(
        "1715943329", token="AAAAA", encoding_aes_key="A" * 43, app_id="wx134c8103faa5a59e"
    )
    encrypt = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg=="
    query = {
        "timestamp": "1715943329",
        "nonce": "1590219412",
        "encrypt_type": "aes",
        "msg_signature": "6c12a4205838198b8fa631b3220723bb07f1015c",
    }
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    (event,) = (await wx.handle(request("POST", query, body))).events
    assert len(event.body) == 292
    assert event.source_key == "o9AgO5Kd5ggOC-bXrbNODIiE3bGY:1715943329:debug_demo"
    assert event.message_id is None
    # debug_demo is no event WeChat documents for an account: counted as "other"
    assert WeChatNormalizer().normalize(event) == NotAComplaint("event:other")
