"""The HTTP surface: ``/webhooks/{channel}``, ``/healthz``, ``/readyz``, ``/metrics``,
``/channels``, and ``POST /status`` when notifications run (:mod:`service.status_http`).

Every refusal is answered with a JSON body ``{"error": ..., "reason": ...}``
and counted in ``gateway_webhooks_refused{channel,reason}``:

====  ==========================================================
401   signature or timestamp missing: nothing kept
403   signature wrong, timestamp bad or stale, replay, message for another app: nothing kept
400   authenticated but unreadable: the body is quarantined (without the query's
      signatures, nonces and timestamps); or refused before authentication: nothing kept
404   no such channel, or the channel is not enabled
405   a method the channel does not use: nothing kept
408   the body did not arrive within ``body_timeout_seconds``
413   the body is larger than ``max_body_bytes``
422   readable but not mappable: the body is quarantined
503   the outbox could not take the record, or the shared dedupe state (Redis) is
      out of reach: the platform retries
====  ==========================================================

Webhooks are the hot path (every complaint passes here, and WeChat wants an
answer within 5 s), so they are served as a plain ASGI callable; the
operational routes go through Starlette.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.base import WebhookAnswer, WebhookConnector, WebhookRequest
from connectors.errors import (
    GatewayError,
    MalformedPayload,
    OutboxUnavailable,
    PayloadError,
    RequestRefused,
    SinkUnavailable,
    StateUnavailable,
)
from outbox.sinks import Sink
from outbox.sqlite import SQLiteOutbox
from service.board import ConnectorBoard
from service.clock import Clock
from service.intake import Intake
from service.metrics import CONTENT_TYPE, GatewayMetrics
from service.settings import HttpSettings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WEBHOOK_PREFIX = "/webhooks/"
#: Headers worth keeping with a quarantined body; others (cookies, auth) are dropped.
_KEPT_HEADERS = ("content-type", "content-length", "user-agent")
_JSON = "application/json"


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _json_answer(status: int, **fields: Any) -> WebhookAnswer:
    return WebhookAnswer(status, json.dumps(fields, ensure_ascii=False).encode(), _JSON)


@dataclass
class WebhookServer:
    connectors: Mapping[str, WebhookConnector]
    intake: Intake
    outbox: SQLiteOutbox
    sink: Sink
    metrics: GatewayMetrics
    clock: Clock
    settings: HttpSettings
    board: ConnectorBoard
    status: Callable[[Request], Awaitable[Response]] | None = None
    #: raises StateUnavailable when the shared dedupe/linking state is out of reach
    state_check: Callable[[], Awaitable[None]] | None = None

    def app(self) -> ASGIApp:
        extra = [Route("/status", self.status, methods=["POST"])] if self.status else []
        operations = Starlette(
            routes=[
                *extra,
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Route("/metrics", self.metrics_endpoint, methods=["GET"]),
                Route("/channels", self.channels, methods=["GET"]),
            ]
        )

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith(WEBHOOK_PREFIX):
                await self._serve_webhook(scope, receive, send)
            else:
                await operations(scope, receive, send)

        return app

    # -- webhooks -------------------------------------------------------------------

    async def _serve_webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            answer = await self.webhook(
                scope["path"][len(WEBHOOK_PREFIX) :],
                scope["method"],
                scope.get("query_string", b"").decode("latin-1"),
                headers,
                receive,
            )
        except _Disconnected:
            return
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.media_type.encode()),
                    (b"content-length", str(len(answer.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _refuse(self, channel: str, status: int, reason: str, message: str) -> WebhookAnswer:
        self.metrics.refused.labels(channel, self.metrics.reason(reason)).inc()
        state = self.board.get(channel)
        if state is not None and status >= 500:  # a stranger's 4xx must not hide real failures
            state.failed(self.clock.now(), (f"refused {status} {reason}", message))
        return _json_answer(status, error=message, reason=reason)

    async def _quarantine(
        self,
        connector: WebhookConnector,
        error: PayloadError,
        request: WebhookRequest,
    ) -> WebhookAnswer:
        channel = connector.name
        kept = {k: v for k, v in request.headers.items() if k in _KEPT_HEADERS}
        query = urlencode(
            [(k, v) for k, v in request.query.items() if k not in connector.credential_params]
        )
        if query:
            kept["query"] = query
        body = request.body
        try:
            quarantine_id = await self.outbox.quarantine(
                channel=channel,
                reason=error.reason,
                detail=str(error),
                headers=kept,
                body=body,
                at=self.clock.now(),
            )
        except OutboxUnavailable:  # cannot keep it: make the sender try again later
            return self._refuse(channel, 503, "outbox_unavailable", "try again later")
        reason = self.metrics.reason(error.reason)
        self.metrics.quarantined.labels(channel, reason).inc()
        self.metrics.refused.labels(channel, reason).inc()
        state = self.board.get(channel)
        if state is not None:
            state.failed(self.clock.now(), error)
        log.warning("quarantined %s payload #%d: %s", channel, quarantine_id, error)
        return _json_answer(
            error.status, error=str(error), reason=error.reason, quarantine_id=quarantine_id
        )

    async def webhook(
        self,
        channel: str,
        method: str,
        query: str,
        headers: Mapping[str, str],
        receive: Receive,
    ) -> WebhookAnswer:
        """Answer one webhook request; every outcome is an answer, never an exception."""
        connector = self.connectors.get(channel)
        if connector is None:
            return self._refuse("unknown", 404, "unknown_channel", "no such channel")
        self.metrics.received.labels(channel).inc()
        if method not in connector.methods:
            allowed = " or ".join(sorted(connector.methods))
            return self._refuse(channel, 405, "bad_method", f"use {allowed}")
        try:
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                body = await self._read_body(headers, receive)
        except _BodyTooLarge:
            limit = self.settings.max_body_bytes
            return self._refuse(channel, 413, "body_too_large", f"body exceeds {limit} bytes")
        except TimeoutError:
            return self._refuse(channel, 408, "body_timeout", "body not received in time")
        request = WebhookRequest(
            method=method,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers=headers,
            body=body,
            received_at=self.clock.now(),
        )
        try:
            reply = await connector.handle(request)
            if reply.answer is not None:
                return reply.answer
            outcomes = await self.intake.accept(reply.events)
            taken = sum(1 for outcome in outcomes if outcome.kind == "accepted")
            self.board.states[channel].succeeded(request.received_at, taken)
            return connector.acknowledge(outcomes)
        except RequestRefused as exc:  # not authenticated: keep nothing
            log.info("refused %s webhook: %s", channel, exc.reason)
            return self._refuse(channel, exc.status, exc.reason, str(exc))
        except PayloadError as exc:
            return await self._quarantine(connector, exc, request)
        except OutboxUnavailable as exc:
            log.error("outbox unavailable, answering 503: %s", exc)
            return self._refuse(channel, 503, "outbox_unavailable", "try again later")
        except StateUnavailable as exc:  # cannot tell a redelivery: make the sender retry
            log.error("dedupe state unavailable, answering 503: %s", exc)
            return self._refuse(channel, 503, "state_unavailable", "try again later")
        except GatewayError as exc:
            log.exception("unexpected gateway error on %s webhook", channel)
            return self._refuse(channel, 500, "internal_error", type(exc).__name__)
        except Exception as exc:  # a connector bug: keep the body, tell the sender
            log.exception("connector %s failed", channel)
            error = MalformedPayload(
                f"cannot read this payload ({type(exc).__name__})", "connector_error"
            )
            return await self._quarantine(connector, error, request)

    # -- operations ------------------------------------------------------------------

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
        if self.state_check is not None:
            try:
                async with asyncio.timeout(5):
                    await self.state_check()
            except (StateUnavailable, TimeoutError) as exc:
                problems["state"] = str(exc) or "timed out"
        if problems:
            return JSONResponse({"ready": False, "problems": problems}, status_code=503)
        return JSONResponse({"ready": True, "outbox_depth": self.outbox.pending})

    async def channels(self, request: Request) -> Response:
        """Every enabled connector: kind, record channel, last success and error, cursor."""
        return JSONResponse(self.board.as_json())

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)
