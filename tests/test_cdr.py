"""Reading Asterisk cdr_csv rows, FreeSWITCH mod_json_cdr bodies and TCCC pushes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from connectors.errors import PAYLOAD_REASONS, MalformedPayload
from normalizer._cdr import (
    ASTERISK_COLUMNS,
    ASTERISK_NEW_COLUMNS,
    parse_asterisk_row,
    parse_freeswitch_cdr,
    parse_tccc_push,
)

FIXTURES = Path(__file__).parent / "fixtures"
FORM = "application/x-www-form-urlencoded"
FORM_BASE64 = "application/x-www-form-base64-encoded"
_UNSAFE = set('\r\n "#%&+:;<=>?@[\\]^`{|}')


def switch_url_encode(text: str) -> str:
    """What FreeSWITCH's switch_url_encode does to a value: %XX for unsafe and non-ASCII bytes."""
    return "".join(
        f"%{byte:02X}" if byte < 0x20 or byte > 0x7E or chr(byte) in _UNSAFE else chr(byte)
        for byte in text.encode()
    )


def refused(reason: str) -> Any:
    assert reason in PAYLOAD_REASONS
    return pytest.raises(MalformedPayload, check=lambda exc: exc.reason == reason)


# --- Asterisk cdr_csv ------------------------------------------------------------------


def test_the_column_lists_follow_build_csv_record() -> None:
    assert len(ASTERISK_COLUMNS) == 18 and len(ASTERISK_NEW_COLUMNS) == 21
    assert ASTERISK_COLUMNS[:5] == ("accountcode", "src", "dst", "dcontext", "clid")
    assert ASTERISK_COLUMNS[9:16] == (
        "start",
        "answer",
        "end",
        "duration",
        "billsec",
        "disposition",
        "amaflags",
    )
    assert ASTERISK_COLUMNS[-2:] == ("uniqueid", "userfield")
    assert ASTERISK_NEW_COLUMNS[-3:] == ("peeraccount", "linkedid", "sequence")


def test_an_answered_row_with_clid_and_a_quoted_chinese_userfield() -> None:
    line = (
        '"hotline","13812345678","4008123123","from-pstn","""张三"" <13812345678>",'
        '"PJSIP/ct-trunk-00000a1f","Local/1001@agents-00000051;1","Queue","complaints,t,,,300",'
        '"2026-11-23 10:02:11","2026-11-23 10:02:25","2026-11-23 10:09:40",449,435,'
        '"ANSWERED","DOCUMENTATION","1795399331.2719",'
        '"热水器漏水,师傅说""三天内上门""但一直没来,要求换新"\n'
    ).encode()
    row = parse_asterisk_row(line, ASTERISK_COLUMNS)
    assert row["clid"] == '"张三" <13812345678>'
    assert row["lastdata"] == "complaints,t,,,300"
    assert row["duration"] == "449" and row["billsec"] == "435"
    assert row["disposition"] == "ANSWERED"
    assert row["uniqueid"] == "1795399331.2719"
    assert row["userfield"] == '热水器漏水,师傅说"三天内上门"但一直没来,要求换新'


def test_a_no_answer_row_has_an_empty_answer_date() -> None:
    line = (
        b'"","13912345678","4008123123","from-pstn",""""" <13912345678>",'
        b'"PJSIP/ct-trunk-00000a31","","Queue","complaints,t,,,300",'
        b'"2026-11-23 11:20:05",,"2026-11-23 11:20:52",47,0,"NO ANSWER","DOCUMENTATION",'
        b'"1795404005.2801",""'
    )
    row = parse_asterisk_row(line, ASTERISK_COLUMNS)
    assert row["answer"] == "" and row["start"] == "2026-11-23 11:20:05"
    assert row["clid"] == '"" <13912345678>'
    assert row["billsec"] == "0" and row["disposition"] == "NO ANSWER"
    assert row["dstchannel"] == "" and row["userfield"] == ""


def test_a_row_with_the_new_columns() -> None:
    line = (
        b'"","13812345678","4008123123","from-pstn","""Zhang San"" <13812345678>",'
        b'"PJSIP/ct-trunk-00000a1f","PJSIP/1001-00000a20","Dial","PJSIP/1001,30",'
        b'"2026-11-23 10:02:11","2026-11-23 10:02:25","2026-11-23 10:09:40",449,435,'
        b'"ANSWERED","DOCUMENTATION","1795399331.2719","","","1795399331.2718",3\r\n'
    )
    row = parse_asterisk_row(line, ASTERISK_NEW_COLUMNS)
    assert row["linkedid"] == "1795399331.2718" and row["sequence"] == "3"
    assert row["peeraccount"] == "" and row["userfield"] == ""


def test_a_gbk_row_is_read_as_gb18030() -> None:
    line = (FIXTURES / "asterisk_csv" / "gbk_summary.raw.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        line.decode("utf-8")
    row = parse_asterisk_row(line, ASTERISK_COLUMNS)
    assert row["clid"] == '"王五" <13687654321>'
    assert row["userfield"] == "洗衣机脱水时噪音很大,已报修两次,要求退货"


def test_the_freeswitch_sample_row_with_its_example_template() -> None:
    columns = (
        "caller_id_name",
        "caller_id_number",
        "destination_number",
        "context",
        "start_stamp",
        "answer_stamp",
        "end_stamp",
        "duration",
        "billsec",
        "hangup_cause",
        "uuid",
        "bleg_uuid",
        "accountcode",
        "read_codec",
        "write_codec",
    )
    line = (
        b'"9007","9007","0034688886392","public","2014-05-29 16:59:50","","2014-05-29 16:59:50",'
        b'"0","0","NORMAL_CLEARING","a5c9f6c0-e752-11e3-8bfb-65b6c3cdac7d","","","",""'
    )
    row = parse_asterisk_row(line, columns)
    assert row["destination_number"] == "0034688886392"
    assert row["answer_stamp"] == "" and row["duration"] == "0"
    assert row["uuid"] == "a5c9f6c0-e752-11e3-8bfb-65b6c3cdac7d"


def test_the_space_before_the_last_field_of_freeswitch_s_default_template() -> None:
    line = b'"13812345678","4008123123","NORMAL_CLEARING","a5c9f6c0","", "hotline"'
    row = parse_asterisk_row(line, ("number", "dest", "cause", "uuid", "bleg", "accountcode"))
    assert row["accountcode"] == "hotline"


def test_a_byte_order_mark_is_not_part_of_the_first_field() -> None:
    row = parse_asterisk_row('\ufeff"a","b"'.encode(), ("x", "y"))
    assert row == {"x": "a", "y": "b"}


def test_too_few_fields_is_a_missing_field_without_the_data_in_the_message() -> None:
    line = (FIXTURES / "asterisk_csv" / "error_field_count.raw.csv").read_bytes()
    with refused("missing_field") as caught:
        parse_asterisk_row(line, ASTERISK_COLUMNS)
    assert "16 fields" in str(caught.value) and "18 columns" in str(caught.value)
    assert "13812345678" not in str(caught.value)


def test_too_many_fields_is_an_invalid_field() -> None:
    line = (FIXTURES / "asterisk_csv" / "answered_summary.raw.csv").read_bytes()
    with refused("invalid_field"):
        parse_asterisk_row(line, ASTERISK_COLUMNS[:16])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "missing_field"),
        (b"\n", "missing_field"),
        (b'"a","b\n', "invalid_field"),  # the row was cut inside a quoted field
        (b'"a"x,"b"', "invalid_field"),  # text after a closing quote
        (b'"\xff\xfe","b"', "invalid_field"),  # neither UTF-8 nor GB18030
    ],
)
def test_unreadable_rows(line: bytes, reason: str) -> None:
    with refused(reason):
        parse_asterisk_row(line, ("x", "y"))


def test_column_names_must_be_distinct() -> None:
    with pytest.raises(ValueError):
        parse_asterisk_row(b'"a","b"', ("x", "x"))


# --- FreeSWITCH mod_json_cdr -----------------------------------------------------------

SMALL_CDR = {
    "core-uuid": "6b1d3f5e-2a47-4c0e-9d8b-1f2e3a4b5c6d",
    "switchname": "fs-cc-sh01",
    "channel_data": {"state": "CS_REPORTING", "direction": "inbound"},
    "variables": {
        "uuid": "3f2c6d1e-8b7a-4c55-9e1d-5a0b7c9e2f41",
        "caller_id_number": "13812345678",
        "start_stamp": "2026-11-23%2010%3A02%3A11",
        "complaint_summary": "%E6%BC%8F%E6%B0%B4",
    },
    "callflow": [
        {"caller_profile": {"caller_id_name": "张三", "destination_number": "4008123123"}},
    ],
}


def small_cdr_json() -> str:
    return json.dumps(SMALL_CDR, separators=(",", ":"))


def test_a_plain_json_body_has_its_variables_url_decoded() -> None:
    document = parse_freeswitch_cdr(small_cdr_json().encode(), "application/json")
    assert document["variables"]["complaint_summary"] == "漏水"
    assert document["variables"]["start_stamp"] == "2026-11-23 10:02:11"
    assert document["core-uuid"] == SMALL_CDR["core-uuid"]
    assert document["callflow"][0]["caller_profile"]["caller_id_name"] == "张三"


def test_the_fixture_document_reads_back_as_freeswitch_wrote_it() -> None:
    body = (FIXTURES / "freeswitch" / "answered_summary.raw.json").read_bytes()
    variables = parse_freeswitch_cdr(body, "application/json")["variables"]
    assert variables["uuid"] == "3f2c6d1e-8b7a-4c55-9e1d-5a0b7c9e2f41"
    assert variables["caller_id_name"] == "张三"
    assert variables["complaint_summary"] == "热水器漏水，师傅说“三天内上门”但一直没来，要求换新"
    assert variables["channel_name"] == "sofia/external/13812345678@203.0.113.10"
    assert variables["switch_r_sdp"].startswith("v=0\r\no=- ")
    assert variables["record_file_name"].endswith("3f2c6d1e-8b7a-4c55-9e1d-5a0b7c9e2f41.wav")


def test_only_the_variables_are_decoded() -> None:
    cdr = {**SMALL_CDR, "app_log": {"applications": [{"app_name": "set", "app_data": "x=100%25"}]}}
    document = parse_freeswitch_cdr(json.dumps(cdr).encode(), "application/json")
    assert document["app_log"]["applications"][0]["app_data"] == "x=100%25"


def test_a_form_encoded_body_as_freeswitch_sends_it() -> None:
    """encode=true: the whole document switch_url_encode-d into field cdr, values encoded twice."""
    body = ("cdr=" + switch_url_encode(small_cdr_json())).encode()
    assert b"%25E6%25BC%258F" in body
    document = parse_freeswitch_cdr(body, FORM + "; charset=utf-8")
    assert document["variables"]["complaint_summary"] == "漏水"


def test_a_form_encoded_body_from_a_standard_encoder() -> None:
    body = urlencode({"other": "x", "cdr": json.dumps(SMALL_CDR)}).encode()
    assert b"+" in body  # quote_plus writes the spaces between JSON tokens as '+'
    document = parse_freeswitch_cdr(body, FORM)
    assert document["variables"]["start_stamp"] == "2026-11-23 10:02:11"


def test_a_base64_body_as_freeswitch_sends_it() -> None:
    """encode=base64: raw base64 in field cdr, '+' and '/' unescaped, its own content type."""
    cdr = {**SMALL_CDR, "switchname": "fs>>>???"}  # gives '+' and '/' in the base64
    encoded = base64.b64encode(json.dumps(cdr).encode())
    assert b"+" in encoded and b"/" in encoded
    document = parse_freeswitch_cdr(b"cdr=" + encoded, FORM_BASE64)
    assert document["switchname"] == "fs>>>???"
    assert document["variables"]["complaint_summary"] == "漏水"


def test_base64_is_recognised_whatever_the_content_type_and_padding() -> None:
    encoded = base64.b64encode(small_cdr_json().encode()).rstrip(b"=")
    for content_type in (FORM, "", "text/plain"):
        document = parse_freeswitch_cdr(b"cdr=" + encoded + b"\n", content_type)
        assert document["variables"]["complaint_summary"] == "漏水"
    percent_encoded = urlencode({"cdr": base64.b64encode(small_cdr_json().encode())}).encode()
    assert parse_freeswitch_cdr(percent_encoded, FORM)["variables"]["uuid"]


def test_a_body_without_content_type_is_sniffed() -> None:
    assert parse_freeswitch_cdr(small_cdr_json().encode(), "")["variables"]["uuid"]
    form = ("cdr=" + switch_url_encode(small_cdr_json())).encode()
    assert parse_freeswitch_cdr(form, "application/octet-stream")["variables"]["uuid"]


def test_a_plus_in_a_value_stays_a_plus() -> None:
    cdr = json.loads(small_cdr_json())
    cdr["variables"]["caller_id_number"] = switch_url_encode("+8613612345678")
    cdr["variables"]["sip_from_display"] = "a+b"
    assert cdr["variables"]["caller_id_number"] == "%2B8613612345678"
    variables = parse_freeswitch_cdr(json.dumps(cdr).encode(), "application/json")["variables"]
    assert variables["caller_id_number"] == "+8613612345678"
    assert variables["sip_from_display"] == "a+b"


def test_emoji_and_percent_signs_round_trip() -> None:
    summary = "快递把冰箱摔坏了😡📦 100% 不满意 #差评"
    cdr = json.loads(small_cdr_json())
    cdr["variables"]["complaint_summary"] = switch_url_encode(summary)
    variables = parse_freeswitch_cdr(json.dumps(cdr).encode(), "application/json")["variables"]
    assert variables["complaint_summary"] == summary


def test_a_gbk_value_is_read_as_gb18030() -> None:
    cdr = json.loads(small_cdr_json())
    cdr["variables"]["complaint_summary"] = "%CD%B6%CB%DF"  # 投诉 in GBK
    variables = parse_freeswitch_cdr(json.dumps(cdr).encode(), "application/json")["variables"]
    assert variables["complaint_summary"] == "投诉"


def test_values_are_left_alone_when_encode_values_is_off() -> None:
    cdr = json.loads(small_cdr_json())
    cdr["variables"]["complaint_summary"] = "漏水 100%25"
    document = parse_freeswitch_cdr(
        json.dumps(cdr, ensure_ascii=False).encode(), "application/json", encoded_values=False
    )
    assert document["variables"]["complaint_summary"] == "漏水 100%25"
    assert document["variables"]["start_stamp"] == "2026-11-23%2010%3A02%3A11"


def test_numbers_in_variables_become_text() -> None:
    cdr = json.loads(small_cdr_json())
    cdr["variables"].update({"billsec": 435, "mos": 4.49})
    variables = parse_freeswitch_cdr(json.dumps(cdr).encode(), "application/json")["variables"]
    assert variables["billsec"] == "435" and variables["mos"] == "4.49"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"variables": None}, "missing_field"),
        ({"variables": ["uuid"]}, "invalid_field"),
        ({"variables": {"caller_id_number": "13812345678"}}, "missing_field"),
        ({"variables": {"uuid": ""}}, "missing_field"),
        ({"variables": {"uuid": "u", "nested": {"a": "b"}}}, "invalid_field"),
        ({"variables": {"uuid": "u", "flag": True}}, "invalid_field"),
        ({"variables": {"uuid": "u", "nothing": None}}, "invalid_field"),
        ({"variables": {"uuid": "u", "name": "%FF%FE"}}, "invalid_field"),
    ],
)
def test_bad_variables(change: dict[str, Any], reason: str) -> None:
    cdr = {key: value for key, value in {**SMALL_CDR, **change}.items() if value is not None}
    with refused(reason):
        parse_freeswitch_cdr(json.dumps(cdr).encode(), "application/json")


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b'{"variables": {"uuid": "u"', "application/json", "invalid_json"),
        (b'[{"variables": {"uuid": "u"}}]', "application/json", "invalid_json"),
        (b"hello", "text/plain", "invalid_json"),
        (b"uuid=u&other=1", FORM, "missing_field"),
        (b"", FORM, "missing_field"),
        (b"cdr=not*base64!", FORM_BASE64, "invalid_json"),
        (b"cdr=" + base64.b64encode(b"not json"), FORM_BASE64, "invalid_json"),
        (b"cdr=%7B%22variables", FORM, "invalid_json"),
        (b"", "application/json", "invalid_json"),
        (b'{"variables":' + b'{"a":' * 40 + b"1" + b"}" * 41, "application/json", "json_too_deep"),
    ],
)
def test_unreadable_bodies(body: bytes, content_type: str, reason: str) -> None:
    with refused(reason):
        parse_freeswitch_cdr(body, content_type)


# --- TCCC data push --------------------------------------------------------------------


def test_the_reference_sample_recording_push() -> None:
    body = (FIXTURES / "tccc" / "record_push_sample.raw.json").read_bytes()
    push = parse_tccc_push(body)
    assert push["SdkAppId"] == 1400264214
    assert push["SessionId"] == "e97be0ab-1ef6-4ad2-a8c4-2b2bbfb18e55"
    assert push["RecordId"] == "1608130650" and push["Timestamp"] == 1608130650
    assert push["EndpointUser"] == "lululing@tencent.com"
    assert push["RecordURL"].startswith("http://recorder-10018504.cos.ap-shanghai.myqcloud.com/")


def test_a_cdr_push_of_an_answered_call() -> None:
    body = (FIXTURES / "tccc" / "cdr_answered_summary.raw.json").read_bytes()
    push = parse_tccc_push(body)
    assert push["SessionId"] == "e97be0ab-1ef6-4ad2-a8c4-2b2bbfb18e55"
    assert push["Caller"] == "13812345678" and push["Callee"] == "4008123123"
    assert push["Direction"] == 0 and push["EndStatus"] == 1 and push["EndStatusString"] == "ok"
    assert push["AcceptTimestamp"] < push["EndedTimestamp"]
    assert push["SeatUser"]["Mail"] == "lululing@tencent.com"
    assert push["ServeParticipants"][0]["RecordId"] == "1608130637"
    assert push["Remark"].startswith("客户反映新买的热水器漏水")


def test_numbers_sent_as_numbers_come_back_as_text() -> None:
    """The voicemail push sample sends EndpointUser as a JSON number."""
    push = parse_tccc_push(
        b'{"SdkAppId": 1400264214, "SessionId": "e97be0ab-1ef6-4ad2-a8c4-2b2bbfb18e55",'
        b' "Timestamp": 1608130650, "RecordURL": "http://x/y.mp3", "EndpointUser": 13123456789,'
        b' "Caller": 13812345678, "SeatUser": {"Phone": 13000001003},'
        b' "ServeParticipants": [{"Phone": 13000001003, "RecordId": 1608130637}]}'
    )
    assert push["EndpointUser"] == "13123456789" and push["Caller"] == "13812345678"
    assert push["SeatUser"]["Phone"] == "13000001003"
    assert push["ServeParticipants"][0] == {"Phone": "13000001003", "RecordId": "1608130637"}


def test_null_optional_fields_and_unknown_fields_are_kept() -> None:
    push = parse_tccc_push(
        b'{"SdkAppId": 1, "SessionId": "s", "AcceptTimestamp": null, "SeatUser": null,'
        b' "ServeParticipants": null, "Caller": null, "NewField2027": {"x": [1]}}'
    )
    assert push["AcceptTimestamp"] is None and push["SeatUser"] is None
    assert push["NewField2027"] == {"x": [1]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"SdkAppId": 1}', "missing_field"),
        (b'{"SdkAppId": 1, "SessionId": ""}', "missing_field"),
        (b'{"SdkAppId": 1, "SessionId": null}', "missing_field"),
        (b'{"SdkAppId": 1, "SessionId": 42}', "invalid_field"),
        (b'{"SessionId": "s"}', "missing_field"),
        (b'{"SdkAppId": "1400264214", "SessionId": "s"}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "EndedTimestamp": "1608130637"}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "EndedTimestamp": 1608130637.5}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "EndedTimestamp": -1}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "Duration": true}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "Caller": ["138"]}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "EndStatusString": 1}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "SeatUser": "lulu"}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "SeatUser": {"Mail": 7}}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "ServeParticipants": {}}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "ServeParticipants": ["x"]}', "invalid_field"),
        (
            b'{"SdkAppId": 1, "SessionId": "s", "ServeParticipants": [{"RingTimestamp": "x"}]}',
            "invalid_field",
        ),
        (b'{"SdkAppId": 1, "SessionId": "s", "IVRKeyPressed": [1, 2]}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "IVRKeyPressedEx": ["1"]}', "invalid_field"),
        (b'{"SdkAppId": 1, "SessionId": "s", "PostIVRKeyPressed": {}}', "invalid_field"),
        (b'[{"SdkAppId": 1, "SessionId": "s"}]', "invalid_json"),
        (b"SessionId=s", "invalid_json"),
        (b'{"SdkAppId": 1' + b"0" * 50 + b', "SessionId": "s"}', "json_number_too_long"),
    ],
)
def test_bad_pushes(body: bytes, reason: str) -> None:
    with refused(reason):
        parse_tccc_push(body)


# --- every raw fixture is readable, or refused for the reason its name gives ----------

ERROR_FIXTURES = {
    "asterisk_csv/error_field_count": "missing_field",
    "asterisk_csv/error_unclosed_quote": "invalid_field",
    "freeswitch/error_missing_uuid": "missing_field",
    "freeswitch/error_truncated_body": "invalid_json",
    "tccc/error_missing_session_id": "missing_field",
    "tccc/error_timestamp_not_integer": "invalid_field",
}
PHONE_FIXTURES = sorted(
    path
    for channel in ("asterisk_csv", "freeswitch", "tccc")
    for path in (FIXTURES / channel).glob("*.raw.*")
)


def read_fixture(path: Path) -> dict[str, Any]:
    body = path.read_bytes()
    if path.parent.name == "asterisk_csv":
        assert body.endswith(b"\n") and body.count(b"\n") == 1, "one CDR line with its newline"
        return dict(parse_asterisk_row(body, ASTERISK_COLUMNS))
    if path.parent.name == "freeswitch":
        return parse_freeswitch_cdr(body, "application/json")
    return parse_tccc_push(body)


@pytest.mark.parametrize("path", PHONE_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_phone_fixtures(path: Path) -> None:
    case = f"{path.parent.name}/{path.name.split('.')[0]}"
    if case in ERROR_FIXTURES:
        with refused(ERROR_FIXTURES[case]):
            read_fixture(path)
    else:
        assert not path.name.startswith("error_"), "list the error fixture's reason above"
        assert read_fixture(path)


def test_every_phone_fixture_is_listed_in_the_index() -> None:
    index = (FIXTURES / "PHONE_FIXTURES.md").read_text(encoding="utf-8")
    for path in PHONE_FIXTURES:
        assert f"`{path.parent.name}/{path.name}`" in index, path.name
