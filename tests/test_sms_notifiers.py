"""The Aliyun and Tencent Cloud SMS notifiers against fakes that answer like the providers.

Each fake checks the request's signature the way its provider does (a request
signed wrongly is answered with the provider's own signature error), then
answers in the provider's real response format. Both notifiers run the
:class:`NotifierContract`; the SMS rules they share run for both too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import parse_qsl

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
from outbound._aliyun_signing import rpc_v1_signature, rpc_v1_string_to_sign
from outbound._tc3_signing import tc3_sign
from outbound.aliyun_sms import AliyunSmsNotifier, AliyunSmsSettings
from outbound.base import Message, Notifier
from outbound.templates import DEFAULT_SMS_TEXTS
from outbound.tencent_sms import TencentSmsNotifier, TencentSmsSettings
from schemas.status import NODES
from tests.fakes import FrozenClock
from tests.notifier_contract import Condition, NotifierContract, sample_message

RECIPIENT = "+8613800138000"
MAINLAND_DIGITS = "13800138000"

ALIYUN_ID = "LTAI5tQxTestAccessKeyId"
ALIYUN_SECRET = "aliyun-Secret-9fQ2xW7v"
ALIYUN_URL = "https://sms.test.local/"
ALIYUN_TEMPLATES = {node: f"SMS_1000000{i}" for i, node in enumerate(NODES)}

TENCENT_ID = "AKIDtestSecretIdForTheGateway01"
TENCENT_KEY = "tencent-Key-4Kd8sP1zQ"
TENCENT_HOST = "sms.test.local:8443"
TENCENT_URL = f"https://{TENCENT_HOST}/"
TENCENT_TEMPLATES = {node: str(1110 + i) for i, node in enumerate(NODES)}


def message(**changes: Any) -> Message:
    return replace(sample_message(RECIPIENT), **changes)


async def refused_before_sending(notifier: Notifier, sent: Message) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        await notifier.send(sent)
    return caught.value


# -- the fakes -------------------------------------------------------------------------


class FakeAliyun:
    """Dysmsapi ``SendSms``: checks the RPC v1 signature, then answers as arranged."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.requests: list[httpx.Request] = []
        self.taken = 0
        self.condition: Condition = "ok"
        self.custom: httpx.Response | None = None
        router.post(ALIYUN_URL).mock(side_effect=self._answer)

    def arrange(self, condition: Condition) -> None:
        self.condition, self.custom = condition, None

    def answer(self, status: int, body: dict[str, Any] | str) -> None:
        """Answer the next sends with exactly this (a dict is sent as JSON)."""
        if isinstance(body, str):
            self.custom = httpx.Response(status, text=body)
        else:
            self.custom = httpx.Response(status, json=body)

    def accepted(self) -> int:
        return self.taken

    def params(self, index: int = -1) -> dict[str, str]:
        body = self.requests[index].content.decode("ascii")
        return dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True))

    @staticmethod
    def error(status: int, code: str, text: str) -> httpx.Response:
        return httpx.Response(
            status,
            json={
                "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
                "Message": text,
                "Recommend": "https://api.aliyun.com/troubleshoot?q=" + code,
                "HostId": "dysmsapi.aliyuncs.com",
                "Code": code,
            },
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = self.params()
        if self.condition == "auth" or params.get("Signature") != rpc_v1_signature(
            "POST", params, ALIYUN_SECRET
        ):
            # Aliyun echoes what it signed, the customer's number included
            return self.error(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + rpc_v1_string_to_sign("POST", params),
            )
        if self.custom is not None:
            return self.custom
        match self.condition:
            case "ok":
                self.taken += 1
                return httpx.Response(
                    200,
                    json={
                        "Message": "OK",
                        "RequestId": "8906582E-6722-4D2D-9E51-5B1F4E7A1C22",
                        "Code": "OK",
                        "BizId": "900619746936498440^0",
                    },
                )
            case "unavailable":
                return self.error(503, "ServiceUnavailable", "The request has failed.")
            case "rate_limited":
                return self.error(200, "isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5")
            case "in_doubt":
                raise httpx.ReadTimeout("timed out", request=request)
            case "unreachable":
                return self.error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            case "refused":
                return self.error(200, "isv.SMS_TEMPLATE_ILLEGAL", "模板不合法(不存在或被拉黑)")
        raise AssertionError(self.condition)


class FakeTencent:
    """Tencent Cloud ``SendSms``: checks TC3-HMAC-SHA256 over the Host sent, then answers."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.requests: list[httpx.Request] = []
        self.taken = 0
        self.condition: Condition = "ok"
        self.status_code: str | None = None
        self.error_code: str | None = None
        router.post(TENCENT_URL).mock(side_effect=self._answer)

    def arrange(self, condition: Condition) -> None:
        self.condition, self.status_code, self.error_code = condition, None, None

    def fail(self, code: str) -> None:
        """Answer 200 with this ``Response.Error.Code``."""
        self.arrange("ok")
        self.error_code = code

    def refuse_the_number(self, code: str) -> None:
        """Answer 200 with this ``Code`` in the number's ``SendStatusSet`` entry."""
        self.arrange("ok")
        self.status_code = code

    def accepted(self) -> int:
        return self.taken

    def body(self, index: int = -1) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.requests[index].content)
        return loaded

    @staticmethod
    def error(code: str, text: str) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "Response": {
                    "Error": {"Code": code, "Message": text},
                    "RequestId": "ed93f3cb-f35e-473f-b9f3-0d451b8b79c6",
                }
            },
        )

    def _status(self, code: str, text: str) -> httpx.Response:
        body = self.body()
        return httpx.Response(
            200,
            json={
                "Response": {
                    "SendStatusSet": [
                        {
                            "SerialNo": "5000:1045710669157053657849499619" if code == "Ok" else "",
                            "PhoneNumber": body["PhoneNumberSet"][0],
                            "Fee": 1 if code == "Ok" else 0,
                            "SessionContext": body["SessionContext"],
                            "Code": code,
                            "Message": text,
                            "IsoCode": "CN",
                        }
                    ],
                    "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279",
                }
            },
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        expected = tc3_sign(
            "POST",
            request.headers["Host"],
            request.content,
            service="sms",
            action=request.headers.get("X-TC-Action", ""),
            version=request.headers.get("X-TC-Version", ""),
            timestamp=int(request.headers.get("X-TC-Timestamp", "0")),
            secret_id=TENCENT_ID,
            secret_key=TENCENT_KEY,
            content_type=request.headers.get("Content-Type", ""),
            region=request.headers.get("X-TC-Region"),
        )
        if request.headers.get("Authorization") != expected.authorization:
            return self.error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. "
                "Please check your signature is correct.",
            )
        if self.error_code is not None:
            return self.error(self.error_code, f"refused for {RECIPIENT}")
        if self.status_code is not None:
            return self._status(self.status_code, f"{RECIPIENT} refused")
        match self.condition:
            case "ok":
                self.taken += 1
                return self._status("Ok", "send success")
            case "unavailable":
                raise httpx.ConnectError("connection refused", request=request)
            case "rate_limited":
                return self._status(
                    "LimitExceeded.PhoneNumberDailyLimit",
                    "the number of sms messages sent from a single mobile number every day "
                    "exceeds the upper limit",
                )
            case "in_doubt":
                raise httpx.ReadTimeout("timed out", request=request)
            case "unreachable":
                return self.error(
                    "InvalidParameterValue.IncorrectPhoneNumber", f"incorrect number {RECIPIENT}"
                )
            case "refused":
                return self.error(
                    "FailedOperation.TemplateIncorrectOrUnapproved",
                    "template is not approved or request content does not match the approved "
                    "template content",
                )
            case "auth":
                return self.error(
                    "AuthFailure.SecretIdNotFound",
                    "The SecretId is not found, please ensure that your SecretId is correct.",
                )
        raise AssertionError(self.condition)


# -- the rules both SMS notifiers follow -----------------------------------------------


class SmsNotifierContract(NotifierContract):
    """The contract plus the SMS rules: template ids, variable values, E.164 recipients."""

    recipient = RECIPIENT
    #: Whether the provider allows each variable only once per template.
    each_variable_once: ClassVar[bool]

    def test_a_node_without_a_template_id_is_passed_over_not_a_start_problem(
        self, notifier: Notifier
    ) -> None:
        settings = notifier.settings
        templates = {n: t for n, t in settings.templates.items() if n != "survey"}
        partial = type(notifier)(
            settings.model_copy(update={"templates": templates}), notifier.http, notifier.clock
        )
        assert partial.problems(DEFAULT_SMS_TEXTS) == []  # a brand may not SMS every node
        assert partial.problems({"survey": "{ticket_no}"}) == []  # not sent by SMS: not checked
        assert partial.unreachable_reason("survey", reply_window_open=False) == "no_template"
        assert partial.unreachable_reason("accepted", reply_window_open=False) is None

    async def test_a_node_without_a_template_id_is_refused_without_a_request(
        self, notifier: Notifier, provider: FakeAliyun | FakeTencent
    ) -> None:
        settings = notifier.settings
        partial = type(notifier)(
            settings.model_copy(update={"templates": {}}), notifier.http, notifier.clock
        )
        error = await refused_before_sending(partial, message())
        assert isinstance(error, DeliveryRefused)
        assert error.reason == "no_template"
        assert provider.requests == []

    def test_texts_the_provider_refuses_stop_the_gateway_at_start(self, notifier: Notifier) -> None:
        assert notifier.problems(DEFAULT_SMS_TEXTS) == []
        assert notifier.problems({"in_progress": "{agent}{eta}"}) == [
            "the text of node 'in_progress': the text is nothing but variables,"
            " which the provider refuses"
        ]
        assert notifier.problems({"in_progress": "客服{agent} {eta}内回复"}) == [
            "the text of node 'in_progress': {agent} and {eta} are side by side;"
            " the provider wants text between variables"
        ]
        repeated = notifier.problems({"accepted": "编号{ticket_no}已受理，请记好{ticket_no}。"})
        if self.each_variable_once:
            assert repeated == [
                "the text of node 'accepted': {ticket_no} is used more than once;"
                " the provider allows each variable once"
            ]
        else:
            assert repeated == []

    def test_long_values_and_links_are_caught_without_showing_them(
        self, notifier: Notifier
    ) -> None:
        limit = notifier.settings.max_variable_chars
        long_value = "处" * (limit + 1)
        problems = notifier.value_problems(
            {"ticket_no": "TS20240520", "solution": long_value, "survey_url": "www.t.cn/A"}
        )
        assert problems == [
            f"{{solution}} has {limit + 1} characters, more than the {limit} a variable may have"
            " (max_variable_chars)",
            "{survey_url} holds a link, which the provider refuses in variables"
            " (allow_urls_in_variables)",
        ]
        assert long_value not in " ".join(problems)
        assert "t.cn" not in " ".join(problems)
        assert notifier.value_problems({"ticket_no": "TS20240520"}) == []
        assert notifier.value_problems({"solution": "处" * limit}) == []

    @pytest.mark.parametrize(
        "value", ["http://x.cn/a", "见 HTTPS://A.CN", "www.a.cn/s", "Www.a.cn"]
    )
    def test_every_kind_of_link_is_caught_unless_allowed(
        self, notifier: Notifier, value: str
    ) -> None:
        def links(checked: Notifier) -> list[str]:
            return [p for p in checked.value_problems({"result": value}) if "holds a link" in p]

        assert len(links(notifier)) == 1
        allowed = type(notifier)(
            notifier.settings.model_copy(update={"allow_urls_in_variables": True}),
            notifier.http,
            notifier.clock,
        )
        assert links(allowed) == []

    @pytest.mark.parametrize("recipient", ["13800138000", "+86 138 0013 8000", "", "+0123456789"])
    async def test_a_recipient_that_is_not_e164_is_refused_without_a_request(
        self, notifier: Notifier, provider: FakeAliyun | FakeTencent, recipient: str
    ) -> None:
        error = await refused_before_sending(notifier, message(recipient=recipient))
        assert isinstance(error, RecipientUnreachable)
        assert error.reason == "invalid_number"
        assert provider.requests == []
        if len(recipient) > 8:
            assert recipient not in str(error)


# -- Aliyun ----------------------------------------------------------------------------


class TestAliyunSms(SmsNotifierContract):
    notifier_class = AliyunSmsNotifier
    secrets = (ALIYUN_ID, ALIYUN_SECRET)
    each_variable_once = True

    @pytest.fixture
    async def notifier(self, clock: FrozenClock) -> AsyncIterator[AliyunSmsNotifier]:
        settings = AliyunSmsSettings.model_validate(
            {
                "access_key_id": ALIYUN_ID,
                "access_key_secret": ALIYUN_SECRET,
                "sign_name": "某某品牌",
                "templates": ALIYUN_TEMPLATES,
                "base_url": ALIYUN_URL.rstrip("/"),
            }
        )
        async with httpx.AsyncClient() as http:
            yield AliyunSmsNotifier(settings, http, clock)

    @pytest.fixture
    def provider(self) -> Iterator[FakeAliyun]:
        with respx.mock(assert_all_called=False) as router:
            yield FakeAliyun(router)

    async def test_the_request_is_signed_and_carries_the_message(
        self, notifier: AliyunSmsNotifier, provider: FakeAliyun
    ) -> None:
        sent = message(params={"ticket_no": "TS20240520", "eta": "48小时内"})
        receipt = await notifier.send(sent)
        assert receipt.message_id == "900619746936498440^0"
        request = provider.requests[0]
        assert request.method == "POST"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        params = provider.params()
        assert params["Signature"] == rpc_v1_signature("POST", params, ALIYUN_SECRET)
        assert params["Signature"] != rpc_v1_signature("GET", params, ALIYUN_SECRET)
        assert params["SignatureNonce"]
        unsigned = {k: v for k, v in params.items() if k not in ("Signature", "SignatureNonce")}
        assert unsigned == {
            "Action": "SendSms",
            "RegionId": "cn-hangzhou",
            "PhoneNumbers": MAINLAND_DIGITS,
            "SignName": "某某品牌",
            "TemplateCode": ALIYUN_TEMPLATES["accepted"],
            "TemplateParam": '{"ticket_no":"TS20240520","eta":"48小时内"}',
            "OutId": sent.key,
            "AccessKeyId": ALIYUN_ID,
            "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "Timestamp": "2026-11-23T02:15:00Z",
            "Version": "2017-05-25",
        }
        assert RECIPIENT not in str(request.url) and MAINLAND_DIGITS not in str(request.url)

    async def test_numbers_outside_the_mainland_keep_their_country_code_without_plus(
        self, notifier: AliyunSmsNotifier, provider: FakeAliyun
    ) -> None:
        await notifier.send(message(recipient="+85291234567"))
        assert provider.params()["PhoneNumbers"] == "85291234567"

    async def test_each_request_has_a_nonce_of_its_own(
        self, notifier: AliyunSmsNotifier, provider: FakeAliyun
    ) -> None:
        await notifier.send(message())
        await notifier.send(message())
        assert provider.params(0)["SignatureNonce"] != provider.params(1)["SignatureNonce"]
        assert provider.accepted() == 2

    async def test_a_template_without_variables_sends_no_template_param(
        self, notifier: AliyunSmsNotifier, provider: FakeAliyun
    ) -> None:
        await notifier.send(message(params={}))
        assert "TemplateParam" not in provider.params()

    @pytest.mark.parametrize(
        ("status", "code", "error", "reason"),
        [
            (404, "InvalidAccessKeyId.NotFound", ChannelAuthError, None),
            (400, "InvalidTimeStamp.Expired", ChannelAuthError, None),
            (403, "Forbidden.RAM", ChannelAuthError, None),
            (200, "isp.RAM_PERMISSION_DENY", ChannelAuthError, None),
            (400, "Throttling.User", ChannelRateLimited, None),
            (200, "isv.DAY_LIMIT_CONTROL", ChannelRateLimited, None),
            (200, "isv.SMS_SIGNATURE_ILLEGAL", DeliveryRefused, "signature_refused"),
            (200, "isv.PARAM_LENGTH_LIMIT", DeliveryRefused, "parameter_refused"),
            (200, "isv.INVALID_PARAMETERS", DeliveryRefused, "parameter_refused"),
            (200, "isv.PARAM_NOT_SUPPORT_URL", DeliveryRefused, "content_refused"),
            (200, "isv.MOBILE_NUMBER_ILLEGAL", RecipientUnreachable, "invalid_number"),
            (200, "isp.SYSTEM_ERROR", ChannelUnavailable, None),
            (200, "isv.SYSTEM_ERROR", ChannelUnavailable, None),
            (200, "isv.AMOUNT_NOT_ENOUGH", ChannelUnavailable, None),
            (200, "isv.SOMETHING_NEW", ChannelUnavailable, None),
        ],
    )
    async def test_each_error_code_maps_by_name_whatever_the_http_status(
        self,
        notifier: AliyunSmsNotifier,
        provider: FakeAliyun,
        status: int,
        code: str,
        error: type[ChannelError],
        reason: str | None,
    ) -> None:
        provider.answer(status, {"RequestId": "5A1C7E0B-2F7D", "Message": "x", "Code": code})
        caught = await refused_before_sending(notifier, message())
        assert type(caught) is error
        assert code in str(caught) and "5A1C7E0B-2F7D" in str(caught)
        if reason is not None:
            assert isinstance(caught, DeliveryRefused) and caught.reason == reason

    async def test_errors_never_repeat_the_providers_message_which_echoes_the_number(
        self, notifier: AliyunSmsNotifier, provider: FakeAliyun
    ) -> None:
        provider.arrange("auth")
        caught = await refused_before_sending(notifier, message())
        assert isinstance(caught, ChannelAuthError)
        assert str(caught) == (
            "aliyun_sms: SignatureDoesNotMatch (request F655A8D5-B967-440B-8683-DAD6FF8DE990)"
        )

    @pytest.mark.parametrize(
        ("status", "body", "error"),
        [
            (200, "<html>gateway</html>", DeliveryInDoubt),
            (200, {"Code": "OK", "RequestId": "8906582E"}, DeliveryInDoubt),
            (200, {"Message": "no code"}, DeliveryInDoubt),
            (404, "<html>not found</html>", ChannelUnavailable),
            (403, "forbidden", ChannelAuthError),
        ],
    )
    async def test_answers_without_a_readable_code(
        self,
        notifier: AliyunSmsNotifier,
        provider: FakeAliyun,
        status: int,
        body: dict[str, Any] | str,
        error: type[ChannelError],
    ) -> None:
        provider.answer(status, body)
        assert type(await refused_before_sending(notifier, message())) is error


# -- Tencent Cloud ---------------------------------------------------------------------


class TestTencentSms(SmsNotifierContract):
    notifier_class = TencentSmsNotifier
    secrets = (TENCENT_ID, TENCENT_KEY)
    each_variable_once = False

    @pytest.fixture
    async def notifier(self, clock: FrozenClock) -> AsyncIterator[TencentSmsNotifier]:
        settings = TencentSmsSettings.model_validate(
            {
                "secret_id": TENCENT_ID,
                "secret_key": TENCENT_KEY,
                "sdk_app_id": "1400006666",
                "sign_name": "某某品牌",
                "templates": TENCENT_TEMPLATES,
                "base_url": TENCENT_URL,
            }
        )
        async with httpx.AsyncClient() as http:
            yield TencentSmsNotifier(settings, http, clock)

    @pytest.fixture
    def provider(self) -> Iterator[FakeTencent]:
        with respx.mock(assert_all_called=False) as router:
            yield FakeTencent(router)

    async def test_the_authorization_verifies_over_the_host_actually_called(
        self, notifier: TencentSmsNotifier, provider: FakeTencent, clock: FrozenClock
    ) -> None:
        sent = message(params={"ticket_no": "TS20240520", "eta": "48小时内"})
        receipt = await notifier.send(sent)
        assert receipt.message_id == "5000:1045710669157053657849499619"
        request = provider.requests[0]
        assert request.headers["Host"] == TENCENT_HOST
        timestamp = int(clock.now().timestamp())
        assert request.headers["X-TC-Timestamp"] == str(timestamp)
        assert request.headers["X-TC-Action"] == "SendSms"
        assert request.headers["X-TC-Version"] == "2021-01-11"
        assert request.headers["X-TC-Region"] == "ap-guangzhou"

        def authorization(host: str) -> str:
            return tc3_sign(
                "POST",
                host,
                request.content,
                service="sms",
                action="SendSms",
                version="2021-01-11",
                timestamp=timestamp,
                secret_id=TENCENT_ID,
                secret_key=TENCENT_KEY,
                region="ap-guangzhou",
            ).authorization

        assert request.headers["Authorization"] == authorization(TENCENT_HOST)
        assert request.headers["Authorization"] != authorization("sms.tencentcloudapi.com")
        assert provider.body() == {
            "PhoneNumberSet": [RECIPIENT],
            "SmsSdkAppId": "1400006666",
            "SignName": "某某品牌",
            "TemplateId": TENCENT_TEMPLATES["accepted"],
            "TemplateParamSet": ["TS20240520", "48小时内"],
            "SessionContext": sent.key,
        }

    async def test_template_param_set_follows_the_order_of_the_params(
        self, notifier: TencentSmsNotifier, provider: FakeTencent
    ) -> None:
        await notifier.send(message(params={"eta": "48小时", "agent": "王敏", "ticket_no": "TS1"}))
        await notifier.send(message(params={"ticket_no": "TS1", "agent": "王敏", "eta": "48小时"}))
        assert provider.body(0)["TemplateParamSet"] == ["48小时", "王敏", "TS1"]
        assert provider.body(1)["TemplateParamSet"] == ["TS1", "王敏", "48小时"]

    @pytest.mark.parametrize(
        ("code", "error", "reason", "retry_after"),
        [
            ("FailedOperation.PhoneNumberInBlacklist", RecipientUnreachable, "opted_out", None),
            (
                "InvalidParameterValue.IncorrectPhoneNumber",
                RecipientUnreachable,
                "invalid_number",
                None,
            ),
            ("LimitExceeded.PhoneNumberThirtySecondLimit", ChannelRateLimited, None, 30.0),
            ("LimitExceeded.PhoneNumberOneHourLimit", ChannelRateLimited, None, 3600.0),
            ("InternalError.Timeout", ChannelUnavailable, None, None),
        ],
    )
    async def test_a_failure_for_the_number_inside_a_200_answer_is_an_error(
        self,
        notifier: TencentSmsNotifier,
        provider: FakeTencent,
        code: str,
        error: type[ChannelError],
        reason: str | None,
        retry_after: float | None,
    ) -> None:
        provider.refuse_the_number(code)
        caught = await refused_before_sending(notifier, message())
        assert type(caught) is error
        assert provider.accepted() == 0
        assert RECIPIENT not in str(caught) and MAINLAND_DIGITS not in str(caught)
        if reason is not None:
            assert isinstance(caught, DeliveryRefused) and caught.reason == reason
        if isinstance(caught, ChannelRateLimited):
            assert caught.retry_after == retry_after

    @pytest.mark.parametrize(
        ("code", "error", "reason"),
        [
            ("AuthFailure.SignatureExpire", ChannelAuthError, None),
            ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", ChannelAuthError, None),
            ("InvalidParameterValue.SdkAppIdNotExist", ChannelAuthError, None),
            ("RequestLimitExceeded", ChannelRateLimited, None),
            ("LimitExceeded.AppDailyLimit", ChannelRateLimited, None),
            ("LimitExceeded.PhoneNumberCountLimit", DeliveryRefused, "parameter_refused"),
            (
                "FailedOperation.SignatureIncorrectOrUnapproved",
                DeliveryRefused,
                "signature_refused",
            ),
            (
                "InvalidParameterValue.TemplateParameterFormatError",
                DeliveryRefused,
                "parameter_refused",
            ),
            (
                "InvalidParameterValue.TemplateParameterLengthLimit",
                DeliveryRefused,
                "parameter_refused",
            ),
            (
                "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
                DeliveryRefused,
                "content_refused",
            ),
            (
                "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
                RecipientUnreachable,
                "invalid_number",
            ),
            ("FailedOperation.InsufficientBalanceInSmsPackage", ChannelUnavailable, None),
            ("UnauthorizedOperation.SerivceSuspendDueToArrears", ChannelUnavailable, None),
            ("InternalError.OtherError", ChannelUnavailable, None),
            ("FailedOperation.SomethingNew", ChannelUnavailable, None),
        ],
    )
    async def test_each_error_code_maps_by_name(
        self,
        notifier: TencentSmsNotifier,
        provider: FakeTencent,
        code: str,
        error: type[ChannelError],
        reason: str | None,
    ) -> None:
        provider.fail(code)
        caught = await refused_before_sending(notifier, message())
        assert type(caught) is error
        assert str(caught) == f"tencent_sms: {code} (request ed93f3cb-f35e-473f-b9f3-0d451b8b79c6)"
        if reason is not None:
            assert isinstance(caught, DeliveryRefused) and caught.reason == reason

    def test_an_enterprise_account_can_lift_the_length_limit(
        self, notifier: TencentSmsNotifier
    ) -> None:
        assert notifier.settings.max_variable_chars == 12
        unlimited = TencentSmsNotifier(
            notifier.settings.model_copy(update={"max_variable_chars": None}),
            notifier.http,
            notifier.clock,
        )
        assert (
            unlimited.value_problems({"solution": "为您办理退货退款，款项将在三个工作日内原路退回"})
            == []
        )
        assert unlimited.value_problems({"survey_url": "https://t.cn/A6x"}) != []
