"""The webhook connector contract, inherited by every channel's test class.

A channel's class supplies its settings section, a sample body and ways to
send it (signed, unsigned, wrongly signed), plus a hypothesis strategy of
bodies the platform could send. The contract checks what every webhook
channel must do, hostile input included:

* a 1 MiB body of every hostile shape, unsigned or wrongly signed, is refused
  with 401/403/405 within 100 ms and nothing of it is stored (outbox and
  quarantine are asserted empty), and a health check sent meanwhile is answered;
* fuzzed bodies through ``parse`` and the normalizer either become records
  whose text is text the sender sent, or raise :class:`MalformedPayload` with a
  reason from :data:`PAYLOAD_REASONS`, never another exception.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connectors.base import ConnectorSettings, WebhookConnector, WebhookRequest
from connectors.errors import PAYLOAD_REASONS, InvalidSignature, MalformedPayload, PayloadError
from gateway import Gateway, running_gateway
from normalizer.base import NotAComplaint
from schemas import ComplaintRecord
from service.registry import Registry
from service.senders import (
    MailRelaySender,
    StoreSender,
    WeChatSender,
    basic_auth,
    freeswitch_cdr,
    tccc_cdr,
    wechat_text,
)
from service.settings import GatewaySettingsBase
from tests.fakes import FrozenClock, MemorySink

NOW = datetime(2026, 11, 23, 2, 15, tzinfo=UTC)
STAMP = int(NOW.timestamp())
MIB = 1024 * 1024
#: A refusal of an unauthenticated request reads no body; this is generous.
REFUSAL_SECONDS = 0.1
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)


def to_mib(unit: bytes, head: bytes = b"", tail: bytes = b"") -> bytes:
    """``head`` + ``unit`` repeated + ``tail``, just under 1 MiB (the default body limit)."""
    room = MIB - 1024 - len(head) - len(tail)
    return head + unit * (room // len(unit)) + tail


#: Bodies an attacker sends; each is refused before it is parsed.
HOSTILE_BODIES: dict[str, bytes] = {
    "xml_many_siblings": to_mib(b"<a/>", b"<xml>", b"</xml>"),
    "xml_deep": to_mib(b"<a>", b"<xml>"),
    "xml_without_encrypt": to_mib(b"<Content>x</Content>", b"<xml>", b"</xml>"),
    "xml_many_encrypts": to_mib(b"<Encrypt>QUJD</Encrypt>", b"<xml>", b"</xml>"),
    "xml_entities": b'<!DOCTYPE x [<!ENTITY a "'
    + b"a" * 1000
    + b'">]><xml>'
    + b"&a;" * 200_000
    + b"</xml>",
    "json_deep": to_mib(b"["),
    "json_long_number": to_mib(b"9", b'{"submission_id": "1", "n": ', b"}"),
    "binary": bytes(range(256)) * (MIB // 256 - 8),
    "empty": b"",
}


class WebhookConnectorContract:
    name: ClassVar[str]
    secret_values: ClassVar[tuple[str, ...]]
    malformed_body: ClassVar[bytes] = b"\x00\xff not a payload"
    #: What the gateway writes itself when the sender sent no words (a regex), if anything.
    gateway_words: ClassVar[str | None] = None

    # -- what a channel's class supplies -------------------------------------------------

    def settings_section(self) -> dict[str, Any]:
        raise NotImplementedError

    def signed(self, body: bytes) -> WebhookRequest:
        raise NotImplementedError

    def unsigned(self, body: bytes) -> WebhookRequest:
        raise NotImplementedError

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        raise NotImplementedError

    def sample_body(self, message_id: str) -> bytes:
        raise NotImplementedError

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        """Bodies the platform could send (odd ones included), each with the texts in it."""
        raise NotImplementedError

    def strangers(self, body: bytes) -> dict[str, WebhookRequest]:
        """Requests carrying ``body`` that are not from the platform; channels add their own."""
        return {"unsigned": self.unsigned(body), "wrongly_signed": self.wrongly_signed(body)}

    # -- shared plumbing ------------------------------------------------------------------

    def connector(self, registry: Registry | None = None) -> WebhookConnector:
        registry = registry or Registry.from_entry_points()
        klass = registry.connectors[self.name]
        return klass(klass.settings_model.model_validate(self.settings_section()), FrozenClock(NOW))

    @pytest.fixture
    async def channel_gateway(
        self, make_settings: Callable[..., GatewaySettingsBase], registry: Registry
    ) -> AsyncIterator[Gateway]:
        settings = make_settings(connectors={self.name: self.settings_section()})
        async with running_gateway(
            settings, registry, clock=FrozenClock(NOW), sink=MemorySink()
        ) as gw:
            yield gw

    @pytest.fixture
    async def channel_client(self, channel_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=channel_gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            yield c

    async def send(self, client: httpx.AsyncClient, request: WebhookRequest) -> httpx.Response:
        url = f"/webhooks/{self.name}"
        if request.query:
            url += "?" + urlencode(request.query)
        # on the wire a header is bytes: send non-ASCII ones as a client would, in Latin-1
        headers = {k: v.encode("latin-1", "replace") for k, v in request.headers.items()}
        return await client.request(request.method, url, headers=headers, content=request.body)

    @staticmethod
    async def nothing_stored(gateway: Gateway) -> bool:
        outbox = await gateway.outbox.select(since=None)
        return not outbox and not await gateway.outbox.quarantined()

    # -- the contract -------------------------------------------------------------------

    def test_class_is_registered_under_its_channel(self) -> None:
        assert type(self.connector()).name == self.name

    async def test_signed_message_gives_one_event_keyed_by_the_platform_id(self) -> None:
        reply = await self.connector().handle(self.signed(self.sample_body("m-1")))
        (event,) = reply.events
        assert event.connector == self.name
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
        assert caught.value.reason in PAYLOAD_REASONS

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

    # -- hostile input --------------------------------------------------------------------

    @pytest.mark.parametrize("shape", sorted(HOSTILE_BODIES))
    async def test_hostile_body_from_a_stranger_is_refused_fast_and_nothing_kept(
        self, shape: str, channel_client: httpx.AsyncClient, channel_gateway: Gateway
    ) -> None:
        for label, request in self.strangers(HOSTILE_BODIES[shape]).items():
            started = time.perf_counter()
            response = await self.send(channel_client, request)
            elapsed = time.perf_counter() - started
            assert response.status_code in (401, 403, 405), (label, response.text)
            assert elapsed < REFUSAL_SECONDS, (label, f"{elapsed:.3f}s")
        assert await self.nothing_stored(channel_gateway)
        metrics = (await channel_client.get("/metrics")).text
        assert "gateway_payloads_quarantined_total{" not in metrics

    async def test_health_check_is_answered_while_hostile_bodies_arrive(
        self, channel_client: httpx.AsyncClient
    ) -> None:
        hostile = [
            asyncio.create_task(self.send(channel_client, request))
            for body in HOSTILE_BODIES.values()
            for request in self.strangers(body).values()
        ]
        started = time.perf_counter()
        health = await channel_client.get("/healthz")
        health_seconds = time.perf_counter() - started
        answers = await asyncio.gather(*hostile)
        assert health.status_code == 200
        assert health_seconds < REFUSAL_SECONDS * len(hostile)
        assert {a.status_code for a in answers} <= {401, 403, 405}

    async def test_refusal_labels_stay_bounded(self, channel_client: httpx.AsyncClient) -> None:
        for n in range(30):
            request = self.unsigned(self.sample_body(f"label-{n}" + "x" * 2000))
            await self.send(channel_client, request)
        metrics = (await channel_client.get("/metrics")).text
        assert len(metrics) < 20_000
        assert "x" * 100 not in metrics

    @FUZZ
    @given(data=st.data())
    def test_fuzzed_messages_become_records_of_the_sent_text_or_a_clear_refusal(
        self, data: st.DataObject
    ) -> None:
        body, sent = data.draw(self.fuzz_messages())
        outcome = self._read_and_normalize(body)
        event(getattr(outcome, "reason", type(outcome).__name__))
        if isinstance(outcome, ComplaintRecord):
            if self.gateway_words and re.fullmatch(self.gateway_words, outcome.description):
                return
            if any(outcome.description.strip() in text for text in sent):
                return  # all or part (trimmed, a quote cut off) of one thing the sender wrote
            residue = outcome.description
            for text in sorted(sent, key=len, reverse=True):
                if text:
                    residue = residue.replace(text, "")
            assert residue.strip("\n") == "", (outcome.description, sent)

    @FUZZ
    @given(data=st.data())
    def test_mangled_bodies_never_raise_anything_but_a_payload_error(
        self, data: st.DataObject
    ) -> None:
        body = bytearray(data.draw(self.fuzz_messages())[0])
        for _ in range(data.draw(st.integers(0, 6))):
            if not body:
                break
            at = data.draw(st.integers(0, len(body) - 1))
            op = data.draw(st.sampled_from(["flip", "cut", "dup", "insert"]))
            if op == "flip":
                body[at] ^= data.draw(st.integers(1, 255))
            elif op == "cut":
                del body[at : at + data.draw(st.integers(1, 16))]
            elif op == "dup":
                body[at:at] = body[at : at + data.draw(st.integers(1, 64))]
            else:
                body[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        self._read_and_normalize(bytes(body))

    def _read_and_normalize(self, body: bytes) -> ComplaintRecord | NotAComplaint | PayloadError:
        registry = _registry()
        try:
            events = registry.connectors[self.name].parse(body, NOW)
            results = [registry.normalizers[self.name].normalize(e) for e in events]
        except MalformedPayload as exc:
            assert exc.reason in PAYLOAD_REASONS
            return exc
        (result,) = results
        return result


_REGISTRY: list[Registry] = []


def _registry() -> Registry:
    if not _REGISTRY:
        _REGISTRY.append(Registry.from_entry_points())
    return _REGISTRY[0]


# -- text that can travel in a platform's payload ---------------------------------------------

#: Any Unicode text XML 1.0 can carry (no C0 controls but tab and newline, no
#: lone surrogates, no carriage return, which XML turns into a newline).
xml_text = st.text(
    st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc", "Cn")),
        st.sampled_from("\t\n <>&]]>'\""),
    ),
    max_size=60,
)
json_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


def _xml_value(value: Any) -> str:
    if isinstance(value, list):  # a nested element, as an attacker might send
        return "".join(f"<{k}>{_xml_value(v)}</{k}>" for k, v in value)
    text = str(value).replace("]]>", "]]]]><![CDATA[>")
    return f"<![CDATA[{text}]]>"


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return []


class TestWeChatContract(WebhookConnectorContract):
    name = "wechat"
    secret_values = ("tok-5ecret-771", "S3cretAesKey0123456789abcdefghijklmnopqrstu")
    sender = WeChatSender(
        "tok-5ecret-771", "S3cretAesKey0123456789abcdefghijklmnopqrstu", "wx1111222233334444"
    )
    malformed_body = b"<xml><FromUserName>unterminated"

    def settings_section(self) -> dict[str, Any]:
        return {
            "token": self.secret_values[0],
            "encoding_aes_key": self.secret_values[1],
            "app_id": "wx1111222233334444",
        }

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
        # WeChat draws a fresh nonce per push; one per body keeps the test repeatable
        nonce = str(zlib.crc32(body))
        push = self.sender.push(body.decode("utf-8", "replace"), timestamp=STAMP, nonce=nonce)
        return self._request(push.params, body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({"timestamp": str(STAMP), "nonce": "c1"}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        push = WeChatSender("another-token").push("<xml/>", timestamp=STAMP, nonce="c1")
        return self._request(push.params, body)

    def strangers(self, body: bytes) -> dict[str, WebhookRequest]:
        wrong = WeChatSender("another-token").push("<xml/>", timestamp=STAMP, nonce="c1").params
        return super().strangers(body) | {
            "encrypted_unsigned": self._request({"encrypt_type": "aes"}, body),
            "encrypted_wrong_signature": self._request(
                {"encrypt_type": "aes", "msg_signature": "0" * 40, **wrong}, body
            ),
            "stale": self._request(
                self.sender.push("<xml/>", timestamp=STAMP - 3600, nonce="s").params, body
            ),
            "put": WebhookRequest("PUT", {}, {}, body, NOW),
        }

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        nested = st.lists(st.tuples(st.sampled_from(["a", "b", "Content"]), xml_text), max_size=3)
        # mostly what WeChat sends, sometimes a field nested as an attacker might
        value = st.one_of(*[xml_text] * 8, nested)

        def mostly(*valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
            return st.integers(0, 7).flatmap(lambda n: st.one_of(*valid) if n else value)

        fields = st.fixed_dictionaries(
            {
                "ToUserName": st.just("gh_3f2a1b0c9d8e"),
                "FromUserName": mostly(st.just("oyORnuP8q7ou2gfYjqLzSIWZf0rs")),
                "CreateTime": mostly(st.integers(0, 2**31).map(str)),
                "MsgType": mostly(
                    st.sampled_from(["text", "voice", "image", "link", "location", "event"]),
                ),
                "MsgId": mostly(st.integers(1, 2**63).map(str)),
            },
            optional={
                name: value
                for name in (
                    "Content",
                    "Recognition",
                    "Title",
                    "Description",
                    "Url",
                    "Label",
                    "Event",
                    "EventKey",
                    "MediaId",
                    "PicUrl",
                    "Format",
                )
            },
        )

        def build(pairs: dict[str, Any], repeat: bool) -> tuple[bytes, list[str]]:
            items = list(pairs.items())
            if repeat and items:
                items.append(items[-1])
            xml = "<xml>" + "".join(f"<{k}>{_xml_value(v)}</{k}>" for k, v in items) + "</xml>"
            return xml.encode("utf-8"), _texts(dict(items)) + [
                t for _, v in items for t in _nested(v)
            ]

        return st.builds(build, fields, st.integers(0, 4).map(lambda n: n == 0))

    async def test_url_check_is_the_handshake(self) -> None:
        params = self.sender.url_check("echo-123", timestamp=STAMP, nonce="h")
        reply = await self.connector().handle(WebhookRequest("GET", params, {}, b"", NOW))
        assert reply.answer is not None and reply.answer.body == b"echo-123"
        assert not reply.events


def _nested(value: Any) -> list[str]:
    return [t for _, t in value] if isinstance(value, list) else []


class TestStoreContract(WebhookConnectorContract):
    name = "store"
    secret_values = ("st0re-s3cret-abc",)
    malformed_body = b'{"submission_id": '

    def settings_section(self) -> dict[str, Any]:
        return {"secret": self.secret_values[0]}

    def sample_body(self, message_id: str) -> bytes:
        return StoreSender.body(
            {
                "submission_id": message_id,
                "store_id": "SH01",
                "customer": {"phone": "13800000000"},
                "text": "坏了",
            }
        )

    def _request(self, headers: Mapping[str, Any], body: bytes) -> WebhookRequest:
        return WebhookRequest("POST", {}, dict(headers), body, NOW)

    def signed(self, body: bytes) -> WebhookRequest:
        return self._request(StoreSender(self.secret_values[0]).sign(body, STAMP), body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({"x-store-timestamp": str(STAMP)}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        return self._request(StoreSender("not-the-secret").sign(body, STAMP), body)

    def strangers(self, body: bytes) -> dict[str, WebhookRequest]:
        signed = StoreSender("not-the-secret").sign(body, STAMP)
        return super().strangers(body) | {
            "non_ascii_signature": self._request(
                signed | {"x-store-signature": "sha256=é" + "0" * 63}, body
            ),
            "huge_timestamp": self._request(signed | {"x-store-timestamp": "1" + "0" * 400}, body),
            "negative_timestamp": self._request(signed | {"x-store-timestamp": "-5"}, body),
            "fraction_timestamp": self._request(signed | {"x-store-timestamp": "1.5"}, body),
            "get_with_body": WebhookRequest("GET", {}, {}, body, NOW),
        }

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        anything = st.recursive(
            st.none() | st.booleans() | st.integers() | json_text,
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3)
            ),
            max_leaves=6,
        )
        text_or_any = st.integers(0, 5).flatmap(lambda n: json_text if n else anything)

        def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
            return st.integers(0, 7).flatmap(lambda n: valid if n else text_or_any)

        submission = st.fixed_dictionaries(
            {
                "submission_id": mostly(st.sampled_from(["0007", "SH0012-20261123-0001"])),
                "store_id": mostly(st.just("SH0012")),
                "customer": mostly(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "phone": mostly(
                                st.sampled_from(
                                    [
                                        "13812345678",
                                        "+86 138-1234-5678",
                                        "+86１３８１２３４５６７８",
                                        "+86١٣٨١٢٣٤٥٦٧٨",
                                        "+86000000000000",
                                        "021-6123 4567",
                                    ]
                                ),
                            ),
                            "member_id": mostly(st.sampled_from(["M20240088", "1101:a"])),
                            "tier": mostly(st.sampled_from(["vip", "regular"])),
                        },
                    ),
                ),
                "text": text_or_any,
            },
            optional={
                "order": st.fixed_dictionaries(
                    {},
                    optional={
                        "order_id": text_or_any,
                        "amount_cny": st.one_of(
                            st.sampled_from(
                                ["12.50", "0.005", "-0", "1e1000000", "9" * 29, "NaN", 12.5, 3]
                            ),
                            text_or_any,
                        ),
                    },
                ),
                "expectations": st.lists(
                    mostly(st.sampled_from(["refund", "exchange"])), max_size=3
                ),
                "priority": mostly(st.sampled_from(["P1", "P4"])),
            },
        )
        return submission.map(
            lambda body: (json.dumps(body, ensure_ascii=False).encode(), _texts(body))
        )

    async def test_previous_secret_is_accepted_during_rotation(self) -> None:
        klass = type(self.connector())
        settings = klass.settings_model.model_validate(
            {"secret": "new-secret", "previous_secret": self.secret_values[0]}
        )
        connector = klass(settings, FrozenClock(NOW))
        reply = await connector.handle(self.signed(self.sample_body("rot-1")))
        assert reply.events[0].source_key == "SH01:rot-1"


class _BasicAuthContract(WebhookConnectorContract):
    """Call-centre pushes authenticated with HTTP Basic (FreeSWITCH, TCCC)."""

    secret_values = ("cdr-pa55word-77",)
    gateway_words = r"（(未接来电|来电已接通，通话\d+秒)，无文字记录，[^）]*）"
    query: ClassVar[dict[str, str]] = {}

    def settings_section(self) -> dict[str, Any]:
        return {"username": "cdr", "password": self.secret_values[0]}

    def _request(self, headers: Mapping[str, str], body: bytes) -> WebhookRequest:
        return WebhookRequest(
            "POST", dict(self.query), {"content-type": "application/json", **headers}, body, NOW
        )

    def signed(self, body: bytes) -> WebhookRequest:
        return self._request(basic_auth("cdr", self.secret_values[0]), body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        return self._request(basic_auth("cdr", "guessed"), body)

    def strangers(self, body: bytes) -> dict[str, WebhookRequest]:
        return super().strangers(body) | {
            "other_user": self._request(basic_auth("admin", self.secret_values[0]), body),
            "not_basic": self._request({"authorization": "Bearer abc"}, body),
            "bad_base64": self._request({"authorization": "Basic %%%é"}, body),
            "get": WebhookRequest("GET", {}, {}, body, NOW),
        }


class TestFreeSwitchContract(_BasicAuthContract):
    name = "freeswitch"
    malformed_body = b'{"variables": {"uuid": "x"'

    def sample_body(self, message_id: str) -> bytes:
        return freeswitch_cdr(
            uuid=message_id,
            caller="13812345678",
            destination="4008123123",
            start_epoch=STAMP - 120,
            answer_epoch=STAMP - 115,
            billsec=90,
            summary="热水器漏水",
        )

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        def build(uuid: str, caller: str, summary: str, billsec: int) -> tuple[bytes, list[str]]:
            body = freeswitch_cdr(
                uuid=uuid or "u",
                caller=caller,
                destination="4008123123",
                start_epoch=STAMP,
                billsec=billsec,
                summary=summary,
            )
            return body, [summary]

        return st.builds(
            build,
            st.uuids().map(str),
            st.one_of(st.just("13812345678"), st.just(""), json_text),
            json_text,
            st.integers(0, 10_000),
        )


class TestTcccContract(_BasicAuthContract):
    name = "tccc"
    query: ClassVar[dict[str, str]] = {"action": "cdr", "version": "1"}
    malformed_body = b'{"SessionId": 5'

    def sample_body(self, message_id: str) -> bytes:
        return tccc_cdr(message_id, STAMP, Remark="快递丢件")

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        def build(session: str, remark: Any, caller: Any) -> tuple[bytes, list[str]]:
            push = {"SdkAppId": 1400264214, "SessionId": session, "Caller": caller}
            if remark is not None:
                push["Remark"] = remark
            body = json.dumps(push, ensure_ascii=False).encode()
            return body, _texts(push)

        value = st.one_of(json_text, st.integers(), st.none())
        return st.builds(build, st.uuids().map(str), value, value)

    async def test_a_recording_push_points_at_its_calls_complaint(self) -> None:
        from schemas import record_id_for

        connector = self.connector()
        body = json.dumps(
            {
                "SdkAppId": 1400264214,
                "RecordId": "1608130650",
                "SessionId": "e97be0ab-1ef6-4ad2-a8c4-2b2bbfb18e55",
                "Timestamp": 1608130650,
                "EndpointUser": "lululing@tencent.com",
                "RecordURL": "http://recorder-10018504.cos.ap-shanghai.myqcloud.com/r.mp3",
            }
        ).encode()
        request = self._request(basic_auth("cdr", self.secret_values[0]), body)
        request = WebhookRequest("POST", {"action": "record"}, request.headers, body, NOW)
        (event,) = (await connector.handle(request)).events
        record = _registry().normalizers["tccc"].normalize(event)
        assert isinstance(record, ComplaintRecord)
        call = record_id_for("tccc", "e97be0ab-1ef6-4ad2-a8c4-2b2bbfb18e55")
        assert record.dedupe.duplicate_of == call
        assert record.record_id != call
        assert [a.url for a in record.attachments] == [
            "http://recorder-10018504.cos.ap-shanghai.myqcloud.com/r.mp3"
        ]


class TestEmailMimeContract(WebhookConnectorContract):
    name = "email_mime"
    secret_values = ("relay-s3cret-e7",)
    malformed_body = b""

    def settings_section(self) -> dict[str, Any]:
        return {"secret": self.secret_values[0]}

    def sample_body(self, message_id: str) -> bytes:
        return self._mail(f"<{message_id}@mail.example.cn>", "投诉", "收到的杯子是碎的，要求退款。")

    @staticmethod
    def _mail(message_id: str, subject: str, text: str) -> bytes:
        from email.header import Header

        return (
            "From: Li Si <lisi@example.cn>\r\n"
            "To: kefu@brand.example.cn\r\n"
            f"Subject: {Header(subject, 'utf-8').encode()}\r\n"
            f"Message-ID: {message_id}\r\n"
            "Date: Mon, 23 Nov 2026 10:15:00 +0800\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "\r\n" + base64.encodebytes(text.encode("utf-8")).decode().replace("\n", "\r\n")
        ).encode()

    def _request(self, headers: Mapping[str, str], body: bytes) -> WebhookRequest:
        return WebhookRequest("POST", {}, dict(headers), body, NOW)

    def signed(self, body: bytes) -> WebhookRequest:
        return self._request(MailRelaySender(self.secret_values[0]).sign(body, STAMP), body)

    def unsigned(self, body: bytes) -> WebhookRequest:
        return self._request({"x-mail-timestamp": str(STAMP)}, body)

    def wrongly_signed(self, body: bytes) -> WebhookRequest:
        return self._request(MailRelaySender("guessed").sign(body, STAMP), body)

    def fuzz_messages(self) -> st.SearchStrategy[tuple[bytes, list[str]]]:
        def build(n: int, subject: str, text: str) -> tuple[bytes, list[str]]:
            return self._mail(f"<fuzz-{n}@mail.example.cn>", subject, text), [subject, text]

        # a mail client puts no control characters in a Subject, and a lone CR is no
        # line ending a mail can carry (lines end in CRLF)
        subject = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)
        text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"))
        return st.builds(build, st.integers(0, 10**9), subject, text)
