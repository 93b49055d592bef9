"""The command line as a user runs it: demo, replay, quarantine."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import gateway
from outbox.sqlite import SQLiteOutbox
from service.dovecot import DOVECOT

GATEWAY = [sys.executable, gateway.__file__]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return base | {"COLUMNS": "200"} | extra


def test_demo_runs_the_real_gateway_and_reports_what_happened(tmp_path: Path) -> None:
    result = subprocess.run(
        [*GATEWAY, "demo", "--data-dir", str(tmp_path)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("Requests sent", "Normalized stream", "What the gateway counted", "Connectors"):
        assert heading in out
    records = [
        json.loads(line) for line in (tmp_path / "complaints.jsonl").read_text("utf-8").splitlines()
    ]
    # wechat 4, store 5, phone 5 (Master.csv 2 of 3 lines, FreeSWITCH 1, TCCC call and
    # recording), email 2 by the relay (the auto-reply is not a complaint), and with
    # Dovecot installed 1 by IMAP (its bounce is not a complaint either); from the fake
    # platforms: taobao 3 (two refunds, one bad rating), jd 1, pinduoduo 1, weibo 2 polled
    # and 1 private message, douyin_shop 1 (its verification push is not a complaint)
    with_imap = Path(DOVECOT).exists()
    expected = (17 if with_imap else 16) + 9
    assert len(records) == expected
    assert {r["channel"] for r in records} == {
        "wechat",
        "store",
        "phone",
        "email",
        "weibo",
        "taobao",
        "jd",
        "pinduoduo",
        "douyin_shop",
    }
    assert len({r["record_id"] for r in records}) == expected  # retries and resends dropped
    by_connector = {r["source"]["connector"] for r in records}
    assert by_connector == {
        "wechat",
        "store",
        "asterisk_csv",
        "freeswitch",
        "tccc",
        "email_mime",
        "taobao",
        "jd",
        "pinduoduo",
        "weibo",
        "weibo_dm",
        "douyin_shop",
    } | ({"imap"} if with_imap else set())
    assert "FAKE platform servers" in out  # the demo says the platforms are stand-ins
    for reason in (
        "bad_signature",
        "missing_signature",
        "stale_timestamp",
        "invalid_json",
        "body_too_large",
        "unknown_channel",
    ):
        assert reason in out
    # WeChat's 3 retries, the store's, FreeSWITCH's, the mail relay's, Weibo's and 抖店's resends
    assert out.count("duplicate: not published again") == 8
    assert out.count("refused, body quarantined") == 1
    assert "13812345678" not in out  # phone numbers are masked in what is shown

    # linking: the store visit about the WeChat complaint's order repeats it, across channels;
    # the third customer with the leaking kettle makes a batch signal
    [wechat_first] = [r for r in records if "882133440917" in r["description"]]
    [visit] = [r for r in records if "8821 3344 0917" in r["description"]]
    assert visit["dedupe"]["duplicate_of"] == wechat_first["record_id"]
    assert visit["dedupe"]["reason"] == "同一订单号" and visit["priority"] in ("P1", "P2")
    kettles = [r for r in records if r["product"]["sku"] == "KTL-2201"]
    assert [k["dedupe"]["batch"] is not None for k in kettles] == [False, False, True]
    assert kettles[2]["priority"] == "P1" and "批量问题" in kettles[2]["triage"]["reasons"][0]
    assert "batch " in out and "repeats " in out

    # Weibo: the verified account with 1.23 million followers is a public-opinion risk (P1)
    [loud] = [
        r for r in records if r["source"]["connector"] == "weibo" and "避雷" in r["description"]
    ]
    assert loud["priority"] == "P1"
    assert any("舆情风险：大号发声" in reason for reason in loud["triage"]["reasons"])
    # Taobao: the refund the buyer took to the platform's customer service is at least P2
    [escalated] = [r for r in records if r["channel_detail"].startswith("【平台介入】")]
    assert escalated["priority"] in ("P1", "P2")
    assert any("差评" in r["channel_detail"] for r in records if r["channel"] == "taobao")

    # the journey: five posted nodes and the survey the gateway sent by itself
    assert "One complaint's journey" in out
    for text in (
        "您的反馈我们已收到",
        "已由专属客服跟进处理",
        "处理方案已确定",
        "非常抱歉让您久等了",
    ):
        assert text in out
    assert "already queued (1)" in out and " 409 " in out
    assert "WeChat template" in out and "诚邀您为本次服务评分" in out
    outcomes = [
        json.loads(line)
        for line in (tmp_path / "notifications.jsonl").read_text("utf-8").splitlines()
    ]
    sent = [o for o in outcomes if o["status"] == "sent" and o["channel"] != "weibo"]
    # the Weibo private message is answered on Weibo, inside the fans-service window
    assert "Weibo private reply: 尊敬的客户，您的反馈我们已收到" in out
    [on_weibo] = [o for o in outcomes if o["status"] == "sent" and o["channel"] == "weibo"]
    assert on_weibo["node"] == "accepted" and on_weibo["provider_message_id"]
    assert [o["node"] for o in sent] == [
        "accepted",
        "in_progress",
        "solution_proposed",
        "overdue_warning",
        "resolved",
        "survey",
    ]
    assert all(o["channel"] == "wechat" and o["provider_message_id"] for o in sent)


def test_replay_republishes_by_id_and_by_time(tmp_path: Path) -> None:
    subprocess.run(
        [*GATEWAY, "demo", "--data-dir", str(tmp_path)],
        env=env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    stream = tmp_path / "complaints.jsonl"
    first = json.loads(stream.read_text("utf-8").splitlines()[0])
    published = len(stream.read_text("utf-8").splitlines())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*GATEWAY, *args],
            env=env(GATEWAY_DATA_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
        )

    dry = cli("replay", "--record-id", first["record_id"], "--dry-run")
    assert dry.returncode == 0 and "would re-publish 1 record" in dry.stdout
    assert len(stream.read_text("utf-8").splitlines()) == published

    by_id = cli("replay", "--record-id", first["record_id"])
    assert by_id.returncode == 0, by_id.stderr
    lines = stream.read_text("utf-8").splitlines()
    assert len(lines) == published + 1 and json.loads(lines[-1]) == first

    by_time = cli("replay", "--since", "2000-01-01T00:00:00Z")
    assert f"re-published {published} record(s)" in by_time.stdout
    assert len(stream.read_text("utf-8").splitlines()) == 2 * published + 1

    unknown = cli("replay", "--record-id", "no-such-id")
    assert unknown.returncode == 1 and "not in the outbox: no-such-id" in unknown.stderr

    assert "store invalid_json" in cli("quarantine").stdout


async def quarantine(data_dir: Path, body: bytes) -> None:
    outbox = await SQLiteOutbox.open(data_dir / "outbox.sqlite3")
    try:
        await outbox.quarantine(
            channel="store",
            reason="invalid_json",
            detail="body is not JSON",
            headers={},
            body=body,
            at=datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
        )
    finally:
        await outbox.aclose()


def test_quarantine_masks_customer_data_unless_asked_for_raw(tmp_path: Path) -> None:
    body = (
        '{"openid": "oyORnuP8q7ou2gfYjqLzSIWZf0rs", "customer": {"phone": "13812345678", '
        '"id": "member:110101198801011234:a", "alt": "１３９００１１２２３３"'
    ).encode()
    asyncio.run(quarantine(tmp_path, body))

    def cli(*args: str) -> str:
        result = subprocess.run(
            [*GATEWAY, "quarantine", *args],
            env=env(GATEWAY_DATA_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    masked = cli()
    assert "store invalid_json" in masked and f"{len(body)} bytes" in masked
    for secret in (
        "13812345678",
        "１３９００１１２２３３",
        "110101198801011234",
        "nuP8q7ou2gfYjqLz",
    ):
        assert secret not in masked
    assert "138****5678" in masked and "oyOR…f0rs" in masked

    raw = cli("--raw")
    assert "13812345678" in raw and "oyORnuP8q7ou2gfYjqLzSIWZf0rs" in raw
