"""The HTTP surface: ``/webhooks/{channel}``, ``/healthz``, ``/readyz``, ``/metrics``.

Every refusal is answered with a JSON body ``{"error": ..., "reason": ...}``
and counted in ``gateway_webhooks_refused{channel,reason}``:

====  ==========================================================
401   signature or timestamp missing
403   signature wrong, timestamp stale, message for another app
400   authenticated but unreadable: the body is quarantined
404   no such channel, or the channel is not enabled
408   the body did not arrive within ``body_timeout_seconds``
413   the body is larger than ``max_body_bytes``
422   readable but not mappable: the body is quarantined
503   the outbox could not take the record: the platform retries
====  ==========================================================
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.base import WebhookConnector, WebhookRequest
from connectors.errors import (
    GatewayError,
    InvalidSignature,
    MalformedPayload,
    OutboxUnavailable,
    PayloadError,
    SinkUnavailable,
)
from outbox.sinks import Sink
from outbox.sqlite import SQLiteOutbox
from service.clock import Clock
from service.intake import Intake
from service.metrics import CONTENT_TYPE, GatewayMetrics
from service.settings import HttpSettings

log = logging.getLogger(__name__)

#: Headers worth keeping with a quarantined body; others (cookies, auth) are dropped.
_KEPT_HEADERS = ("content-type", "content-length", "user-agent")


class _BodyTooLarge(Exception):
    pass


@dataclass
class WebhookServer:
    connectors: Mapping[str, WebhookConnector]
    intake: Intake
    outbox: SQLiteOutbox
    sink: Sink
    metrics: GatewayMetrics
    clock: Clock
    settings: HttpSettings

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/webhooks/{channel}", self.webhook, methods=["GET", "POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            ]
        )

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            raise _BodyTooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse(self, channel: str, status: int, reason: str, message: str) -> JSONResponse:
        self.metrics.refused.labels(channel, reason).inc()
        return JSONResponse({"error": message, "reason": reason}, status_code=status)

    async def _quarantine(
        self, channel: str, error: PayloadError, request: Request, body: bytes
    ) -> JSONResponse:
        headers = {k: v for k, v in request.headers.items() if k in _KEPT_HEADERS}
        if request.url.query:
            headers["query"] = request.url.query
        try:
            quarantine_id = await self.outbox.quarantine(
                channel=channel,
                reason=error.reason,
                detail=str(error),
                headers=headers,
                body=body,
                at=self.clock.now(),
            )
        except OutboxUnavailable:  # cannot keep it: make the sender try again later
            return self._refuse(channel, 503, "outbox_unavailable", "try again later")
        self.metrics.quarantined.labels(channel, error.reason).inc()
        self.metrics.refused.labels(channel, error.reason).inc()
        log.warning("quarantined %s payload #%d: %s", channel, quarantine_id, error)
        return JSONResponse(
            {"error": str(error), "reason": error.reason, "quarantine_id": quarantine_id},
            status_code=error.status,
        )

    async def webhook(self, request: Request) -> Response:
        channel = request.path_params["channel"]
        connector = self.connectors.get(channel)
        if connector is None:
            return self._refuse("unknown", 404, "unknown_channel", "no such channel")
        self.metrics.received.labels(channel).inc()
        try:
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                body = await self._read_body(request)
        except _BodyTooLarge:
            return self._refuse(
                channel,
                413,
                "body_too_large",
                f"body exceeds {self.settings.max_body_bytes} bytes",
            )
        except TimeoutError:
            return self._refuse(channel, 408, "body_timeout", "body not received in time")
        wreq = WebhookRequest(
            method=request.method,
            query=dict(request.query_params),
            headers=dict(request.headers),
            body=body,
            received_at=self.clock.now(),
        )
        try:
            reply = await connector.handle(wreq)
            if reply.answer is not None:
                answer = reply.answer
            else:
                outcomes = await self.intake.accept(reply.events)
                answer = connector.acknowledge(outcomes)
        except InvalidSignature as exc:
            log.info("refused %s webhook: %s", channel, exc.reason)
            return self._refuse(channel, exc.status, exc.reason, str(exc))
        except PayloadError as exc:
            return await self._quarantine(channel, exc, request, body)
        except OutboxUnavailable as exc:
            log.error("outbox unavailable, answering 503: %s", exc)
            return self._refuse(channel, 503, "outbox_unavailable", "try again later")
        except GatewayError as exc:
            log.exception("unexpected gateway error on %s webhook", channel)
            return self._refuse(channel, 500, "internal_error", type(exc).__name__)
        except Exception as exc:  # a connector bug: keep the body, tell the sender
            log.exception("connector %s failed", channel)
            error = MalformedPayload(
                f"cannot read this payload ({type(exc).__name__})", "connector_error"
            )
            return await self._quarantine(channel, error, request, body)
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self, request: Request) -> Response:
        problems: dict[str, str] = {}
        try:
            async with asyncio.timeout(5):
                await self.outbox.check_writable()
        except (OutboxUnavailable, TimeoutError) as exc:
            problems["outbox"] = str(exc) or "timed out"
        try:
            await self.sink.ping()
        except SinkUnavailable as exc:
            problems[self.sink.name] = str(exc)
        if problems:
            return JSONResponse({"ready": False, "problems": problems}, status_code=503)
        return JSONResponse({"ready": True, "outbox_depth": self.outbox.pending})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)
