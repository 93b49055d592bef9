"""The demo's Weibo and marketplaces: LOCAL FAKE platform servers, seeded with complaints.

No real platform is called. :mod:`service.fake_platforms` answers like TOP
(Taobao/Tmall), JOS (JD), Pinduoduo's router and the Weibo open API, and
checks our signatures and tokens the way they do; the demo serves them on a
loopback port, points the ``taobao``, ``jd``, ``pinduoduo`` and ``weibo``
pollers at them, and prints their address as fakes. The two signed pushes
(``weibo_dm``, ``douyin_shop``) are sent by the demo itself, as the
platforms would send them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from service.fake_platforms import platforms_app
from service.fake_platforms.jd import FakeJd
from service.fake_platforms.pinduoduo import FakePinduoduo
from service.fake_platforms.top import FakeTop
from service.fake_platforms.weibo import FakeWeibo
from service.senders import weibo_time

#: The brand's Weibo account, which receives the private messages.
BRAND_UID = 1902538057
#: The customer who writes to the brand by Weibo private message in the demo.
DM_SENDER_UID = 2_489_518_277
#: A verified Weibo account with 1.2 million followers: its complaint is a public-opinion risk.
BIG_ACCOUNT_UID = 6_104_223_999


_SECRET_NAMES = (
    "top_secret",
    "top_session",
    "jd_secret",
    "jd_token",
    "pdd_secret",
    "pdd_token",
    "weibo_token",
)


@dataclass
class DemoPlatforms:
    """The fakes and their credentials (fresh for every demo run)."""

    base: str = ""
    secrets: dict[str, str] = field(
        default_factory=lambda: {name: secrets.token_hex(12) for name in _SECRET_NAMES}
    )
    top: FakeTop = field(init=False)
    jd: FakeJd = field(init=False)
    pinduoduo: FakePinduoduo = field(init=False)
    weibo: FakeWeibo = field(init=False)

    def __post_init__(self) -> None:
        s = self.secrets
        self.top = FakeTop("23456789", s["top_secret"], s["top_session"])
        self.jd = FakeJd(
            app_key="demo-jd-app", app_secret=s["jd_secret"], access_token=s["jd_token"]
        )
        self.pinduoduo = FakePinduoduo("demo-pdd-client", s["pdd_secret"], s["pdd_token"])
        self.weibo = FakeWeibo(s["weibo_token"])
        _seed(self)

    def notifier_settings(self) -> dict[str, Any]:
        """``[notifiers.weibo]``: fans-service replies through the fake Weibo API."""
        return {
            "weibo": {
                "access_token": self.secrets["weibo_token"],
                "base_url": f"{self.base}/weibo/2",
            }
        }

    def connector_settings(self) -> dict[str, dict[str, Any]]:
        """``[connectors.*]`` for the four pollers, pointed at the fakes."""
        s, every = self.secrets, {"interval_seconds": 0.2}
        return {
            "taobao": {
                "app_key": self.top.app_key,
                "app_secret": s["top_secret"],
                "session": s["top_session"],
                "api_base": f"{self.base}/top/router/rest",
                **every,
            },
            "jd": {
                "app_key": self.jd.app_key,
                "app_secret": s["jd_secret"],
                "access_token": s["jd_token"],
                "api_base": f"{self.base}/jd/routerjson",
                **every,
            },
            "pinduoduo": {
                "client_id": self.pinduoduo.client_id,
                "client_secret": s["pdd_secret"],
                "access_token": s["pdd_token"],
                "api_base": f"{self.base}/pdd/api/router",
                **every,
            },
            "weibo": {
                "access_token": s["weibo_token"],
                "start_at": "beginning",
                "api_base": f"{self.base}/weibo/2",
                **every,
            },
        }


def _seed(p: DemoPlatforms) -> None:
    """A few complaints on each platform, in its own shape."""
    p.top.add(
        title="扫地机器人 X20 Pro",
        buyer_nick="小鱼 🐟 爱吃猫",
        reason="质量问题",
        desc="用了三天就不充电了，回充座指示灯一直闪，要求退货退款",
        refund_fee="1899.00",
        payment="1899.00",
        has_good_return=True,
    )
    p.top.add(
        title="不锈钢保温杯 500ml",
        buyer_nick="t**8",
        status="SELLER_REFUSE_BUYER",
        cs_status=2,
        reason="商品与描述不符",
        desc="卖家拒绝退款，我已申请平台客服介入：杯子根本不保温",
        refund_fee="89.00",
    )
    p.top.add_rate(
        nick="王**",
        result="bad",
        content="发错颜色还不给换，客服态度很差！",
        item_title="纯棉短袖T恤 男",
        item_price="59.90",
    )
    p.jd.add(questionDesc="空气净化器开机有很大的异响，像风扇刮到东西，要求换新")
    p.pinduoduo.add(after_sale_reason="收到的电热毯有一角不发热，联系我 138****5678")
    # the fans-service's side of the private message the demo pushes: its reply window opens
    p.weibo.message_from(str(DM_SENDER_UID))
    now = weibo_time(p.weibo.clock())
    loud = p.weibo.add(
        "comments/to_me",
        "@某品牌官方微博 买的空气炸锅用了一周涂层就掉了，客服三天没回，大家避雷！",
        uid=BIG_ACCOUNT_UID,
        created_at=now,
    )
    loud["user"] |= {
        "screen_name": "数码 测评 老K ✨",
        "followers_count": 1_230_000,
        "verified": True,
    }
    p.weibo.add(
        "statuses/mentions",
        "@某品牌官方微博 优惠券用不了，下单提示券已过期，但明明还有三天",
        created_at=now,
    )


@contextlib.asynccontextmanager
async def serve_platforms(platforms: DemoPlatforms) -> AsyncIterator[DemoPlatforms]:
    """The fakes on a loopback port for the demo's lifetime; ``platforms.base`` set."""
    import asyncio

    import uvicorn

    app = platforms_app(
        {
            "top": platforms.top,
            "jd": platforms.jd,
            "pdd": platforms.pinduoduo,
            "weibo": platforms.weibo,
        }
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    platforms.base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        yield platforms
    finally:
        server.should_exit = True
        await task
