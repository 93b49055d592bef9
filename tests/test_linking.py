"""One customer across channels, one incident reported again: what a complaint desk sees.

The linker runs on the embedded state here (SQLite identity map, in-memory
link index); the same cases against Redis are in tests/test_redis_linking.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dedupe.evidence import order_key, same_order, similarity, sketch, text_numbers
from dedupe.identity_sqlite import SQLiteIdentityMap
from dedupe.index_memory import MemoryLinkIndex
from dedupe.linking import Linker, LinkSettings
from gateway import running_gateway
from schemas import ComplaintRecord, record_id_for
from service.linking_stage import LinkingStage
from service.registry import Registry
from service.senders import StoreSender, WeChatSender, wechat_text
from tests.fakes import FrozenClock, MemorySink
from tests.test_triage_stage import cli

START = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)


# -- evidence in the words ----------------------------------------------------------------


def test_order_ids_are_found_however_the_customer_wrote_or_said_them() -> None:
    assert text_numbers("订单号 3920 1188 2201 7 麻烦查一下")[0] == {"3920118822017"}
    spoken = "我的订单号是二三幺幺零三杠四八九二幺三七六幺二二零三四幺"
    assert text_numbers(spoken)[0] == {order_key("231103-489213761220341")}
    assert text_numbers("訂單編號：TB-3920118822017")[0] == {"3920118822017"}


def test_dates_times_and_phone_numbers_are_not_order_ids() -> None:
    orders, phones, masked, tails = text_numbers(
        "2026-11-03 14:20 打的电话 138 1234 5120，另一个号 139****5120，尾号是 5120"
    )
    assert orders == set()
    assert phones == {"13812345120"} and masked == {"139*5120"} and tails == {"5120"}


def test_a_dropped_last_digit_matches_but_a_neighbouring_order_does_not() -> None:
    assert same_order("3920118822017", "392011882201")
    assert not same_order("3920118822017", "3920118822018")
    assert not same_order("3920118822017", "39201188220")


def test_text_similarity_reads_traditional_as_simplified_and_tells_stories_apart() -> None:
    kettle = sketch("这个电热水壶用了三天就漏水了，底座全是水，太危险了")
    assert (
        similarity(kettle, sketch("這個電熱水壺用了三天就漏水了，底座全是水，太危險了！！")) > 0.9
    )
    assert similarity(kettle, sketch("快递员态度很差，把包裹扔在门口就走了")) < 0.1


# -- the linker ------------------------------------------------------------------------


def record(
    message_id: str,
    text: str,
    *,
    at: datetime,
    channel: str = "wechat",
    customer: str = "wechat:oA",
    phone: str | None = None,
    order_id: str | None = None,
    sku: str | None = None,
    category: str = "product.malfunction",
) -> ComplaintRecord:
    contacts: dict[str, Any] = {"phone": phone} if phone else {}
    return ComplaintRecord.model_validate(
        {
            "record_id": record_id_for(channel, message_id),
            "received_at": at,
            "channel": channel,
            "channel_detail": channel,
            "customer": {"id": customer, "contacts": contacts},
            "product": {"order_id": order_id, "sku": sku},
            "category": {"code": category, "label": category},
            "description": text,
            "received_by": f"gateway/{channel}",
            "source": {"connector": channel, "message_id": message_id},
            "dedupe": {"fingerprint": "sha256:0"},
        }
    )


@pytest.fixture
def identity(tmp_path: Path) -> Iterator[SQLiteIdentityMap]:
    identity = SQLiteIdentityMap(tmp_path / "state.sqlite3")
    yield identity
    identity.close()


@pytest.fixture
def stage(identity: SQLiteIdentityMap) -> LinkingStage:
    index = MemoryLinkIndex(7 * 86_400, on_close=identity.remember_resolved)
    return LinkingStage(Linker(identity, index, LinkSettings()))


async def test_the_same_order_across_call_weibo_and_marketplace_is_one_incident(
    stage: LinkingStage,
) -> None:
    call = await stage.apply(
        record(
            "c1",
            "电热水壶漏水 订单号 幺二三四五六七八九零幺二 要退货",
            at=START,
            channel="phone",
            customer="tel:+8613812345120",
            phone="+8613812345120",
        )
    )
    post = await stage.apply(
        record(
            "w1",
            "@品牌 水壶漏水，订单1234 5678 9012，打客服电话没人管！",
            at=START + timedelta(hours=3),
            channel="weibo",
            customer="weibo:5566",
        )
    )
    refund = await stage.apply(
        record(
            "r1",
            "申请退货退款",
            at=START + timedelta(hours=4),
            channel="taobao",
            customer="taobao:tb_buyer",
            order_id="123456789012",
        )
    )
    assert call.dedupe.duplicate_of is None
    assert post.dedupe.duplicate_of == call.record_id == refund.dedupe.duplicate_of
    assert post.dedupe.reason == "同一订单号" and post.dedupe.score == 0.95
    # a second contact about an open incident is at least P2, and says so
    assert post.priority == "P2" and call.priority == "P3"


async def test_an_order_read_with_its_last_digit_dropped_links_a_neighbour_does_not(
    stage: LinkingStage,
) -> None:
    first = await stage.apply(record("a", "订单 3920118822017 的水壶漏水", at=START))
    dropped = await stage.apply(
        record(
            "b",
            "水壶漏水订单号三九二零幺幺八八二二零幺",
            at=START + timedelta(hours=1),
            channel="phone",
            customer="tel:+8613900001111",
        )
    )
    neighbour = await stage.apply(
        record(
            "c",
            "订单 3920118822018 的吹风机不出热风",
            at=START + timedelta(hours=2),
            channel="email",
            customer="email:x@example.com",
        )
    )
    assert dropped.dedupe.duplicate_of == first.record_id
    assert dropped.dedupe.reason == "同一订单号（少一位）"
    assert neighbour.dedupe.duplicate_of is None


async def test_a_complaint_split_over_wechat_messages_is_one_incident_not_a_repeat(
    stage: LinkingStage,
) -> None:
    first = await stage.apply(record("m1", "你们的吸尘器", at=START, category="other"))
    second = await stage.apply(
        record("m2", "用了一周就不转了，吸力没有", at=START + timedelta(minutes=2))
    )
    assert second.dedupe.duplicate_of == first.record_id
    assert second.dedupe.reason is not None and "分钟内再次联系" in second.dedupe.reason
    assert second.priority == "P3"  # one contact in parts, not a second contact


async def test_the_same_customer_with_a_different_order_is_a_new_incident(
    stage: LinkingStage,
) -> None:
    await stage.apply(record("m1", "水壶漏水", at=START, order_id="TB3920118822017"))
    other = await stage.apply(
        record("m2", "吹风机坏了", at=START + timedelta(days=1), order_id="TB3920118899999")
    )
    assert other.dedupe.duplicate_of is None


async def test_the_same_order_after_the_incident_was_resolved_opens_a_new_one(
    stage: LinkingStage,
) -> None:
    first = await stage.apply(record("m1", "水壶漏水", at=START, order_id="3920118822017"))
    await stage.linker.index.close(first.record_id, START + timedelta(days=1))
    again = await stage.apply(
        record("m2", "水壶把手断了", at=START + timedelta(days=3), order_id="3920118822017")
    )
    assert again.dedupe.duplicate_of is None


async def test_a_phone_tail_in_a_mail_matches_the_call_a_different_prefix_does_not(
    stage: LinkingStage,
) -> None:
    call = await stage.apply(
        record(
            "c1",
            "空调不制冷，师傅说要换压缩机",
            at=START,
            channel="phone",
            customer="tel:+8613812345120",
            phone="+8613812345120",
        )
    )
    mail = await stage.apply(
        record(
            "e1",
            "昨天打过热线，空调还是不制冷，我手机尾号5120",
            at=START + timedelta(days=1),
            channel="email",
            customer="email:li@example.com",
        )
    )
    stranger = await stage.apply(
        record(
            "e2",
            "空调不制冷，联系电话 139****5120",
            at=START + timedelta(days=1, hours=1),
            channel="email",
            customer="email:wang@example.com",
        )
    )
    assert mail.dedupe.duplicate_of == call.record_id
    assert mail.dedupe.reason == "文中手机尾号与来电一致"
    assert stranger.dedupe.duplicate_of is None


async def test_one_text_from_two_accounts_is_not_linked_the_same_mail_twice_is(
    stage: LinkingStage,
) -> None:
    text = "我在你们旗舰店买的破壁机第一次用就闻到焦糊味，底座发烫，要求退货并给个说法"
    first = await stage.apply(record("w1", text, at=START, channel="weibo", customer="weibo:1"))
    copy = await stage.apply(
        record("w2", text, at=START + timedelta(hours=1), channel="weibo", customer="weibo:2")
    )
    mail = await stage.apply(
        record("e1", text, at=START, channel="email", customer="email:a@example.com")
    )
    again = await stage.apply(
        record(
            "e2",
            text,
            at=START + timedelta(seconds=40),
            channel="email",
            customer="email:a@example.com",
        )
    )
    assert copy.dedupe.duplicate_of is None
    assert mail.dedupe.duplicate_of == first.record_id  # another channel, words alone
    assert mail.dedupe.reason is not None and mail.dedupe.reason.startswith("文字相似")
    assert again.dedupe.duplicate_of == first.record_id


async def test_a_question_before_buying_and_a_complaint_after_are_not_one_incident(
    stage: LinkingStage,
) -> None:
    await stage.apply(record("q", "这款扫地机器人能爬多高的门槛？", at=START, category="other"))
    complaint = await stage.apply(
        record("c", "扫地机器人卡在门槛上不动了", at=START + timedelta(days=5))
    )
    assert complaint.dedupe.duplicate_of is None


async def test_three_customers_with_one_fault_of_one_product_raise_a_batch_signal(
    stage: LinkingStage,
) -> None:
    reports = [
        await stage.apply(
            record(
                f"b{n}", text, at=START + timedelta(hours=n), customer=f"wechat:o{n}", sku="KT-1"
            )
        )
        for n, text in enumerate(["水壶漏水", "新买的水壶底部渗水", "水壶用两天就漏水"])
    ]
    assert [r.dedupe.batch is not None for r in reports] == [False, False, True]
    third = reports[2]
    assert third.priority == "P1"
    assert third.dedupe.duplicate_of is None  # three incidents, one signal
    fourth = await stage.apply(
        record("b4", "水壶漏水", at=START + timedelta(hours=5), customer="wechat:o9", sku="KT-1")
    )
    assert fourth.dedupe.batch == third.dedupe.batch


async def test_a_member_who_calls_from_the_phone_on_file_is_one_customer(
    stage: LinkingStage, identity: SQLiteIdentityMap
) -> None:
    counter = await stage.apply(
        record(
            "s1",
            "门店买的电饭煲内胆掉涂层",
            at=START,
            channel="store",
            customer="member:M1001",
            phone="+8613812345678",
            category="product.defect",
        )
    )
    call = await stage.apply(
        record(
            "c1",
            "我在门店登记过的电饭煲问题还没人联系我",
            at=START + timedelta(days=2),
            channel="phone",
            customer="tel:+8613812345678",
            phone="+8613812345678",
            category="service.process",
        )
    )
    assert counter.customer.id == call.customer.id == "member:M1001"
    assert call.customer.contacts.phone == "+8613812345678"  # the channel's key stays
    assert call.dedupe.duplicate_of == counter.record_id
    links = await identity.links("member:M1001")
    assert {link.key for link in links} == {"member:M1001", "tel:+8613812345678"}
    assert all(link.evidence and link.at for link in links)


async def test_two_people_meeting_in_one_record_become_the_older_one(
    stage: LinkingStage, identity: SQLiteIdentityMap
) -> None:
    await stage.apply(record("w1", "咨询", at=START, customer="wechat:oOld", category="other"))
    await stage.apply(
        record(
            "c1",
            "咨询",
            at=START + timedelta(days=1),
            channel="phone",
            customer="tel:+8613700000000",
            phone="+8613700000000",
            order_id="TB5550001112223",
            category="other",
        )
    )
    wechat_with_order = await stage.apply(
        record(
            "w2",
            "订单还没发货",
            at=START + timedelta(days=2),
            customer="wechat:oOld",
            order_id="TB5550001112223",
            category="logistics.delay",
        )
    )
    assert wechat_with_order.customer.id == "wechat:oOld"
    assert {link.key for link in await identity.links("wechat:oOld")} >= {
        "tel:+8613700000000",
        "order:5550001112223",
    }


async def test_a_nickname_alone_never_makes_two_buyers_one_customer(stage: LinkingStage) -> None:
    a = await stage.apply(
        record("t1", "退款没到账", at=START, channel="taobao", customer="taobao:b1")
    )
    b = await stage.apply(
        record(
            "t2",
            "退款没到账",
            at=START + timedelta(hours=1),
            channel="taobao",
            customer="taobao:b2",
        )
    )
    assert a.customer.id != b.customer.id and b.dedupe.duplicate_of is None


# -- in the gateway -----------------------------------------------------------------------


async def post_wechat(
    client: httpx.AsyncClient, wechat: WeChatSender, clock: FrozenClock, msg_id: int, text: str
) -> httpx.Response:
    ts = int(clock.now().timestamp())
    push = wechat.push(wechat_text("oLinkTest", text, msg_id, ts), timestamp=ts, nonce=f"n{msg_id}")
    return await client.post("/webhooks/wechat", params=push.params, content=push.body)


async def test_a_store_report_and_a_wechat_message_about_one_order_reach_the_stream_linked(
    make_settings: Any,
    registry: Registry,
    clock: FrozenClock,
    sink: MemorySink,
    store: StoreSender,
    wechat: WeChatSender,
) -> None:
    settings = make_settings()
    body = store.body(
        {
            "submission_id": "SH0012-L-1",
            "store_id": "SH0012",
            "customer": {"phone": "13812345678"},
            "text": "订单 SH20261103-0093 的电水壶漏水，要求换新",
        }
    )
    async with running_gateway(settings, registry, clock=clock, sink=sink) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            headers = store.sign(body, int(clock.now().timestamp()))
            assert (
                await client.post("/webhooks/store", content=body, headers=headers)
            ).status_code == 200
            await sink.wait_for(1)
    # a restart between the two reports: the link index is rebuilt from the outbox
    clock.advance(5 * 3600)
    async with running_gateway(settings, registry, clock=clock, sink=sink) as gw:
        transport = httpx.ASGITransport(app=gw.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            answer = await post_wechat(
                client,
                wechat,
                clock,
                7001,
                "门店登记的水壶漏水问题，订单号SH20261103-0093，五个小时了没人联系",
            )
            assert answer.status_code == 200
            await sink.wait_for(2)
    first, second = sink.records[0], sink.records[1]
    assert second["dedupe"]["duplicate_of"] == first["record_id"]
    assert second["dedupe"]["reason"] == "同一订单号"
    assert second["priority"] in ("P1", "P2")
    assert any("重复投诉" in r for r in second["triage"]["reasons"]) or second["priority"] == "P1"


def test_the_triage_command_links_across_runs_with_a_state_file(tmp_path: Path) -> None:
    def line(message_id: str, at: str, text: str, **extra: Any) -> str:
        return json.dumps(
            {
                "received_at": at,
                "channel": "wechat",
                "customer": {"id": f"wechat:{message_id}"},
                "description": text,
                "source": {"connector": "wechat", "message_id": message_id},
                **extra,
            },
            ensure_ascii=False,
        )

    state = tmp_path / "state.sqlite3"
    first = cli(
        "triage",
        "--state",
        str(state),
        stdin=line("a", "2026-11-03T02:00:00Z", "订单3920118822017漏水") + "\n",
    )
    assert first.returncode == 0, first.stderr
    first_id = json.loads(first.stdout)["record_id"]
    second = cli(
        "triage",
        "--state",
        str(state),
        stdin=line("b", "2026-11-04T02:00:00Z", "3920118822017 还是漏水") + "\n",
    )
    assert json.loads(second.stdout)["dedupe"]["duplicate_of"] == first_id
    # without the state file the second run knows nothing of the first
    fresh = cli("triage", stdin=line("b", "2026-11-04T02:00:00Z", "3920118822017 还是漏水") + "\n")
    assert json.loads(fresh.stdout)["dedupe"]["duplicate_of"] is None
    # a resolved incident: the same order later is a new incident
    resolved = json.dumps(
        {
            "record_id": first_id,
            "node": "resolved",
            "occurred_at": "2026-11-05T00:00:00Z",
            "ticket_no": "T1",
        }
    )
    third = cli(
        "triage",
        "--state",
        str(state),
        stdin=resolved + "\n" + line("c", "2026-11-06T02:00:00Z", "3920118822017 把手断了") + "\n",
    )
    [out] = [json.loads(x) for x in third.stdout.splitlines()]
    assert out["dedupe"]["duplicate_of"] is None


async def test_the_embedded_index_keeps_fewer_reports_under_a_lookup_many_share() -> None:
    from dedupe.state import Entry

    index = MemoryLinkIndex(86_400, per_lookup=3, weak_per_lookup=2)
    for i in range(5):
        index.put(
            Entry(
                record_id=f"r{i}",
                root=f"r{i}",
                at=1000.0 + i,
                channel="wechat",
                kind="wechat",
                person=f"wechat:o{i}",
                category="other",
                lookups=("p:42", "h:7", f"o:{i}"),
            )
        )
    assert [e.record_id for e in await index.candidates(["p:42"], 0)] == ["r4", "r3", "r2"]
    assert [e.record_id for e in await index.candidates(["h:7"], 0)] == ["r4", "r3"]
    assert [e.record_id for e in await index.candidates(["o:0"], 0)] == ["r0"]
