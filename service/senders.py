"""Clients that sign requests the way WeChat and the store apps do.

The demo drives the gateway with them, and tests and the benchmark use them
to build valid traffic. Signatures are computed here with hashlib/hmac from
the published rules, independently of the connectors' checks; encryption
uses wechatpy, whose output is pinned to the official vectors in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import quote
from xml.sax.saxutils import escape

from wechatpy.crypto import WeChatCrypto

from connectors._signing import hmac_sha256_hex
from connectors._xml import parse_xml_document

WeChatMode = Literal["plain", "compat", "safe"]


def wechat_signature(*parts: str) -> str:
    """sha1 of the lexicographically sorted parts, concatenated (WeChat's rule)."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def wechat_xml(fields: dict[str, Any]) -> str:
    """A push body: strings in CDATA, numbers bare, in the given order."""
    inner = []
    for key, value in fields.items():
        if isinstance(value, int):
            inner.append(f"<{key}>{value}</{key}>")
        else:
            text = str(value).replace("]]>", "]]]]><![CDATA[>")
            inner.append(f"<{key}><![CDATA[{text}]]></{key}>")
    return "<xml>" + "".join(inner) + "</xml>"


def wechat_text(
    openid: str, content: str, msg_id: int, create_time: int, to_user: str = "gh_3f2a1b0c9d8e"
) -> str:
    return wechat_xml(
        {
            "ToUserName": to_user,
            "FromUserName": openid,
            "CreateTime": create_time,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


@dataclass(frozen=True)
class WeChatPush:
    params: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class WeChatSender:
    token: str
    encoding_aes_key: str | None = None
    app_id: str | None = None

    def push(
        self, xml: str, *, mode: WeChatMode = "plain", timestamp: int, nonce: str
    ) -> WeChatPush:
        ts = str(timestamp)
        params = {
            "signature": wechat_signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
        }
        if mode == "plain":
            return WeChatPush(params, xml.encode("utf-8"))
        if not (self.encoding_aes_key and self.app_id):
            raise ValueError("compatible and safe mode need encoding_aes_key and app_id")
        crypto = WeChatCrypto(self.token, self.encoding_aes_key, self.app_id)
        envelope = parse_xml_document(crypto.encrypt_message(xml, nonce, ts))
        encrypted = envelope["Encrypt"]
        params |= {"encrypt_type": "aes", "msg_signature": envelope["MsgSignature"]}
        fields = parse_xml_document(xml)
        if mode == "compat":
            body = xml.replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
        else:
            body = (
                f"<xml><ToUserName><![CDATA[{escape(fields.get('ToUserName', ''))}]]>"
                f"</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
        return WeChatPush(params, body.encode("utf-8"))

    def url_check(self, echostr: str, *, timestamp: int, nonce: str) -> dict[str, str]:
        ts = str(timestamp)
        return {
            "signature": wechat_signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }


def timestamped_hmac_headers(
    secret: str, body: bytes, timestamp: int, prefix: str, content_type: str
) -> dict[str, str]:
    """The gateway's own push scheme: ``x-<prefix>-timestamp`` and ``x-<prefix>-signature``."""
    signature = hmac_sha256_hex(secret.encode(), f"{timestamp}.".encode() + body)
    return {
        "content-type": content_type,
        f"x-{prefix}-timestamp": str(timestamp),
        f"x-{prefix}-signature": f"sha256={signature}",
    }


@dataclass(frozen=True)
class StoreSender:
    secret: str

    def sign(self, body: bytes, timestamp: int) -> dict[str, str]:
        return timestamped_hmac_headers(self.secret, body, timestamp, "store", "application/json")

    @staticmethod
    def body(submission: dict[str, Any]) -> bytes:
        return json.dumps(submission, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class MailRelaySender:
    """A mail relay POSTing raw messages to ``/webhooks/email_mime``."""

    secret: str

    def sign(self, raw: bytes, timestamp: int) -> dict[str, str]:
        return timestamped_hmac_headers(self.secret, raw, timestamp, "mail", "message/rfc822")


# -- call centres -------------------------------------------------------------------------


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header FreeSWITCH and TCCC send."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def asterisk_cdr_line(
    *,
    src: str,
    dst: str,
    start: str,
    answer: str = "",
    end: str = "",
    duration: int = 0,
    billsec: int = 0,
    disposition: str = "ANSWERED",
    uniqueid: str,
    userfield: str = "",
    clid: str | None = None,
    dcontext: str = "from-pstn",
) -> bytes:
    """One Master.csv line as Asterisk's cdr_csv writes it (strings quoted, integers bare,
    an unset date empty and unquoted), with loguniqueid and loguserfield on."""

    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    def date(value: str) -> str:
        return quoted(value) if value else ""

    fields = [
        quoted(""),
        quoted(src),
        quoted(dst),
        quoted(dcontext),
        quoted(clid if clid is not None else f'"" <{src}>'),
        quoted(f"SIP/trunk-{uniqueid[-8:]}"),
        quoted(f"SIP/agent-{uniqueid[-8:]}" if answer else ""),
        quoted("Dial"),
        quoted("SIP/8001,30"),
        date(start),
        date(answer),
        date(end or start),
        str(duration),
        str(billsec),
        quoted(disposition),
        quoted("DOCUMENTATION"),
        quoted(uniqueid),
        quoted(userfield),
    ]
    return (",".join(fields) + "\n").encode("utf-8")


def freeswitch_cdr(
    *,
    uuid: str,
    caller: str,
    destination: str,
    start_epoch: int,
    answer_epoch: int = 0,
    billsec: int = 0,
    summary: str = "",
    hangup_cause: str = "NORMAL_CLEARING",
) -> bytes:
    """A mod_json_cdr document with encode-values on (variables URL-encoded)."""

    def enc(value: object) -> str:
        return quote(str(value), safe="")

    variables = {
        "uuid": uuid,
        "caller_id_number": caller,
        "caller_id_name": caller,
        "destination_number": destination,
        "start_epoch": start_epoch,
        "answer_epoch": answer_epoch,
        "end_epoch": start_epoch + billsec + 5,
        "billsec": billsec,
        "duration": billsec + 5,
        "hangup_cause": hangup_cause,
        "complaint_summary": summary,
    }
    document = {
        "core-uuid": "6f9a1b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        "switchname": "fs-hotline-01",
        "channel_data": {"state": "CS_REPORTING", "direction": "inbound"},
        "variables": {k: enc(v) for k, v in variables.items()},
        "callflow": [{"profile_index": "1", "caller_profile": {"destination_number": destination}}],
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def tccc_cdr(session: str, timestamp: int, **fields: Any) -> bytes:
    """A TCCC ``action=cdr`` push: an answered inbound call to the hotline, ended at
    ``timestamp``; ``fields`` override or add TCCC's own field names."""
    push: dict[str, Any] = {
        "SdkAppId": 1400264214,
        "SessionId": session,
        "Caller": "13812345678",
        "Callee": "4008123123",
        "Direction": 0,
        "StartTimestamp": timestamp - 100,
        "AcceptTimestamp": timestamp - 90,
        "EndedTimestamp": timestamp,
        "EndStatus": 1,
        "Duration": 100,
    }
    return json.dumps(push | fields, ensure_ascii=False).encode("utf-8")


# -- Weibo fans-service and Douyin shop pushes --------------------------------------------


def weibo_time(moment: datetime) -> str:
    """Weibo's ``created_at``: ``Mon Nov 23 10:15:00 +0800 2026`` (Beijing time, English names)."""
    local = moment.astimezone(timezone(timedelta(hours=8)))
    day = "Mon Tue Wed Thu Fri Sat Sun".split()[local.weekday()]
    month = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()[local.month - 1]
    return f"{day} {month} {local:%d %H:%M:%S} +0800 {local.year}"


@dataclass(frozen=True)
class WeiboDmSender:
    """The fans-service platform pushing private messages to ``/webhooks/weibo_dm``."""

    app_secret: str

    def query(self, timestamp_ms: int, nonce: str) -> dict[str, str]:
        """``signature``/``timestamp``/``nonce``: SHA-1 of the sorted three (TV-WB-1's shape)."""
        ts = str(timestamp_ms)
        joined = "".join(sorted((self.app_secret, ts, nonce)))
        return {
            "signature": hashlib.sha1(joined.encode()).hexdigest(),
            "timestamp": ts,
            "nonce": nonce,
        }

    @staticmethod
    def text(sender_id: int, receiver_id: int, text: str, created_at: datetime) -> bytes:
        """A ``text`` private message as the platform pushes it (ids as JSON numbers)."""
        message = {
            "type": "text",
            "receiver_id": receiver_id,
            "sender_id": sender_id,
            "created_at": weibo_time(created_at),
            "text": text,
            "data": {},
        }
        return json.dumps(message, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class DouyinShopSender:
    """The 抖店 message push to ``/webhooks/douyin_shop``: a JSON array, ``event-sign`` MD5."""

    app_key: str
    app_secret: str

    def headers(self, body: bytes) -> dict[str, str]:
        sign = hashlib.md5(self.app_key.encode() + body + self.app_secret.encode()).hexdigest()
        return {"content-type": "application/json", "app-id": self.app_key, "event-sign": sign}

    @staticmethod
    def body(*messages: tuple[str, str, dict[str, Any]]) -> bytes:
        """``(tag, msg_id, data)`` messages; ``data`` travels as a JSON string, as sent."""
        return json.dumps(
            [
                {"tag": tag, "msg_id": msg_id, "data": json.dumps(data, ensure_ascii=False)}
                for tag, msg_id, data in messages
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
