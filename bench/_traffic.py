"""Signed webhook requests of each channel, as the platforms send them, one message id each.

Every builder takes the message's sequence number ``n`` (unique within a
gateway's run) and derives the platform's own id from it in full, so no two
messages share an id and no formatting can collapse two: WeChat's MsgId is
``n`` itself (19 digits, like WeChat's), the store's ``submission_id``
carries ``n`` in decimal, FreeSWITCH's call ``uuid``, TCCC's ``SessionId``
and push UUID are UUID-5 hashes of ``n``, and a mail's ``Message-ID`` holds
``n``. Customers repeat (:data:`CUSTOMERS` of them, as the Kafka key is the
customer), messages do not. A Weibo private message has no id of its own (the
gateway keys it on sender, second and text), so its text names ``n``; a
Douyin push's ``msg_id`` is ``7`` and ``n`` in 18 digits. Requests are raw
HTTP/1.1 bytes, built before the clock starts, for the load generator to write as they are.

WeChat texts are numbered templates by default (:func:`numbered`: four
texts, each naming ``n``); ``wechat_messages="customers"`` writes them as
:mod:`bench._customers` does instead (many customers, some writing more than
once, in three dozen texts of their own), for stages that look across messages.

Signatures use the senders in :mod:`service.senders`; the credentials below
are throwaway values shared by the gateway processes this benchmark starts.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from urllib.parse import urlencode

from bench import _customers

HOST = "127.0.0.1"
TOKEN = "benchtoken2026"
STORE_SECRET = "bench-store-secret-5f1c"
CDR_USER = "cdr"
CDR_PASSWORD = "bench-cdr-7d2e"
MAIL_SECRET = "bench-mail-secret-9a4b"
WEIBO_APP_SECRET = "bench-weibo-secret-3c8d"
DOUYIN_APP_KEY = "7300000000000000001"
DOUYIN_APP_SECRET = "bench-douyin-secret-6e1a"
WEIBO_BRAND_UID = 1902538057
#: Weibo user ids and Douyin after-sale ids sit beyond 2^53, as the real ones do.
_BIG_ID = 2**53 + 1
TCCC_APP_ID = 1400264214
HOTLINE = "4008123123"
CUSTOMERS = 5000  # distinct openids / phone numbers / addresses
_NAMESPACE = uuid.UUID("2f4c8a86-5d0e-4a53-9f2b-6c1d7e0a9b31")

#: The webhook connectors the mixed load can drive, in the order a mix cycles through them.
WEBHOOK_CONNECTORS = (
    "wechat",
    "store",
    "freeswitch",
    "tccc",
    "email_mime",
    "weibo_dm",
    "douyin_shop",
)

_COMPLAINTS = (
    "订单{n}的商品收到时外包装破损，里面的杯子碎了，请尽快处理退货退款。",
    "我在{n}号订单买的耳机只有一边有声音，客服一直不回复，要求换货。",
    "快递显示已签收但我没有收到，订单号{n}，请核实物流并补发。",
    "会员卡被重复扣费两次，流水号{n}，请退回多扣的费用。",
)
_STORES = (
    ("SH0012", "上海南京东路店"),
    ("BJ0003", "北京西单大悦城店"),
    ("GZ0101", "广州天河城店"),
    ("CD0007", "成都春熙路店"),
    ("HZ0020", "杭州湖滨银泰店"),
)


def connector_settings(connectors: Sequence[str]) -> dict[str, dict[str, str]]:
    """The ``[connectors.<name>]`` sections that accept what this module signs."""
    sections = {
        "wechat": {"token": TOKEN},
        "store": {"secret": STORE_SECRET},
        "freeswitch": {"username": CDR_USER, "password": CDR_PASSWORD},
        "tccc": {"username": CDR_USER, "password": CDR_PASSWORD, "sdk_app_id": str(TCCC_APP_ID)},
        "email_mime": {"secret": MAIL_SECRET},
        "weibo_dm": {"app_secret": WEIBO_APP_SECRET},
        "douyin_shop": {"app_key": DOUYIN_APP_KEY, "app_secret": DOUYIN_APP_SECRET},
    }
    return {name: sections[name] for name in connectors}


def _post(port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def phone(n: int) -> str:
    """A Chinese mobile number, one of :data:`CUSTOMERS`."""
    return f"1{(36, 39, 58, 86)[n % 4]}{n % CUSTOMERS:08d}"


def _uuid(kind: str, n: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{n}"))


def numbered(n: int) -> tuple[str, str]:
    """WeChat message ``n``'s OpenID, one of :data:`CUSTOMERS`, and a template naming ``n``."""
    return f"oBench{n % CUSTOMERS:06d}Xq9LmNc3vT8kZ", _COMPLAINTS[n % len(_COMPLAINTS)].format(n=n)


#: How WeChat messages are written (``wechat_messages`` of :func:`build`), the default first.
WECHAT_MESSAGES: dict[str, Callable[[int], tuple[str, str]]] = {
    "numbered": numbered,
    "customers": _customers.message,
}


def wechat(
    port: int, n: int, now: int, message: Callable[[int], tuple[str, str]] = numbered
) -> bytes:
    """A signed WeChat plaintext-mode text push; MsgId ``n``, sender and text ``message(n)``."""
    from service.senders import WeChatSender, wechat_text

    openid, content = message(n)
    push = WeChatSender(TOKEN).push(
        wechat_text(openid, content, n, now), timestamp=now, nonce=f"{n:010d}"
    )
    head = (
        f"POST /webhooks/wechat?{urlencode(push.params)} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        "User-Agent: Mozilla/4.0\r\n"
        "Content-Type: text/xml\r\n"
        f"Content-Length: {len(push.body)}\r\n\r\n"
    )
    return head.encode() + push.body


def store(port: int, n: int, now: int) -> bytes:
    """A signed store submission; ``submission_id`` ``<store>-<date>-<n>``."""
    from service.senders import StoreSender

    store_id, store_name = _STORES[n % len(_STORES)]
    day = datetime.fromtimestamp(now, UTC)
    submission = {
        "submission_id": f"{store_id}-{day:%Y%m%d}-{n}",
        "store_id": store_id,
        "store_name": store_name,
        "clerk_id": f"E{1000 + n % 97}",
        "submitted_at": day.isoformat(),
        "customer": (
            {"phone": phone(n), "member_id": f"M{n % CUSTOMERS:08d}", "tier": "vip"}
            if n % 3 == 0
            else {"phone": phone(n)}
        ),
        "order": {
            "order_id": f"POS-{n}",
            "sku": "KTL-2201",
            "product_name": "不锈钢电热水壶",
            "amount_cny": "299.00",
        },
        "text": "顾客反映水壶烧水时底部漏水，要求换新并给个说法。小票号" + str(n),
        "priority": "P2",
        "expectations": ["exchange", "explanation"],
        "photos": [{"url": f"https://img.example-brand.cn/store/{store_id}/{n}.jpg"}],
    }
    sender = StoreSender(STORE_SECRET)
    body = sender.body(submission)
    headers = {"User-Agent": "okhttp/4.12.0", **sender.sign(body, now)}
    return _post(port, "/webhooks/store", headers, body)


def freeswitch(port: int, n: int, now: int) -> bytes:
    """A mod_json_cdr POST with HTTP Basic; call ``uuid`` a UUID-5 of ``n``."""
    from service.senders import basic_auth, freeswitch_cdr

    answered = n % 4 != 0
    body = freeswitch_cdr(
        uuid=_uuid("freeswitch", n),
        caller=phone(n),
        destination=HOTLINE,
        start_epoch=now - 300,
        answer_epoch=now - 290 if answered else 0,
        billsec=180 + n % 120 if answered else 0,
        summary=f"空调外机漏水，师傅上门两次没修好，要求换新（工单{n}）" if answered else "",
        hangup_cause="NORMAL_CLEARING" if answered else "NO_ANSWER",
    )
    headers = {
        "User-Agent": "freeswitch-json/1.0",
        **basic_auth(CDR_USER, CDR_PASSWORD),
        "content-type": "application/json",
    }
    return _post(port, "/webhooks/freeswitch", headers, body)


def tccc(port: int, n: int, now: int) -> bytes:
    """A TCCC ``action=cdr`` push with HTTP Basic; ``SessionId`` a UUID-5 of ``n``."""
    from service.senders import basic_auth

    answered = n % 3 != 0
    push: dict[str, object] = {
        "SdkAppId": TCCC_APP_ID,
        "SessionId": _uuid("tccc", n),
        "Caller": "0086" + phone(n),
        "Callee": HOTLINE,
        "Direction": 0,
        "CallType": 1,
        "StartTimestamp": now - 200,
        "RingTimestamp": now - 198,
        "AcceptTimestamp": now - 190 if answered else None,
        "EndedTimestamp": now - 20 if answered else now - 150,
        "EndStatus": 1 if answered else 103,
        "Duration": 170 if answered else 0,
        "RecordURL": f"https://recorder.example.cn/2026/11/{n}.mp3" if answered else "",
        "SeatUser": {"StaffNumber": f"0{n % 40:02d}", "Mail": "agent@brand.example.cn"}
        if answered
        else None,
        "SkillGroupName": "投诉专线",
        "Remark": f"客户投诉热水器不出热水，预约{n}号上门" if answered else "",
    }
    body = json.dumps(push, ensure_ascii=False).encode("utf-8")
    headers = {
        **basic_auth(CDR_USER, CDR_PASSWORD),
        "content-type": "application/json",
        "x-tccc-push-uuid": _uuid("tccc-push", n).replace("-", ""),
    }
    return _post(port, "/webhooks/tccc?action=cdr&version=1", headers, body)


def mail(n: int, now: int) -> bytes:
    """A customer's complaint mail (RFC 5322, CRLF), ``Message-ID`` holding ``n``.

    Alternately a GBK ``text/plain`` as Foxmail-era clients send it and a
    UTF-8 ``multipart/alternative`` with an HTML part, as webmail sends it.
    """
    customer = n % CUSTOMERS
    message = EmailMessage(policy=SMTP)
    message["Return-Path"] = f"<zhang.wei{customer:04d}@163.com>"
    message["Received"] = (
        "from m15-112.126.com (m15-112.126.com [220.181.15.112]) by mx.brand.example.cn "
        f"(Postfix) with ESMTPS id 4Xb{n:x}; {format_datetime(datetime.fromtimestamp(now, UTC))}"
    )
    message["From"] = formataddr(("张伟", f"zhang.wei{customer:04d}@163.com"))
    message["To"] = "客服中心 <kefu@brand.example.cn>"
    message["Subject"] = f"投诉：订单{n}的洗衣机脱水时噪音很大"
    message["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    message["Message-ID"] = f"<{n}.{customer:04d}.bench@mail.163.com>"
    text = (
        f"你好：\n\n我在贵店购买的洗衣机（订单号{n}）脱水时噪音很大，"
        "已报修两次仍未解决，要求退货退款。\n\n张伟\n手机 " + phone(n) + "\n"
    )
    if n % 2:
        message["X-Mailer"] = "Foxmail 7.2.25.228[cn]"
        message.set_content(text, charset="gbk", cte="base64")
    else:
        message.set_content(text, cte="base64")
        html = "".join(f"<p>{line}</p>" for line in text.splitlines() if line)
        message.add_alternative(f"<html><body>{html}</body></html>", subtype="html", cte="base64")
    return message.as_bytes()


def email_mime(port: int, n: int, now: int) -> bytes:
    """A mail relay POSTing the raw mail, signed with ``x-mail-*`` (:func:`mail`)."""
    raw = mail(n, now)
    headers = {"User-Agent": "mail-relay/1.0", **_sign_mail(raw, now)}
    return _post(port, "/webhooks/email_mime", headers, raw)


def _sign_mail(raw: bytes, now: int) -> dict[str, str]:
    try:
        from service.senders import MailRelaySender
    except ImportError:  # the same scheme as the store's, under x-mail-*
        from connectors._signing import hmac_sha256_hex

        signature = hmac_sha256_hex(MAIL_SECRET.encode(), f"{now}.".encode() + raw)
        return {
            "content-type": "message/rfc822",
            "x-mail-timestamp": str(now),
            "x-mail-signature": f"sha256={signature}",
        }
    return MailRelaySender(MAIL_SECRET).sign(raw, now)


def weibo_dm(port: int, n: int, now: int) -> bytes:
    """A signed fans-service private message; sender ``2^53 + n % CUSTOMERS``, text naming ``n``.

    Weibo has no message id: the gateway keys a message on sender, second, type and
    text, so the text names ``n`` and no two messages can share a key.
    """
    from service.senders import WeiboDmSender

    sender = WeiboDmSender(WEIBO_APP_SECRET)
    body = sender.text(
        _BIG_ID + n % CUSTOMERS,
        WEIBO_BRAND_UID,
        _COMPLAINTS[n % len(_COMPLAINTS)].format(n=n),
        datetime.fromtimestamp(now, UTC),
    )
    query = urlencode(sender.query(now * 1000, f"{n:010d}"))
    return _post(port, f"/webhooks/weibo_dm?{query}", {"content-type": "application/json"}, body)


def douyin_shop(port: int, n: int, now: int) -> bytes:
    """A signed 抖店 push of one after-sale request (tag 200); ``msg_id`` and ids from ``n``."""
    from service.senders import DouyinShopSender

    data = {
        "aftersale_id": _BIG_ID + n,
        "aftersale_type": n % 4,
        "aftersale_status": 6,
        "apply_time": now,
        "p_id": 4_900_000_000_000_000_000 + n,
        "s_id": 4_900_000_000_000_000_000 + n,
        "shop_id": 91_234_567,
        "reason_code": 12,
        "refund_amount": 1000 + n % 50_000,
    }
    sender = DouyinShopSender(DOUYIN_APP_KEY, DOUYIN_APP_SECRET)
    body = sender.body(("200", f"7{n:018d}", data))
    return _post(port, "/webhooks/douyin_shop", sender.headers(body), body)


BUILDERS: dict[str, Callable[[int, int, int], bytes]] = {
    "wechat": wechat,
    "store": store,
    "freeswitch": freeswitch,
    "tccc": tccc,
    "email_mime": email_mime,
    "weibo_dm": weibo_dm,
    "douyin_shop": douyin_shop,
}

#: What each connector answers when it took a message in (a repeat may look the same:
#: the gateway's accepted counter is what tells them apart).
_ACCEPTED_ANSWERS: dict[str, Callable[[bytes], bool]] = {
    "wechat": lambda body: body == b"success",
    "store": lambda body: body.startswith(b'{"status": "accepted"'),
    "freeswitch": lambda body: body == b"success",
    "tccc": lambda body: body == b'{"ErrCode": 0, "ErrMsg": ""}',
    "email_mime": lambda body: body == b"success",
    "weibo_dm": lambda body: body == b"",
    "douyin_shop": lambda body: body == b'{"code":0,"msg":"success"}',
}


def accepted(connector: str, body: bytes) -> bool:
    return _ACCEPTED_ANSWERS[connector](body)


def build(
    port: int,
    connectors: Sequence[str],
    first: int,
    count: int,
    wechat_messages: str = "numbered",
) -> list[tuple[str, bytes]]:
    """``count`` requests; message ``first + i`` goes to ``connectors[i % len(connectors)]``."""
    message = WECHAT_MESSAGES[wechat_messages]
    builders: dict[str, Callable[[int, int, int], bytes]] = {
        **BUILDERS,
        "wechat": functools.partial(wechat, message=message),
    }
    now = int(time.time())
    out = []
    for i in range(count):
        connector = connectors[i % len(connectors)]
        out.append((connector, builders[connector](port, first + i, now)))
    return out
