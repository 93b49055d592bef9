"""The webhook connector contract, inherited by every channel's test class.

A channel's class supplies a configured connector and three ways to send a
body (signed, unsigned, wrongly signed); the contract checks what every
webhook channel must do.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from connectors.base import ConnectorSettings, WebhookConnector, WebhookRequest
from connectors.errors import InvalidSignature, MalformedPayload
from connectors.store import StoreConnector, StoreSettings
from connectors.wechat import WeChatConnector, WeChatSettings
from service.senders import StoreSender, WeChatSender, wechat_text
from tests.fakes import FrozenClock

NOW = datetime(2026, 11, 23, 2, 15, tzinfo=UTC)
STAMP = int(NOW.timestamp())


class WebhookConnectorContract:
    channel: ClassVar[str]
    secret_values: ClassVar[tuple[str, ...]]

    def connector(self) -> WebhookConnector:
        raise NotImplementedError

    def signed(self, body: bytes) -> WebhookRequest:
        raise NotImplementedError

    def unsigned(self, body: bytes) -> WebhookRequest:
        raise NotImplementedError

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        raise NotImplementedError

    def sample_body(self, message_id: str) -> bytes:
        raise NotImplementedError

    malformed_body: ClassVar[bytes] = b"\x00\xff not a payload"

    # -- the contract -------------------------------------------------------------------

    def test_class_is_registered_under_its_channel(self) -> None:
        assert type(self.connector()).channel == self.channel

    async def test_signed_message_gives_one_event_keyed_by_the_platform_id(self) -> None:
        reply = await self.connector().handle(self.signed(self.sample_body("m-1")))
        (event,) = reply.events
        assert event.channel == self.channel
        assert "m-1" in event.source_key
        assert event.received_at == NOW

    async def test_redelivery_has_the_same_source_key(self) -> None:
        connector = self.connector()
        first = await connector.handle(self.signed(self.sample_body("m-2")))
        again = await connector.handle(self.signed(self.sample_body("m-2")))
        other = await connector.handle(self.signed(self.sample_body("m-3")))
        assert first.events[0].source_key == again.events[0].source_key
        assert first.events[0].source_key != other.events[0].source_key

    async def test_missing_signature_is_401(self) -> None:
        with pytest.raises(InvalidSignature) as caught:
            await self.connector().handle(self.unsigned(self.sample_body("m-4")))
        assert caught.value.status == 401

    async def test_wrong_signature_is_403(self) -> None:
        with pytest.raises(InvalidSignature) as caught:
            await self.connector().handle(self.wrongly_signed(self.sample_body("m-5")))
        assert caught.value.status == 403

    async def test_malformed_signed_body_is_a_payload_error(self) -> None:
        with pytest.raises(MalformedPayload) as caught:
            await self.connector().handle(self.signed(self.malformed_body))
        assert caught.value.reason

    def test_parse_is_pure(self) -> None:
        klass = type(self.connector())
        body = self.sample_body("m-6")
        assert klass.parse(body, NOW) == klass.parse(body, NOW)

    async def test_secrets_never_show(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        connector = self.connector()
        shown = [
            repr(connector),
            repr(connector.settings),
            str(connector.settings),
            connector.settings.model_dump_json(),
        ]
        for request in (
            self.wrongly_signed(self.sample_body("m-7")),
            self.unsigned(self.sample_body("m-8")),
        ):
            with pytest.raises(InvalidSignature) as caught:
                await connector.handle(request)
            shown.append(str(caught.value))
        shown.append(caplog.text)
        for secret in self.secret_values:
            assert not any(secret in text for text in shown)

    def test_every_setting_is_described(self) -> None:
        model: type[ConnectorSettings] = type(self.connector()).settings_model
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


class TestWeChatContract(WebhookConnectorContract):
    channel = "wechat"
    secret_values = ("tok-5ecret-771", "S3cretAesKey0123456789abcdefghijklmnopqrstu")
    sender = WeChatSender(
        "tok-5ecret-771", "S3cretAesKey0123456789abcdefghijklmnopqrstu", "wx1111222233334444"
    )
    malformed_body = b"<xml><FromUserName>unterminated"

    def connector(self) -> WebhookConnector:
        settings = WeChatSettings(
            token="tok-5ecret-771",  # type: ignore[arg-type]
            encoding_aes_key=self.secret_values[1],  # type: ignore[arg-type]
            app_id="wx1111222233334444",
        )
        return WeChatConnector(settings, FrozenClock(NOW))

    def sample_body(self, message_id: str) -> bytes:
        number = int.from_bytes(message_id.encode(), "big") % 10**12
        return (
            wechat_text("oContract00000000000000000", message_id, number, STAMP)
            .replace(f"<MsgId>{number}</MsgId>", f"<MsgId>{message_id}</MsgId>")
            .encode()
        )

    def _request(self, params: dict[str, str], body: bytes) -> WebhookRequest:
        return WebhookRequest("POST", params, {"content-type": "text/xml"}, body, NOW)

    def signed(self, body: bytes) -> WebhookRequest:
        push = self.sender.push(body.decode("utf-8", "replace"), timestamp=STAMP, nonce="c1")
        return self._request(push.params, body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({"timestamp": str(STAMP), "nonce": "c1"}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        push = WeChatSender("another-token").push(body.decode(), timestamp=STAMP, nonce="c1")
        return self._request(push.params, body)

    async def test_url_check_is_the_handshake(self) -> None:
        params = self.sender.url_check("echo-123", timestamp=STAMP, nonce="h")
        reply = await self.connector().handle(WebhookRequest("GET", params, {}, b"", NOW))
        assert reply.answer is not None and reply.answer.body == b"echo-123"
        assert not reply.events


class TestStoreContract(WebhookConnectorContract):
    channel = "store"
    secret_values = ("st0re-s3cret-abc",)
    malformed_body = b'{"submission_id": '

    def connector(self) -> WebhookConnector:
        return StoreConnector(
            StoreSettings(secret="st0re-s3cret-abc"),  # type: ignore[arg-type]
            FrozenClock(NOW),
        )

    def sample_body(self, message_id: str) -> bytes:
        return StoreSender.body(
            {
                "submission_id": message_id,
                "store_id": "SH01",
                "customer": {"phone": "13800000000"},
                "text": "坏了",
            }
        )

    def _request(self, headers: dict[str, Any], body: bytes) -> WebhookRequest:
        return WebhookRequest("POST", {}, headers, body, NOW)

    def signed(self, body: bytes) -> WebhookRequest:
        return self._request(StoreSender("st0re-s3cret-abc").sign(body, STAMP), body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({"x-store-timestamp": str(STAMP)}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        return self._request(StoreSender("not-the-secret").sign(body, STAMP), body)

    async def test_previous_secret_is_accepted_during_rotation(self) -> None:
        settings = StoreSettings(
            secret="new-secret",  # type: ignore[arg-type]
            previous_secret="st0re-s3cret-abc",
        )  # type: ignore[arg-type]
        connector = StoreConnector(settings, FrozenClock(NOW))
        reply = await connector.handle(self.signed(self.sample_body("rot-1")))
        assert reply.events[0].source_key == "rot-1"
