"""WeChat Official Account (公众号) server push: ``/webhooks/wechat``.

Handles the three message modes an account can choose:

* plaintext (明文): ``signature`` = sha1 of the sorted token, timestamp and nonce;
* compatible (兼容) and safe (安全): the URL also carries ``encrypt_type=aes`` and
  ``msg_signature`` (sha1 over token, timestamp, nonce and the ``<Encrypt>`` text);
  the message is AES-256-CBC encrypted with the account's EncodingAESKey.

Authentication reads only the query and, for encrypted pushes, the one
``<Encrypt>`` element (found by a bounded scan, not a parse). The timestamp
must be within ``max_skew_seconds`` of our clock, and a signature seen before
with another body is a replay (:mod:`connectors._replay`): in plaintext mode
the signature does not cover the body, so this is what stops a captured URL
from carrying other complaints. Set ``accept_plaintext = false`` once the
account is in compatible or safe mode, where the signature covers the message.

wechatpy does the AES; XML is parsed here with DTDs and entities refused and
with caps on size and depth. WeChat resends a message it got no answer to
within 5 s, up to three times; each resend carries the same MsgId (events:
the same FromUserName and CreateTime), which becomes the event's ``source_key``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator
from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException

from connectors._replay import ReplayGuard
from connectors._signing import check_timestamp, verify_sorted_sha1
from connectors._xml import extract_element_text, parse_xml_document, text_field
from connectors.base import (
    ConnectorSettings,
    SignedWebhookSettings,
    WebhookAnswer,
    WebhookConnector,
    WebhookRequest,
)
from connectors.errors import (
    InvalidSignature,
    MalformedPayload,
    RequestRefused,
    UnsupportedMessage,
)
from schemas import RawEvent
from service.clock import Clock

_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")
_BASE64 = rb"A-Za-z0-9+/="
#: WeChat's own values: CreateTime is Unix seconds, MsgId a 64-bit integer.
_UNIX_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)


class WeChatSettings(SignedWebhookSettings):
    token: SecretStr = Field(description="Token set in the account's server configuration (令牌).")
    encoding_aes_key: SecretStr | None = Field(
        None, description="EncodingAESKey (43 characters); needed for compatible and safe mode."
    )
    previous_encoding_aes_key: SecretStr | None = Field(
        None, description="The EncodingAESKey before the last change, tried when the current fails."
    )
    app_id: str | None = Field(
        None, description="The account's AppID; encrypted messages must name it."
    )
    accept_plaintext: bool = Field(
        True,
        description="Accept plaintext-mode pushes (without encrypt_type=aes), whose signature "
        "does not cover the body. Set false once the account is in compatible or safe mode.",
    )

    @field_validator("encoding_aes_key", "previous_encoding_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _AES_KEY.match(value.get_secret_value()):
            raise ValueError("must be 43 letters and digits, as WeChat shows it")
        return value

    @model_validator(mode="after")
    def _app_id_with_key(self) -> WeChatSettings:
        if self.encoding_aes_key is not None and not self.app_id:
            raise ValueError("app_id is required when encoding_aes_key is set")
        return self


def message_event(message: dict[str, Any], plaintext: bytes, received_at: datetime) -> RawEvent:
    """Wrap one decrypted WeChat message in a :class:`RawEvent` (pure).

    The fields the gateway reads must be text; CreateTime must be Unix seconds.
    """
    sender, created, msg_type = (
        text_field(message, name) for name in ("FromUserName", "CreateTime", "MsgType")
    )
    for name, value in (("FromUserName", sender), ("CreateTime", created), ("MsgType", msg_type)):
        if not value:
            raise MalformedPayload(f"WeChat message has no {name}", "missing_field")
    if not _UNIX_SECONDS.fullmatch(str(created)):
        raise MalformedPayload("CreateTime is not Unix seconds", "invalid_field")
    msg_id = text_field(message, "MsgId") or text_field(message, "MsgID")
    event_name = text_field(message, "Event") or ""
    if msg_type != "event" and msg_id:
        source_key = msg_id
    else:
        # Events carry no MsgId: WeChat's advice is FromUserName + CreateTime; the
        # event name is added so two different events in one second stay apart.
        source_key = f"{sender}:{created}:{event_name}"
        msg_id = None if msg_type == "event" else msg_id
    return RawEvent(
        channel=WeChatConnector.channel,
        source_key=source_key,
        received_at=received_at,
        payload=message,
        body=plaintext,
        media_type="application/xml",
        message_id=msg_id or None,
    )


class WeChatConnector(WebhookConnector):
    name = "wechat"
    channel = "wechat"
    settings_model = WeChatSettings
    settings: WeChatSettings
    methods = frozenset({"GET", "POST"})

    def __init__(
        self, settings: WeChatSettings, clock: Clock, http: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings, clock, http)
        self._token = settings.token.get_secret_value()
        # Built once: the current key first, the previous one during a key change.
        self._ciphers = [
            PrpCrypto(base64.b64decode(key.get_secret_value() + "="))
            for key in (settings.encoding_aes_key, settings.previous_encoding_aes_key)
            if key is not None
        ]
        self._replays = ReplayGuard(clock, timedelta(seconds=settings.max_skew_seconds))

    @staticmethod
    def _encrypted(query: Mapping[str, str]) -> bool:
        return query.get("encrypt_type") == "aes" or "msg_signature" in query

    def _signed_triple(self, query: Mapping[str, str], signature_name: str) -> tuple[str, str, str]:
        """The signature, timestamp and nonce, present and with the timestamp in the window."""
        signature, timestamp, nonce = (query.get(k) for k in (signature_name, "timestamp", "nonce"))
        if not (signature and timestamp and nonce):
            raise InvalidSignature(
                f"{signature_name}, timestamp and nonce are required",
                "missing_signature",
                missing=True,
            )
        check_timestamp(timestamp, self.clock.now(), self.settings.max_skew_seconds)
        return signature, timestamp, nonce

    def _check_plain_signature(self, query: Mapping[str, str]) -> str:
        signature, timestamp, nonce = self._signed_triple(query, "signature")
        verify_sorted_sha1((self._token, timestamp, nonce), signature)
        return signature

    def _check_msg_signature(self, query: Mapping[str, str], encrypted: str | None) -> str:
        signature, timestamp, nonce = self._signed_triple(query, "msg_signature")
        if encrypted is None:  # nothing the signature could cover: not from WeChat
            raise InvalidSignature(
                "an encrypted push needs exactly one base64 Encrypt element", "missing_field"
            )
        verify_sorted_sha1((self._token, timestamp, nonce, encrypted), signature)
        return signature

    async def authenticate(self, request: WebhookRequest) -> WebhookAnswer | None:
        query = request.query
        if request.method == "GET":
            return self._verify_url(query)
        if not self._encrypted(query):
            if not self.settings.accept_plaintext:
                raise InvalidSignature(
                    "plaintext pushes are not accepted (accept_plaintext = false)",
                    "plaintext_refused",
                )
            signature = self._check_plain_signature(query)
        else:
            encrypted = extract_element_text(request.body, b"Encrypt", _BASE64)
            signature = self._check_msg_signature(query, encrypted)
            if query.get("signature"):
                self._check_plain_signature(query)
        self._replays.check(signature, request.body)
        return None

    def read(self, request: WebhookRequest) -> list[RawEvent]:
        if self._encrypted(request.query):
            encrypted = extract_element_text(request.body, b"Encrypt", _BASE64)
            plaintext = self._decrypt(encrypted or "")
        else:
            plaintext = request.body
        return self.parse(plaintext, request.received_at)

    @staticmethod
    def parse(
        body: bytes, received_at: datetime, settings: ConnectorSettings | None = None
    ) -> list[RawEvent]:
        return [message_event(parse_xml_document(body), body, received_at)]

    def _decrypt(self, encrypted: str) -> bytes:
        """Decrypt an authenticated ``Encrypt`` value, trying the previous key after the current."""
        if not self._ciphers:
            raise UnsupportedMessage(
                "encrypted message but no encoding_aes_key is configured", "no_aes_key"
            )
        other_app = False
        for cipher in self._ciphers:
            try:
                plaintext = cipher.decrypt(encrypted, self.settings.app_id)
            except InvalidAppIdException:
                other_app = True
                continue
            except Exception:  # wrong key or corrupt ciphertext: try the previous key
                continue
            return plaintext.encode("utf-8") if isinstance(plaintext, str) else bytes(plaintext)
        if other_app:
            raise InvalidSignature("encrypted message is for another AppID", "app_id_mismatch")
        raise MalformedPayload("cannot decrypt the message", "decrypt_failed")

    def _verify_url(self, query: Mapping[str, str]) -> WebhookAnswer:
        """The server-configuration check: echo ``echostr`` once the signature holds.

        With ``msg_signature`` present (safe-mode style), the echostr is encrypted:
        it is checked with the 4-string signature and answered decrypted.
        """
        echostr = query.get("echostr")
        if not echostr:
            raise InvalidSignature("echostr is required", "missing_signature", missing=True)
        if "msg_signature" in query:
            self._check_msg_signature(query, echostr)
            try:
                return WebhookAnswer(body=self._decrypt(echostr))
            except MalformedPayload as exc:  # nothing to keep: a URL check has no body
                raise RequestRefused(str(exc), exc.reason) from None
        self._check_plain_signature(query)
        return WebhookAnswer(body=echostr.encode("utf-8"))
