"""``POST /status``: status updates from ticket systems that cannot write to Kafka.

The body is one :class:`~schemas.status.StatusUpdate` (JSON). Answers, each
with a JSON body ``{"error": ..., "problems": [...]}`` or the queued count:

====  ==================================================================
202   the notifications it causes are durably queued (or there were none to send)
400   not a valid update: every problem listed; the body is kept in the quarantine
401   no ``Authorization: Bearer`` token
403   a wrong token, or no token configured (``notifications.api_token``)
404   a ``record_id`` the gateway never took in, and no ``recipient`` named
409   a node before one the complaint already reached, without ``reopens``
413   a body over ``http.max_body_bytes``
503   the notification store is unavailable: send it again
====  ==================================================================
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass

from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from outbound.notifications import Notifications
from outbound.planner import StatusRejected
from outbox.sqlite import SQLiteOutbox
from schemas.status import StatusUpdate
from service.clock import Clock
from service.metrics import GatewayMetrics

log = logging.getLogger(__name__)


@dataclass
class StatusEndpoint:
    desk: Notifications
    token: SecretStr | None
    outbox: SQLiteOutbox
    metrics: GatewayMetrics
    clock: Clock
    max_body_bytes: int

    def _refuse(self, status: int, error: str, problems: list[str] | None = None) -> Response:
        self.metrics.status_updates.labels(str(status)).inc()
        body: dict[str, object] = {"error": error}
        if problems is not None:
            body["problems"] = problems
        return JSONResponse(body, status_code=status)

    def _authorized(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return self._refuse(401, "send Authorization: Bearer <notifications.api_token>")
        if self.token is None or not hmac.compare_digest(
            presented.strip().encode(), self.token.get_secret_value().encode()
        ):
            return self._refuse(403, "the token is not accepted")
        return None

    async def handle(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._refuse(413, f"the body is larger than {self.max_body_bytes} bytes")
        body = await request.body()
        if len(body) > self.max_body_bytes:
            return self._refuse(413, f"the body is larger than {self.max_body_bytes} bytes")
        try:
            update = StatusUpdate.model_validate_json(body)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            ]
            await self._keep(request, body, "invalid_status_update", problems)
            return self._refuse(400, "not a valid status update", problems)
        try:
            applied = await self.desk.accept(update)
        except StatusRejected as exc:
            if exc.status == 400:
                await self._keep(request, body, "invalid_variables", exc.problems)
            return self._refuse(exc.status, str(exc.problems[0]), exc.problems)
        except Exception:
            log.exception("status update for %s could not be queued", update.record_id)
            return self._refuse(503, "the notification store is unavailable; send it again")
        self.metrics.status_updates.labels("202").inc()
        return JSONResponse(
            {"queued": applied.added, "already_queued": applied.already_queued}, status_code=202
        )

    async def _keep(self, request: Request, body: bytes, reason: str, problems: list[str]) -> None:
        try:
            await self.outbox.quarantine(
                channel="status",
                reason=reason,
                detail=json.dumps(problems, ensure_ascii=False)[:2000],
                headers={"content-type": request.headers.get("content-type", "")},
                body=body,
                at=self.clock.now(),
            )
        except Exception:
            log.exception("could not keep a refused status update for inspection")
