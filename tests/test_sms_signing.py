"""SMS request signing against the published vectors (shared/reference/channels.md §5).

Aliyun: TV-ALI-1 (Dysmsapi SendSms), TV-ALI-2 (DescribeRegions), TV-ALI-3
(DescribeDedicatedHosts), TV-ALI-4 (ACS3-HMAC-SHA256). Tencent Cloud: TV-TC-1
(current doc, ``x-tc-action`` signed), TV-TC-2 (2019 doc), TV-TC-3 (2018 doc, GET).
Each is reproduced from the inputs the reference gives, intermediate strings included
where they are published, so a wrong step fails at the step.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbound._aliyun_signing import (
    Acs3Request,
    acs3_authorization,
    acs3_canonical_request,
    canonicalized_query,
    percent_encode,
    rpc_v1_signature,
    rpc_v1_string_to_sign,
    signed_rpc_query,
)
from outbound._tc3_signing import (
    Tc3Request,
    signature,
    signing_key,
    signing_key_from_date_key,
    tc3_sign,
    utc_date,
)

# -- Aliyun RPC v1 ---------------------------------------------------------------------

TV_ALI_1_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
TV_ALI_1_STRING_TO_SIGN = "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
TV_ALI_1_SIGNATURE = "zJDF+Lrzhj/ThnlvIToysFRq6t4="

TV_ALI_2_PARAMS = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}
TV_ALI_2_STRING_TO_SIGN = "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
TV_ALI_2_SIGNATURE = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="

TV_ALI_3_PARAMS = {
    "AccessKeyId": "testid",
    "Action": "DescribeDedicatedHosts",
    "Format": "JSON",
    "RegionId": "cn-beijing",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "edb2b34af0af9a6d14deaf7c1a5315eb",
    "SignatureVersion": "1.0",
    "Timestamp": "2023-03-13T08:34:30Z",
    "Version": "2014-05-26",
}
TV_ALI_3_SIGNATURE = "9NaGiOspFP5UPcwX8Iwt2YJXXuk="

COMMON = {
    "AccessKeyId",
    "Format",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
}


def test_tv_ali_1_string_to_sign_is_the_published_one() -> None:
    assert rpc_v1_string_to_sign("GET", TV_ALI_1_PARAMS) == TV_ALI_1_STRING_TO_SIGN


def test_tv_ali_1_sendsms_signature() -> None:
    assert rpc_v1_signature("GET", TV_ALI_1_PARAMS, "testSecret") == TV_ALI_1_SIGNATURE
    assert percent_encode(TV_ALI_1_SIGNATURE) == "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"


def test_tv_ali_1_through_signed_rpc_query() -> None:
    own = {key: value for key, value in TV_ALI_1_PARAMS.items() if key not in COMMON}
    query = signed_rpc_query(
        "GET",
        own,
        "testId",
        "testSecret",
        nonce="45e25e9b-0a6f-4070-8c85-2956eda1b466",
        timestamp=datetime(2017, 7, 12, 2, 42, 19, tzinfo=UTC),
        response_format="XML",
    )
    assert query == {**TV_ALI_1_PARAMS, "Signature": TV_ALI_1_SIGNATURE}
    assert "&Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D&" in canonicalized_query(query)


def test_tv_ali_1_pitfall_lower_case_secret_does_not_reproduce() -> None:
    assert rpc_v1_signature("GET", TV_ALI_1_PARAMS, "testsecret") != TV_ALI_1_SIGNATURE


def test_tv_ali_2_describe_regions() -> None:
    assert rpc_v1_string_to_sign("GET", TV_ALI_2_PARAMS) == TV_ALI_2_STRING_TO_SIGN
    assert rpc_v1_signature("GET", TV_ALI_2_PARAMS, "testsecret") == TV_ALI_2_SIGNATURE


def test_tv_ali_2_through_signed_rpc_query() -> None:
    query = signed_rpc_query(
        "GET",
        {"Action": "DescribeRegions"},
        "testid",
        "testsecret",
        nonce="3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        timestamp=datetime(2016, 2, 23, 20, 46, 24, tzinfo=timezone(timedelta(hours=8))),
        version="2014-05-26",
        response_format="XML",
    )
    assert query["Timestamp"] == "2016-02-23T12:46:24Z"
    assert query["Signature"] == TV_ALI_2_SIGNATURE


def test_tv_ali_3_describe_dedicated_hosts() -> None:
    assert rpc_v1_signature("GET", TV_ALI_3_PARAMS, "testsecret") == TV_ALI_3_SIGNATURE
    query = signed_rpc_query(
        "GET",
        {"Action": "DescribeDedicatedHosts", "RegionId": "cn-beijing"},
        "testid",
        "testsecret",
        nonce="edb2b34af0af9a6d14deaf7c1a5315eb",
        timestamp=datetime(2023, 3, 13, 8, 34, 30, tzinfo=UTC),
        version="2014-05-26",
    )
    assert query["Signature"] == TV_ALI_3_SIGNATURE


def test_a_signature_already_in_params_is_not_signed() -> None:
    params = {**TV_ALI_2_PARAMS, "Signature": "anything"}
    assert rpc_v1_signature("GET", params, "testsecret") == TV_ALI_2_SIGNATURE


@pytest.mark.parametrize("name", sorted(TV_ALI_1_PARAMS))
def test_changing_any_one_parameter_changes_the_signature(name: str) -> None:
    changed = {**TV_ALI_1_PARAMS, name: TV_ALI_1_PARAMS[name] + "0"}
    assert rpc_v1_signature("GET", changed, "testSecret") != TV_ALI_1_SIGNATURE


def test_adding_a_parameter_changes_the_signature() -> None:
    added = {**TV_ALI_1_PARAMS, "SmsUpExtendCode": "1"}
    assert rpc_v1_signature("GET", added, "testSecret") != TV_ALI_1_SIGNATURE


@pytest.mark.parametrize(
    ("method", "secret"), [("POST", "testSecret"), ("GET", "testSecreT"), ("GET", "testSecret&")]
)
def test_method_and_secret_are_signed(method: str, secret: str) -> None:
    assert rpc_v1_signature(method, TV_ALI_1_PARAMS, secret) != TV_ALI_1_SIGNATURE


@pytest.mark.parametrize("name", sorted(COMMON))
def test_signed_rpc_query_refuses_to_let_params_set_a_common_parameter(name: str) -> None:
    with pytest.raises(ValueError, match=name) as caught:
        signed_rpc_query(
            "GET",
            {"Action": "SendSms", name: "x"},
            "testId",
            "s3cr3t-value",
            nonce="n",
            timestamp=datetime(2017, 7, 12, tzinfo=UTC),
        )
    assert "s3cr3t-value" not in str(caught.value)


def test_signed_rpc_query_refuses_a_naive_timestamp_and_an_empty_nonce() -> None:
    with pytest.raises(ValueError, match="timezone"):
        signed_rpc_query(
            "GET", {}, "testId", "testSecret", nonce="n", timestamp=datetime(2017, 7, 12)
        )
    with pytest.raises(ValueError, match="nonce"):
        signed_rpc_query(
            "GET", {}, "testId", "testSecret", nonce="", timestamp=datetime(2017, 7, 12, tzinfo=UTC)
        )


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (" ", "%20"),
        ("*", "%2A"),
        ("~", "~"),
        ("/", "%2F"),
        ("+", "%2B"),
        ("=&", "%3D%26"),
        ("aZ09-_.", "aZ09-_."),
        ("阿", "%E9%98%BF"),
    ],
)
def test_percent_encode_follows_aliyun_rules(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


ENCODED = re.compile(r"(?:[A-Za-z0-9\-_.~]|%[0-9A-F]{2})*")


@given(st.text())
def test_percent_encode_round_trips_and_leaves_only_unreserved_characters(text: str) -> None:
    encoded = percent_encode(text)
    assert ENCODED.fullmatch(encoded)
    assert unquote(encoded, errors="strict") == text


# -- Aliyun ACS3-HMAC-SHA256 -----------------------------------------------------------

TV_ALI_4_CANONICAL_REQUEST = """POST
/
ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai
host:ecs.cn-shanghai.aliyuncs.com
x-acs-action:RunInstances
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-date:2023-10-26T10:22:32Z
x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d
x-acs-version:2014-05-26

host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"""
TV_ALI_4_AUTHORIZATION = "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"


def tv_ali_4(**overrides: object) -> Acs3Request:
    arguments: dict[str, object] = {
        "method": "POST",
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "path": "/",
        "query": {
            "RegionId": "cn-shanghai",
            "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        },
        "payload": b"",
        "access_key_id": "YourAccessKeyId",
        "access_key_secret": "YourAccessKeySecret",
        "action": "RunInstances",
        "version": "2014-05-26",
        "timestamp": datetime(2023, 10, 26, 10, 22, 32, tzinfo=UTC),
        "nonce": "3156853299f313e23d1673dc12e1703d",
    }
    arguments.update(overrides)
    return acs3_authorization(**arguments)  # type: ignore[arg-type]


def test_tv_ali_4_acs3_canonical_request_and_authorization() -> None:
    signed = tv_ali_4()
    assert signed.canonical_request == TV_ALI_4_CANONICAL_REQUEST
    assert (
        hashlib.sha256(signed.canonical_request.encode()).hexdigest()
        == "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    assert signed.authorization == TV_ALI_4_AUTHORIZATION
    assert signed.headers == {
        "x-acs-action": "RunInstances",
        "x-acs-version": "2014-05-26",
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "Authorization": TV_ALI_4_AUTHORIZATION,
    }
    assert signed.query == (
        "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    )
    assert "YourAccessKeySecret" not in repr(signed)


@pytest.mark.parametrize(
    "change",
    [
        {"access_key_secret": "YourAccessKeySecreT"},
        {"host": "127.0.0.1:8080"},
        {"payload": b"{}"},
        {"nonce": "3156853299f313e23d1673dc12e1703e"},
        {"query": {"RegionId": "cn-shanghai"}},
        {"content_type": "application/json"},
    ],
    ids=repr,
)
def test_acs3_signs_every_input(change: dict[str, object]) -> None:
    assert tv_ali_4(**change).authorization != TV_ALI_4_AUTHORIZATION


# -- Tencent Cloud TC3-HMAC-SHA256 -----------------------------------------------------

TC_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
TC_EXAMPLE_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
TC_EXAMPLE_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
TV_TC_1_CANONICAL_REQUEST = "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\nx-tc-action:describeinstances\n\ncontent-type;host;x-tc-action\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
TV_TC_1_STRING_TO_SIGN = "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
TV_TC_2_AUTHORIZATION = "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def cvm_post(**overrides: object) -> Tc3Request:
    arguments: dict[str, object] = {
        "method": "POST",
        "host": "cvm.tencentcloudapi.com",
        "payload": TC_PAYLOAD,
        "service": "cvm",
        "action": "DescribeInstances",
        "version": "2017-03-12",
        "region": "ap-guangzhou",
        "timestamp": 1551113065,
        "secret_id": TC_EXAMPLE_ID,
        "secret_key": TC_EXAMPLE_KEY,
    }
    arguments.update(overrides)
    return tc3_sign(**arguments)  # type: ignore[arg-type]


def tv_tc_1(**overrides: object) -> Tc3Request:
    return cvm_post(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3*******",
        signed_header_names=("content-type", "host", "x-tc-action"),
        **overrides,
    )


def test_tv_tc_1_canonical_request_and_string_to_sign() -> None:
    signed = tv_tc_1()
    assert hashlib.sha256(TC_PAYLOAD).hexdigest() == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert signed.canonical_request == TV_TC_1_CANONICAL_REQUEST
    assert signed.string_to_sign == TV_TC_1_STRING_TO_SIGN


def test_tv_tc_1_signature_from_the_published_secret_date() -> None:
    """The real key is masked; the doc publishes SecretDate, so the chain starts there."""
    secret_date = bytes.fromhex("da98fb70dcf6b112dc21038d1eeeb3a95c74b4dcb12c1131f864f6066bd02be0")
    key = signing_key_from_date_key(secret_date, "cvm")
    assert key.hex() == "b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af"
    assert signature(key, TV_TC_1_STRING_TO_SIGN) == (
        "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    )


def test_tv_tc_1_full_chain_with_the_literal_masked_key() -> None:
    assert tv_tc_1().authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host;x-tc-action, "
        "Signature=be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3"
    )


def test_tv_tc_2_post_without_x_tc_action() -> None:
    signed = cvm_post()
    assert (
        hashlib.sha256(signed.canonical_request.encode()).hexdigest()
        == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert signed.authorization == TV_TC_2_AUTHORIZATION


def tv_tc_3(**overrides: object) -> Tc3Request:
    arguments: dict[str, object] = {
        "method": "GET",
        "payload": b"",
        "query": {"Limit": "10", "Offset": "0"},
        "content_type": "application/x-www-form-urlencoded",
        "timestamp": 1539084154,
    }
    arguments.update(overrides)
    return cvm_post(**arguments)


def test_tv_tc_3_get_with_a_query() -> None:
    signed = tv_tc_3()
    assert signed.query_string == "Limit=10&Offset=0"
    assert (
        hashlib.sha256(signed.canonical_request.encode()).hexdigest()
        == "91c9c192c14460df6c1ffc69e34e6c5e90708de2a6d282cccf957dbf1aa7f3a7"
    )
    assert signed.authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2018-10-09/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474"
    )


def test_tv_tc_3_the_docs_misprinted_host_does_not_reproduce() -> None:
    signed = tv_tc_3(host="cvm.api.tencentyun.com")
    assert "5da7a33f6993f0614b047e5df4582db9e9bf4672ba50567dba16c6ccf174c474" not in (
        signed.authorization
    )


def test_the_date_in_the_scope_is_utc_not_beijing() -> None:
    beijing = timezone(timedelta(hours=8))
    assert datetime.fromtimestamp(1551113065, beijing).day == 26
    assert utc_date(1551113065) == "2019-02-25"
    assert utc_date(1551113065 + 8 * 3600) == "2019-02-26"


def test_sms_headers_to_send() -> None:
    signed = tc3_sign(
        "POST",
        "127.0.0.1:8765",
        b"{}",
        service="sms",
        action="SendSms",
        version="2021-01-11",
        region="ap-guangzhou",
        timestamp=1551113065,
        secret_id=TC_EXAMPLE_ID,
        secret_key=TC_EXAMPLE_KEY,
    )
    assert signed.headers == {
        "Content-Type": "application/json; charset=utf-8",
        "X-TC-Action": "SendSms",
        "X-TC-Timestamp": "1551113065",
        "X-TC-Version": "2021-01-11",
        "X-TC-Region": "ap-guangzhou",
        "Authorization": signed.authorization,
    }
    assert "\nhost:127.0.0.1:8765\n" in signed.canonical_request
    assert "/2019-02-25/sms/tc3_request," in signed.authorization
    assert TC_EXAMPLE_KEY not in repr(signed)


def test_region_is_sent_only_when_given() -> None:
    assert "X-TC-Region" not in cvm_post(region=None).headers


@pytest.mark.parametrize(
    "change",
    [
        {"secret_key": "Gu5t9xGARNpq86cd98joQYCN3EXAMPLF"},
        {"host": "127.0.0.1:8765"},
        {"payload": TC_PAYLOAD + b" "},
        {"timestamp": 1551113066},
        {"service": "sms"},
        {"content_type": "application/json"},
        {"method": "GET"},
        {"query": {"Limit": "1"}},
    ],
    ids=repr,
)
def test_tc3_signs_every_input(change: dict[str, object]) -> None:
    assert cvm_post(**change).authorization != TV_TC_2_AUTHORIZATION


def test_a_signed_action_header_covers_the_action() -> None:
    assert tv_tc_1(action="RunInstances").authorization != tv_tc_1().authorization


def test_the_signing_key_chain_depends_on_date_service_and_key() -> None:
    base = signing_key(TC_EXAMPLE_KEY, "2019-02-25", "cvm")
    assert signing_key(TC_EXAMPLE_KEY, "2019-02-26", "cvm") != base
    assert signing_key(TC_EXAMPLE_KEY, "2019-02-25", "sms") != base
    assert signing_key(TC_EXAMPLE_KEY + "x", "2019-02-25", "cvm") != base


def test_signing_a_header_that_is_not_sent_is_refused_without_the_secret() -> None:
    with pytest.raises(ValueError, match="x-tc-token") as caught:
        cvm_post(signed_header_names=("content-type", "host", "x-tc-token"))
    assert TC_EXAMPLE_KEY not in str(caught.value)


def test_acs3_canonical_header_names_are_lower_cased() -> None:
    mixed = acs3_canonical_request("POST", "/", {}, {"Host": "h", "X-Acs-Action": "A"}, "e3")
    assert mixed == acs3_canonical_request(
        "POST", "/", {}, {"host": "h", "x-acs-action": "A"}, "e3"
    )
    assert "\nhost:h\nx-acs-action:A\n\nhost;x-acs-action\n" in mixed
