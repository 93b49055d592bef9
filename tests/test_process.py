"""The gateway as a real server process: crashes, restarts and refusals over real HTTP.

These tests use the JSON Lines sink (``<data_dir>/complaints.jsonl``) as the
stream, so they need nothing but the gateway itself.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from connectors._imap import append_message
from schemas import record_id_for
from service.senders import StoreSender, asterisk_cdr_line
from tests.conftest import STORE_SECRET
from tests.imap_server import PASSWORD, USERNAME, DovecotServer, dovecot_server, dovecot_tls_files
from tests.process import (
    OPENID,
    GatewayProcess,
    acknowledged,
    gateway_process,
    make_gateway_process,
    send_wechat_complaints,
    wait_until,
    wechat_push,
    wechat_record_id,
)
from tests.test_polling_contract import complaint_mail

__all__ = [  # fixtures used below
    "dovecot_server",
    "dovecot_tls_files",
    "gateway_process",
    "make_gateway_process",
]

pytestmark = pytest.mark.process

STORE = StoreSender(STORE_SECRET)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 if absent."""
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.split("{")[0] == name and dict(re.findall(r'(\w+)="([^"]*)"', sample)) == labels:
            return float(value)
    return 0.0


def published_ids(process: GatewayProcess) -> Counter[str]:
    return Counter(record["record_id"] for record in process.published())


def store_request(submission: dict[str, object] | bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of a store complaint signed now, as the store app does."""
    body = submission if isinstance(submission, bytes) else STORE.body(submission)
    return STORE.sign(body, int(time.time())), body


@pytest.fixture
def client(gateway_process: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_process.base_url, timeout=10.0) as c:
        yield c


def assert_same_copies(process: GatewayProcess) -> None:
    """At least once: a record may appear twice after a crash, but only as the same record."""
    copies: dict[str, set[str]] = {}
    for line in process.stream_lines():
        record_id = re.search(rb'"record_id":"([^"]+)"', line)
        assert record_id, line
        copies.setdefault(record_id.group(1).decode(), set()).add(line.decode())
    assert all(len(versions) == 1 for versions in copies.values()), copies


# -- crashes ------------------------------------------------------------------------------


def test_every_acknowledged_complaint_survives_kill_9(
    gateway_process: GatewayProcess,
) -> None:
    total = 200
    msg_ids = range(810_000_000, 810_000_000 + total)

    def crash(acks: int) -> None:
        if acks == total // 3 and gateway_process.running:
            gateway_process.kill()

    outcomes = asyncio.run(
        send_wechat_complaints(gateway_process.base_url, msg_ids, after_answer=crash)
    )
    acked = acknowledged(outcomes)
    assert len(acked) >= total // 3
    assert not gateway_process.running

    gateway_process.start()
    wait_until(
        lambda: acked <= set(published_ids(gateway_process)),
        20,
        "every acknowledged record is in the stream after the restart",
    )

    # WeChat resends whatever got no answer; afterwards every complaint is in the stream.
    retried = asyncio.run(send_wechat_complaints(gateway_process.base_url, msg_ids))
    assert set(retried.values()) == {"ack"}
    everything = {wechat_record_id(m) for m in msg_ids}
    wait_until(
        lambda: set(published_ids(gateway_process)) == everything,
        20,
        "every complaint is in the stream once the unanswered ones were resent",
    )
    assert_same_copies(gateway_process)
    records = {r["record_id"]: r for r in gateway_process.published()}
    assert records[wechat_record_id(810_000_007)]["description"] == "投诉 #810000007：热水器漏水"


@pytest.fixture
def blocked_stream(
    make_gateway_process: Callable[..., GatewayProcess], tmp_path: Path
) -> GatewayProcess:
    """A gateway whose JSON Lines directory is a plain file: the sink fails until it is fixed."""
    stream = tmp_path / "stream"
    process = make_gateway_process(
        start=False, GATEWAY_JSONL__PATH=str(stream / "complaints.jsonl")
    )
    stream.write_text("not a directory")
    process.start()
    return process


def unblock(process: GatewayProcess) -> None:
    process.jsonl_path.parent.unlink()
    process.jsonl_path.parent.mkdir()


def test_unpublished_records_survive_a_clean_restart(blocked_stream: GatewayProcess) -> None:
    gateway = blocked_stream
    msg_ids = range(820_000_000, 820_000_020)
    outcomes = asyncio.run(send_wechat_complaints(gateway.base_url, msg_ids))
    assert set(outcomes.values()) == {"ack"}
    with httpx.Client(base_url=gateway.base_url) as client:
        wait_until(
            lambda: metric(client.get("/metrics").text, "gateway_publish_failures_total") >= 1,
            10,
            "the publisher has failed to write the stream",
        )
        assert metric(client.get("/metrics").text, "gateway_outbox_depth") == 20

    gateway.stop()
    rows = gateway.outbox_rows()
    assert set(rows) == {wechat_record_id(m) for m in msg_ids}
    assert set(rows.values()) == {None}, "nothing could have been sent"

    unblock(gateway)
    gateway.start()
    wait_until(lambda: len(gateway.published()) >= 20, 20, "the outbox is drained")

    # A late WeChat retry of an old message is answered but not published again; a new
    # complaint is. The stream is in outbox order, so once the new one is there, any
    # republished copy would be there too.
    with httpx.Client(base_url=gateway.base_url) as client:
        for push in (wechat_push(820_000_003), wechat_push(820_000_999)):
            response = client.post("/webhooks/wechat", params=push.params, content=push.body)
            assert (response.status_code, response.text) == (200, "success")
    wait_until(
        lambda: wechat_record_id(820_000_999) in published_ids(gateway),
        10,
        "the complaint sent after the restart is published",
    )

    # A second clean restart publishes nothing again.
    gateway.restart()
    with httpx.Client(base_url=gateway.base_url) as client:
        push = wechat_push(820_001_000)
        assert (
            client.post("/webhooks/wechat", params=push.params, content=push.body).status_code
            == 200
        )
    wait_until(
        lambda: wechat_record_id(820_001_000) in published_ids(gateway),
        10,
        "the complaint sent after the second restart is published",
    )
    expected = {wechat_record_id(m) for m in [*msg_ids, 820_000_999, 820_001_000]}
    assert published_ids(gateway) == Counter(expected)
    wait_until(
        lambda: None not in gateway.outbox_rows().values(),
        10,
        "the outbox knows every record was sent",
    )


def test_sigterm_publishes_what_is_pending_when_the_sink_is_back(
    blocked_stream: GatewayProcess,
) -> None:
    gateway = blocked_stream
    msg_ids = range(830_000_000, 830_000_005)
    assert set(asyncio.run(send_wechat_complaints(gateway.base_url, msg_ids)).values()) == {"ack"}
    with httpx.Client(base_url=gateway.base_url) as client:
        # After five failures the publisher backs off for 3.2 s or more: only the drain
        # on shutdown can publish before the process exits.
        wait_until(
            lambda: metric(client.get("/metrics").text, "gateway_publish_failures_total") >= 5,
            20,
            "the publisher has backed off",
        )
    unblock(gateway)
    assert gateway.stop() == 0
    assert set(published_ids(gateway)) == {wechat_record_id(m) for m in msg_ids}
    assert None not in gateway.outbox_rows().values()


# -- the HTTP surface of the real server --------------------------------------------------


def test_wechat_retry_triple_gives_one_record(
    gateway_process: GatewayProcess,
    client: httpx.Client,
) -> None:
    push = wechat_push(840_000_001, "空调不制冷，第三次报修了")
    for attempt in range(4):  # the first delivery and WeChat's three retries
        response = client.post("/webhooks/wechat", params=push.params, content=push.body)
        assert (response.status_code, response.text) == (200, "success"), attempt
    # Same customer, sent afterwards: once it is in the stream, any copy would be too.
    later = wechat_push(840_000_002, "还有遥控器也坏了")
    response = client.post("/webhooks/wechat", params=later.params, content=later.body)
    assert (response.status_code, response.text) == (200, "success")
    wait_until(
        lambda: wechat_record_id(840_000_002) in published_ids(gateway_process),
        10,
        "the later complaint is published",
    )
    assert published_ids(gateway_process) == Counter(
        {wechat_record_id(840_000_001): 1, wechat_record_id(840_000_002): 1}
    )
    first = gateway_process.published()[0]
    assert first["description"] == "空调不制冷，第三次报修了"
    assert first["customer"]["id"] == f"wechat:{OPENID}"
    metrics = client.get("/metrics").text
    assert metric(metrics, "gateway_duplicates_total", connector="wechat") == 3


def test_refusals_through_the_real_server(
    make_gateway_process: Callable[..., GatewayProcess],
) -> None:
    gateway = make_gateway_process(GATEWAY_HTTP__MAX_BODY_BYTES="4096")
    with httpx.Client(base_url=gateway.base_url, timeout=10.0) as client:
        push = wechat_push(850_000_001)

        def wechat(params: dict[str, str]) -> httpx.Response:
            return client.post("/webhooks/wechat", params=params, content=push.body)

        def store(headers: dict[str, str], body: bytes) -> httpx.Response:
            return client.post("/webhooks/store", headers=headers, content=body)

        def refused(response: httpx.Response) -> tuple[int, str]:
            return response.status_code, response.json()["reason"]

        assert refused(wechat(push.params | {"signature": "0" * 40})) == (403, "bad_signature")
        unsigned = {k: v for k, v in push.params.items() if k != "signature"}
        assert refused(wechat(unsigned)) == (401, "missing_signature")

        headers, body = store_request({"submission_id": "SH0012-1", "text": "漏水"})
        stale = STORE.sign(body, int(time.time()) - 3600)
        assert refused(store(stale, body)) == (403, "stale_timestamp")
        tampered = body.replace("漏水".encode(), "没事".encode())
        assert refused(store(headers, tampered)) == (403, "bad_signature")

        malformed = b'{"submission_id": "SH0012-2", "text": "\xe6\xbc\x8f'
        response = store(*store_request(malformed))
        assert refused(response) == (400, "invalid_json")
        quarantine_id = response.json()["quarantine_id"]

        big = {"submission_id": "SH0012-3", "text": "很长的投诉" * 400}
        assert refused(store(*store_request(big))) == (413, "body_too_large")
        chunked = client.post(
            "/webhooks/store", headers=store_request(b"")[0], content=iter([b"x" * 1024] * 8)
        )
        assert refused(chunked) == (413, "body_too_large")

        response = client.post("/webhooks/weibo", content=b"{}")
        assert refused(response) == (404, "unknown_channel")

        # Still serving: a good store complaint and a good WeChat message are taken in.
        submission = {
            "submission_id": "SH0012-20261123-0042",
            "store_id": "SH0012",
            "customer": {"phone": "13812345678"},
            "text": "电饭煲内胆掉漆",
        }
        response = store(*store_request(submission))
        store_id = record_id_for("store", "SH0012:SH0012-20261123-0042")
        assert response.status_code == 200
        assert response.json() == {"status": "accepted", "record_id": store_id}
        assert wechat(push.params).text == "success"
        metrics = client.get("/metrics").text

    wait_until(lambda: len(gateway.published()) >= 2, 10, "the good complaints are published")
    assert published_ids(gateway) == Counter({store_id: 1, wechat_record_id(850_000_001): 1})
    assert (
        metric(
            metrics, "gateway_webhooks_refused_total", connector="store", reason="body_too_large"
        )
        == 2
    )
    assert (
        metric(
            metrics, "gateway_payloads_quarantined_total", connector="store", reason="invalid_json"
        )
        == 1
    )

    listing = gateway.cli("quarantine")
    assert listing.returncode == 0, listing.stderr
    assert f"#{quarantine_id} " in listing.stdout
    assert "store invalid_json" in listing.stdout
    assert "SH0012-2" in listing.stdout  # the body is kept verbatim
    assert gateway.running


# -- pollers ------------------------------------------------------------------------------


def write_cdrs(path: Path, first: int, count: int) -> list[str]:
    """Append ``count`` complaint calls to an Asterisk Master.csv; their uniqueids."""
    ids = []
    with path.open("ab") as log:
        for n in range(first, first + count):
            uniqueid = f"1763863200.{n}"
            ids.append(uniqueid)
            log.write(
                asterisk_cdr_line(
                    src=f"138{n % 100_000_000:08d}",
                    dst="4008123123",
                    start="2026-11-23 10:00:00",
                    answer="2026-11-23 10:00:04",
                    billsec=60 + n % 300,
                    uniqueid=uniqueid,
                    userfield=f"第{n}号来电：热水器漏水，要求上门维修",
                )
            )
    return ids


def test_a_poller_killed_mid_file_loses_nothing_and_repeats_nothing(
    make_gateway_process: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    master = tmp_path / "cdr-csv" / "Master.csv"
    master.parent.mkdir()
    ids = write_cdrs(master, 0, 3000)
    process = make_gateway_process(
        GATEWAY_CONNECTORS__ASTERISK_CSV__PATH=str(master),
        GATEWAY_CONNECTORS__ASTERISK_CSV__INTERVAL_SECONDS="0.2",
        GATEWAY_CONNECTORS__ASTERISK_CSV__MAX_BYTES="20000",
    )
    wait_until(lambda: len(process.stream_lines()) >= 300, 30, "the poller is part-way through")
    process.kill()
    taken_before = len(process.outbox_rows())
    assert 0 < taken_before < len(ids), "the kill should land in the middle of the file"

    ids += write_cdrs(master, 3000, 500)  # calls logged while the gateway was down
    process.start()
    expected = {record_id_for("asterisk_csv", uniqueid) for uniqueid in ids}
    wait_until(lambda: set(published_ids(process)) == expected, 60, "every call is in the stream")
    rows = process.outbox_rows()
    assert len(rows) == len(ids) and set(rows) == expected  # one row per call, none twice
    assert_same_copies(process)
    channels = httpx.get(f"{process.base_url}/channels", timeout=5).json()
    assert channels["asterisk_csv"]["kind"] == "poller"
    assert channels["asterisk_csv"]["cursor"].endswith(f":{master.stat().st_size}")
    assert process.stop() == 0, "SIGTERM stops the poller and the server cleanly"


@pytest.mark.imap
def test_the_imap_poller_killed_mid_mailbox_loses_nothing_and_repeats_nothing(
    make_gateway_process: Callable[..., GatewayProcess], dovecot_server: DovecotServer
) -> None:
    account = dovecot_server.account("plain")
    total = 600
    for n in range(total):
        append_message(account, "INBOX", complaint_mail(f"第{n}封投诉邮件", 10_000 + n))
    process = make_gateway_process(
        GATEWAY_CONNECTORS__IMAP__HOST="127.0.0.1",
        GATEWAY_CONNECTORS__IMAP__PORT=str(dovecot_server.port),
        GATEWAY_CONNECTORS__IMAP__SECURITY="plain",
        GATEWAY_CONNECTORS__IMAP__USERNAME=USERNAME,
        GATEWAY_CONNECTORS__IMAP__PASSWORD=PASSWORD,
        GATEWAY_CONNECTORS__IMAP__BATCH="25",
        GATEWAY_CONNECTORS__IMAP__INTERVAL_SECONDS="0.2",
    )
    wait_until(lambda: len(process.outbox_rows()) >= 50, 30, "the poller is part-way through")
    process.kill()
    assert 0 < len(process.outbox_rows()) < total, "the kill should land mid-mailbox"

    for n in range(total, total + 50):  # delivered while the gateway was down
        append_message(account, "INBOX", complaint_mail(f"第{n}封投诉邮件", 10_000 + n))
    process.start()
    wait_until(
        lambda: len(set(published_ids(process))) == total + 50, 60, "every mail is in the stream"
    )
    rows = process.outbox_rows()
    assert len(rows) == total + 50  # one record per mail, none twice
    descriptions = sorted(r["description"] for r in process.published())
    assert len(set(descriptions)) == total + 50
    assert_same_copies(process)
    assert process.stop() == 0
