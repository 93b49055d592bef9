"""Weibo fans-service private messages (``/webhooks/weibo_dm``): the webhook contract, TV-WB-1,
the URL check, millisecond timestamps, replays, Weibo's resends and ignored events."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from connectors.base import WebhookRequest
from connectors.errors import InvalidSignature
from connectors.weibo_dm import _signature
from gateway import Gateway
from schemas import record_id_for
from tests.fakes import FrozenClock
from tests.test_contract import NOW, STAMP, WebhookConnectorContract, json_text
from tests.test_webhooks import metric

SECRET = "wb-app-s3cret-0c1d"
MILLIS = STAMP * 1000
SENDER = 2489518277
#: Weibo's time format, at NOW (2026-11-23 02:15 UTC) in Beijing time.
CREATED_AT = "Mon Nov 23 10:15:00 +0800 2026"


def weibo_signature(secret: str, timestamp: str, nonce: str) -> str:
    """Written from the platform's guide, independently of the connector."""
    return hashlib.sha1("".join(sorted([secret, timestamp, nonce])).encode()).hexdigest()


def signed_query(
    secret: str = SECRET, timestamp: int = MILLIS, nonce: str = "57155157", **extra: str
) -> dict[str, str]:
    ts = str(timestamp)
    return {
        "signature": weibo_signature(secret, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
    } | extra


def dm(text: str = "热水器漏水，要求上门维修", **fields: Any) -> bytes:
    message: dict[str, Any] = {
        "type": "text",
        "receiver_id": 1902538057,
        "sender_id": SENDER,
        "created_at": CREATED_AT,
        "text": text,
        "data": {},
    }
    message.update(fields)
    return json.dumps(message, ensure_ascii=False).encode()


def test_tv_wb_1_signature() -> None:
    expected = "90e4c22c90a58f26526c2dd5b6c56c8822edeaa1"
    assert _signature("xyz123xyz", "1397022061823", "57155157") == expected
    assert weibo_signature("xyz123xyz", "1397022061823", "57155157") == expected


class TestWeiboDmContract(WebhookConnectorContract):
    name = "weibo_dm"
    secret_values = (SECRET,)
    malformed_body = b'{"type": "text", "sender_id": '

    def settings_section(self) -> dict[str, Any]:
        return {"app_secret": SECRET}

    def sample_body(self, message_id: str) -> bytes:
        # Weibo has no message id: the sender and the time are the message's identity
        return dm(sender_id=message_id)

    def _request(self, query: dict[str, str], body: bytes, method: str = "POST") -> WebhookRequest:
        headers = {"content-type": "application/json"}
        return WebhookRequest(method, query, headers, body, NOW)

    def signed(self, body: bytes) -> WebhookRequest:
        # Weibo draws a fresh nonce per push; one per body keeps the test repeatable
        return self._request(signed_query(nonce=str(zlib.crc32(body))), body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({"timestamp": str(MILLIS), "nonce": "c1"}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        return self._request(signed_query("not-the-secret", nonce="c1"), body)

    def strangers(self, body: bytes) -> dict[str, WebhookRequest]:
        wrong = signed_query("not-the-secret", nonce="c1")
        return super().strangers(body) | {
            "stale": self._request(signed_query(timestamp=MILLIS - 3_600_000, nonce="s"), body),
            "seconds_timestamp": self._request(signed_query(timestamp=STAMP, nonce="s"), body),
            "huge_timestamp": self._request(wrong | {"timestamp": "1" + "0" * 400}, body),
            "non_ascii_signature": self._request(wrong | {"signature": "é" * 40}, body),
            "url_check_with_body": self._request(wrong | {"echostr": "e"}, body, "GET"),
            "put": self._request({}, body, "PUT"),
        }

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        anything = st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | json_text,
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3)
            ),
            max_leaves=6,
        )

        def mostly(*valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
            return st.integers(0, 7).flatmap(lambda n: st.one_of(*valid) if n else anything)

        media_id = st.one_of(st.integers(0, 2**64), st.integers(0, 10**12).map(str))
        coordinate = st.one_of(
            st.decimals(-200, 200, places=6).map(str), st.sampled_from(["116.308586", "x"])
        )
        data = st.fixed_dictionaries(
            {},
            optional={
                "vfid": mostly(media_id),
                "tovfid": mostly(media_id),
                "longitude": mostly(coordinate),
                "latitude": mostly(coordinate),
                "subtype": mostly(st.sampled_from(["follow", "unfollow", "scan", "gift"])),
                "key": json_text,
            },
        )
        message = st.fixed_dictionaries(
            {
                "type": mostly(
                    st.sampled_from(["text", "image", "voice", "position", "event", "video"])
                ),
                "sender_id": mostly(st.integers(0, 2**64 - 1), st.just("7012345678901234567")),
                "created_at": mostly(
                    st.sampled_from(
                        [CREATED_AT] * 4
                        + ["Mon Jul 16 18:09:20 -0330 2012", "Tue Feb 30 10:00:00 +0800 2027"]
                    )
                ),
                "text": mostly(json_text),
            },
            optional={
                "receiver_id": mostly(st.just(1902538057)),
                "data": mostly(data, data.map(json.dumps), st.just("")),
            },
        )
        return message.map(
            lambda m: (json.dumps(m, ensure_ascii=False).encode(), _texts(m) + _embedded(m))
        )

    # -- Weibo's own rules -------------------------------------------------------------

    async def test_tv_wb_1_url_check_is_answered_with_echostr(self) -> None:
        """The guide's sample request, at the time it was signed (milliseconds)."""
        klass = type(self.connector())
        settings = klass.settings_model.model_validate({"app_secret": "xyz123xyz"})
        signed_at = datetime.fromtimestamp(1397022061.823, UTC)
        connector = klass(settings, FrozenClock(signed_at))
        query = {
            "nonce": "57155157",
            "timestamp": "1397022061823",
            "echostr": "dnPdpTZz85",
            "signature": "90e4c22c90a58f26526c2dd5b6c56c8822edeaa1",
        }
        reply = await connector.handle(WebhookRequest("GET", query, {}, b"", signed_at))
        assert reply.answer is not None and reply.answer.body == b"dnPdpTZz85"
        assert not reply.events

    @pytest.mark.parametrize(
        ("query", "status", "reason"),
        [
            (signed_query(nonce="h"), 401, "missing_signature"),
            (signed_query("guessed", nonce="h", echostr="e1"), 403, "bad_signature"),
            (
                signed_query(timestamp=MILLIS - 301_000, nonce="h", echostr="e1"),
                403,
                "stale_timestamp",
            ),
        ],
        ids=["no-echostr", "wrong-signature", "stale"],
    )
    async def test_url_check_refusals(
        self, query: dict[str, str], status: int, reason: str
    ) -> None:
        with pytest.raises(InvalidSignature) as caught:
            await self.connector().handle(self._request(query, b"", "GET"))
        assert (caught.value.status, caught.value.reason) == (status, reason)

    @pytest.mark.parametrize(
        ("timestamp", "reason"),
        [
            (MILLIS - 299_000, None),
            (MILLIS + 299_999, None),
            (MILLIS - 301_000, "stale_timestamp"),
            (MILLIS + 301_000, "stale_timestamp"),
            (STAMP, "stale_timestamp"),  # seconds read as milliseconds: January 1970
        ],
        ids=["299s-old", "299s-ahead", "301s-old", "301s-ahead", "seconds"],
    )
    async def test_timestamps_are_milliseconds_within_the_window(
        self, timestamp: int, reason: str | None
    ) -> None:
        request = self._request(signed_query(timestamp=timestamp, nonce="w"), dm())
        if reason is None:
            assert len((await self.connector().handle(request)).events) == 1
        else:
            with pytest.raises(InvalidSignature) as caught:
                await self.connector().handle(request)
            assert caught.value.reason == reason

    async def test_a_signed_query_replayed_with_another_body_is_refused(self) -> None:
        connector = self.connector()
        query = signed_query(nonce="once")
        await connector.handle(self._request(query, dm("第一条")))
        again = await connector.handle(self._request(query, dm("第一条")))  # Weibo's resend
        assert len(again.events) == 1
        with pytest.raises(InvalidSignature) as caught:
            await connector.handle(self._request(query, dm("换了内容的伪造消息")))
        assert (caught.value.status, caught.value.reason) == (403, "replayed_nonce")

    async def test_two_messages_in_one_second_are_two_events(self) -> None:
        connector = self.connector()
        first = await connector.handle(self.signed(dm("收到的杯子是碎的")))
        second = await connector.handle(self.signed(dm("要求退款")))
        image = await connector.handle(
            self.signed(dm("发了一张图片", type="image", data={"tovfid": 821804458}))
        )
        keys = {r.events[0].source_key for r in (first, second, image)}
        assert len(keys) == 3
        assert all(k.startswith(f"{SENDER}:{CREATED_AT}:") for k in keys)

    # -- end to end: what Weibo and an operator see ------------------------------------

    @pytest.mark.parametrize("resign", [False, True], ids=["same-query", "fresh-nonce"])
    async def test_weibo_resends_map_onto_one_record_and_are_answered_empty(
        self, channel_client: httpx.AsyncClient, channel_gateway: Gateway, resign: bool
    ) -> None:
        body = dm("快递三天没动了😡")
        for attempt in range(4):  # the first delivery and Weibo's three retries, 5 s apart
            nonce = f"r{attempt}" if resign else "r"
            query = signed_query(timestamp=MILLIS + 5000 * attempt, nonce=nonce)
            response = await channel_client.post("/webhooks/weibo_dm", params=query, content=body)
            assert (response.status_code, response.content) == (200, b""), attempt
        (entry,) = await channel_gateway.outbox.select(since=None)
        record = json.loads(entry.record_json)
        assert record["description"] == "快递三天没动了😡"
        assert record["customer"]["id"] == f"weibo:{SENDER}"
        text = (await channel_client.get("/metrics")).text
        assert metric(text, "gateway_records_accepted_total", connector="weibo_dm") == 1
        assert metric(text, "gateway_duplicates_total", connector="weibo_dm") == 3

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            (
                {"type": "event", "text": "关注事件消息", "data": {"subtype": "follow"}},
                "event:follow",
            ),
            (
                {"type": "event", "text": "事件消息", "data": {"subtype": "live_gift"}},
                "event:other",
            ),
            ({"type": "articles", "text": "分享了一篇文章", "data": {}}, "type:other"),
        ],
        ids=["follow", "unknown-subtype", "unknown-type"],
    )
    async def test_events_and_unknown_types_are_answered_ignored_and_counted(
        self,
        channel_client: httpx.AsyncClient,
        channel_gateway: Gateway,
        fields: dict[str, Any],
        reason: str,
    ) -> None:
        response = await channel_client.post(
            "/webhooks/weibo_dm", params=signed_query(nonce="e"), content=dm(**fields)
        )
        assert (response.status_code, response.content) == (200, b"")
        assert await self.nothing_stored(channel_gateway)
        text = (await channel_client.get("/metrics")).text
        assert (
            metric(text, "gateway_events_ignored_total", connector="weibo_dm", reason=reason) == 1
        )

    async def test_a_huge_numeric_sender_id_keeps_every_digit(
        self, channel_client: httpx.AsyncClient, channel_gateway: Gateway
    ) -> None:
        body = dm().replace(str(SENDER).encode(), b"9007199254740993")
        response = await channel_client.post(
            "/webhooks/weibo_dm", params=signed_query(nonce="big"), content=body
        )
        assert response.status_code == 200
        (entry,) = await channel_gateway.outbox.select(since=None)
        record = json.loads(entry.record_json)
        assert record["customer"]["contacts"]["weibo_uid"] == "9007199254740993"
        assert record["customer"]["id"] == "weibo:9007199254740993"
        (event,) = type(self.connector()).parse(body, NOW)
        assert event.source_key.startswith(f"9007199254740993:{CREATED_AT}:text:")
        assert entry.record_id == record_id_for("weibo_dm", event.source_key)

    async def test_an_unreadable_signed_push_is_quarantined(
        self, channel_client: httpx.AsyncClient, channel_gateway: Gateway
    ) -> None:
        body = dm(created_at="2026-11-23 10:15:00")
        response = await channel_client.post(
            "/webhooks/weibo_dm", params=signed_query(nonce="q"), content=body
        )
        assert response.status_code == 400
        assert response.json()["reason"] == "invalid_field"
        (kept,) = await channel_gateway.outbox.quarantined()
        assert kept.body == body


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _embedded(message: dict[str, Any]) -> list[str]:
    """Texts inside a ``data`` sent as JSON text."""
    data = message.get("data")
    if isinstance(data, str) and data.startswith("{"):
        return _texts(json.loads(data))
    return []
