"""WeChat Official Account (公众号) server push: ``/webhooks/wechat``.

Handles the three message modes an account can choose:

* plaintext (明文): ``signature`` = sha1 of the sorted token, timestamp and nonce;
* compatible (兼容) and safe (安全): the URL also carries ``encrypt_type=aes`` and
  ``msg_signature`` (sha1 over token, timestamp, nonce and the ``<Encrypt>`` text);
  the message is AES-256-CBC encrypted with the account's EncodingAESKey.

wechatpy checks the signatures and does the crypto; XML is parsed here with
DTDs and entities refused. WeChat resends a message it got no answer to within
5 s, up to three times; each resend carries the same MsgId (events: the same
FromUserName and CreateTime), which becomes the event's ``source_key``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from connectors._xml import parse_xml_document
from connectors.base import (
    ConnectorSettings,
    WebhookAnswer,
    WebhookConnector,
    WebhookReply,
    WebhookRequest,
)
from connectors.errors import InvalidSignature, MalformedPayload, UnsupportedMessage
from schemas import RawEvent
from service.clock import Clock

_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")


class WeChatSettings(ConnectorSettings):
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
    """Wrap one decrypted WeChat message in a :class:`RawEvent` (pure)."""
    for required in ("FromUserName", "CreateTime", "MsgType"):
        if not message.get(required):
            raise MalformedPayload(f"WeChat message has no {required}", "missing_field")
    msg_type = message["MsgType"]
    msg_id = message.get("MsgId") or message.get("MsgID")
    if msg_type != "event" and msg_id:
        source_key = str(msg_id)
    else:
        # Events carry no MsgId: WeChat's advice is FromUserName + CreateTime; the
        # event name is added so two different events in one second stay apart.
        source_key = f"{message['FromUserName']}:{message['CreateTime']}:{message.get('Event', '')}"
        msg_id = None if msg_type == "event" else msg_id
    return RawEvent(
        channel=WeChatConnector.channel,
        source_key=source_key,
        received_at=received_at,
        payload=message,
        body=plaintext,
        media_type="application/xml",
        message_id=str(msg_id) if msg_id else None,
    )


class WeChatConnector(WebhookConnector):
    channel = "wechat"
    settings_model = WeChatSettings
    settings: WeChatSettings

    def __init__(self, settings: WeChatSettings, clock: Clock) -> None:
        super().__init__(settings, clock)
        keys = [settings.encoding_aes_key, settings.previous_encoding_aes_key]
        token = settings.token.get_secret_value()
        # Built once: the current key first, the previous one during a key change.
        self._cryptos = [
            WeChatCrypto(token, key.get_secret_value(), settings.app_id)
            for key in keys
            if key is not None
        ]

    def _check_plain_signature(self, query: Mapping[str, str]) -> None:
        signature, timestamp, nonce = (query.get(k) for k in ("signature", "timestamp", "nonce"))
        if not (signature and timestamp and nonce):
            raise InvalidSignature(
                "signature, timestamp and nonce are required", "missing_signature", missing=True
            )
        try:
            check_signature(self.settings.token.get_secret_value(), signature, timestamp, nonce)
        except InvalidSignatureException:
            raise InvalidSignature("WeChat signature does not match", "bad_signature") from None

    def _decrypt(self, encrypted: str, query: Mapping[str, str]) -> bytes:
        msg_signature, timestamp, nonce = (
            query.get(k) for k in ("msg_signature", "timestamp", "nonce")
        )
        if not (msg_signature and timestamp and nonce):
            raise InvalidSignature(
                "msg_signature, timestamp and nonce are required for encrypted messages",
                "missing_signature",
                missing=True,
            )
        cryptos = self._cryptos
        if not cryptos:
            raise UnsupportedMessage(
                "encrypted message but no encoding_aes_key is configured", "no_aes_key"
            )
        last: Exception | None = None
        for crypto in cryptos:
            try:
                plaintext = crypto.decrypt_message(
                    {"Encrypt": encrypted}, msg_signature, timestamp, nonce
                )
            except InvalidSignatureException:
                raise InvalidSignature(
                    "WeChat msg_signature does not match", "bad_signature"
                ) from None
            except InvalidAppIdException:
                raise InvalidSignature(
                    "encrypted message is for another AppID", "app_id_mismatch"
                ) from None
            except Exception as exc:  # wrong key or corrupt ciphertext: try the previous key
                last = exc
                continue
            return plaintext.encode("utf-8") if isinstance(plaintext, str) else bytes(plaintext)
        raise MalformedPayload(
            f"cannot decrypt the message ({type(last).__name__})", "decrypt_failed"
        )

    async def handle(self, request: WebhookRequest) -> WebhookReply:
        query = request.query
        encrypted_mode = query.get("encrypt_type") == "aes"
        if request.method == "GET":
            return WebhookReply(answer=self._verify_url(query))
        if request.method != "POST":
            raise UnsupportedMessage("only GET and POST are used by WeChat", "bad_method")
        if encrypted_mode:
            if query.get("signature"):
                self._check_plain_signature(query)
        else:
            self._check_plain_signature(query)
        envelope = parse_xml_document(request.body)
        encrypted = envelope.get("Encrypt")
        if encrypted_mode or (encrypted and "MsgType" not in envelope):
            if not isinstance(encrypted, str) or not encrypted:
                raise MalformedPayload("encrypted push without an Encrypt element", "missing_field")
            if not encrypted_mode and not query.get("msg_signature"):
                raise InvalidSignature(
                    "encrypted push without msg_signature", "missing_signature", missing=True
                )
            plaintext = self._decrypt(encrypted, query)
            message = parse_xml_document(plaintext)
        else:
            plaintext, message = request.body, envelope
        return WebhookReply(events=[message_event(message, plaintext, request.received_at)])

    @staticmethod
    def parse(body: bytes, received_at: datetime) -> list[RawEvent]:
        return [message_event(parse_xml_document(body), body, received_at)]

    def _verify_url(self, query: Mapping[str, str]) -> WebhookAnswer:
        """The server-configuration check: echo ``echostr`` once the signature holds.

        With ``msg_signature`` present (safe-mode style), the echostr is encrypted:
        it is checked with the 4-string signature and answered decrypted.
        """
        echostr = query.get("echostr")
        if not echostr:
            raise InvalidSignature("echostr is required", "missing_signature", missing=True)
        if query.get("msg_signature"):
            plain = self._decrypt(echostr, query).decode("utf-8")
            return WebhookAnswer(body=plain.encode("utf-8"))
        self._check_plain_signature(query)
        return WebhookAnswer(body=echostr.encode("utf-8"))
