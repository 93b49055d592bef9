"""``complaint-gateway demo``: the real gateway on embedded defaults, fed realistic traffic.

It starts the webhook server on a free loopback port with fresh secrets and a
temporary data directory (or ``--data-dir``), sends WeChat pushes in plaintext,
compatible and safe mode, store submissions, FreeSWITCH and Tencent Cloud
Contact Center call records, raw e-mails from a mail relay, redeliveries and
bad requests over HTTP; an
Asterisk ``Master.csv`` in the data directory is tailed by the ``asterisk_csv``
poller meanwhile. It waits for the publisher to write the stream, and prints
what happened. Then it follows one WeChat complaint through the six status
nodes, as a ticket system would post them, and shows the messages the
customer receives (:mod:`service.demo_journey`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import string
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from connectors._imap import ImapAccount, append_message
from outbox.sqlite import SQLiteOutbox
from service.demo_journey import (
    FAKE_KEY_ID,
    SMS_TEMPLATES,
    answer_on_their_channels,
    follow_journey,
    notifier_settings,
)
from service.demo_platforms import BRAND_UID, DM_SENDER_UID, DemoPlatforms, serve_platforms
from service.dovecot import DOVECOT, Dovecot
from service.dovecot import USERNAME as IMAP_USERNAME
from service.fake_providers import FakeProviders
from service.logs import mask_id
from service.metrics import GatewayMetrics
from service.registry import Registry
from service.senders import (
    DouyinShopSender,
    MailRelaySender,
    StoreSender,
    WeChatSender,
    WeiboDmSender,
    asterisk_cdr_line,
    basic_auth,
    freeswitch_cdr,
    wechat_text,
    wechat_xml,
)

APP_ID = "wxd3m0a5c1b2c3d4e5"
HOTLINE = "4008123123"
OPENIDS = ("oDemoA1b2C3d4E5f6G7h8I9j0K1l", "oDemoZ9y8X7w6V5u4T3s2R1q0P9o")


@dataclass
class Step:
    label: str
    method: str
    path: str
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    body: bytes = b""


def _call_steps(cdr_password: str, now: int) -> list[Step]:
    """FreeSWITCH and TCCC pushing call records, as their consoles configure them."""
    auth = basic_auth("cdr", cdr_password) | {"content-type": "application/json"}
    answered = freeswitch_cdr(
        uuid="5f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f",
        caller="13611112222",
        destination=HOTLINE,
        start_epoch=now - 300,
        answer_epoch=now - 290,
        billsec=240,
        summary="空调外机漏水，师傅上门两次没修好，要求换新",
    )
    session = "e97be0ab-1ef6-4ad2-a8c4-2b2bbfb18e55"
    missed = {
        "SdkAppId": 1400264214,
        "SessionId": session,
        "Caller": "008613733334444",
        "Callee": HOTLINE,
        "Direction": 0,
        "StartTimestamp": now - 200,
        "EndedTimestamp": now - 150,
        "EndStatus": 103,
        "Duration": 0,
    }
    recording = {
        "SdkAppId": 1400264214,
        "RecordId": "1608130650",
        "SessionId": session,
        "Timestamp": now - 150,
        "EndpointUser": "agent07@brand.example.cn",
        "RecordURL": "https://recorder.example.cn/2026/11/e97be0ab.mp3",
    }

    def tccc(label: str, action: str, body: dict[str, Any], password: str) -> Step:
        headers = basic_auth("cdr", password) | {
            "content-type": "application/json",
            "x-tccc-push-uuid": secrets.token_hex(16),
        }
        return Step(
            label,
            "POST",
            "/webhooks/tccc",
            {"action": action, "version": "1"},
            headers,
            json.dumps(body, ensure_ascii=False).encode(),
        )

    return [
        Step(
            "FreeSWITCH call record, answered", "POST", "/webhooks/freeswitch", None, auth, answered
        ),
        Step(
            "FreeSWITCH resends it (no 2xx seen)",
            "POST",
            "/webhooks/freeswitch",
            None,
            auth,
            answered,
        ),
        tccc("TCCC call record: missed call, no words", "cdr", missed, cdr_password),
        tccc("TCCC recording of that call", "record", recording, cdr_password),
        tccc("TCCC push with a wrong password", "cdr", missed, "guessed"),
    ]


def _platform_steps(weibo_secret: str, douyin_key: str, douyin_secret: str, now: int) -> list[Step]:
    """The fans-service pushing a private message, and 抖店 pushing an after-sale request."""
    weibo = WeiboDmSender(weibo_secret)
    message = weibo.text(
        DM_SENDER_UID,
        BRAND_UID,
        "你好，双十一买的取暖器一开就跳闸，退货申请被拒了，怎么处理？",
        datetime.fromtimestamp(now, UTC),
    )
    signed = weibo.query(now * 1000, "57155157")
    json_type = {"content-type": "application/json"}
    douyin = DouyinShopSender(douyin_key, douyin_secret)
    check = douyin.body(("0", "7000000000000000000", {}))
    after_sale = douyin.body(
        (
            "200",
            "7305561782361227530",
            {
                "aftersale_id": 7305561782361227530,
                "aftersale_type": 0,
                "aftersale_status": 6,
                "apply_time": now - 20,
                "p_id": 6920145326712305312,
                "s_id": 6920145326712305313,
                "reason_code": 12,
                "refund_amount": 12990,
            },
        )
    )
    return [
        Step(
            "Weibo fans-service URL check (echostr)",
            "GET",
            "/webhooks/weibo_dm",
            weibo.query(now * 1000, "3344") | {"echostr": "dnPdpTZz85"},
        ),
        Step("Weibo private message", "POST", "/webhooks/weibo_dm", signed, json_type, message),
        Step(
            "Weibo resends it (5 s, no answer seen)",
            "POST",
            "/webhooks/weibo_dm",
            signed,
            json_type,
            message,
        ),
        Step(
            "Weibo push signed with another secret",
            "POST",
            "/webhooks/weibo_dm",
            WeiboDmSender("guessed").query(now * 1000, "8899"),
            json_type,
            message,
        ),
        Step(
            "抖店 verification push (tag 0)",
            "POST",
            "/webhooks/douyin_shop",
            None,
            douyin.headers(check),
            check,
        ),
        Step(
            "抖店 after-sale request (tag 200)",
            "POST",
            "/webhooks/douyin_shop",
            None,
            douyin.headers(after_sale),
            after_sale,
        ),
        Step(
            "抖店 retries it",
            "POST",
            "/webhooks/douyin_shop",
            None,
            douyin.headers(after_sale),
            after_sale,
        ),
        Step(
            "抖店 push with a wrong event-sign",
            "POST",
            "/webhooks/douyin_shop",
            None,
            DouyinShopSender(douyin_key, "guessed").headers(after_sale),
            after_sale,
        ),
    ]


def _mail(
    subject: str,
    text: str,
    message_id: str,
    *,
    headers: dict[str, str] | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    """A customer's mail as their client would send it (GBK body, encoded-word subject)."""
    from email.message import EmailMessage
    from email.utils import format_datetime

    mail = EmailMessage()
    mail["From"] = "王强 <WangQiang@Example.cn>"
    mail["To"] = "kefu@brand.example.cn"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail["Date"] = format_datetime(datetime.now(UTC))
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(text, charset="gbk")
    if attachment:
        mail.add_attachment(attachment[1], maintype="image", subtype="jpeg", filename=attachment[0])
    return mail.as_bytes()


def _mail_steps(relay: MailRelaySender, now: int) -> list[Step]:
    """A mail relay POSTing raw messages, as Postfix pipes or an inbound-mail service does."""
    complaint = _mail(
        "会员卡余额被无故扣除",
        "您好：\n我的会员卡昨天在徐家汇店消费后余额被清零，小票只写了消费 42.50 元。\n"
        "请核查并退回多扣的费用。\n\n王强",
        "<demo-20261130-0001@example.cn>",
        attachment=("小票.jpg", b"\xff\xd8\xff\xe0 demo receipt \xff\xd9"),
    )
    follow_up = _mail(
        "回复：会员卡余额被无故扣除",
        "三天了还没有人联系我，请尽快处理！\n\n"
        "------------------ 原始邮件 ------------------\n"
        "发件人: 王强\n发送时间: 2026年11月30日\n主题: 会员卡余额被无故扣除\n\n"
        "您好：我的会员卡余额被清零……",
        "<demo-20261130-0002@example.cn>",
        headers={
            "In-Reply-To": "<demo-20261130-0001@example.cn>",
            "References": "<demo-20261130-0001@example.cn>",
        },
    )
    out_of_office = _mail(
        "自动回复：会员卡余额被无故扣除",
        "我正在休假，12月3日回来。",
        "<demo-20261130-0003@example.cn>",
        headers={"Auto-Submitted": "auto-replied"},
    )

    def post(label: str, raw: bytes) -> Step:
        return Step(label, "POST", "/webhooks/email_mime", None, relay.sign(raw, now), raw)

    return [
        post("Mail relay: complaint with a photo (GBK)", complaint),
        post("Mail relay resends it", complaint),
        post("Customer's follow-up, original quoted", follow_up),
        post("An out-of-office auto-reply", out_of_office),
    ]


def _fill_mailbox(server: Dovecot) -> None:
    """Two mails in the complaint desk's INBOX, as the mail server delivered them."""
    account = ImapAccount(
        host="127.0.0.1",
        port=server.port,
        security="plain",
        username=IMAP_USERNAME,
        password=server.password,
    )
    append_message(
        account,
        "INBOX",
        _mail(
            "空气炸锅不让退",
            "11月20日在浦东店买的空气炸锅用了两次就坏了，店员说超过7天不能退，"
            "但官网写的是15天无理由退货。请给个说法。",
            "<demo-imap-0001@example.cn>",
        ),
    )
    append_message(
        account,
        "INBOX",
        _mail(
            "Undelivered Mail Returned to Sender",
            "This is the mail system at host mx.example.cn.",
            "<demo-imap-0002@example.cn>",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )


def _master_csv(path: Path) -> None:
    """Three calls logged by Asterisk before the gateway starts: the poller takes them in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    day = time.strftime("%Y-%m-%d")
    path.write_bytes(
        asterisk_cdr_line(
            src="13955556666",
            dst=HOTLINE,
            start=f"{day} 09:12:03",
            answer=f"{day} 09:12:09",
            billsec=186,
            uniqueid="1795399331.2719",
            userfield='洗衣机脱水噪音大,已报修两次,要求"退货"',
        )
        + asterisk_cdr_line(
            src="02161234567",
            dst=HOTLINE,
            start=f"{day} 09:40:00",
            disposition="NO ANSWER",
            uniqueid="1795401000.2750",
        )
        + asterisk_cdr_line(
            src="13800001111",
            dst="02161230000",
            start=f"{day} 10:02:00",
            answer=f"{day} 10:02:03",
            billsec=40,
            uniqueid="1795402320.2761",
            userfield="问前台营业时间",
        )
    )


def _steps(wechat: WeChatSender, store: StoreSender, bad_wechat: WeChatSender) -> list[Step]:
    now = int(time.time())
    a, b = OPENIDS
    steps: list[Step] = []

    def push(label: str, xml: str, mode: str = "plain", sender: WeChatSender = wechat) -> Step:
        p = sender.push(xml, mode=mode, timestamp=now, nonce=secrets.token_hex(4))  # type: ignore[arg-type]
        return Step(
            label, "POST", "/webhooks/wechat", p.params, {"content-type": "text/xml"}, p.body
        )

    steps.append(
        Step(
            "WeChat URL check (GET echostr)",
            "GET",
            "/webhooks/wechat",
            wechat.url_check("demo-echo-7788", timestamp=now, nonce="5501"),
        )
    )
    late = wechat_text(
        a,
        "你好，我上周买的电饭煲（订单 882133440917）用了两次就坏了，屏幕显示E3，要求退货退款！",
        24201000000000001,
        now - 40,
    )
    steps.append(push("WeChat text, plaintext mode", late))
    for attempt in (1, 2, 3):
        steps.append(push(f"WeChat retry #{attempt} of the same MsgId", late))
    steps.append(
        push(
            "WeChat voice with recognition, safe mode",
            wechat_xml(
                {
                    "ToUserName": "gh_3f2a1b0c9d8e",
                    "FromUserName": b,
                    "CreateTime": now - 30,
                    "MsgType": "voice",
                    "MediaId": "vMediaDemo01",
                    "Format": "amr",
                    "Recognition": "快递把包装箱压坏了，里面的杯子碎了两个",
                    "MsgId": 24201000000000002,
                }
            ),
            "safe",
        )
    )
    steps.append(
        push(
            "WeChat image, compatible mode",
            wechat_xml(
                {
                    "ToUserName": "gh_3f2a1b0c9d8e",
                    "FromUserName": b,
                    "CreateTime": now - 29,
                    "MsgType": "image",
                    "PicUrl": "http://mmbiz.qpic.cn/mmbiz_jpg/demo/0",
                    "MediaId": "iMediaDemo02",
                    "MsgId": 24201000000000003,
                }
            ),
            "compat",
        )
    )
    steps.append(
        push(
            "WeChat menu click 投诉 (event)",
            wechat_xml(
                {
                    "ToUserName": "gh_3f2a1b0c9d8e",
                    "FromUserName": a,
                    "CreateTime": now - 20,
                    "MsgType": "event",
                    "Event": "CLICK",
                    "EventKey": "COMPLAINT_MENU",
                }
            ),
        )
    )
    steps.append(
        push(
            "WeChat subscribe (event)",
            wechat_xml(
                {
                    "ToUserName": "gh_3f2a1b0c9d8e",
                    "FromUserName": b,
                    "CreateTime": now - 60,
                    "MsgType": "event",
                    "Event": "subscribe",
                    "EventKey": "",
                }
            ),
        )
    )
    steps.append(
        push(
            "WeChat push with a wrong token",
            wechat_text(a, "伪造的消息", 24201000000000099, now),
            sender=bad_wechat,
        )
    )
    steps.append(
        Step(
            "WeChat push with no signature",
            "POST",
            "/webhooks/wechat",
            {},
            None,
            wechat_text(a, "没有签名", 24201000000000098, now).encode(),
        )
    )

    submission = {
        "submission_id": "SH0012-20261123-0007",
        "store_id": "SH0012",
        "store_name": "上海南京东路店",
        "clerk_id": "E1024",
        "submitted_at": "2026-11-23T10:15:00+08:00",
        "customer": {"phone": "138 1234 5678", "member_id": "M20240088", "tier": "vip"},
        "order": {
            "order_id": "POS-5566778",
            "sku": "KTL-2201",
            "product_name": "不锈钢电热水壶",
            "amount_cny": "299.00",
        },
        "text": "顾客反映水壶烧水时底部漏水，要求换新并给个说法。",
        "priority": "P2",
        "expectations": ["exchange", "explanation"],
        "photos": [{"url": "https://img.example-brand.cn/store/SH0012/7a.jpg", "name": "漏水处"}],
    }
    body = store.body(submission)
    steps.append(
        Step(
            "Store complaint with photo (VIP)",
            "POST",
            "/webhooks/store",
            None,
            store.sign(body, now),
            body,
        )
    )
    steps.append(
        Step(
            "Store resend of the same submission",
            "POST",
            "/webhooks/store",
            None,
            store.sign(body, now + 3),
            body,
        )
    )
    # the same kettle fault from two more customers: the third report raises a batch signal
    for number, (store_id, phone, words) in enumerate(
        (
            ("HZ0021", "13600001111", "买的电热水壶烧水时底座渗水，桌子都湿了。"),
            ("GZ0105", "13700002222", "热水壶用了一周就漏水，要求退货。"),
        ),
        2,
    ):
        same_fault = store.body(
            {
                "submission_id": f"{store_id}-20261123-000{number}",
                "store_id": store_id,
                "customer": {"phone": phone},
                "order": {"sku": "KTL-2201", "product_name": "不锈钢电热水壶"},
                "text": words,
            }
        )
        label = "Same kettle fault, another customer"
        steps.append(
            Step(
                label if number == 2 else f"{label}: the third makes a batch signal (P1)",
                "POST",
                "/webhooks/store",
                None,
                store.sign(same_fault, now),
                same_fault,
            )
        )
    # the WeChat customer walks into a store about the same order: linked, not a new ticket
    again = store.body(
        {
            "submission_id": "SH0012-20261123-0009",
            "store_id": "SH0012",
            "customer": {"phone": "13500003333"},
            "text": "顾客说公众号上投诉过：电饭煲显示E3，订单号 8821 3344 0917，还没人处理。",
        }
    )
    steps.append(
        Step(
            "Store visit about the WeChat order: linked to it",
            "POST",
            "/webhooks/store",
            None,
            store.sign(again, now),
            again,
        )
    )
    walk_in = store.body(
        {
            "submission_id": "BJ0003-20261123-0002",
            "store_id": "BJ0003",
            "clerk_id": "E2077",
            "customer": {"phone": "+86 139-0011-2233"},
            "text": "店员态度很差，等了40分钟没人处理。",
            "expectations": ["apology"],
        }
    )
    steps.append(
        Step(
            "Store walk-in complaint",
            "POST",
            "/webhooks/store",
            None,
            store.sign(walk_in, now),
            walk_in,
        )
    )
    steps.append(
        Step(
            "Store post signed an hour ago",
            "POST",
            "/webhooks/store",
            None,
            store.sign(walk_in, now - 3600),
            walk_in,
        )
    )
    broken = b'{"submission_id": "SH0012-20261123-0008", "text": "\xe6\x9c\xaa\xe5\xae\x8c'
    steps.append(
        Step(
            "Store body that is not JSON",
            "POST",
            "/webhooks/store",
            None,
            store.sign(broken, now),
            broken,
        )
    )
    steps.append(
        Step(
            "Body over the 1 MiB limit",
            "POST",
            "/webhooks/store",
            None,
            store.sign(b"x" * (1024 * 1024 + 1), now),
            b"x" * (1024 * 1024 + 1),
        )
    )
    steps.append(Step("Unknown connector", "POST", "/webhooks/fax", None, None, b"hello"))
    return steps


def _random_aes_key() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))


async def run_demo(registry: Registry, data_dir: Path | None = None) -> int:
    from service.logs import configure_logging

    console = Console(width=None if Console().is_terminal else 150)
    configure_logging("ERROR")
    tmp = (
        tempfile.TemporaryDirectory(prefix="complaint-gateway-demo-") if data_dir is None else None
    )
    directory = data_dir or Path(tmp.name)  # type: ignore[union-attr]
    master_csv = directory / "cdr-csv" / "Master.csv"
    _master_csv(master_csv)
    connectors: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if await asyncio.to_thread(Path(DOVECOT).exists):
            # the imap poller, on a private Dovecot of the demo's own
            server = Dovecot(password=secrets.token_hex(12))
            mailbox = await asyncio.to_thread(stack.enter_context, server)
            await asyncio.to_thread(_fill_mailbox, mailbox)
            connectors["imap"] = {
                "host": "127.0.0.1",
                "port": mailbox.port,
                "security": "plain",
                "username": IMAP_USERNAME,
                "password": mailbox.password,
                "interval_seconds": 0.2,
            }
        else:
            console.print("[dim]IMAP: not shown (Debian's dovecot-imapd is not installed).[/]\n")
        return await _run(registry, console, directory, tmp, connectors, master_csv)


async def _run(
    registry: Registry,
    console: Console,
    directory: Path,
    tmp: tempfile.TemporaryDirectory[str] | None,
    extra_connectors: dict[str, Any],
    master_csv: Path,
) -> int:
    import uvicorn

    from gateway import running_gateway
    from service.settings import load_settings

    token, aes_key, store_secret = secrets.token_hex(8), _random_aes_key(), secrets.token_hex(16)
    cdr_password, relay_secret = secrets.token_hex(12), secrets.token_hex(16)
    weibo_secret, douyin_secret = secrets.token_hex(16), secrets.token_hex(16)
    douyin_key = "7300000000000000001"
    api_token, aliyun_secret, wechat_secret = (secrets.token_hex(16) for _ in range(3))
    fake = FakeProviders(
        FAKE_KEY_ID, aliyun_secret, APP_ID, wechat_secret, sms_templates=SMS_TEMPLATES
    )
    providers = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=0, lifespan="off", log_config=None)
    )
    providing = asyncio.create_task(providers.serve())
    while not providers.started:
        if providing.done():
            providing.result()
        await asyncio.sleep(0.02)
    providers_base = f"http://127.0.0.1:{providers.servers[0].sockets[0].getsockname()[1]}"
    fakes = contextlib.AsyncExitStack()
    platforms = await fakes.enter_async_context(serve_platforms(DemoPlatforms()))
    settings = load_settings(
        registry,
        data_dir=directory,
        http={"host": "127.0.0.1", "port": 0},
        notifiers=notifier_settings(providers_base, aliyun_secret, APP_ID, wechat_secret)
        | platforms.notifier_settings(),
        notifications={"api_token": api_token, "survey_delay_minutes": 0.05},
        connectors={
            "wechat": {"token": token, "encoding_aes_key": aes_key, "app_id": APP_ID},
            "store": {"secret": store_secret},
            "freeswitch": {"username": "cdr", "password": cdr_password},
            "tccc": {"username": "cdr", "password": cdr_password},
            "email_mime": {"secret": relay_secret},
            "weibo_dm": {"app_secret": weibo_secret},
            "douyin_shop": {"app_key": douyin_key, "app_secret": douyin_secret},
            **platforms.connector_settings(),
            "asterisk_csv": {
                "path": str(master_csv),
                "complaint_numbers": [HOTLINE],
                "interval_seconds": 0.2,
            },
            **extra_connectors,
        },
    )
    try:
        async with running_gateway(settings, registry) as gateway:
            config = uvicorn.Config(
                gateway.app,
                host="127.0.0.1",
                port=0,
                lifespan="off",
                log_config=None,
                access_log=False,
            )
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            base = f"http://127.0.0.1:{port}"
            console.print(
                f"[bold]complaint-gateway demo[/] — real server on {base}, "
                f"data in {directory}, stream to {gateway.sink.name}\n"
            )
            console.print(
                f"[bold yellow]FAKE platform servers[/] (local stand-ins, no real platform is "
                f"called): {platforms.base}/top (Taobao TOP), /jd (JD JOS), /pdd (Pinduoduo), "
                f"/weibo (Weibo API); the taobao, jd, pinduoduo and weibo pollers read them.\n"
            )
            steps = _steps(
                WeChatSender(token, aes_key, APP_ID),
                StoreSender(store_secret),
                WeChatSender("not-the-token"),
            )
            steps[-1:-1] = _call_steps(cdr_password, int(time.time()))
            steps[-1:-1] = _mail_steps(MailRelaySender(relay_secret), int(time.time()))
            steps[-1:-1] = _platform_steps(
                weibo_secret, douyin_key, douyin_secret, int(time.time())
            )
            sent = Table(title="Requests sent", show_lines=False)
            for column in ("#", "request", "HTTP", "what the gateway did", "answer"):
                sent.add_column(column)
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                for number, step in enumerate(steps, 1):
                    connector = step.path.removeprefix("/webhooks/")
                    before = _counts(gateway.metrics, connector)
                    response = await client.request(
                        step.method,
                        step.path,
                        params=step.params,
                        headers=step.headers,
                        content=step.body,
                    )
                    sent.add_row(
                        str(number),
                        step.label,
                        _status(response.status_code),
                        _what_happened(before, _counts(gateway.metrics, connector)),
                        _answer(response),
                    )
                deadline = time.monotonic() + 10  # the poller and the publisher run meanwhile
                pollers = [s for s in gateway.board.states.values() if s.kind == "poller"]
                while (  # noqa: ASYNC110
                    gateway.outbox.pending or any(p.last_success is None for p in pollers)
                ) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                channels = (await client.get("/channels")).json()
                metrics_text = (await client.get("/metrics")).text
            console.print(sent)
            console.print(_stream_table(gateway.settings.jsonl_path, gateway.sink.name))
            console.print(_counts_table(metrics_text))
            console.print(_channels_table(channels))
            record_id = await _first_record_of(gateway.outbox, OPENIDS[0])
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                console.print(await follow_journey(client, api_token, record_id, fake))
                console.print(
                    await answer_on_their_channels(
                        client,
                        api_token,
                        [
                            ("Weibo private message", await _record_of(gateway.outbox, "weibo_dm")),
                            ("Taobao refund", await _record_of(gateway.outbox, "taobao")),
                        ],
                        platforms.weibo,
                    )
                )
            assert gateway.notifications is not None
            await gateway.notifications.outcomes.drain()
            console.print(
                f"Each outcome (sent, with the provider's message id) is in "
                f"{gateway.settings.notifications_jsonl_path.name}, as it would be on "
                f"{settings.notifications.outcomes_topic} with Kafka.\n"
            )
            server.should_exit = True
            await serving
    finally:
        await fakes.aclose()
        providers.should_exit = True
        await providing
        if tmp is not None:
            tmp.cleanup()
    return 0


_OUTCOMES = {
    "gateway_records_accepted": "[green]new record[/]",
    "gateway_duplicates": "[cyan]duplicate: not published again[/]",
    "gateway_events_ignored": "not a complaint: counted",
    "gateway_payloads_quarantined": "[yellow]refused, body quarantined[/]",
    "gateway_webhooks_refused": "[red]refused, nothing kept[/]",
}


async def _first_record(outbox: SQLiteOutbox, what: str, matches: Callable[[Any], bool]) -> str:
    """The first record in the outbox that ``matches`` (given the record as JSON)."""
    for entry in await outbox.select(since=datetime(2000, 1, 1, tzinfo=UTC)):
        if matches(json.loads(entry.record_json)):
            return entry.record_id
    raise LookupError(f"no record {what}")


async def _first_record_of(outbox: SQLiteOutbox, openid: str) -> str:
    return await _first_record(
        outbox,
        f"of {mask_id(openid)}",
        lambda r: r["customer"]["contacts"].get("wechat_openid") == openid,
    )


async def _record_of(outbox: SQLiteOutbox, connector: str) -> str:
    """The first record a connector took in."""
    return await _first_record(
        outbox, f"from {connector}", lambda r: r["source"]["connector"] == connector
    )


def _counts(metrics: GatewayMetrics, connector: str) -> dict[str, float]:
    """The outcome counters of one connector (the pollers count theirs meanwhile)."""
    totals = dict.fromkeys(_OUTCOMES, 0.0)
    for family in metrics.registry.collect():
        if family.name in totals:
            totals[family.name] = sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels.get("connector", connector) == connector
            )
    return totals


def _what_happened(before: dict[str, float], after: dict[str, float]) -> str:
    for name, label in _OUTCOMES.items():  # the first that moved says most
        if after[name] > before[name]:
            return label
    return "handshake answered"


def _status(code: int) -> str:
    colour = "green" if code < 300 else "yellow" if code < 500 else "red"
    return f"[{colour}]{code}[/]"


def _answer(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("application/json"):
        data = response.json()
        if "error" in data:
            return f"{data['reason']}: {data['error']}"[:90]
        if "status" in data:
            return f"{data['status']} {str(data.get('record_id'))[:8]}…"
        return json.dumps(data, ensure_ascii=False)[:60]
    return response.text[:40]


def _stream_table(path: Path, sink: str) -> Table:
    table = Table(title=f"Normalized stream ({sink}: {path})")
    for column in (
        "record",
        "channel",
        "customer",
        "category",
        "prio",
        "expects",
        "why (triage)",
        "linked",
        "description",
    ):
        table.add_column(column, overflow="fold")
    records: list[dict[str, Any]] = []
    if path.exists():
        records = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    for record in records:
        table.add_row(
            record["record_id"][:8] + "…",
            f"{record['channel']}\n{record['channel_detail']}",
            mask_id(record["customer"]["id"]),
            record["category"]["code"],
            record["priority"],
            ", ".join(record["expectations"]) or "-",
            "\n".join((record.get("triage") or {}).get("reasons", ())[:3]) or "-",
            _linked(record.get("dedupe") or {}),
            (record["description"] or "(no words: see attachments)")[:60],
        )
    return table


def _linked(dedupe: dict[str, Any]) -> str:
    parts = []
    if dedupe.get("duplicate_of"):
        parts.append(f"repeats {dedupe['duplicate_of'][:8]}…\n{dedupe.get('reason') or ''}")
    if dedupe.get("batch"):
        parts.append(f"batch {dedupe['batch']}")
    return "\n".join(parts) or "-"


def _channels_table(channels: dict[str, Any]) -> Table:
    table = Table(title="Connectors (GET /channels)")
    for column in ("connector", "kind", "channel", "taken in", "failures", "last error", "cursor"):
        table.add_column(column, overflow="fold")
    for name, state in channels.items():
        error = state["last_error"]
        table.add_row(
            name,
            state["kind"],
            state["channel"],
            str(state["taken_in"]),
            str(state["consecutive_failures"]),
            f"{error['class']}: {error['message']}"[:60] if error else "-",
            state.get("cursor") or "-",
        )
    return table


def _counts_table(metrics_text: str) -> Table:
    table = Table(title="What the gateway counted (/metrics)")
    for column in ("metric", "labels", "value"):
        table.add_column(column)
    wanted = (
        "gateway_records_accepted_total",
        "gateway_duplicates_total",
        "gateway_events_ignored_total",
        "gateway_webhooks_refused_total",
        "gateway_payloads_quarantined_total",
        "gateway_records_published_total",
    )
    for line in metrics_text.splitlines():
        if line.startswith(wanted):
            name, _, value = line.rpartition(" ")
            metric, _, labels = name.partition("{")
            table.add_row(
                metric.removeprefix("gateway_").removesuffix("_total"),
                labels.rstrip("}"),
                str(int(float(value))),
            )
    return table
