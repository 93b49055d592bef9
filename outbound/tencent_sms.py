"""Tencent Cloud SMS: one ``SendSms`` (2021-01-11) call per notification.

The request is a JSON ``POST`` signed with TC3-HMAC-SHA256
(:mod:`outbound._tc3_signing`) over the host actually called, read from the
request built for ``base_url`` (port included), so a proxy or a test fake
verifies like the real endpoint. The canonical URI is always ``/``, as
Tencent's API 3.0 computes it whatever path a proxy was called on.
``X-TC-Timestamp`` comes from the injected clock; Tencent refuses a request
more than five minutes off.

``PhoneNumberSet`` takes E.164 as it is (``+8613800138000``).
``TemplateParamSet`` is positional ({1}, {2}... in the approved template), so
it is the message's values in the order the text first uses them.
``SessionContext`` is the message key, echoed in receipts.

Tencent answers HTTP 200 either way: ``Response.Error`` when the call failed,
otherwise ``Response.SendStatusSet`` with one status per number, whose
``Code`` is ``"Ok"`` only if that number was taken. Both kinds of code are
mapped by :func:`tencent_error`.
"""

from __future__ import annotations

import json
from typing import Annotated, ClassVar

import httpx
from pydantic import Field, SecretStr, StringConstraints

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from outbound._http import send_request
from outbound._sms_rules import (
    TemplatedSmsNotifier,
    json_object,
    require_e164,
    shown_code,
    shown_request_id,
    unreadable_answer,
)
from outbound._tc3_signing import SMS_SERVICE, SMS_VERSION, tc3_sign
from outbound.base import Message, NotifierSettings, Receipt
from schemas.status import Node

NAME = "tencent_sms"

TemplateId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class TencentSmsSettings(NotifierSettings):
    """``[notifiers.tencent_sms]``: an API key allowed SendSms, an SDK app, a sign and templates.

    ``max_variable_chars`` defaults to 12, the limit Tencent documents for
    individually verified accounts (``TemplateParameterLengthLimit``: "单个模板变量
    字符数超过12个，企业认证用户不限制"); enterprise accounts have none, and the current
    review standard defers to what the console shows for each template. It is
    unconfirmed for any given account, hence a setting: raise it, or set it to
    null, for an enterprise account.
    """

    secret_id: SecretStr = Field(description="SecretId of a CAM key allowed sms:SendSms.")
    secret_key: SecretStr = Field(description="SecretKey of that CAM key.")
    sdk_app_id: str = Field(
        min_length=1, description="SmsSdkAppId of the SMS application (1400006666)."
    )
    sign_name: str = Field(min_length=1, description="The approved signature (签名): 某某品牌.")
    templates: dict[Node, TemplateId] = Field(
        default_factory=dict,
        description="Approved TemplateId per node (1110); its {1}, {2}... are the text's"
        " placeholders in the order the text first uses them.",
    )
    base_url: str = Field(
        "https://sms.tencentcloudapi.com",
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="SMS API endpoint; the request is signed for this URL's host.",
    )
    region: str = Field("ap-guangzhou", min_length=1, description="X-TC-Region of the request.")
    max_variable_chars: int | None = Field(
        12,
        ge=1,
        description="Longest value a template variable may take; unset (null) for no limit.",
    )
    allow_urls_in_variables: bool = Field(
        False, description="Set true only if Tencent approved links in this account's variables."
    )


def tencent_error(code: str, request_id: object = None) -> ChannelError:
    """The error for a Tencent code other than ``Ok``: the one place codes are mapped.

    It serves both ``Response.Error.Code`` and a number's ``SendStatusSet``
    ``Code``. Only the code and request id are shown, never Tencent's
    ``Message``. A code not listed here is taken as the provider failing
    (unavailable), so the message is retried or goes to another provider.
    """
    shown = f"{NAME}: {shown_code(code)}{shown_request_id(request_id)}"
    match code:
        case (
            "InvalidParameterValue.IncorrectPhoneNumber"
            | "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber"
        ):
            return RecipientUnreachable(shown, "invalid_number")
        case "FailedOperation.PhoneNumberInBlacklist" | "FailedOperation.PhoneNumberOnBlacklist":
            return RecipientUnreachable(shown, "opted_out")
        case "UnsupportedOperation.UnsuportedRegion" | "UnsupportedOperation.UnsupportedRegion":
            return RecipientUnreachable(shown, "region_unsupported")
        case "LimitExceeded.PhoneNumberThirtySecondLimit":
            return ChannelRateLimited(shown, 30.0)
        case "LimitExceeded.PhoneNumberOneHourLimit":
            return ChannelRateLimited(shown, 3600.0)
        case "LimitExceeded.PhoneNumberCountLimit":
            return DeliveryRefused(shown, "parameter_refused")
        case _ if code.startswith(("LimitExceeded", "RequestLimitExceeded")):
            return ChannelRateLimited(shown)
        case "FailedOperation.TemplateIncorrectOrUnapproved":
            return DeliveryRefused(shown, "template_refused")
        case (
            "FailedOperation.SignatureIncorrectOrUnapproved"
            | "InvalidParameterValue.MissingSignatureList"
        ):
            return DeliveryRefused(shown, "signature_refused")
        case (
            "FailedOperation.ContainSensitiveWord"
            | "InvalidParameterValue.ContentLengthLimit"
            | "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter"
        ):
            return DeliveryRefused(shown, "content_refused")
        case (
            "InvalidParameterValue.SdkAppIdNotExist"
            | "InvalidParameterValue.SdkAppidNotExist"
            | "InternalError.RequestTimeException"
        ):
            # our SmsSdkAppId or our clock is wrong: like a refused credential, retrying won't help
            return ChannelAuthError(shown)
        case _ if code.startswith(("InvalidParameter", "MissingParameter")):
            # TemplateParameterFormatError, TemplateParameterLengthLimit and the like
            return DeliveryRefused(shown, "parameter_refused")
        case "UnauthorizedOperation.SerivceSuspendDueToArrears":
            return ChannelUnavailable(shown)
        case _ if code.startswith(("AuthFailure", "UnauthorizedOperation")):
            return ChannelAuthError(shown)
        case _:
            # InternalError.*, FailedOperation.* not above (InsufficientBalanceInSmsPackage,
            # OtherError), unknown codes
            return ChannelUnavailable(shown)


class TencentSmsNotifier(TemplatedSmsNotifier):
    """Sends each notification with one Tencent ``SendSms`` call; ``SessionContext`` is the key."""

    name: ClassVar[str] = NAME
    channel: ClassVar[str] = "sms"
    settings_model: ClassVar[type[NotifierSettings]] = TencentSmsSettings
    settings: TencentSmsSettings

    each_variable_once: ClassVar[bool] = False

    async def send(self, message: Message) -> Receipt:
        settings = self.settings
        template = self.template(message.node)
        payload = json.dumps(
            {
                "PhoneNumberSet": [require_e164(NAME, message.recipient)],
                "SmsSdkAppId": settings.sdk_app_id,
                "SignName": settings.sign_name,
                "TemplateId": template,
                "TemplateParamSet": list(message.params.values()),
                "SessionContext": message.key,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        request = self.http.build_request(
            "POST", settings.base_url, content=payload, timeout=settings.timeout_seconds
        )
        signed = tc3_sign(
            "POST",
            request.headers["Host"],
            payload,
            service=SMS_SERVICE,
            action="SendSms",
            version=SMS_VERSION,
            timestamp=int(self.clock.now().timestamp()),
            secret_id=settings.secret_id.get_secret_value(),
            secret_key=settings.secret_key.get_secret_value(),
            region=settings.region,
        )
        request.headers.update(signed.headers)
        response = await send_request(self.http, request, NAME)
        return self._receipt(response)

    def _receipt(self, response: httpx.Response) -> Receipt:
        body = json_object(response)
        answer = body.get("Response") if body is not None else None
        if not isinstance(answer, dict):
            raise unreadable_answer(NAME, response)
        request_id = answer.get("RequestId")
        error = answer.get("Error")
        if isinstance(error, dict):
            raise tencent_error(str(error.get("Code", "")), request_id)
        statuses = answer.get("SendStatusSet")
        status = statuses[0] if isinstance(statuses, list) and statuses else None
        if not isinstance(status, dict) or not isinstance(status.get("Code"), str):
            raise unreadable_answer(NAME, response)
        if status["Code"] != "Ok":
            raise tencent_error(status["Code"], request_id)
        serial_no = status.get("SerialNo")
        if not isinstance(serial_no, str) or not serial_no:
            raise DeliveryInDoubt(f"{NAME}: Ok without a SerialNo{shown_request_id(request_id)}")
        return Receipt(provider=NAME, message_id=serial_no)
