"""Douyin shop (抖店) message push: the webhook contract and what is particular to it."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from connectors.base import WebhookRequest
from connectors.douyin_shop import DouyinShopConnector, DouyinShopSettings, event_sign
from connectors.errors import InvalidSignature
from gateway import Gateway, running_gateway
from normalizer.base import NotAComplaint
from schemas import ComplaintRecord, record_id_for
from service.registry import Registry
from tests.fakes import FrozenClock, MemorySink
from tests.test_contract import NOW, WebhookConnectorContract, _texts, json_text
from tests.test_webhooks import metric

#: TV-DY-0 (channels.md §4.4): self-computed from the SDK code, NOT an official vector.
TV_APP_KEY = "3409409348479354011"
TV_APP_SECRET = "2ad2355c-01d0-11f8-91dc-05a8cd1054b1"
TV_BODY = (
    b'[{"tag":"100","msg_id":"7000000000000000001","data":"{\\"p_id\\":4781320682406083640}"}]'
)
TV_MD5 = "93b60fe261eed2eaf4a8176ca6806796"
TV_HMAC = "a444e7515d5ad9f43f4b7fde4c081178e2a6e851a816c9de70bfb860d71ead1b"

APP_KEY = "7123456789012345678"
SECRET = "d0u-y1n-s3cret-4b7e"


def push(*messages: tuple[str, str, Mapping[str, Any] | str]) -> bytes:
    """A push body as the platform sends it: data is a JSON string inside the message."""
    return json.dumps(
        [
            {
                "tag": tag,
                "msg_id": msg_id,
                "data": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False),
            }
            for tag, msg_id, data in messages
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def refund(aftersale_id: int = 7305561782361227530, **fields: Any) -> dict[str, Any]:
    return {
        "aftersale_id": aftersale_id,
        "aftersale_type": 2,
        "apply_time": 1795395300,
        "p_id": 6920145326712305312,
        "reason_code": 12,
        "refund_amount": 12990,
    } | fields


def headers(
    body: bytes, secret: str = SECRET, method: str = "md5", app: str = APP_KEY
) -> dict[str, str]:
    if method == "md5":
        sign = hashlib.md5(app.encode() + body + secret.encode()).hexdigest()
    else:
        sign = hmac.new(
            secret.encode(), app.encode() + body + secret.encode(), hashlib.sha256
        ).hexdigest()
    return {"content-type": "application/json", "app-id": app, "event-sign": sign}


class TestDouyinShopContract(WebhookConnectorContract):
    name = "douyin_shop"
    secret_values = (SECRET,)
    malformed_body = b'[{"tag":"200","msg_id":'
    gateway_words = r"（抖店售后推送不含买家文字(，售后原因码 \d+)?）"

    def settings_section(self) -> dict[str, Any]:
        return {"app_key": APP_KEY, "app_secret": SECRET}

    def sample_body(self, message_id: str) -> bytes:
        return push(("200", message_id, refund()))

    def _request(self, hdrs: Mapping[str, str], body: bytes) -> WebhookRequest:
        return WebhookRequest("POST", {}, dict(hdrs), body, NOW)

    def signed(self, body: bytes) -> WebhookRequest:
        return self._request(headers(body), body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({"content-type": "application/json", "app-id": APP_KEY}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        return self._request(headers(body, secret="guessed-secret"), body)

    def strangers(self, body: bytes) -> dict[str, WebhookRequest]:
        return super().strangers(body) | {
            "other_app": self._request(headers(body, app="7000000000000000000"), body),
            "no_app_id": self._request({"event-sign": headers(body)["event-sign"]}, body),
            "hmac_when_md5_is_configured": self._request(headers(body, method="hmac-sha256"), body),
            "non_hex_sign": self._request(headers(body) | {"event-sign": "é" * 32}, body),
            "get": WebhookRequest("GET", {}, headers(body), body, NOW),
        }

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        anything = st.recursive(
            st.none() | st.booleans() | st.integers() | json_text,
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3)
            ),
            max_leaves=6,
        )

        def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
            return st.integers(0, 7).flatmap(lambda n: valid if n else anything)

        ids = st.one_of(st.integers(0, 2**63), st.integers(0, 2**63).map(str))
        data = st.fixed_dictionaries(
            {
                "aftersale_id": mostly(ids),
                "p_id": mostly(ids),
                "aftersale_type": mostly(st.integers(0, 8)),
                "refund_amount": mostly(
                    st.one_of(st.integers(0, 10**9), st.sampled_from(["5905", "12.50", "-1", ""]))
                ),
            },
            optional={
                "apply_time": mostly(st.integers(0, 2**32)),
                "reason_code": mostly(st.integers(0, 100)),
                "doudian_open_id": mostly(json_text),
                "buyer_nick": mostly(json_text),
                "product_name": mostly(json_text),
                "description": mostly(json_text),
                "reason": mostly(json_text),
            },
        )

        def build(tag: str, msg_id: str, fields: dict[str, Any]) -> tuple[bytes, list[str]]:
            return push((tag, msg_id, fields)), _texts(fields)

        return st.builds(
            build,
            st.sampled_from(["200", "208", "212", "0", "100", "206"]),
            st.integers(1, 2**63).map(str),
            data,
        )

    # -- what is particular to Douyin -------------------------------------------------------

    def test_tv_dy_0_push_signatures(self) -> None:
        assert event_sign(TV_APP_KEY, TV_APP_SECRET, TV_BODY, "md5") == TV_MD5
        assert event_sign(TV_APP_KEY, TV_APP_SECRET, TV_BODY, "hmac-sha256") == TV_HMAC

    @pytest.mark.parametrize(("method", "sign"), [("md5", TV_MD5), ("hmac-sha256", TV_HMAC)])
    async def test_each_sign_method_accepts_its_own_signature_only(
        self, method: str, sign: str
    ) -> None:
        settings = DouyinShopSettings.model_validate(
            {"app_key": TV_APP_KEY, "app_secret": TV_APP_SECRET, "sign_method": method}
        )
        connector = DouyinShopConnector(settings, FrozenClock(NOW))
        good = {"app-id": TV_APP_KEY, "event-sign": sign}
        reply = await connector.handle(WebhookRequest("POST", {}, good, TV_BODY, NOW))
        assert [e.source_key for e in reply.events] == ["7000000000000000001"]
        other = TV_HMAC if sign == TV_MD5 else TV_MD5
        with pytest.raises(InvalidSignature) as caught:
            await connector.handle(
                WebhookRequest("POST", {}, good | {"event-sign": other}, TV_BODY, NOW)
            )
        assert (caught.value.status, caught.value.reason) == (403, "bad_signature")
        upper = good | {"event-sign": sign.upper()}
        assert (await connector.handle(WebhookRequest("POST", {}, upper, TV_BODY, NOW))).events

    async def test_another_apps_push_is_403_and_a_missing_app_id_401(self) -> None:
        body = self.sample_body("a-1")
        with pytest.raises(InvalidSignature) as caught:
            await self.connector().handle(self._request(headers(body, app="1" * 19), body))
        assert (caught.value.status, caught.value.reason) == (403, "app_id_mismatch")
        with pytest.raises(InvalidSignature) as caught:
            await self.connector().handle(
                self._request({"event-sign": headers(body)["event-sign"]}, body)
            )
        assert caught.value.status == 401

    def test_amounts_in_fen_become_exact_yuan(self) -> None:
        registry = Registry.from_entry_points()
        for fen, yuan in [
            (1, "0.01"),
            ("5905", "59.05"),
            (12990, "129.90"),
            (10**13, "100000000000.00"),
        ]:
            (event,) = DouyinShopConnector.parse(push(("200", "m", refund(refund_amount=fen))), NOW)
            record = registry.normalizers["douyin_shop"].normalize(event)
            assert isinstance(record, ComplaintRecord)
            assert record.product.amount_cny == Decimal(yuan)
            assert str(record.product.amount_cny) == yuan

    def test_a_push_of_several_messages_gives_an_event_each(self) -> None:
        body = push(
            ("0", "7300000000000000000", "{}"),
            ("200", "7300000000000000001", refund()),
            ("101", "7300000000000000002", "not even JSON: an order message is never decoded"),
        )
        events = DouyinShopConnector.parse(body, NOW)
        assert [e.payload["kind"] for e in events] == ["verification", "complaint", "ignored"]
        assert json.loads(events[1].body)[0]["msg_id"] == "7300000000000000001"
        registry = Registry.from_entry_points()
        results = [registry.normalizers["douyin_shop"].normalize(e) for e in events]
        assert results[0] == NotAComplaint("verification")
        assert isinstance(results[1], ComplaintRecord)
        assert results[2] == NotAComplaint("tag:101")

    def test_complaint_tags_are_a_setting(self) -> None:
        settings = DouyinShopSettings.model_validate(
            self.settings_section() | {"complaint_tags": ["200", "206"]}
        )
        body = push(("206", "m-206", refund()), ("212", "m-212", refund()))
        kinds = [e.payload["kind"] for e in DouyinShopConnector.parse(body, NOW, settings)]
        assert kinds == ["complaint", "ignored"]


# -- through HTTP -------------------------------------------------------------------------


@pytest.fixture
async def douyin(
    make_settings: Any, registry: Registry
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway, MemorySink]]:
    sink = MemorySink()
    settings = make_settings(connectors={"douyin_shop": {"app_key": APP_KEY, "app_secret": SECRET}})
    async with running_gateway(settings, registry, clock=FrozenClock(NOW), sink=sink) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client, gw, sink


async def post(client: httpx.AsyncClient, body: bytes, **kw: Any) -> httpx.Response:
    return await client.post("/webhooks/douyin_shop", content=body, headers=headers(body, **kw))


async def test_a_refund_is_answered_success_and_published_once_however_often_redelivered(
    douyin: tuple[httpx.AsyncClient, Gateway, MemorySink],
) -> None:
    client, gateway, sink = douyin
    body = push(("200", "7305561782361227530", refund()))
    for _ in range(3):  # the first delivery and two retries of an unanswered push
        response = await post(client, body)
        assert response.status_code == 200
        assert response.json() == {"code": 0, "msg": "success"}
        assert response.headers["content-type"].startswith("application/json")
    await sink.wait_for(1)
    (record,) = sink.records
    assert record["record_id"] == record_id_for("douyin_shop", "7305561782361227530")
    assert record["product"] == {
        "sku": None,
        "name": None,
        "order_id": "6920145326712305312",
        "amount_cny": "129.90",
    }
    text = (await client.get("/metrics")).text
    assert metric(text, "gateway_records_accepted_total", connector="douyin_shop") == 1
    assert metric(text, "gateway_duplicates_total", connector="douyin_shop") == 2
    raw, media_type = await gateway.outbox.raw_payload(record["record_id"]) or (b"", "")
    assert raw == body and media_type == "application/json"


async def test_verification_and_other_tags_are_answered_success_counted_and_not_kept(
    douyin: tuple[httpx.AsyncClient, Gateway, MemorySink],
) -> None:
    client, gateway, _ = douyin
    body = push(
        ("0", "7305561700000000000", "{}"),
        ("100", "7305561700000000001", {"p_id": 4781320682406083640}),
        ("206", "7305561700000000002", refund()),
    )
    response = await post(client, body)
    assert (response.status_code, response.json()) == (200, {"code": 0, "msg": "success"})
    assert not await gateway.outbox.select(since=None)
    text = (await client.get("/metrics")).text
    for reason in ("verification", "tag:100", "tag:206"):
        labels = {"connector": "douyin_shop", "reason": reason}
        assert metric(text, "gateway_events_ignored_total", **labels) == 1, reason


async def test_hmac_sha256_mode_and_refusals_over_http(
    make_settings: Any, registry: Registry
) -> None:
    section = {"app_key": APP_KEY, "app_secret": SECRET, "sign_method": "hmac-sha256"}
    settings = make_settings(connectors={"douyin_shop": section})
    async with running_gateway(settings, registry, clock=FrozenClock(NOW), sink=MemorySink()) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            body = push(("200", "h-1", refund()))
            assert (await post(client, body, method="hmac-sha256")).status_code == 200
            md5 = await post(client, body)
            assert (md5.status_code, md5.json()["reason"]) == (403, "bad_signature")
            other = await post(client, body, method="hmac-sha256", app="7000000000000000000")
            assert (other.status_code, other.json()["reason"]) == (403, "app_id_mismatch")
            bad = push(("200", "h-2", refund(refund_amount="12.5")))
            quarantined = await post(client, bad, method="hmac-sha256")
            assert (quarantined.status_code, quarantined.json()["reason"]) == (400, "invalid_field")
            (kept,) = await gw.outbox.quarantined()
            assert kept.body == bad and "event-sign" not in json.dumps(kept.headers)
