"""Marketplace and Weibo signing against the vectors in shared/reference/channels.md §3.2, §4.

Published: TV-TB-1 and TV-TB-2 (Taobao TOP md5), TV-JD-1 (JOS), TV-PDD-1 (Pinduoduo),
TV-WB-1 (Weibo fans-service). Not official: TOP's hmac and hmac-sha256 values beside
TV-TB-1 and all of TV-DY-0 (Douyin shop) were computed by the reference's author; they
pin our reading of the SDKs and are recomputed here independently, with hashlib alone,
from the sign strings the reference spells out. Intermediate strings are checked where
they are published, so a wrong step fails at the step.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
from datetime import UTC, datetime, timedelta, timezone
from random import Random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors._marketplace_signing import (
    GMT8,
    DouyinSignMethod,
    TopSignMethod,
    douyin_event_sign,
    douyin_param_json,
    douyin_request_params,
    douyin_sign,
    gmt8_timestamp,
    jd_param_json,
    jd_request_params,
    jd_sign,
    jd_timestamp,
    pdd_request_params,
    pdd_sign,
    signed_pairs,
    top_request_params,
    top_sign,
    verify_douyin_push,
    verify_top_sign,
    verify_weibo_signature,
    weibo_signature,
)
from connectors.errors import InvalidSignature

# -- Taobao TOP -------------------------------------------------------------------------

TV_TB_1_SECRET = SecretStr("helloworld")
TV_TB_1_PARAMS = {
    "method": "taobao.item.seller.get",
    "app_key": "12345678",
    "session": "test",
    "timestamp": "2016-01-01 12:00:00",
    "format": "json",
    "v": "2.0",
    "sign_method": "md5",
    "fields": "num_iid,title,nick,price,num",
    "num_iid": "11223344",
}
TV_TB_1_JOINED = "app_key12345678fieldsnum_iid,title,nick,price,numformatjsonmethodtaobao.item.seller.getnum_iid11223344sessiontestsign_methodmd5timestamp2016-01-01 12:00:00v2.0"
TV_TB_1_SIGN = "66987CB115214E59E6EC978214934FB8"
# Computed by the reference's author from the same parameters (sign_method=md5 left in).
TV_TB_1_HMAC_MD5_UNOFFICIAL = "B4DDA503460D60A86B16E950E5D303E9"
TV_TB_1_HMAC_SHA256_UNOFFICIAL = "6B7EB7E1C35D068D69538D80282A37DFBF29B4DB11B451881AF51890626138B3"

TV_TB_2_SECRET = SecretStr("test")
TV_TB_2_PARAMS = {
    "app_key": "test",
    "fields": "nick",
    "format": "xml",
    "method": "taobao.user.seller.get",
    "session": "test",
    "sign_method": "md5",
    "timestamp": "2013-05-06 13:52:03",
    "v": "2.0",
}
TV_TB_2_HASHED = "testapp_keytestfieldsnickformatxmlmethodtaobao.user.seller.getsessiontestsign_methodmd5timestamp2013-05-06 13:52:03v2.0test"
TV_TB_2_SIGN = "72CB4D809B375A54502C09360D879C64"


def test_tv_tb_1_joined_pairs_are_the_published_ones() -> None:
    assert signed_pairs(TV_TB_1_PARAMS) == TV_TB_1_JOINED


def test_tv_tb_1_md5() -> None:
    assert top_sign(TV_TB_1_PARAMS, TV_TB_1_SECRET, "md5") == TV_TB_1_SIGN
    assert top_sign(TV_TB_1_PARAMS, TV_TB_1_SECRET) == TV_TB_1_SIGN


def test_tv_tb_1_through_top_request_params() -> None:
    request = top_request_params(
        "taobao.item.seller.get",
        {"fields": "num_iid,title,nick,price,num", "num_iid": "11223344"},
        app_key="12345678",
        secret=TV_TB_1_SECRET,
        session=SecretStr("test"),
        timestamp=datetime(2016, 1, 1, 4, 0, 0, tzinfo=UTC),
    )
    assert request == {**TV_TB_1_PARAMS, "sign": TV_TB_1_SIGN}


def test_tv_tb_1_hmac_variants_match_the_references_unofficial_values() -> None:
    assert top_sign(TV_TB_1_PARAMS, TV_TB_1_SECRET, "hmac") == TV_TB_1_HMAC_MD5_UNOFFICIAL
    assert top_sign(TV_TB_1_PARAMS, TV_TB_1_SECRET, "hmac-sha256") == (
        TV_TB_1_HMAC_SHA256_UNOFFICIAL
    )


def test_tv_tb_1_hmac_variants_recomputed_independently() -> None:
    joined = TV_TB_1_JOINED.encode()
    assert hmac.new(b"helloworld", joined, hashlib.md5).hexdigest().upper() == (
        TV_TB_1_HMAC_MD5_UNOFFICIAL
    )
    assert hmac.new(b"helloworld", joined, hashlib.sha256).hexdigest().upper() == (
        TV_TB_1_HMAC_SHA256_UNOFFICIAL
    )


def test_tv_tb_2_md5_2013_example() -> None:
    assert "test" + signed_pairs(TV_TB_2_PARAMS) + "test" == TV_TB_2_HASHED
    assert top_sign(TV_TB_2_PARAMS, TV_TB_2_SECRET) == TV_TB_2_SIGN


def test_tv_tb_2_pitfall_signing_url_encoded_values_does_not_reproduce() -> None:
    encoded = {**TV_TB_2_PARAMS, "timestamp": "2013-05-06+13%3A52%3A03"}
    assert top_sign(encoded, TV_TB_2_SECRET) != TV_TB_2_SIGN


@pytest.mark.parametrize("method", ["md5", "hmac", "hmac-sha256"])
def test_top_request_is_accepted_by_a_server_checking_the_same_way(method: TopSignMethod) -> None:
    request = top_request_params(
        "taobao.refunds.receive.get",
        {"fields": "refund_id,reason,desc", "status": "WAIT_SELLER_AGREE", "buyer_nick": "小明 ☆"},
        app_key="12345678",
        secret=TV_TB_1_SECRET,
        session=SecretStr("6102a"),
        timestamp=datetime(2024, 3, 1, 9, 30, tzinfo=GMT8),
        sign_method=method,
    )
    assert request["sign_method"] == method
    verify_top_sign(request, TV_TB_1_SECRET)
    with pytest.raises(InvalidSignature) as refused:
        verify_top_sign({**request, "status": "CLOSED"}, TV_TB_1_SECRET)
    assert refused.value.status == 403


def test_top_verification_refuses_missing_sign_and_unknown_method() -> None:
    with pytest.raises(InvalidSignature) as missing:
        verify_top_sign(TV_TB_1_PARAMS, TV_TB_1_SECRET)
    assert missing.value.status == 401
    signed = {**TV_TB_1_PARAMS, "sign": TV_TB_1_SIGN, "sign_method": "sha1"}
    with pytest.raises(InvalidSignature):
        verify_top_sign(signed, TV_TB_1_SECRET)


def test_top_unknown_sign_method_is_refused_not_defaulted() -> None:
    with pytest.raises(ValueError, match="sign_method"):
        top_sign(TV_TB_1_PARAMS, TV_TB_1_SECRET, "sha1")  # type: ignore[arg-type]


def test_top_empty_business_values_are_neither_sent_nor_signed() -> None:
    request = top_request_params(
        "taobao.traderates.get",
        {"rate_type": "get", "role": "buyer", "result": "", "tid": ""},
        app_key="k",
        secret=TV_TB_1_SECRET,
        session=None,
        timestamp=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert "result" not in request and "tid" not in request and "session" not in request
    assert top_sign({**request, "result": ""}, TV_TB_1_SECRET) == request["sign"]


def test_top_params_may_not_override_public_parameters() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        top_request_params(
            "taobao.refund.get",
            {"refund_id": "1", "timestamp": "2000-01-01 00:00:00"},
            app_key="k",
            secret=TV_TB_1_SECRET,
            session=None,
            timestamp=datetime(2024, 1, 1, tzinfo=UTC),
        )


def test_chinese_values_are_signed_as_utf8() -> None:
    params = {"method": "taobao.refund.get", "reason": "质量问题，商品破损"}
    joined = "method" + "taobao.refund.get" + "reason" + "质量问题，商品破损"
    expected = hashlib.md5(("s3cret" + joined + "s3cret").encode("utf-8")).hexdigest().upper()
    assert top_sign(params, SecretStr("s3cret")) == expected


# -- timestamps ---------------------------------------------------------------------------

offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
aware = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=offsets
)


@given(aware)
def test_top_timestamp_is_gmt8_whatever_the_input_zone(moment: datetime) -> None:
    as_utc = moment.astimezone(UTC).replace(tzinfo=None)
    beijing_wall_clock = as_utc + timedelta(hours=8)
    assert gmt8_timestamp(moment) == beijing_wall_clock.strftime("%Y-%m-%d %H:%M:%S")


@given(aware, offsets)
def test_the_same_instant_in_another_zone_signs_the_same(moment: datetime, zone: timezone) -> None:
    def sign(at: datetime) -> dict[str, str]:
        return top_request_params(
            "taobao.refund.get",
            {"refund_id": "1"},
            app_key="k",
            secret=TV_TB_1_SECRET,
            session=None,
            timestamp=at,
        )

    assert sign(moment) == sign(moment.astimezone(zone))


def test_naive_timestamps_are_refused_not_guessed() -> None:
    naive = datetime(2024, 1, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        gmt8_timestamp(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        pdd_request_params(
            "pdd.refund.list.increment.get",
            {},
            client_id="1",
            client_secret=SecretStr("x"),
            access_token=None,
            timestamp=naive,
        )


# -- JD JOS ---------------------------------------------------------------------------------

TV_JD_1_SECRET = SecretStr("yourappSecret")
TV_JD_1_BUSINESS: dict[str, object] = {
    "order_state": "WAIT_SELLER_STOCK_OUT",
    "page": "1",
    "page_size": "200",
    "start_date": None,
    "end_date": None,
    "optional_fields": None,
}
TV_JD_1_PARAM_JSON = '{"end_date":null,"optional_fields":null,"order_state":"WAIT_SELLER_STOCK_OUT","page":"1","page_size":"200","start_date":null}'
TV_JD_1_JOINED = '360buy_param_json{"end_date":null,"optional_fields":null,"order_state":"WAIT_SELLER_STOCK_OUT","page":"1","page_size":"200","start_date":null}access_tokenyourtokenapp_keyyourappkeymethodjingdong.pop.order.searchtimestamp2021-05-07 09:20:39.683+0800v2.0'
TV_JD_1_SIGN = "D70825340F4084360B9362B60DFD7930"
TV_JD_1_MOMENT = datetime(2021, 5, 7, 9, 20, 39, 683000, tzinfo=GMT8)


def test_tv_jd_1_param_json_has_sorted_keys_and_no_spaces() -> None:
    assert jd_param_json(TV_JD_1_BUSINESS) == TV_JD_1_PARAM_JSON


def test_tv_jd_1_timestamp_form() -> None:
    assert jd_timestamp(TV_JD_1_MOMENT) == "2021-05-07 09:20:39.683+0800"
    assert jd_timestamp(TV_JD_1_MOMENT.astimezone(UTC)) == "2021-05-07 09:20:39.683+0800"
    assert jd_timestamp(TV_JD_1_MOMENT, "seconds") == "2021-05-07 09:20:39"


def test_tv_jd_1_sign() -> None:
    params = {
        "360buy_param_json": TV_JD_1_PARAM_JSON,
        "access_token": "yourtoken",
        "app_key": "yourappkey",
        "method": "jingdong.pop.order.search",
        "timestamp": "2021-05-07 09:20:39.683+0800",
        "v": "2.0",
    }
    assert signed_pairs(params) == TV_JD_1_JOINED
    assert jd_sign(params, TV_JD_1_SECRET) == TV_JD_1_SIGN


def test_tv_jd_1_through_jd_request_params() -> None:
    request = jd_request_params(
        "jingdong.pop.order.search",
        TV_JD_1_BUSINESS,
        app_key="yourappkey",
        secret=TV_JD_1_SECRET,
        access_token=SecretStr("yourtoken"),
        timestamp=TV_JD_1_MOMENT.astimezone(UTC),
    )
    assert request["sign"] == TV_JD_1_SIGN
    assert request["360buy_param_json"] == TV_JD_1_PARAM_JSON


def test_jd_param_json_keeps_chinese_raw_and_sorts_nested_keys() -> None:
    text = jd_param_json({"reason": "质量问题", "filter": {"z": 1, "a": [{"y": 2, "b": 3}]}})
    assert text == '{"filter":{"a":[{"b":3,"y":2}],"z":1},"reason":"质量问题"}'


# -- Pinduoduo ------------------------------------------------------------------------------

TV_PDD_1_SECRET = SecretStr("testSecret")
TV_PDD_1_PARAMS = {
    "type": "pdd.order.number.list.get",
    "data_type": "XML",
    "timestamp": "1480411125",
    "client_id": "1",
    "access_token": "asd78172s8ds9a921j9qqwda12312w1w21211",
    "order_status": "1",
    "page": "1",
    "page_size": "10",
}
TV_PDD_1_HASHED = "testSecretaccess_tokenasd78172s8ds9a921j9qqwda12312w1w21211client_id1data_typeXMLorder_status1page1page_size10timestamp1480411125typepdd.order.number.list.gettestSecret"
TV_PDD_1_SIGN = "E4DE3ED21002510DED352819E7AE6775"


def test_tv_pdd_1_sign() -> None:
    assert "testSecret" + signed_pairs(TV_PDD_1_PARAMS) + "testSecret" == TV_PDD_1_HASHED
    assert pdd_sign(TV_PDD_1_PARAMS, TV_PDD_1_SECRET) == TV_PDD_1_SIGN


def test_tv_pdd_1_through_pdd_request_params() -> None:
    request = pdd_request_params(
        "pdd.order.number.list.get",
        {"order_status": "1", "page": "1", "page_size": "10"},
        client_id="1",
        client_secret=TV_PDD_1_SECRET,
        access_token=SecretStr("asd78172s8ds9a921j9qqwda12312w1w21211"),
        timestamp=datetime.fromtimestamp(1480411125, tz=timezone(timedelta(hours=-5))),
        data_type="XML",
    )
    assert request == {**TV_PDD_1_PARAMS, "sign": TV_PDD_1_SIGN}


def test_tv_pdd_1_pitfall_the_docs_stray_space_in_page_size() -> None:
    typo = {**TV_PDD_1_PARAMS}
    typo["page_size "] = typo.pop("page_size")
    assert pdd_sign(typo, TV_PDD_1_SECRET) != TV_PDD_1_SIGN


# -- Weibo fans-service -----------------------------------------------------------------------

TV_WB_1_SECRET = SecretStr("xyz123xyz")
TV_WB_1_SIGNATURE = "90e4c22c90a58f26526c2dd5b6c56c8822edeaa1"


def test_tv_wb_1_signature() -> None:
    assert weibo_signature(TV_WB_1_SECRET, "1397022061823", "57155157") == TV_WB_1_SIGNATURE
    joined = "139702206182357155157xyz123xyz"
    assert hashlib.sha1(joined.encode()).hexdigest() == TV_WB_1_SIGNATURE


def test_tv_wb_1_verification() -> None:
    verify_weibo_signature(TV_WB_1_SECRET, "1397022061823", "57155157", TV_WB_1_SIGNATURE)
    with pytest.raises(InvalidSignature) as refused:
        verify_weibo_signature(TV_WB_1_SECRET, "1397022061824", "57155157", TV_WB_1_SIGNATURE)
    assert refused.value.status == 403


# -- Douyin shop (TV-DY-0: self-computed by the reference's author, NOT official) ---------------

DY_APP_KEY = "3409409348479354011"
DY_SECRET_TEXT = "2ad2355c-01d0-11f8-91dc-05a8cd1054b1"
DY_SECRET = SecretStr(DY_SECRET_TEXT)
TV_DY_0_PARAM_JSON = '{"order_id":"4781320682406083640","page":0,"size":20}'
TV_DY_0_SIGN_STR = '2ad2355c-01d0-11f8-91dc-05a8cd1054b1app_key3409409348479354011methodorder.orderDetailparam_json{"order_id":"4781320682406083640","page":0,"size":20}timestamp1700000000v22ad2355c-01d0-11f8-91dc-05a8cd1054b1'
TV_DY_0_HMAC = "0a33124904a8f8392053562a80071dba0e817aeb93a115d157a24ee774234768"
TV_DY_0_MD5 = "7f4d15c3b94340692b7804a41f0d4e62"
TV_DY_0_PUSH_BODY = (
    b'[{"tag":"100","msg_id":"7000000000000000001","data":"{\\"p_id\\":4781320682406083640}"}]'
)
TV_DY_0_EVENT_MD5 = "93b60fe261eed2eaf4a8176ca6806796"
TV_DY_0_EVENT_HMAC = "a444e7515d5ad9f43f4b7fde4c081178e2a6e851a816c9de70bfb860d71ead1b"


def test_tv_dy_0_reference_values_recomputed_independently() -> None:
    """The reference's numbers agree with its own sign strings (hashlib only, no module code)."""
    key = DY_SECRET_TEXT.encode()
    assert hmac.new(key, TV_DY_0_SIGN_STR.encode(), hashlib.sha256).hexdigest() == TV_DY_0_HMAC
    assert hashlib.md5(TV_DY_0_SIGN_STR.encode()).hexdigest() == TV_DY_0_MD5
    pushed = DY_APP_KEY.encode() + TV_DY_0_PUSH_BODY + key
    assert hashlib.md5(pushed).hexdigest() == TV_DY_0_EVENT_MD5
    assert hmac.new(key, pushed, hashlib.sha256).hexdigest() == TV_DY_0_EVENT_HMAC


def test_tv_dy_0_our_reading_of_param_json() -> None:
    business = {"size": 20, "page": 0, "order_id": "4781320682406083640"}
    assert douyin_param_json(business) == TV_DY_0_PARAM_JSON
    assert json.loads(TV_DY_0_PARAM_JSON) == business


@pytest.mark.parametrize(
    ("sign_method", "expected"), [("hmac-sha256", TV_DY_0_HMAC), ("md5", TV_DY_0_MD5)]
)
def test_tv_dy_0_our_reading_of_the_request_sign(
    sign_method: DouyinSignMethod, expected: str
) -> None:
    sign = douyin_sign(
        app_key=DY_APP_KEY,
        app_secret=DY_SECRET,
        method="order.orderDetail",
        param_json=TV_DY_0_PARAM_JSON,
        timestamp="1700000000",
        sign_method=sign_method,
    )
    assert sign == expected


def test_tv_dy_0_through_douyin_request_params() -> None:
    query = douyin_request_params(
        "order.orderDetail",
        {"size": 20, "page": 0, "order_id": "4781320682406083640"},
        app_key=DY_APP_KEY,
        app_secret=DY_SECRET,
        access_token=SecretStr("token-not-signed"),
        timestamp=datetime.fromtimestamp(1700000000, tz=UTC),
    )
    assert query["sign"] == TV_DY_0_HMAC
    assert query["timestamp"] == "1700000000"
    assert (query["v"], query["sign_method"]) == ("2", "hmac-sha256")
    assert query["access_token"] == "token-not-signed"


def test_douyin_gmt8_timestamp_style_signs_the_string_sent() -> None:
    query = douyin_request_params(
        "order.orderDetail",
        {},
        app_key=DY_APP_KEY,
        app_secret=DY_SECRET,
        access_token=None,
        timestamp=datetime.fromtimestamp(1700000000, tz=UTC),
        timestamp_style="gmt8",
    )
    assert query["timestamp"] == "2023-11-15 06:13:20"
    assert query["sign"] == douyin_sign(
        app_key=DY_APP_KEY,
        app_secret=DY_SECRET,
        method="order.orderDetail",
        param_json="{}",
        timestamp="2023-11-15 06:13:20",
    )


def test_tv_dy_0_our_reading_of_the_push_event_sign() -> None:
    assert douyin_event_sign(DY_APP_KEY, DY_SECRET, TV_DY_0_PUSH_BODY) == TV_DY_0_EVENT_MD5
    assert douyin_event_sign(DY_APP_KEY, DY_SECRET, TV_DY_0_PUSH_BODY, "hmac-sha256") == (
        TV_DY_0_EVENT_HMAC
    )


@pytest.mark.parametrize(
    ("header", "event_sign"),
    [
        (None, TV_DY_0_EVENT_MD5),
        ("md5", TV_DY_0_EVENT_MD5.upper()),
        ("hmac-sha256", TV_DY_0_EVENT_HMAC),
    ],
)
def test_douyin_push_is_accepted(header: str | None, event_sign: str) -> None:
    verify_douyin_push(
        TV_DY_0_PUSH_BODY,
        app_id=DY_APP_KEY,
        event_sign=event_sign,
        sign_method=header,
        app_key=DY_APP_KEY,
        app_secret=DY_SECRET,
    )


@pytest.mark.parametrize(
    ("body", "app_id", "event_sign", "header", "status", "reason"),
    [
        (TV_DY_0_PUSH_BODY, None, TV_DY_0_EVENT_MD5, None, 401, "missing_signature"),
        (TV_DY_0_PUSH_BODY, DY_APP_KEY, None, None, 401, "missing_signature"),
        (TV_DY_0_PUSH_BODY, "1234", TV_DY_0_EVENT_MD5, None, 403, "app_id_mismatch"),
        (TV_DY_0_PUSH_BODY + b" ", DY_APP_KEY, TV_DY_0_EVENT_MD5, None, 403, "bad_signature"),
        (TV_DY_0_PUSH_BODY, DY_APP_KEY, TV_DY_0_EVENT_HMAC, None, 403, "bad_signature"),
        (TV_DY_0_PUSH_BODY, DY_APP_KEY, TV_DY_0_EVENT_MD5, "sha1", 403, "bad_signature"),
        (TV_DY_0_PUSH_BODY, DY_APP_KEY, "ｆ" * 32, None, 403, "bad_signature"),
    ],
)
def test_douyin_push_is_refused(
    body: bytes,
    app_id: str | None,
    event_sign: str | None,
    header: str | None,
    status: int,
    reason: str,
) -> None:
    with pytest.raises(InvalidSignature) as refused:
        verify_douyin_push(
            body,
            app_id=app_id,
            event_sign=event_sign,
            sign_method=header,
            app_key=DY_APP_KEY,
            app_secret=DY_SECRET,
        )
    assert (refused.value.status, refused.value.reason) == (status, reason)


MD5_ONLY: tuple[DouyinSignMethod, ...] = ("md5",)


def test_douyin_push_methods_can_be_restricted_to_md5() -> None:
    with pytest.raises(InvalidSignature):
        verify_douyin_push(
            TV_DY_0_PUSH_BODY,
            app_id=DY_APP_KEY,
            event_sign=TV_DY_0_EVENT_HMAC,
            sign_method="hmac-sha256",
            app_key=DY_APP_KEY,
            app_secret=DY_SECRET,
            accepted_methods=MD5_ONLY,
        )


@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=20)))
def test_hostile_douyin_headers_are_refused_never_crash(
    event_sign: str, header: str | None
) -> None:
    assume(event_sign.strip().lower() != TV_DY_0_EVENT_MD5)
    with pytest.raises(InvalidSignature):
        verify_douyin_push(
            TV_DY_0_PUSH_BODY,
            app_id=DY_APP_KEY,
            event_sign=event_sign,
            sign_method=header,
            app_key=DY_APP_KEY,
            app_secret=DY_SECRET,
        )


# -- properties shared by TOP, JOS and Pinduoduo ------------------------------------------------

names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(lambda n: n != "sign")
values = st.text(min_size=1, max_size=20)
param_sets = st.dictionaries(names, values, min_size=1, max_size=8)
secrets = st.text(string.ascii_letters + string.digits, min_size=16, max_size=40).map(SecretStr)
SIGNERS = {
    "top-md5": lambda p, s: top_sign(p, s, "md5"),
    "top-hmac": lambda p, s: top_sign(p, s, "hmac"),
    "top-hmac-sha256": lambda p, s: top_sign(p, s, "hmac-sha256"),
    "jd": jd_sign,
    "pdd": pdd_sign,
}
signer_names = st.sampled_from(sorted(SIGNERS))


@given(signer_names, param_sets, secrets, st.randoms())
def test_parameter_order_does_not_change_the_signature(
    signer: str, params: dict[str, str], secret: SecretStr, random: Random
) -> None:
    items = list(params.items())
    random.shuffle(items)
    assert SIGNERS[signer](dict(items), secret) == SIGNERS[signer](params, secret)


@given(signer_names, param_sets, secrets, st.data())
def test_a_changed_value_changes_the_signature(
    signer: str, params: dict[str, str], secret: SecretStr, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(params)))
    changed = data.draw(values.filter(lambda v: v != params[name]))
    assert SIGNERS[signer]({**params, name: changed}, secret) != SIGNERS[signer](params, secret)


@given(signer_names, param_sets, secrets, st.text(max_size=40))
def test_sign_itself_is_not_signed(
    signer: str, params: dict[str, str], secret: SecretStr, stale_sign: str
) -> None:
    assert SIGNERS[signer]({**params, "sign": stale_sign}, secret) == SIGNERS[signer](
        params, secret
    )


@given(signer_names, param_sets, secrets, secrets)
def test_another_secret_gives_another_signature(
    signer: str, params: dict[str, str], secret: SecretStr, other: SecretStr
) -> None:
    assume(secret.get_secret_value() != other.get_secret_value())
    assert SIGNERS[signer](params, secret) != SIGNERS[signer](params, other)


# -- secrets stay secret ------------------------------------------------------------------------


@given(secrets, param_sets)
def test_the_app_secret_is_never_sent_nor_shown(
    secret: SecretStr, business: dict[str, str]
) -> None:
    text = secret.get_secret_value()
    at = datetime(2024, 5, 1, tzinfo=UTC)
    sent = [
        top_request_params(
            "taobao.refund.get", {}, app_key="k", secret=secret, session=None, timestamp=at
        ),
        jd_request_params(
            "jingdong.asc.query",
            business,
            app_key="k",
            secret=secret,
            access_token=None,
            timestamp=at,
        ),
        pdd_request_params(
            "pdd.refund.list.increment.get",
            {},
            client_id="1",
            client_secret=secret,
            access_token=None,
            timestamp=at,
        ),
        douyin_request_params(
            "afterSale.List",
            business,
            app_key="k",
            app_secret=secret,
            access_token=None,
            timestamp=at,
        ),
    ]
    for request in sent:
        assert all(text not in value for value in request.values())
    assert text not in repr(secret) and text not in str(secret)


def test_errors_name_neither_the_secret_nor_the_expected_signature() -> None:
    secret = SecretStr("Sup3rS3cretValue-0123456789")
    naive = datetime(2024, 1, 1)
    failures: list[Exception] = []
    for attempt in (
        lambda: top_sign({"a": "b"}, secret, "sha1"),  # type: ignore[arg-type]
        lambda: top_request_params(
            "m", {"sign": "x"}, app_key="k", secret=secret, session=secret, timestamp=naive
        ),
        lambda: pdd_request_params(
            "t", {}, client_id="1", client_secret=secret, access_token=secret, timestamp=naive
        ),
        lambda: douyin_event_sign("k", secret, b"[]", "sha1"),  # type: ignore[arg-type]
        lambda: verify_top_sign({"a": "b", "sign": "0" * 32}, secret),
        lambda: verify_weibo_signature(secret, "1", "2", "0" * 40),
        lambda: verify_douyin_push(
            b"[]", app_id="k", event_sign="0" * 32, sign_method=None, app_key="k", app_secret=secret
        ),
    ):
        with pytest.raises((ValueError, InvalidSignature)) as caught:
            attempt()
        failures.append(caught.value)
    expected_signatures = [
        top_sign({"a": "b"}, secret),
        weibo_signature(secret, "1", "2"),
        douyin_event_sign("k", secret, b"[]"),
    ]
    for failure in failures:
        shown = f"{failure!s} {failure!r} {failure.args!r}"
        assert secret.get_secret_value() not in shown
        assert not any(sig.lower() in shown.lower() for sig in expected_signatures)
