"""The pure MIME reader under the email channel (normalizer/_mime.py and the
_charsets, _mail_parts, _html_text and _quotes modules it reads with).

Golden raw mails live in tests/fixtures/email_mime/ (described one per line in
tests/fixtures/EMAIL_FIXTURES.md); small messages are built inline where one
rule is easier to see in isolation. Every assertion is on a decoded value the
complaint record will carry: the text, names, attachments, labels and ids.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import PAYLOAD_REASONS, MalformedPayload
from normalizer._charsets import decode_header_text, decode_text
from normalizer._html_text import html_to_text
from normalizer._mail_parts import MAX_PARTS, MailAttachment
from normalizer._mime import Mail, read_mail
from normalizer._quotes import new_words

FIXTURES = Path(__file__).parent / "fixtures" / "email_mime"
CST = timezone(timedelta(hours=8))
CUSTOMER = "From: =?UTF-8?B?5byg5LiJ?= <Zhang.San@Example.COM>\nTo: kefu@brand.example.cn\n"


def fixture(case: str) -> Mail:
    return read_mail((FIXTURES / f"{case}.raw.eml").read_bytes())


def raw(head: str, body: str | bytes = "") -> bytes:
    """A mail as on the wire: ``head`` lines (``\\n``-separated) and body, CRLF line ends."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    return (head.strip("\n") + "\n\n").replace("\n", "\r\n").encode("ascii") + data.replace(
        b"\r\n", b"\n"
    ).replace(b"\n", b"\r\n")


def html_text(markup: str) -> str:
    return read_mail(raw(CUSTOMER + "Content-Type: text/html; charset=utf-8", markup)).text


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- unusable input and leniency ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("error_empty", "missing_field"),
        ("error_blank_lines", "missing_field"),
        ("error_not_a_mail", "invalid_field"),
    ],
)
def test_input_that_is_no_mail_is_refused_with_a_known_reason(case: str, reason: str) -> None:
    with pytest.raises(MalformedPayload) as refused:
        fixture(case)
    assert refused.value.reason == reason
    assert reason in PAYLOAD_REASONS


def test_parts_nested_deeper_than_the_stdlib_parser_goes_are_refused() -> None:
    head = "From: a@example.com\n"
    levels = "".join(
        f"Content-Type: multipart/mixed; boundary=b{n}\n\n--b{n}\n" for n in range(1500)
    )
    with pytest.raises(MalformedPayload) as refused:
        read_mail(raw(head + levels + "Content-Type: text/plain", "hi"))
    assert refused.value.reason == "invalid_field"


def test_broken_headers_are_read_as_well_as_they_can_be() -> None:
    mail = read_mail(
        raw(
            "From: just a name, no address\n"
            "To: kefu@brand.example.cn, not an address, <Boss@Brand.Example.CN>\n"
            "Date: the day before yesterday\n"
            "Message-ID: no-brackets@sender.example\n"
            "Subject: =?utf-8?B?!!!not base64?= ok",
            "正文还在",
        )
    )
    assert (mail.from_address, mail.date, mail.text) == (None, None, "正文还在")
    assert mail.to_addresses == ("kefu@brand.example.cn", "boss@brand.example.cn")
    assert mail.message_id == "no-brackets@sender.example"
    assert mail.subject == "=?utf-8?B?!!!not base64?= ok"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Mon, 23 Nov 2026 09:41:07 +0800", datetime(2026, 11, 23, 9, 41, 7, tzinfo=CST)),
        ("Mon, 23 Nov 2026 01:41:07 -0000", datetime(2026, 11, 23, 1, 41, 7, tzinfo=UTC)),
        ("23 Nov 2026 09:41:07 XYZ", datetime(2026, 11, 23, 9, 41, 7, tzinfo=UTC)),  # -0000
        ("Mon, 32 Nov 2026 99:99:99 +0800", None),
        ("", None),
    ],
)
def test_date_is_aware_or_none(date: str, expected: datetime | None) -> None:
    assert read_mail(raw(CUSTOMER + f"Date: {date}", "x")).date == expected


def test_mixed_rfc2231_spellings_of_a_boundary_do_not_crash_the_parser() -> None:
    # the stdlib's decode_params sorts None against 0 for boundary*= beside boundary*0=
    mail = read_mail(
        raw(
            CUSTOMER + "Content-Type: multipart/mixed; boundary*=x; boundary*0=y",
            "--x\nContent-Type: text/plain\n\nhi\n--x--\n",
        )
    )
    assert isinstance(mail, Mail)


def test_address_comments_nested_thousands_deep_do_not_overflow_the_stack() -> None:
    mail = read_mail(raw("From: " + "(" * 5000 + "x@example.com", "x"))
    assert mail.text == "x"


def test_parts_beyond_the_budget_are_ignored_not_refused() -> None:
    parts = "".join(
        f"--B\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\naW1n{n:04d}\n"
        for n in range(MAX_PARTS + 100)
    )
    mail = read_mail(raw(CUSTOMER + "Content-Type: multipart/mixed; boundary=B", parts + "--B--\n"))
    assert len(mail.attachments) == MAX_PARTS - 1  # the root counts as one part


def test_text_nested_beyond_the_depth_limit_is_ignored() -> None:
    levels = "".join(f"Content-Type: multipart/mixed; boundary=b{n}\n\n--b{n}\n" for n in range(40))
    mail = read_mail(raw(CUSTOMER + levels + "Content-Type: text/plain", "深处的文字"))
    assert mail.text == ""


@pytest.mark.parametrize(
    "markup",
    ["<a" * 100_000, "<!--" * 50_000, "</" * 100_000, "<a b='>" * 40_000, "<![CDATA[x>" * 20_000],
    ids=["unclosed-tags", "unclosed-comments", "end-tag-openers", "open-quotes", "cdata"],
)
def test_hostile_markup_is_read_in_linear_time(markup: str) -> None:
    # CPython 3.11's html.parser alone takes tens of seconds on each of these
    started = time.perf_counter()
    html_to_text(markup)
    assert time.perf_counter() - started < 3


def test_a_long_pathological_content_type_is_read_quickly() -> None:
    started = time.perf_counter()
    mail = read_mail(raw(CUSTOMER + 'Content-Type: text/plain; x-junk="' + ";" * 200_000, "x"))
    assert mail.text == "x"
    assert time.perf_counter() - started < 1


# -- multipart/alternative and HTML -------------------------------------------------------------


def test_alternative_prefers_the_text_plain_part() -> None:
    mail = fixture("multipart_alternative")
    assert mail.text == (
        "您好，\n\n今天下午3点左右在静安寺店买咖啡，收银员态度*非常*差，我问能不能用优惠券，\n"
        "她直接说“不能用就别问了”，还把小票扔在台面上。\n\n希望你们重视员工培训。\n\nChen Jie"
    )
    assert (mail.subject, mail.from_name) == ("静安寺店收银员态度问题", "Chen Jie")


def test_alternative_falls_back_to_html_when_the_plain_part_is_blank() -> None:
    body = (
        "--A\nContent-Type: text/plain; charset=utf-8\n\n \n\n"
        "--A\nContent-Type: multipart/related; boundary=R\n\n"
        "--R\nContent-Type: text/html; charset=utf-8\n\n<p>只有&nbsp;HTML&nbsp;里有字</p>\n"
        "--R--\n--A--\n"
    )
    mail = read_mail(raw(CUSTOMER + "Content-Type: multipart/alternative; boundary=A", body))
    assert mail.text == "只有 HTML 里有字"


def test_html_only_webmail_becomes_readable_text() -> None:
    mail = fixture("html_only_webmail")
    assert mail.text == (
        "客服你好：\n\n"
        "11月20日在 浦东店 买的空气炸锅（型号 AF-5&X），用了两次就坏了，插电后显示 E3 <无法加热>。\n"
        "店员说“超过7天不能退”，但是你们官网写的是“15天无理由退货”。\n\n"
        "请给个说法。\n孙涛"
    )


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        (
            "<html><head><title>T</title><style>p { color: red }</style></head>"
            "<body><script>track('x')</script><p>正文</p></body></html>",
            "正文",
        ),
        ("<p>A&amp;B &lt;C&gt; &#x4e2d;&#25991; &yen;5&nbsp;&nbsp;元</p>", "A&B <C> 中文 ¥5 元"),
        (
            "<div>第一行<br>第二行</div><div><br></div><p>第三段</p><ul><li>一</li><li>二</li></ul>",
            "第一行\n第二行\n\n第三段\n一\n二",
        ),
        ("<p>  多个   空格\n 和换行\t也算一个  </p>", "多个 空格 和换行 也算一个"),
        ("<pre>  代码  缩进\n    保留</pre>", "  代码  缩进\n    保留"),
        (
            "<table><tr><td>订单</td><td>SH001</td></tr><tr><td>金额</td><td>99</td></tr></table>",
            "订单 SH001\n金额 99",
        ),
        ('<div style="display:none">隐藏的预览文字</div><div>看得见的</div>', "看得见的"),
        (
            "<!-- 注释 --><p>a <b>粗体</b> 和 <a href='x'>链接</a></p><!--[if mso]>x<![endif]-->",
            "a 粗体 和 链接",
        ),
        ("<p>1 < 2 and <unclosed", "1 < 2 and <unclosed"),
        ("<head><style>x{}</style><body><p>head 没有闭合</p>", "head 没有闭合"),
    ],
    ids=[
        "script-style-title",
        "entities",
        "blocks-and-br",
        "whitespace",
        "pre",
        "table",
        "hidden",
        "comments-and-inline",
        "stray-lt",
        "unclosed-head",
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup).strip("\n") == expected


def test_an_html_part_without_a_mime_charset_uses_its_meta_charset() -> None:
    markup = '<meta http-equiv="Content-Type" content="text/html; charset=gbk"><p>国标码网页</p>'
    mail = read_mail(raw(CUSTOMER + "Content-Type: text/html", markup.encode("gbk")))
    assert mail.text == "国标码网页"


# -- encoded words and charsets -----------------------------------------------------------------


def _b(text: str, charset: str) -> str:
    return base64.b64encode(text.encode(charset)).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"=?GBK?B?{_b('投诉门店', 'gbk')}?=", "投诉门店"),
        ("=?gb2312?Q?=CD=CB=BB=F5_=C9=EA=C7=EB?=", "退货 申请"),
        (f"=?utf-8?B?{_b('外卖送错了😡', 'utf-8')}?=", "外卖送错了😡"),
        (f"=?utf-8?B?{_b('第一', 'utf-8')}?= =?utf-8?B?{_b('第二', 'utf-8')}?=", "第一第二"),
        (f"=?GBK?B?{_b('王强', 'gbk')}?=\t=?UTF-8?B?{_b('的订单', 'utf-8')}?=", "王强的订单"),
        (f"Re: =?big5?B?{_b('訂單', 'big5')}?= 已出貨", "Re: 訂單 已出貨"),
        # one character split across two words by a broken encoder: joined before decoding
        ("=?utf-8?B?5oqV?= =?utf-8?B?6K+J?=", "投诉"),
        ("=?UTF-8*zh-CN?B?5Lit5paH?=", "中文"),
        ("=?x-unknown?B?5Lit5paH?=", "中文"),
        ("=?utf-8?q?caf=C3=A9_au_lait?=", "café au lait"),
        ("plain ascii", "plain ascii"),
    ],
    ids=[
        "gbk-b",
        "gb2312-q",
        "utf8-b",
        "two-words",
        "mixed-charsets",
        "big5-with-text",
        "split-character",
        "rfc2231-language",
        "unknown-charset",
        "lowercase-q",
        "ascii",
    ],
)
def test_encoded_word_headers(header: str, expected: str) -> None:
    assert decode_header_text(header) == expected


@pytest.mark.parametrize(
    ("case", "subject", "from_name", "text"),
    [
        (
            "plain_utf8_emoji",
            "外卖送错了，骑手不接电话😡",
            "李娜",
            "你好，\n\n我昨天晚上在你们南京东路店点的外卖（订单号 2026112200451），送来的是别人的餐！😡\n"
            "打电话给骑手也不接，客服热线一直占线。\n请尽快处理：退款，或者重新送一份。🙏\n\n"
            "谢谢！\n李娜\n\n发自我的iPhone",
        ),
        (
            "gbk_base64",
            "会员卡余额被无故扣除，要求解释",
            "王强",
            "您好：\n\n我的会员卡（卡号 6688 0012 3456）昨天在徐家汇店消费后，余额从 ￥356.00 变成了 ￥0.00，\n"
            "小票上只写了消费 ￥42.50。\n请核查并退回被多扣的 ￥313.50，并说明原因。\n\n王强\n2026-11-22",
        ),
        (
            "gb2312_qp",
            "退货申请被拒绝",
            "赵丽",
            "客服您好：\n\n上周在贵公司网店购买的羽绒服（订单 JD-20261115-7781），收到后发现拉链损坏。\n"
            "申请退货时被拒绝，理由是“已过七天”，但我是11月18日签收的，今天才第五天。\n\n"
            "请重新审核我的退货申请。\n\n赵丽\n电话：139-0000-1234",
        ),
        (
            "big5_taiwan",
            "訂單延遲出貨，客服電話一直打不通",
            "陳怡婷",
            "您好：\n\n我在11月15日於官網下單（訂單編號 TW20261115-0087），頁面寫三個工作天內出貨，\n"
            "到今天已經一週了還沒收到，也沒有任何通知。\n"
            "客服電話 (02) 2345-6789 一直打不通，請儘速回覆處理進度。\n\n陳怡婷 敬上",
        ),
    ],
)
def test_bodies_and_headers_in_each_charset(
    case: str, subject: str, from_name: str, text: str
) -> None:
    mail = fixture(case)
    assert (mail.subject, mail.from_name, mail.text) == (subject, from_name, text)


def test_declared_gb2312_with_characters_only_gbk_and_gb18030_have() -> None:
    mail = fixture("wrong_charset_gb2312")
    assert mail.subject == "王喆的投诉：镕金手镯有划痕"
    assert mail.from_name == "王喆"
    assert mail.text == (
        "我叫王喆，11月18日在你们店买的镕金手镯（单号 GZ-1118-066）有明显划痕😞，\n"
        "店员李堃说不能换。䶮字我都写不出来，但道理我懂：这是质量问题。\n\n王喆"
    )


def test_declared_utf8_but_gbk_bytes_and_a_raw_gbk_subject() -> None:
    mail = fixture("wrong_charset_utf8")
    assert mail.subject == "网站投诉表单：儿童保温杯杯盖破裂"
    assert mail.text == (
        "您好，我在网上提交了投诉表单，但是一直没有人联系我。\n"
        "订单号：WX20261119-3321，商品：儿童保温杯，收到时杯盖是裂的。\n联系人：郑雪 13800138000"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [("没有声明字符集的 UTF-8", "utf-8"), ("没有声明字符集的国标码", "gbk")],
)
def test_no_charset_at_all_with_8bit_bytes(body: str, expected: str) -> None:
    mail = read_mail(raw(CUSTOMER + "Content-Transfer-Encoding: 8bit", body.encode(expected)))
    assert mail.text == body


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        ("中文".encode("gb18030"), "gb2312", "中文"),
        ("镕".encode("gbk"), "GB2312", "镕"),
        ("𠮷".encode("gb18030"), "gbk", "𠮷"),
        ("包裹裏面".encode("cp950"), "big5", "包裹裏面"),  # 裏 is a CP950 (ETEN) extension
        ("退款".encode("gbk"), "utf-8", "退款"),
        ("退款".encode(), "iso-8859-1", "退款"),  # valid UTF-8 is no Latin-1 accident
        (b"caf\xe9", "iso-8859-1", "café"),
        ("退款".encode("gbk"), "us-ascii", "退款"),
        ("退款".encode("gbk"), "x-made-up", "退款"),
        (b"\\u9000\\u6b3e", "unicode-escape", "\\u9000\\u6b3e"),  # not a mail charset
        ("\ufeffBOM".encode("utf-8"), "utf-8", "BOM"),
        (b"\xff\xfe\xff", None, "\ufffd\ufffd\ufffd"),
    ],
    ids=[
        "gb2312",
        "gb2312-as-gbk",
        "gbk-as-gb18030",
        "big5-as-cp950",
        "utf8-really-gbk",
        "latin1-really-utf8",
        "latin1",
        "ascii-really-gbk",
        "unknown",
        "escape-codec",
        "bom",
        "replacement",
    ],
)
def test_decode_text_fallback_order(data: bytes, declared: str | None, expected: str) -> None:
    assert decode_text(data, declared) == expected


# -- attachments --------------------------------------------------------------------------------


def test_attachments_are_listed_by_decoded_name_and_hash_never_inlined() -> None:
    mail = fixture("attachments_jpeg_pdf")
    assert mail.attachments == (
        MailAttachment(
            name="收据照片.jpg",
            media_type="image/jpeg",
            size=159,
            sha256="sha256:eabd11d3fd11bb2469661b827ec4e75724bccbb586e63f9c457b2707d26891b3",
        ),
        MailAttachment(
            name="电子发票_202611.pdf",
            media_type="application/pdf",
            size=606,
            sha256="sha256:c51d674460f037291ad9736a8b2107bd4a1e9b4b1d8dcf890830112ec1c261c5",
        ),
    )
    assert mail.text == (
        "附件是收据照片和电子发票，麻烦核对一下金额：\n"
        "发票上开的是 1419 元，实际只付了 1299 元，多开了 120 元。\n\n吴昊"
    )


def test_a_text_file_marked_attachment_is_an_attachment_not_text() -> None:
    body = (
        "--M\nContent-Type: text/plain; charset=utf-8\n\n见附件\n"
        "--M\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: attachment; "
        "filename=notes.txt\n\n附件里的文字\n--M--\n"
    )
    mail = read_mail(raw(CUSTOMER + "Content-Type: multipart/mixed; boundary=M", body))
    assert mail.text == "见附件"
    assert mail.attachments == (
        MailAttachment("notes.txt", "text/plain", 18, sha("附件里的文字".encode())),
    )


def test_inline_images_are_attachments_and_forwarded_mail_too() -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    body = (
        "--M\nContent-Type: multipart/related; boundary=R\n\n"
        '--R\nContent-Type: text/html; charset=utf-8\n\n<p>截图如下</p><img src="cid:shot">\n'
        '--R\nContent-Type: image/png; name="screenshot.png"\nContent-ID: <shot>\n'
        f"Content-Disposition: inline\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(png).decode()}\n"
        "--R\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\nR0lGODlh\n"
        "--R--\n"
        "--M\nContent-Type: message/rfc822\n\nFrom: shop@example.com\nSubject: order\n\n"
        "转发的原邮件正文\n"
        "--M--\n"
    )
    mail = read_mail(raw(CUSTOMER + "Content-Type: multipart/mixed; boundary=M", body))
    assert mail.text == "截图如下"
    assert [(a.name, a.media_type, a.size) for a in mail.attachments] == [
        ("screenshot.png", "image/png", len(png)),
        (None, "image/gif", 6),
        (
            None,
            "message/rfc822",
            len("From: shop@example.com\r\nSubject: order\r\n\r\n转发的原邮件正文".encode()),
        ),
    ]
    assert mail.attachments[0].sha256 == sha(png)


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="\xd5\xc5\xc8\xfd.jpg"', "张三.jpg"),  # raw GBK bytes
        ("attachment; filename*=gb2312''%CD%F5%86%B4.jpg", "王喆.jpg"),  # not in GB2312
        ("attachment; filename*=''%E7%85%A7%E7%89%87.jpg", "照片.jpg"),  # no charset
        ('attachment; filename="=?GBK?B?1cXI/Q==?=.jpg"', "张三.jpg"),  # word inside quotes
        ("inline", "from-content-type.jpg"),
    ],
)
def test_attachment_names_in_every_spelling(disposition: str, expected: str) -> None:
    head = (
        CUSTOMER.encode()
        + b'Content-Type: image/jpeg; name="from-content-type.jpg"\r\n'
        + b"Content-Disposition: "
        + disposition.encode("latin-1")
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n/9j/2Q==\r\n"
    )
    (attachment,) = read_mail(head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")).attachments
    assert attachment.name == expected


# -- quoted replies -----------------------------------------------------------------------------


def test_qq_mail_reply_keeps_only_the_new_words() -> None:
    mail = fixture("reply_qq_style")
    assert mail.text == "已经三天了，退款还是没有到账。你们说24小时内处理的，麻烦给个准确时间！"
    assert mail.subject == "回复：您的投诉 C20261120-0031 已受理"


def test_qq_mail_html_reply_keeps_only_the_new_words() -> None:
    markup = (
        "<div>已经三天了，退款还是没有到账。</div><div><br></div>"
        '<div style="font-size: 12px;font-family: Arial Narrow;padding:2px 0 2px 0;">'
        "------------------&nbsp;原始邮件&nbsp;------------------</div>"
        '<div style="font-size: 12px;background:#efefef;padding:8px;">'
        '<div><b>发件人:</b>&nbsp;"品牌客服"&lt;service@brand.example.cn&gt;;</div>'
        "<div><b>发送时间:</b>&nbsp;2026年11月20日(星期五) 下午3:18</div></div>"
        "<div><br></div>周女士您好：<br>您的投诉已受理。"
    )
    assert html_text(markup) == "已经三天了，退款还是没有到账。"


@pytest.mark.parametrize(
    ("case", "text"),
    [
        (
            "reply_quoted_references",
            "50 元优惠券不能接受。我要求的是全额退款 299 元，这个洗衣机从送来第一天就漏水，"
            "安装师傅也承认是机器问题。\n\n请在本周内给我答复。\n\n刘洋",
        ),
        (
            "reply_foxmail",
            "我已经按你们说的寄回了，快递单号 SF1234567890123，请查收后尽快退款。\n\n\n\n"
            "zhengwei@example.cn",
        ),
        ("reply_netease_163", "还是不行，新换的这台一样有异响。我要求退货。"),
    ],
)
def test_replies_from_other_clients_keep_only_the_new_words(case: str, text: str) -> None:
    assert fixture(case).text == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("好的\n\nOn Fri, Nov 20, 2026 at 3:18 PM Support <s@example.com> wrote:\n> old", "好的"),
        ("好的\n\nOn Fri, Nov 20, 2026 at 3:18 PM Support <\ns@example.com> wrote:\n> old", "好的"),
        ("好的\n\n张三 <a@example.com> 于2026年11月20日周五 15:18写道：\n> 旧的", "好的"),
        ("好的\n\n张三 <\na@example.com> 于2026年11月20日周五 15:18写道：\n旧的", "好的"),
        ("好的\n\n在 2026/11/20 15:18, 品牌客服 写道:\n> 旧的", "好的"),
        ('好的\n\n在 2026-11-20 15:18:31，"客服" <s@example.com> 写道：\n旧的没有前缀', "好的"),
        ("好的\n-----Original Message-----\nFrom: s\nold", "好的"),
        ("好的\n\n-----原始邮件-----\n发件人：客服\n旧的", "好的"),
        ("好的\n------------------ 原始邮件 ------------------\n发件人: x", "好的"),
        ("好的\n\n\n------------------&nbsp;原始邮件&nbsp;------------------\n发件人: x", "好的"),
        ("好的\n\n---- 回复的原邮件 ----\n| 发件人 | 客服<s@example.com> |", "好的"),
        ("好的\n\n---- Replied Message ----\n| From | Support<s@example.com> |", "好的"),
        (
            "好的\n\n________________________________\n发件人: 品牌客服 <s@example.com>\n"
            "发送时间: 2026年11月20日 15:18\n收件人: 张三\n主题: 已受理\n\n旧的",
            "好的",
        ),
        (
            "好的\n\nFrom: Support <s@example.com>\nSent: Friday, November 20, 2026 3:18 PM\n"
            "To: Zhang\nSubject: Received\n\nold",
            "好的",
        ),
        ("好的\r\n \r\n发件人： 品牌客服\n发送时间： 2026-11-20 15:18\n收件人： 郑伟", "好的"),
        (
            "好的\n\n         Original\n\nFrom:Support <s@example.com>\nSent Time:Nov 20, 2026 15:18\n"
            "\nold",
            "好的",
        ),
        ("好的\n\n寄件者: 客服 <s@example.com>\n寄件日期: 2026年11月20日 下午 03:18\n舊的", "好的"),
        ("*发件人:* 客服\n*发送时间:* 2026年11月20日 11:10\n旧的", ""),
        ("> 第一个问题\n回答一\n\n> 第二个问题\n回答二", "回答一\n\n回答二"),
        ("在 2026/11/20 15:18, 客服 写道:\n> 旧的\n>\n\n底部回复的新内容", "底部回复的新内容"),
        ("> 全部都是引用\n> 没有新内容", ""),
    ],
    ids=[
        "en-on-wrote",
        "en-on-wrote-wrapped",
        "gmail-zh",
        "gmail-zh-wrapped",
        "thunderbird-zh",
        "netease-unquoted",
        "outlook-original",
        "zh-original",
        "qq",
        "qq-nbsp",
        "mailmaster-zh",
        "mailmaster-en",
        "outlook-zh",
        "outlook-en",
        "foxmail-fullwidth",
        "qq-new-original",
        "outlook-zh-tw",
        "starred",
        "interleaved",
        "bottom-posted",
        "only-quotes",
    ],
)
def test_quote_patterns_are_cut(text: str, expected: str) -> None:
    assert new_words(text.replace("\r\n", "\n")) == expected


@pytest.mark.parametrize(
    "text",
    [
        "寄件地址：\nFrom: 上海\nTo: 北京\n运费多收了",
        "发件人：张三\n收件人：李四\n快递被调包了",
        "他在信里写道：\n“保证七天到货”",
        "客服于11月20日写道：\n“七天内退款”\n结果没退",
        "在11月20日的回复里，你们客服写道：\n“保证三天内退款”",
        "On Monday I wrote:\nthe order is late",
        "价格 ---- 原价 ---- 现价",
        "  开头有空格的第一行\n结尾有空格的第二行  \n\n全角标点，！？和表情😀",
    ],
)
def test_customer_words_that_only_look_like_quotes_are_kept_verbatim(text: str) -> None:
    assert new_words("\n\n" + text + "\n\n") == text


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        (
            '<div dir="ltr">退款什么时候到？</div><br><div class="gmail_quote gmail_quote_container">'
            '<div dir="ltr" class="gmail_attr">品牌客服 &lt;s@example.com&gt; 于2026年11月20日周五 '
            '15:18写道：<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
            'border-left:1px solid rgb(204,204,204);padding-left:1ex">已受理</blockquote></div>',
            "退款什么时候到？",
        ),
        (
            '<div>还没收到。<br><div><br><blockquote type="cite"><div>2026年11月20日 15:18，客服 '
            "&lt;s@example.com&gt; 写道：</div><br><div>已受理</div></blockquote></div></div>",
            "还没收到。",
        ),
        (
            '<div class="WordSection1"><p class="MsoNormal">不满意这个处理结果。<o:p></o:p></p>'
            '<p class="MsoNormal"><o:p>&nbsp;</o:p></p><div id="appendonsend"></div>'
            '<hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg">'
            "<b>发件人:</b> 品牌客服<br><b>发送时间:</b> 2026年11月20日 15:18</div><div>已受理</div></div>",
            "不满意这个处理结果。",
        ),
        (
            '<p class="MsoNormal">Still broken.</p><div style="border:none;border-top:solid #E1E1E1 '
            '1.0pt;padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal"><b>From:</b> Support<br>'
            "<b>Sent:</b> Friday, November 20, 2026 3:18 PM<br><b>To:</b> Zhang</p></div><p>old</p>",
            "Still broken.",
        ),
        (
            '<div>非常感谢</div><hr id="replySplit"><div id="reply139content"><div>'
            "------------------&nbsp;原始邮件&nbsp;------------------</div><div>已受理</div></div>",
            "非常感谢",
        ),
        (
            '<div>已经搞定了，谢谢</div><div class="J-reply ntes-mailmaster-quote"><div>'
            "---- 回复的原邮件 ----</div><table><tr><td>发件人</td><td>客服</td></tr></table></div>",
            "已经搞定了，谢谢",
        ),
        (
            '<div>Thanks</div><div class="yahoo_quoted"><div>On Friday, Support wrote:</div>'
            "<div>old</div></div>",
            "Thanks",
        ),
        (
            '<p>没有看到</p><article><div style="display:flex"><div>原始邮件</div><hr></div>'
            "<table><tr><td><div><span>发件人:</span><span>客服</span></div><div>"
            "<span>发送时间:</span><span>2026年11月20日 15:18</span></div></td></tr></table>"
            "<div>已受理</div></article>",
            "没有看到",
        ),
        (
            '<div>第一行</div><blockquote style="margin:0 0 0 40px;border:none;padding:0px">'
            "<div>Gmail 缩进的第二行</div></blockquote>",
            "第一行\nGmail 缩进的第二行",
        ),
    ],
    ids=[
        "gmail",
        "apple-mail",
        "outlook-ids",
        "outlook-plain-block",
        "139",
        "mailmaster",
        "yahoo",
        "qq-new",
        "gmail-indent-is-kept",
    ],
)
def test_html_quote_containers_are_left_out(markup: str, expected: str) -> None:
    assert html_text(markup) == expected


def test_format_flowed_lines_are_joined_back() -> None:
    body = "这是一段很长的话，被客户端 \n折行了。\n> 引用 \n> 也折行\n下一段"
    mail = read_mail(raw(CUSTOMER + "Content-Type: text/plain; charset=utf-8; format=flowed", body))
    assert mail.text == "这是一段很长的话，被客户端 折行了。\n下一段"
    delsp = read_mail(
        raw(
            CUSTOMER + "Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes",
            "退款 \n到账了吗",
        )
    )
    assert delsp.text == "退款到账了吗"


def test_a_long_complaint_comes_through_whole() -> None:
    lines = ["客服你好：", ""]
    for n in range(1, 341):
        lines.append(
            f"{n:03d}. 2026年10月{1 + n % 30:02d}日 第{n}次联系客服（工单 T{20261000 + n}），"
            "对方答复“正在处理”，至今没有结果。"
        )
    lines += ["", "以上全部记录属实，请给出书面答复。", "", "黄磊"]
    mail = fixture("long_text_20k")
    assert mail.text == "\n".join(lines)
    assert len(mail.text) > 20_000


# -- automated mail -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "label"),
    [
        ("Auto-Submitted: auto-replied", "auto_submitted"),
        ("Auto-Submitted: auto-generated; owner-email=x@example.com", "auto_submitted"),
        ("Auto-Submitted: no", None),
        ("X-Autoreply: yes", "autoreply"),
        ("X-Autorespond: Vacation", "autoreply"),
        ("Precedence: bulk", "precedence_bulk"),
        ("Precedence: junk", "precedence_junk"),
        ("Precedence: auto_reply", "precedence_auto_reply"),
        ("Precedence: list", None),
        ("Return-Path: <>", "null_sender"),
        ("Subject: =?UTF-8?B?6Ieq5Yqo5Zue5aSNOiDmgqjnmoTmipXor4k=?=", "autoreply_subject"),
        ("Subject: Automatic reply: Your complaint", "autoreply_subject"),
        ("Subject: =?UTF-8?B?5YWz5LqO6Ieq5Yqo5Zue5aSN55qE5oqV6K+J?=", None),
        (
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=R",
            "read_receipt",
        ),
        (
            "Content-Type: multipart/report; report-type=delivery-status; boundary=R",
            "delivery_report",
        ),
    ],
)
def test_automated_mail_is_labelled(head: str, label: str | None) -> None:
    assert read_mail(raw(CUSTOMER + head, "--R\n\nx\n--R--\n")).automated == label


def test_mail_from_a_mailer_daemon_is_a_delivery_report() -> None:
    mail = read_mail(raw("From: MAILER-DAEMON@mx.example.net\nSubject: failure notice", "Hi."))
    assert mail.automated == "delivery_report"


def test_out_of_office_reply_is_still_read() -> None:
    mail = fixture("auto_reply_out_of_office")
    assert mail.automated == "auto_submitted"
    assert mail.subject == "自动答复: 您的投诉 C20261119-0012 已受理"
    assert mail.text.startswith("您好，\n\n我于 11 月 23 日至 11 月 27 日休假")
    assert mail.date == datetime(2026, 11, 23, 2, 31, 5, tzinfo=UTC)


def test_bounce_gives_its_human_part_and_lists_the_machine_parts() -> None:
    mail = fixture("bounce_delivery_status")
    assert mail.automated == "delivery_report"
    assert (mail.from_address, mail.from_name) == (
        "mailer-daemon@mx.brand.example.cn",
        "Mail Delivery System",
    )
    assert mail.text.startswith("This is the mail system at host mx.brand.example.cn.")
    assert mail.text.endswith("virtual mailbox table (in reply to RCPT TO command)")
    assert "Final-Recipient" not in mail.text
    assert [a.media_type for a in mail.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]


# -- threading and dedupe -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "root", "parent"),
    [
        ("References: <a@x> <b@x>\nIn-Reply-To: <b@x>", "a@x", "b@x"),
        ("In-Reply-To: <b@x>", "b@x", "b@x"),
        ("References: <a@x>,\n\t<b@x>", "a@x", None),
        ("References: < a@x\n >", "a@x", None),
        ('In-Reply-To: <b@x> (Zhang San\'s message of "Fri, 20 Nov 2026")', "b@x", "b@x"),
        ("In-Reply-To: your message of Friday", None, None),
        ("Subject: no threading headers", None, None),
    ],
)
def test_thread_ids_come_without_brackets(head: str, root: str | None, parent: str | None) -> None:
    mail = read_mail(raw(CUSTOMER + head, "x"))
    assert (mail.thread_root, mail.in_reply_to) == (root, parent)


def test_fixture_reply_threads_to_the_first_reference() -> None:
    mail = fixture("reply_quoted_references")
    assert mail.message_id == "5d7e9a1c-3b2f-4e8a-9c6d-1f0e2a3b4c5d@example.org"
    assert mail.thread_root == "c20261118-0007.1763450000@brand.example.cn"
    assert mail.in_reply_to == "c20261118-0007.1763804760@brand.example.cn"
    assert (mail.from_address, mail.to_addresses) == (
        "liu.yang@example.org",
        ("service@brand.example.cn",),
    )


def test_mail_without_a_message_id_has_a_stable_fallback_key() -> None:
    original = (FIXTURES / "no_message_id.raw.eml").read_bytes()
    mail = read_mail(original)
    assert mail.message_id is None
    # the same mail fetched again, re-encoded by a relay: same key
    head, _, body = original.partition(b"\r\n\r\n")
    relayed = (
        head.replace(b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: base64")
        + b"\r\n\r\n"
        + base64.encodebytes(body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    )
    assert read_mail(relayed).fallback_key == mail.fallback_key
    edited = original.replace(b"98.00", b"99.00")
    assert read_mail(edited).fallback_key != mail.fallback_key
    assert mail.fallback_key.startswith("sha256:") and len(mail.fallback_key) == 71


# -- properties ---------------------------------------------------------------------------------

FIXTURE_BYTES = [path.read_bytes() for path in sorted(FIXTURES.glob("*.raw.eml"))]
_TOKENS = [
    b"",
    b"\r\n",
    b"\r\n\r\n",
    b"=?",
    b"?=",
    b"?B?",
    b"?Q?",
    b"<",
    b">",
    b"(",
    b'"',
    b";",
    b"--",
    b"*0*=",
    b"''",
    b"\x80",
    b"\xff",
    b"\x00",
    b"<blockquote>",
    b"<!--",
    b"<a b='",
    b"charset=",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n",
]
_EDITS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1 << 20),
        st.integers(min_value=0, max_value=64),
        st.sampled_from(_TOKENS) | st.binary(max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def _mail_or_refusal(data: bytes) -> None:
    try:
        result = read_mail(data)
    except MalformedPayload as refused:
        assert refused.reason in PAYLOAD_REASONS
    else:
        assert isinstance(result, Mail)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_mail_or_a_payload_refusal(data: bytes) -> None:
    _mail_or_refusal(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURE_BYTES), _EDITS)
def test_mutated_fixtures_give_a_mail_or_a_payload_refusal(
    original: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(original)
    for position, length, inserted in edits:
        at = position % (len(data) + 1)
        data[at : at + length] = inserted
    _mail_or_refusal(bytes(data))
