"""Local stand-ins for the SMS and WeChat APIs, for the demo, the benchmark and process tests.

A real HTTP server (Starlette under uvicorn) that answers like Aliyun
``SendSms`` and WeChat's token and message APIs, in their own formats,
checks what the real ones check (Aliyun's RPC signature, WeChat's
``access_token``), and keeps every message it took so a caller can show
what the customer received. ``POST /_control`` switches a provider to
``down`` (HTTP 503), ``hang`` (Aliyun takes the request and never answers,
as a provider that delivered but whose answer was lost) or back to ``ok``;
``GET /_messages`` lists what was taken.

Point the notifiers at it with their ``base_url`` settings:
``http://127.0.0.1:PORT/aliyun`` and ``http://127.0.0.1:PORT/wechat``.
Unit tests fake providers with respx instead; this is for whole processes.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from outbound._aliyun_signing import rpc_v1_signature
from outbound.templates import render

TOKEN = "FAKE_ACCESS_TOKEN_" + "x" * 40


@dataclass
class FakeProviders:
    """What the fake accepts: Aliyun's credentials, WeChat's app, the SMS templates' texts."""

    aliyun_key_id: str
    aliyun_secret: str
    wechat_app_id: str
    wechat_secret: str
    #: TemplateCode → the text registered with Aliyun (placeholders as ``{name}``)
    sms_templates: Mapping[str, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=lambda: {"aliyun": "ok", "wechat": "ok"})
    #: every SendSms request that arrived, answered or not: (OutId, mode it met)
    requests: list[tuple[str, str]] = field(default_factory=list)
    token_fetches: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(9_006_197_469_364_984_400))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/aliyun/", self.aliyun, methods=["POST"]),
                Route("/wechat/cgi-bin/token", self.wechat_token, methods=["GET"]),
                Route("/wechat/cgi-bin/message/{kind:path}", self.wechat_send, methods=["POST"]),
                Route("/_control", self.control, methods=["POST"]),
                Route("/_messages", self.list_messages, methods=["GET"]),
            ]
        )

    async def control(self, request: Request) -> Response:
        self.modes.update(await request.json())
        return JSONResponse(self.modes)

    async def list_messages(self, request: Request) -> Response:
        return JSONResponse({"messages": self.messages, "token_fetches": self.token_fetches})

    def _keep(self, provider: str, recipient: str, text: str, **extra: Any) -> str:
        message_id = str(next(self._ids))
        self.messages.append(
            {
                "provider": provider,
                "recipient": recipient,
                "text": text,
                "message_id": message_id,
                "at": time.time(),
                **extra,
            }
        )
        return message_id

    async def aliyun(self, request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode("ascii")))
        mode = self.modes.get("aliyun", "ok")
        self.requests.append((params.get("OutId", ""), mode))
        if mode == "down":
            return Response(status_code=503)
        if mode == "hang":  # took the request, never answers: the caller cannot know
            await asyncio.sleep(3600)
        signature = params.pop("Signature", "")
        expected = rpc_v1_signature("POST", params, self.aliyun_secret)
        request_id = f"FAKE-{next(self._ids)}"
        if params.get("AccessKeyId") != self.aliyun_key_id or not hmac.compare_digest(
            signature, expected
        ):
            return JSONResponse(
                {"Code": "SignatureDoesNotMatch", "Message": "fake", "RequestId": request_id},
                status_code=400,
            )
        template = self.sms_templates.get(params.get("TemplateCode", ""))
        if template is None:
            return JSONResponse({"Code": "isv.SMS_TEMPLATE_ILLEGAL", "RequestId": request_id})
        values = json.loads(params.get("TemplateParam", "{}"))
        try:
            text = render(template, values)[0]
        except KeyError:
            return JSONResponse(
                {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "RequestId": request_id}
            )
        phone = params.get("PhoneNumbers", "")
        text = f"【{params.get('SignName', '')}】{text}"
        biz_id = self._keep("aliyun_sms", phone, text, out_id=params.get("OutId", ""))
        return JSONResponse(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}
        )

    async def wechat_token(self, request: Request) -> Response:
        query = request.query_params
        if query.get("appid") != self.wechat_app_id or query.get("secret") != self.wechat_secret:
            return JSONResponse({"errcode": 40013, "errmsg": "invalid appid"})
        self.token_fetches += 1
        return JSONResponse({"access_token": TOKEN, "expires_in": 7200})

    async def wechat_send(self, request: Request) -> Response:
        if self.modes.get("wechat") == "down":
            return Response(status_code=503)
        if request.query_params.get("access_token") != TOKEN:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        body = await request.json()
        kind = request.path_params["kind"]
        if kind == "custom/send":
            text = body.get("text", {}).get("content", "")
        else:
            data = body.get("data", {})
            text = " | ".join(f"{k}: {v.get('value', '')}" for k, v in data.items())
        msgid = self._keep("wechat", body.get("touser", ""), text, kind=kind)
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": int(msgid)})
