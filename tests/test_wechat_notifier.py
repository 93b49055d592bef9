"""The WeChat notifier against a fake of WeChat's token and message APIs (respx, strict)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any, ClassVar

import httpx
import pytest
import respx

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from outbound.base import Message
from outbound.templates import DEFAULT_TEXTS, NODE_LABELS
from outbound.wechat import WeChatNotifier, WeChatNotifierSettings
from schemas.status import NODES, Node
from tests.fakes import FrozenClock
from tests.notifier_contract import Condition, NotifierContract, sample_message

BASE_URL = "https://wx.test.local"
APP_ID = "wx2c2769f8efd9abc2"
APP_SECRET = "5c1f9e0a7d3b46e2a8c4f6b1d9e7a3c5"
#: Every token the fake issues ends with this, so a leak of any of them shows.
TOKEN_BODY = "JgWq3Xv8mK2pZr7TbN4cYh6LsD9fA1eU5oRiVw0tQyBxMnHkGjFdSaPzLcEbOuIy"
OPENID = "oR5Gjjl_eiZoUpGozMo7dbBJ362A"

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/bizsend"

TEMPLATE_FIELDS = {"first": "{text}", "keyword1": "{ticket_no}", "keyword2": "{node_label}"}

_ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40013: "invalid appid",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40164: "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47003: "argument invalid! data.thing1.value invalid",
    48001: "api unauthorized",
    -1: "system error",
}


def wechat_error(errcode: int) -> httpx.Response:
    errmsg = _ERRMSG.get(errcode, "unknown error")
    return httpx.Response(
        200, json={"errcode": errcode, "errmsg": f"{errmsg} rid: 6651d3f1-4c2a9b7e-1f0e8d3a"}
    )


class FakeWeChat:
    """api.weixin.qq.com's token and message endpoints, answering in WeChat's JSON.

    Every answer first yields to the event loop, as a network round trip
    would, so concurrent senders really overlap; message answers take one to
    six rounds, so some of a burst's answers come back after a token refresh
    that others caused has finished.
    """

    def __init__(self, router: respx.MockRouter) -> None:
        self.condition: Condition = "ok"
        self.expires_in = 7200
        self.token_errcode: int | None = None
        self.token_requests = 0
        self.issued: list[str] = []
        self.valid: set[str] = set()
        #: Answer every token refused, even a fresh one.
        self.refuse_every_token = False
        self.refused_tokens = 0
        #: Errcodes a message endpoint answers, one per request, before behaving normally.
        self.queued: dict[str, list[int]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        router.get("/cgi-bin/token").mock(side_effect=self._token)
        router.post("/cgi-bin/stable_token").mock(side_effect=self._stable_token)
        for path in (CUSTOM, TEMPLATE, SUBSCRIBE):
            router.post(path).mock(side_effect=self._message)

    def arrange(self, condition: Condition) -> None:
        self.condition = condition

    def accepted(self) -> int:
        return len(self.delivered)

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (someone fetched a new one elsewhere)."""
        self.valid.clear()

    async def _token(self, request: httpx.Request) -> httpx.Response:
        query = request.url.params
        assert query["grant_type"] == "client_credential"
        return await self._issue(query.get("appid"), query.get("secret"))

    async def _stable_token(self, request: httpx.Request) -> httpx.Response:
        """Like WeChat's, answers the same token again while it lives (we never force a refresh)."""
        body = json.loads(request.content)
        assert body["grant_type"] == "client_credential"
        assert body["force_refresh"] is False
        return await self._issue(body.get("appid"), body.get("secret"), stable=True)

    async def _issue(
        self, app_id: str | None, secret: str | None, *, stable: bool = False
    ) -> httpx.Response:
        self.token_requests += 1
        await asyncio.sleep(0)
        if app_id != APP_ID or self.condition == "auth":
            return wechat_error(40013)
        if secret != APP_SECRET:
            return wechat_error(40125)
        if self.token_errcode is not None:
            return wechat_error(self.token_errcode)
        token = f"{len(self.issued) + 1:02d}_{TOKEN_BODY}"
        if stable and self.issued:
            token = self.issued[-1]
        else:
            self.issued.append(token)
            self.valid.add(token)
        return httpx.Response(200, json={"access_token": token, "expires_in": self.expires_in})

    async def _message(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content)
        self.requests.append((path, body))
        for _ in range(1 + len(self.requests) % 6):
            await asyncio.sleep(0)
        if request.url.params.get("access_token") not in self.valid or self.refuse_every_token:
            self.refused_tokens += 1
            return wechat_error(40001)
        if self.queued.get(path):
            return wechat_error(self.queued[path].pop(0))
        if self.condition == "unavailable":
            return httpx.Response(503, text="<html>503 Service Unavailable</html>")
        if self.condition == "rate_limited":
            return wechat_error(45009)
        if self.condition == "in_doubt":
            raise httpx.ReadTimeout("timed out", request=request)
        if self.condition == "unreachable":
            return wechat_error(43004)
        if self.condition == "refused":
            return wechat_error(40037)
        self.delivered.append((path, body))
        if path == TEMPLATE:
            msgid = 2_002_283_320 + len(self.delivered)
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "msgid": msgid})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})


def settings_with(**overrides: Any) -> WeChatNotifierSettings:
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "base_url": BASE_URL,
        "templates": {
            node: {
                "template_id": f"tmpl-{node}-Dyvp3Ff0cnail",
                "url": "https://brand.example/tickets",
                "fields": TEMPLATE_FIELDS,
            }
            for node in NODES
        },
    }
    values.update(overrides)
    return WeChatNotifierSettings.model_validate(values)


Make = Callable[..., WeChatNotifier]


def window_open(message: Message) -> Message:
    return replace(message, reply_window_open=True)


def token_in(request: httpx.Request) -> str:
    return request.url.params["access_token"]


class TestWeChatNotifier(NotifierContract):
    notifier_class = WeChatNotifier
    secrets: ClassVar[tuple[str, ...]] = (APP_SECRET, TOKEN_BODY)
    recipient: ClassVar[str] = OPENID

    @pytest.fixture
    def router(self) -> Iterator[respx.MockRouter]:
        with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
            yield router

    @pytest.fixture
    def provider(self, router: respx.MockRouter) -> FakeWeChat:
        return FakeWeChat(router)

    @pytest.fixture
    async def http(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient() as client:
            yield client

    @pytest.fixture
    def make(self, http: httpx.AsyncClient, clock: FrozenClock, provider: FakeWeChat) -> Make:
        def make(**overrides: Any) -> WeChatNotifier:
            return WeChatNotifier(settings_with(**overrides), http, clock)

        return make

    @pytest.fixture
    def notifier(self, make: Make) -> WeChatNotifier:
        return make()

    # -- the access token ---------------------------------------------------------

    async def test_fifty_concurrent_sends_fetch_one_token(
        self, notifier: WeChatNotifier, provider: FakeWeChat, message: Message
    ) -> None:
        receipts = await asyncio.gather(*(notifier.send(message) for _ in range(50)))
        assert len(receipts) == 50
        assert provider.token_requests == 1
        assert provider.accepted() == 50

    async def test_twenty_sends_refused_40001_at_once_cause_one_refresh_and_all_succeed(
        self, notifier: WeChatNotifier, provider: FakeWeChat, message: Message
    ) -> None:
        await notifier.send(message)
        provider.revoke_tokens()

        receipts = await asyncio.gather(*(notifier.send(message) for _ in range(20)))

        assert all(r.detail == "template" for r in receipts)
        assert provider.refused_tokens == 20  # every one of them hit the stale token
        assert provider.token_requests == 2  # the first fetch and ONE refresh
        assert provider.accepted() == 21

    async def test_a_failing_token_fetch_is_shared_not_repeated_by_each_waiting_sender(
        self, notifier: WeChatNotifier, provider: FakeWeChat, message: Message
    ) -> None:
        provider.token_errcode = -1
        results = await asyncio.gather(
            *(notifier.send(message) for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(r, ChannelUnavailable) for r in results)
        assert provider.token_requests == 1
        # the next attempt fetches again
        provider.token_errcode = None
        await notifier.send(message)
        assert provider.token_requests == 2

    async def test_the_token_is_reused_until_shortly_before_it_expires(
        self,
        notifier: WeChatNotifier,
        provider: FakeWeChat,
        message: Message,
        clock: FrozenClock,
        router: respx.MockRouter,
    ) -> None:
        await notifier.send(message)
        clock.advance(7200 - 300 - 1)
        await notifier.send(message)
        assert provider.token_requests == 1

        clock.advance(2)
        await notifier.send(message)
        assert provider.token_requests == 2
        last = router.calls.last.request
        assert token_in(last) == provider.issued[1]

    async def test_a_token_refused_again_after_the_refresh_is_an_auth_error(
        self, notifier: WeChatNotifier, provider: FakeWeChat, message: Message
    ) -> None:
        provider.refuse_every_token = True
        with pytest.raises(ChannelAuthError) as caught:
            await notifier.send(message)
        assert len(provider.requests) == 2  # the call and ONE retry
        assert provider.token_requests == 2
        assert TOKEN_BODY not in str(caught.value)

    async def test_stable_token_mode_posts_the_credentials_instead_of_putting_them_in_a_url(
        self, make: Make, provider: FakeWeChat, message: Message, router: respx.MockRouter
    ) -> None:
        notifier = make(use_stable_token=True)
        await notifier.send(message)
        token_call = router.calls[0].request
        assert token_call.url.path == "/cgi-bin/stable_token"
        assert APP_SECRET not in str(token_call.url)
        assert provider.accepted() == 1

    async def test_a_refresh_that_brings_back_the_refused_token_is_not_repeated_per_sender(
        self, make: Make, provider: FakeWeChat, message: Message
    ) -> None:
        notifier = make(use_stable_token=True)
        await notifier.send(message)
        provider.revoke_tokens()  # but the stable endpoint keeps answering the same token

        results = await asyncio.gather(
            *(notifier.send(message) for _ in range(20)), return_exceptions=True
        )

        assert all(isinstance(r, ChannelAuthError) for r in results)
        assert provider.token_requests == 2

    @pytest.mark.parametrize(
        ("errcode", "error"),
        [
            (40013, ChannelAuthError),
            (40125, ChannelAuthError),
            (40164, ChannelAuthError),
            (45009, ChannelRateLimited),
            (-1, ChannelUnavailable),
        ],
    )
    async def test_token_endpoint_errors(
        self,
        notifier: WeChatNotifier,
        provider: FakeWeChat,
        message: Message,
        errcode: int,
        error: type[ChannelError],
    ) -> None:
        provider.token_errcode = errcode
        with pytest.raises(error) as caught:
            await notifier.send(message)
        shown = f"{caught.value} {caught.value!r}"
        assert APP_SECRET not in shown and "203.0.113.7" not in shown
        assert "rid 6651d3f1-4c2a9b7e-1f0e8d3a" in shown
        assert provider.requests == []

    async def test_a_token_fetch_that_times_out_is_unavailable_not_in_doubt(
        self, notifier: WeChatNotifier, router: respx.MockRouter, message: Message
    ) -> None:
        router.get("/cgi-bin/token").mock(side_effect=httpx.ReadTimeout("timed out"))
        with pytest.raises(ChannelUnavailable):
            await notifier.send(message)

    async def test_neither_logs_nor_reprs_show_the_secret_the_token_or_the_openid(
        self,
        notifier: WeChatNotifier,
        provider: FakeWeChat,
        message: Message,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="outbound")
        await notifier.send(message)
        provider.revoke_tokens()
        await notifier.send(message)
        ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("outbound"))
        assert "access token" in ours
        shown = f"{ours} {notifier.tokens!r} {notifier!r}"
        for secret in (APP_SECRET, TOKEN_BODY, OPENID):
            assert secret not in shown

    # -- which message is sent ----------------------------------------------------

    async def test_inside_the_window_the_text_goes_as_a_customer_service_message(
        self, notifier: WeChatNotifier, provider: FakeWeChat, message: Message
    ) -> None:
        receipt = await notifier.send(window_open(message))
        assert provider.delivered == [
            (CUSTOM, {"touser": OPENID, "msgtype": "text", "text": {"content": message.text}})
        ]
        assert receipt.detail == "customer_service"
        assert receipt.message_id == f"custom:{message.key}"

    @pytest.mark.parametrize("errcode", [45015, 45047])
    async def test_a_closed_window_falls_back_to_the_template_in_the_same_send(
        self, notifier: WeChatNotifier, provider: FakeWeChat, message: Message, errcode: int
    ) -> None:
        provider.queued[CUSTOM] = [errcode]
        receipt = await notifier.send(window_open(message))
        assert [path for path, _ in provider.requests] == [CUSTOM, TEMPLATE]
        assert [path for path, _ in provider.delivered] == [TEMPLATE]
        assert receipt.detail == "template"

    async def test_a_closed_window_without_a_template_makes_the_customer_unreachable_here(
        self, make: Make, provider: FakeWeChat, message: Message
    ) -> None:
        notifier = make(templates={})
        provider.queued[CUSTOM] = [45015]
        with pytest.raises(RecipientUnreachable) as caught:
            await notifier.send(window_open(message))
        assert caught.value.reason == "wechat_out_of_window"

    async def test_outside_the_window_the_template_message_carries_the_rendered_fields(
        self, notifier: WeChatNotifier, provider: FakeWeChat, message: Message
    ) -> None:
        receipt = await notifier.send(message)
        assert provider.delivered == [
            (
                TEMPLATE,
                {
                    "touser": OPENID,
                    "template_id": "tmpl-accepted-Dyvp3Ff0cnail",
                    "url": "https://brand.example/tickets",
                    "client_msg_id": message.key,
                    "data": {
                        "first": {"value": message.text},
                        "keyword1": {"value": "TS20240520"},
                        "keyword2": {"value": NODE_LABELS["accepted"]},
                    },
                },
            )
        ]
        assert receipt.message_id == "2002283321"
        assert receipt.detail == "template"

    async def test_with_customer_service_off_an_open_window_still_gets_the_template(
        self, make: Make, provider: FakeWeChat, message: Message
    ) -> None:
        notifier = make(customer_service=False)
        receipt = await notifier.send(window_open(message))
        assert [path for path, _ in provider.requests] == [TEMPLATE]
        assert receipt.detail == "template"

    async def test_a_subscribe_template_goes_to_bizsend_with_its_page(
        self, make: Make, provider: FakeWeChat
    ) -> None:
        notifier = make(
            templates={
                "survey": {
                    "template_id": "sub-survey-W25vrVdFrfC1",
                    "kind": "subscribe",
                    "url": "{survey_url}",
                    "fields": {"character_string1": "{ticket_no}", "thing2": "{node_label}"},
                }
            }
        )
        text = DEFAULT_TEXTS["survey"]
        params = {"ticket_no": "TS20240520", "survey_url": "https://brand.example/s/9f8e"}
        message = replace(
            sample_message(OPENID), node="survey", text=text.format(**params), params=params
        )
        receipt = await notifier.send(message)
        assert provider.delivered == [
            (
                SUBSCRIBE,
                {
                    "touser": OPENID,
                    "template_id": "sub-survey-W25vrVdFrfC1",
                    "page": "https://brand.example/s/9f8e",
                    "data": {
                        "character_string1": {"value": "TS20240520"},
                        "thing2": {"value": NODE_LABELS["survey"]},
                    },
                },
            )
        ]
        assert receipt.detail == "subscribe"
        assert receipt.message_id == f"subscribe:{message.key}"

    @pytest.mark.parametrize(("length", "sent"), [(20, True), (21, False)])
    async def test_a_subscribe_thing_value_over_20_characters_is_refused_before_sending(
        self, make: Make, provider: FakeWeChat, length: int, sent: bool
    ) -> None:
        notifier = make(
            templates={
                "solution_proposed": {
                    "template_id": "sub-solution",
                    "kind": "subscribe",
                    "fields": {"character_string1": "{ticket_no}", "thing2": "{solution}"},
                }
            }
        )
        params = {"ticket_no": "TS20240520", "solution": "换" * length}
        message = replace(
            sample_message(OPENID),
            node="solution_proposed",
            text=DEFAULT_TEXTS["solution_proposed"].format(**params),
            params=params,
        )
        if sent:
            await notifier.send(message)
            assert provider.accepted() == 1
        else:
            with pytest.raises(DeliveryRefused) as caught:
                await notifier.send(message)
            assert caught.value.reason == "wechat_value_too_long"
            assert "换" not in str(caught.value)
            assert provider.requests == []

    async def test_no_template_and_a_closed_window_is_unreachable_without_calling_wechat(
        self, make: Make, provider: FakeWeChat, message: Message, router: respx.MockRouter
    ) -> None:
        notifier = make(templates={})
        with pytest.raises(RecipientUnreachable) as caught:
            await notifier.send(message)
        assert caught.value.reason == "no_template_outside_window"
        assert router.calls.call_count == 0
        assert notifier.unreachable_reason("accepted", reply_window_open=False) == (
            "no_template_outside_window"
        )
        assert notifier.unreachable_reason("accepted", reply_window_open=True) is None

    @pytest.mark.parametrize(
        ("errcode", "error", "reason"),
        [
            (40003, RecipientUnreachable, "wechat_invalid_openid"),
            (43004, RecipientUnreachable, "wechat_not_following"),
            (43101, RecipientUnreachable, "wechat_user_refused"),
            (40037, DeliveryRefused, "wechat_invalid_template"),
            (47003, DeliveryRefused, "wechat_invalid_argument"),
            (48001, ChannelAuthError, None),
            (45009, ChannelRateLimited, None),
            (-1, ChannelUnavailable, None),
            (61451, DeliveryRefused, "wechat_error"),
        ],
    )
    async def test_each_wechat_errcode_raises_its_error(
        self,
        notifier: WeChatNotifier,
        provider: FakeWeChat,
        message: Message,
        errcode: int,
        error: type[ChannelError],
        reason: str | None,
    ) -> None:
        provider.queued[TEMPLATE] = [errcode]
        with pytest.raises(ChannelError) as caught:
            await notifier.send(message)
        assert type(caught.value) is error
        assert getattr(caught.value, "reason", None) == reason
        assert f"errcode {errcode}" in str(caught.value)
        for secret in (APP_SECRET, TOKEN_BODY, OPENID):
            assert secret not in f"{caught.value} {caught.value!r}"

    async def test_an_unreadable_answer_to_a_send_leaves_the_delivery_in_doubt(
        self, notifier: WeChatNotifier, router: respx.MockRouter, message: Message
    ) -> None:
        router.post(TEMPLATE).mock(return_value=httpx.Response(200, text="<html>ok</html>"))
        with pytest.raises(DeliveryInDoubt):
            await notifier.send(message)

    # -- start-up checks ----------------------------------------------------------

    def test_problems_names_a_field_with_an_unknown_placeholder(self, make: Make) -> None:
        notifier = make(
            templates={"accepted": {"template_id": "t", "fields": {"keyword1": "{customer_name}"}}},
        )
        problems = notifier.problems({"accepted": DEFAULT_TEXTS["accepted"]})
        assert len(problems) == 1
        assert "templates.accepted.fields.keyword1" in problems[0]
        assert "{customer_name}" in problems[0]

    def test_problems_names_a_node_without_template_when_customer_service_is_off(
        self, make: Make
    ) -> None:
        texts: dict[Node, str] = {
            "accepted": DEFAULT_TEXTS["accepted"],
            "resolved": DEFAULT_TEXTS["resolved"],
        }
        notifier = make(customer_service=False, templates={})
        assert notifier.problems(texts) == [
            "notifiers.wechat: node accepted has no template and customer-service messages are off",
            "notifiers.wechat: node resolved has no template and customer-service messages are off",
        ]
        assert make(templates={}).problems(texts) == []

    def test_problems_names_a_variable_the_nodes_text_never_provides(self, make: Make) -> None:
        notifier = make(
            templates={"accepted": {"template_id": "t", "fields": {"keyword1": "{eta}"}}}
        )
        (problem,) = notifier.problems({"accepted": DEFAULT_TEXTS["accepted"]})
        assert "{eta}" in problem and "text does not use it" in problem

    def test_problems_names_a_subscribe_field_that_is_always_too_long(self, make: Make) -> None:
        notifier = make(
            templates={
                "accepted": {
                    "template_id": "t",
                    "kind": "subscribe",
                    "fields": {"thing1": "{text}"},
                }
            }
        )
        (problem,) = notifier.problems({"accepted": DEFAULT_TEXTS["accepted"]})
        assert "thing1" in problem and "at most 20" in problem

    def test_settings_refuse_a_template_without_fields(self) -> None:
        with pytest.raises(ValueError):
            settings_with(templates={"accepted": {"template_id": "t", "fields": {}}})
