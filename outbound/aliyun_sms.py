"""Aliyun (Alibaba Cloud) SMS: one Dysmsapi ``SendSms`` (2017-05-25) call per notification.

The request is an RPC call signed with the v1 signature (HMAC-SHA1,
:mod:`outbound._aliyun_signing`), sent as a ``POST`` form to ``base_url`` ``/``
so that the customer's number and the variables stay out of URLs and access
logs. ``SignatureNonce`` is a fresh UUID per request (Aliyun refuses a
replayed one) and ``Timestamp`` comes from the injected clock.

``PhoneNumbers`` takes mainland numbers bare (``13800138000``; Aliyun also
accepts ``+86``/``0086``/``86`` in front, the bare form is the one its own
examples use) and other numbers as country code and number without ``+``
(``85291234567``), so an E.164 recipient loses ``+86`` or only ``+``.

Aliyun answers ``{"Code": "OK", "BizId": ...}`` on success and another
``Code`` otherwise, with HTTP 200 for business errors and 4xx for signature
and access-key errors; both are mapped by :func:`aliyun_error`.
"""

from __future__ import annotations

import json
from typing import Annotated, ClassVar
from uuid import uuid4

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
from outbound._aliyun_signing import canonicalized_query, signed_rpc_query
from outbound._http import send_request
from outbound._sms_rules import (
    TemplatedSmsNotifier,
    json_object,
    require_e164,
    shown_code,
    shown_request_id,
    unreadable_answer,
)
from outbound.base import Message, NotifierSettings, Receipt
from schemas.status import Node

NAME = "aliyun_sms"

TemplateCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class AliyunSmsSettings(NotifierSettings):
    """``[notifiers.aliyun_sms]``: an AccessKey allowed to call Dysmsapi, a sign and templates.

    ``max_variable_chars`` defaults to 35, Aliyun's per-variable limit as its
    template guide currently documents it ("单个变量的长度限制为1~35个字符"); the
    limit has changed before and a template's variable property may be
    stricter, so it is unconfirmed for any given template and kept a setting.
    """

    access_key_id: SecretStr = Field(description="AccessKey ID of a RAM user allowed SendSms.")
    access_key_secret: SecretStr = Field(description="AccessKey secret of that RAM user.")
    sign_name: str = Field(min_length=1, description="The approved signature (签名): 某某品牌.")
    templates: dict[Node, TemplateCode] = Field(
        default_factory=dict,
        description="Approved TemplateCode per node (SMS_71390007); its ${name} variables must be"
        " the text's placeholders.",
    )
    base_url: str = Field(
        "https://dysmsapi.aliyuncs.com",
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="Dysmsapi endpoint; a test or a proxy may point elsewhere.",
    )
    region_id: str = Field("cn-hangzhou", min_length=1, description="RegionId of the request.")
    max_variable_chars: int = Field(
        35,
        ge=1,
        description="Longest value a template variable may take (Aliyun's documented 1-35).",
    )
    allow_urls_in_variables: bool = Field(
        False, description="Set true only if Aliyun approved links in this account's variables."
    )


def aliyun_phone_number(recipient: str) -> str:
    """``PhoneNumbers`` for an E.164 recipient: mainland without ``+86``, others without ``+``."""
    number = require_e164(NAME, recipient)
    return number[3:] if number.startswith("+86") else number[1:]


def aliyun_error(code: str, request_id: object = None) -> ChannelError:
    """The error for an Aliyun ``Code`` other than ``OK``: the one place codes are mapped.

    Only the code and the request id are shown: Aliyun's ``Message`` may echo
    the string that was signed, and with it the recipient's number. A code
    not listed here is taken as the provider failing (unavailable), so the
    message is retried or goes to another provider rather than being dropped.
    """
    shown = f"{NAME}: {shown_code(code)}{shown_request_id(request_id)}"
    match code:
        case "isv.MOBILE_NUMBER_ILLEGAL":
            return RecipientUnreachable(shown, "invalid_number")
        case "isv.BUSINESS_LIMIT_CONTROL" | "isv.DAY_LIMIT_CONTROL" | "isv.MONTH_LIMIT_CONTROL":
            return ChannelRateLimited(shown)
        case _ if code.startswith("Throttling"):
            return ChannelRateLimited(shown)
        case "isv.SMS_TEMPLATE_ILLEGAL" | "isv.DOMESTIC_NUMBER_NOT_SUPPORTED":
            return DeliveryRefused(shown, "template_refused")
        case (
            "isv.SMS_SIGNATURE_ILLEGAL"
            | "isv.SMS_SIGN_ILLEGAL"
            | "isv.SIGN_STATE_ILLEGAL"
            | "isv.SMS_SIGNATURE_SCENE_ILLEGAL"
        ):
            return DeliveryRefused(shown, "signature_refused")
        case (
            "isv.SMS_CONTENT_ILLEGAL" | "isv.BLACK_KEY_CONTROL_LIMIT" | "isv.PARAM_NOT_SUPPORT_URL"
        ):
            return DeliveryRefused(shown, "content_refused")
        case (
            "isv.INVALID_PARAMETERS"
            | "isv.INVALID_JSON_PARAM"
            | "isv.PARAM_LENGTH_LIMIT"
            | "isv.TEMPLATE_MISSING_PARAMETERS"
            | "isv.MOBILE_COUNT_OVER_LIMIT"
            | "isv.EXTEND_CODE_ERROR"
        ):
            return DeliveryRefused(shown, "parameter_refused")
        case (
            "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAccessKeyId"
            | "isp.RAM_PERMISSION_DENY"
            | "isv.ACCOUNT_NOT_EXISTS"
            | "isv.ACCOUNT_ABNORMAL"
            | "isv.PRODUCT_UN_SUBSCRIPT"
            | "isv.PRODUCT_UNSUBSCRIBE"
            | "isv.DENY_IP_RANGE"
        ):
            return ChannelAuthError(shown)
        case _ if code.startswith(("InvalidAccessKeyId", "Forbidden", "InvalidTimeStamp")):
            return ChannelAuthError(shown)
        case _:
            # isp.SYSTEM_ERROR, isv.SYSTEM_ERROR, ServiceUnavailable, isv.OUT_OF_SERVICE and
            # isv.AMOUNT_NOT_ENOUGH (the account's balance), SignatureNonceUsed, unknown codes
            return ChannelUnavailable(shown)


class AliyunSmsNotifier(TemplatedSmsNotifier):
    """Sends each notification with one Aliyun ``SendSms`` call; ``OutId`` is the message key."""

    name: ClassVar[str] = NAME
    channel: ClassVar[str] = "sms"
    settings_model: ClassVar[type[NotifierSettings]] = AliyunSmsSettings
    settings: AliyunSmsSettings

    each_variable_once: ClassVar[bool] = True

    async def send(self, message: Message) -> Receipt:
        settings = self.settings
        template = self.template(message.node)
        params = {
            "Action": "SendSms",
            "RegionId": settings.region_id,
            "PhoneNumbers": aliyun_phone_number(message.recipient),
            "SignName": settings.sign_name,
            "TemplateCode": template,
            "OutId": message.key,
        }
        if message.params:
            params["TemplateParam"] = json.dumps(
                dict(message.params), ensure_ascii=False, separators=(",", ":")
            )
        query = signed_rpc_query(
            "POST",
            params,
            settings.access_key_id.get_secret_value(),
            settings.access_key_secret.get_secret_value(),
            nonce=str(uuid4()),
            timestamp=self.clock.now(),
        )
        request = self.http.build_request(
            "POST",
            settings.base_url.rstrip("/") + "/",
            content=canonicalized_query(query).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=settings.timeout_seconds,
        )
        response = await send_request(self.http, request, NAME)
        return self._receipt(response)

    def _receipt(self, response: httpx.Response) -> Receipt:
        body = json_object(response)
        code = body.get("Code") if body is not None else None
        if body is None or not isinstance(code, str):
            raise unreadable_answer(NAME, response)
        if code != "OK":
            raise aliyun_error(code, body.get("RequestId"))
        biz_id = body.get("BizId")
        if not isinstance(biz_id, str) or not biz_id:
            request_id = shown_request_id(body.get("RequestId"))
            raise DeliveryInDoubt(f"{NAME}: OK without a BizId{request_id}")
        return Receipt(provider=NAME, message_id=biz_id)
