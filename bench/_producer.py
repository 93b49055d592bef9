"""(a) the raw producer: what one bare aiokafka producer pushes into the run's broker.

    python -m bench._producer --bootstrap HOST:PORT --topic T --messages N [--rounds R]

Keyed 500-byte JSON values (acks=all, idempotence off, linger 5 ms like the
gateway), sent in batches of 500 whose futures are gathered, exactly as the
gateway's Kafka sink publishes a batch. Run as a child process
(:mod:`bench._child`); the median round is reported, with every round's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench._child import emit, run_loop
from bench._cpu import process_cpu_seconds, self_cpu
from bench._report import median_run
from bench._traffic import CUSTOMERS


def _json_value(i: int, size: int) -> bytes:
    base = {"record_id": f"bench-{i:012d}", "channel": "wechat", "seq": i, "text": ""}
    empty = len(json.dumps(base, separators=(",", ":")).encode())
    base["text"] = "x" * max(0, size - empty)
    return json.dumps(base, separators=(",", ":")).encode()


async def produce(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap,
        client_id="bench-raw",
        acks="all",
        enable_idempotence=False,
        linger_ms=args.linger_ms,
        request_timeout_ms=15_000,
    )
    await asyncio.wait_for(producer.start(), 30)
    try:
        total = args.warmup + args.messages
        values = [_json_value(i, args.value_bytes) for i in range(total)]
        keys = [f"wechat:oBench{i % CUSTOMERS:06d}".encode() for i in range(total)]

        async def send(start: int, stop: int) -> None:
            for first in range(start, stop, args.batch):
                last = min(stop, first + args.batch)
                futures = [
                    await producer.send(args.topic, value=values[j], key=keys[j])
                    for j in range(first, last)
                ]
                await asyncio.wait_for(asyncio.gather(*futures), 30)

        await asyncio.wait_for(send(0, args.warmup), 60)
        rounds = []
        for _ in range(args.rounds):  # the same values each round: a steady state
            cpu0, t0 = self_cpu(), time.perf_counter()
            broker0 = process_cpu_seconds(args.broker_pid) if args.broker_pid else None
            await asyncio.wait_for(send(args.warmup, total), args.timeout)
            elapsed = time.perf_counter() - t0
            broker1 = process_cpu_seconds(args.broker_pid) if args.broker_pid else None
            rounds.append(
                {
                    "messages": args.messages,
                    "value_bytes": len(values[-1]),
                    "seconds": elapsed,
                    "rate": args.messages / elapsed,
                    "producer_cpu": (self_cpu() - cpu0) / elapsed,
                    "broker_cpu": (
                        (broker1 - broker0) / elapsed if broker0 is not None and broker1 else None
                    ),
                }
            )
        return {**median_run(rounds), "rates": [r["rate"] for r in rounds]}
    finally:
        await asyncio.wait_for(producer.stop(), 15)


def main() -> None:
    parser = argparse.ArgumentParser(description="raw producer child (see bench/_producer.py)")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--value-bytes", type=int, default=500)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--broker-pid", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300)
    emit(run_loop(produce(parser.parse_args())))


if __name__ == "__main__":
    main()
