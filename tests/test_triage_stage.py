"""Triage in the pipeline and on the command line: what a complaint desk sees in the stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway import Gateway
from schemas import record_id_for
from service.senders import StoreSender
from tests.fakes import FrozenClock, MemorySink

GATEWAY = [sys.executable, str(Path(__file__).parent.parent / "gateway.py")]


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [*GATEWAY, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


async def test_a_store_complaint_reaches_the_stream_labelled_with_its_reasons(
    client: httpx.AsyncClient,
    store: StoreSender,
    clock: FrozenClock,
    gateway: Gateway,
    sink: MemorySink,
) -> None:
    body = store.body(
        {
            "submission_id": "SH0012-T-1",
            "store_id": "SH0012",
            "customer": {"phone": "13812345678"},
            "text": "电水壶用了两天插座烧黑了还冒烟，要求退货退款",
        }
    )
    answer = await client.post(
        "/webhooks/store", content=body, headers=store.sign(body, int(clock.now().timestamp()))
    )
    assert answer.status_code == 200
    await sink.wait_for(1)
    [record] = sink.records
    assert record["schema_version"] == "1.1"
    assert record["priority"] == "P1"
    assert {"refund", "return"} <= set(record["expectations"])
    assert record["category"]["code"] == "product.malfunction"
    reasons = record["triage"]["reasons"]
    assert any(r.startswith("P1") for r in reasons) and record["triage"]["ruleset_version"]


def test_the_triage_command_labels_records_and_explains_why(tmp_path: Path) -> None:
    lines = [
        {
            "received_at": "2026-11-30T02:00:00Z",
            "channel": "phone",
            "customer": {"id": "tel:+8613812345678"},
            "description": "你们的热水器漏电了我孩子差点被电到必须给个说法",
            "source": {"connector": "asterisk_csv", "message_id": "call-1"},
        },
        {"channel": "wechat", "description": "no received_at"},
        {
            "received_at": "2026-11-30T02:01:00Z",
            "channel": "wechat",
            "customer": {"id": "wechat:oX"},
            "description": "建议你们的app加一个夜间模式，小问题不影响使用",
            "source": {"connector": "wechat", "message_id": "m2"},
        },
    ]
    stdin = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n"
    started = time.monotonic()
    result = cli("triage", "--explain", stdin=stdin)
    assert time.monotonic() - started < 60
    assert result.returncode == 1  # one bad line
    assert "line 2:" in result.stderr and "received_at" in result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["record_id"] for r in out] == [
        record_id_for("asterisk_csv", "call-1"),
        record_id_for("wechat", "m2"),
    ]
    assert out[0]["priority"] == "P1" and {"explanation", "apology"} <= set(out[0]["expectations"])
    assert out[1]["priority"] == "P4" and out[1]["expectations"] == ["improvement"]
    assert "Triage" in result.stderr and "P1" in result.stderr  # the --explain table


def test_a_rules_file_with_mistakes_is_refused_with_every_problem(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('version = "broken"\n[[nonsense]]\nx = "(unclosed"\n', encoding="utf-8")
    result = cli("triage", "--rules", str(rules), stdin="")
    assert result.returncode == 2
    assert "triage rules:" in result.stderr
