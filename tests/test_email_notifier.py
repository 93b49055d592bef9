"""The e-mail notifier against a real SMTP server (aiosmtpd on loopback).

Every send goes over a real socket; what the customer would read is parsed
back from the bytes the server received.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage, MIMEPart
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

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
from outbound.email import EmailNotifier, EmailNotifierSettings
from tests.brokers import free_port
from tests.fakes import FrozenClock
from tests.notifier_contract import Condition, NotifierContract
from tests.smtp_server import (
    PASSWORD,
    USERNAME,
    Behaviour,
    SmtpServer,
    Step,
    smtp_server,
    smtp_tls_files,
    starttls_smtp_server,
)

__all__ = ["smtp_server", "smtp_tls_files", "starttls_smtp_server"]  # fixtures used below

RECIPIENT = "customer@example.com"
FROM_ADDRESS = "service@shop.example.cn"
#: Short, so the in-doubt case (a server that never answers) takes a second at most.
TIMEOUT = 1.0

BEHAVIOURS: dict[Condition, Behaviour] = {
    "ok": "accept",
    "unavailable": "unavailable",
    "rate_limited": "rate_limited",
    "in_doubt": "hang",
    "unreachable": "mailbox_refused",
    "refused": "message_refused",
    "auth": "refuse_login",
}

MakeNotifier = Callable[..., EmailNotifier]


class SmtpProvider:
    """The contract's view of the server: how to answer, and what it took."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    def arrange(self, condition: Condition) -> None:
        self.server.behave(BEHAVIOURS[condition])

    def accepted(self) -> int:
        return len(self.server.received)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:  # the contract's argument; SMTP does not use it
        yield client


@pytest.fixture
def make_notifier(
    smtp_server: SmtpServer, http: httpx.AsyncClient, clock: FrozenClock
) -> MakeNotifier:
    def make(**overrides: Any) -> EmailNotifier:
        values: dict[str, Any] = {
            "host": smtp_server.host,
            "port": smtp_server.port,
            "security": "none",
            "username": USERNAME,
            "password": PASSWORD,
            "from_address": FROM_ADDRESS,
            "timeout_seconds": TIMEOUT,
            "local_hostname": "gateway.test",
        }
        values.update(overrides)
        return EmailNotifier(EmailNotifierSettings(**values), http, clock)

    return make


@pytest.fixture
def notifier(make_notifier: MakeNotifier) -> EmailNotifier:
    return make_notifier()


@pytest.fixture
def provider(smtp_server: SmtpServer) -> SmtpProvider:
    return SmtpProvider(smtp_server)


def parts(mail: EmailMessage) -> dict[str, MIMEPart]:
    return {part.get_content_type(): part for part in mail.iter_parts()}


class TestEmailNotifier(NotifierContract):
    notifier_class = EmailNotifier
    secrets = (PASSWORD,)
    recipient = RECIPIENT

    async def test_the_customer_reads_the_chinese_subject_sender_and_both_bodies(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        receipt = await notifier.send(message)

        [received] = smtp_server.received
        mail = received.parsed()
        assert mail["Subject"] == "您的反馈已受理（编号：TS20240520）"
        assert mail["From"].addresses[0].display_name == "客户服务中心"
        assert mail["From"].addresses[0].addr_spec == FROM_ADDRESS
        assert mail["To"] == RECIPIENT
        assert mail.get_content_type() == "multipart/alternative"
        plain, html = parts(mail)["text/plain"], parts(mail)["text/html"]
        for part in (plain, html):
            assert part.get_content_charset() == "utf-8"
            assert "TS20240520" in part.get_content()
            assert "正在为您分配专属客服跟进" in part.get_content()
        assert message.text in plain.get_content()
        assert receipt.message_id == mail["Message-ID"]

    async def test_the_mail_carries_the_clock_date_and_the_record_it_is_about(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message, clock: FrozenClock
    ) -> None:
        await notifier.send(message)

        mail = smtp_server.received[0].parsed()
        assert parsedate_to_datetime(mail["Date"]) == clock.now()
        assert mail["X-Complaint-Record"] == "wechat:4c1d7e2b9a0f6e35"
        assert mail["X-Complaint-Node"] == "accepted"
        assert mail["Auto-Submitted"] == "auto-generated"

    async def test_the_raw_mail_is_seven_bit_so_any_relay_carries_it(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        await notifier.send(message)

        raw = smtp_server.received[0].content
        assert raw.isascii()
        subject_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject:"))
        assert b"=?utf-8?" in subject_line

    async def test_markup_in_the_text_is_escaped_in_the_html_part(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        hostile = "方案：<script>alert('x')</script> & <b>加急</b>"
        await notifier.send(dataclasses.replace(message, text=hostile))

        bodies = parts(smtp_server.received[0].parsed())
        html = bodies["text/html"].get_content()
        assert "<script>" not in html and "<b>" not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;" in html
        assert hostile in bodies["text/plain"].get_content()

    async def test_a_resend_carries_the_same_message_id_another_notification_not(
        self,
        make_notifier: MakeNotifier,
        smtp_server: SmtpServer,
        message: Message,
        clock: FrozenClock,
    ) -> None:
        notifier = make_notifier()
        first = await notifier.send(message)
        clock.advance(3600)  # an operator's resend, an hour and a restart later
        again = await make_notifier().send(message)
        other = await notifier.send(dataclasses.replace(message, key="0a1b2c3d4e5f6071"))

        ids = [mail.parsed()["Message-ID"] for mail in smtp_server.received]
        assert ids == [first.message_id, again.message_id, other.message_id]
        assert ids[0] == ids[1] != ids[2]
        assert ids[0].endswith("@shop.example.cn>")

    async def test_the_envelope_names_the_sender_and_only_the_customer(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        await notifier.send(message)

        [received] = smtp_server.received
        assert received.mail_from == FROM_ADDRESS
        assert received.rcpt_tos == (RECIPIENT,)
        assert received.login == USERNAME

    async def test_a_line_break_in_the_subject_cannot_add_a_header_or_recipient(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        subject = "您的反馈已受理\r\nBcc: attacker@example.net"
        await notifier.send(dataclasses.replace(message, subject=subject))

        [received] = smtp_server.received
        mail = received.parsed()
        assert mail["Bcc"] is None
        assert mail["Subject"] == "您的反馈已受理 Bcc: attacker@example.net"
        assert received.rcpt_tos == (RECIPIENT,)

    async def test_a_message_without_subject_gets_the_nodes_default_subject(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        await notifier.send(dataclasses.replace(message, subject=""))

        assert smtp_server.received[0].parsed()["Subject"] == "您的反馈已受理（编号：TS20240520）"

    async def test_replies_go_to_the_reply_to_address_when_one_is_set(
        self, make_notifier: MakeNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        await make_notifier(reply_to="kefu@shop.example.cn").send(message)

        mail = smtp_server.received[0].parsed()
        assert mail["Reply-To"] == "kefu@shop.example.cn"
        assert "直接回复本邮件" in parts(mail)["text/plain"].get_content()

    @pytest.mark.parametrize(
        ("step", "reply", "expected"),
        [
            ("MAIL", "451 4.3.0 Temporary local problem", ChannelUnavailable),
            (
                "MAIL",
                "454 4.7.0 Throttling failure: Maximum sending rate exceeded",
                ChannelRateLimited,
            ),
            ("MAIL", "530 5.7.0 Authentication required", ChannelAuthError),
            ("MAIL", "553 5.7.1 Sender address rejected: not owned by user", DeliveryRefused),
            ("RCPT", "450 4.2.1 <{address}>: mailbox busy, try again later", ChannelUnavailable),
            ("RCPT", "452 4.5.3 Too many recipients", ChannelUnavailable),
            ("RCPT", "551 5.1.6 User not local; please try <{address}>", RecipientUnreachable),
            ("RCPT", "553 5.1.3 Bad destination mailbox address syntax", RecipientUnreachable),
            ("RCPT", "554 5.7.1 <{address}>: Relay access denied", ChannelAuthError),
            ("DATA", "451 4.7.1 Please try again later", ChannelUnavailable),
            ("DATA", "552 5.3.4 Message size exceeds fixed limit", DeliveryRefused),
        ],
    )
    async def test_each_smtp_reply_maps_to_its_error(
        self,
        notifier: EmailNotifier,
        smtp_server: SmtpServer,
        message: Message,
        step: Step,
        reply: str,
        expected: type[ChannelError],
    ) -> None:
        smtp_server.handler.reply_at(step, reply)
        with pytest.raises(ChannelError) as caught:
            await notifier.send(message)
        assert type(caught.value) is expected
        assert RECIPIENT not in str(caught.value)
        assert smtp_server.received == []

    async def test_a_refused_recipient_is_named_masked(
        self, notifier: EmailNotifier, provider: SmtpProvider, message: Message
    ) -> None:
        provider.arrange("unreachable")
        with pytest.raises(RecipientUnreachable) as caught:
            await notifier.send(message)
        assert caught.value.reason == "mailbox_refused"
        assert "SMTP 550 at RCPT: 5.1.1 <c***@example.com>: mailbox unavailable" in str(
            caught.value
        )

    async def test_nothing_listening_is_unavailable(
        self, make_notifier: MakeNotifier, message: Message
    ) -> None:
        with pytest.raises(ChannelUnavailable):
            await make_notifier(host="127.0.0.1", port=free_port()).send(message)

    async def test_an_address_smtp_cannot_carry_is_unreachable_without_a_connection(
        self, notifier: EmailNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        with pytest.raises(RecipientUnreachable) as caught:
            await notifier.send(dataclasses.replace(message, recipient="客户@example.com"))
        assert caught.value.reason == "invalid_address"
        assert "客户" not in str(caught.value)
        assert smtp_server.handler.logins == []

    async def test_a_server_that_never_answers_the_content_is_in_doubt(
        self, make_notifier: MakeNotifier, provider: SmtpProvider, message: Message
    ) -> None:
        provider.arrange("in_doubt")
        with pytest.raises(DeliveryInDoubt) as caught:
            await make_notifier(timeout_seconds=0.3).send(message)
        assert "no answer to the message" in str(caught.value)

    async def test_a_server_that_stalls_before_the_content_is_only_unavailable(
        self, make_notifier: MakeNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        smtp_server.handler.hang_at = "RCPT"
        with pytest.raises(ChannelUnavailable) as caught:
            await make_notifier(timeout_seconds=0.3).send(message)
        assert "at RCPT" in str(caught.value)

    async def test_starttls_is_required_so_the_password_never_crosses_in_clear(
        self, make_notifier: MakeNotifier, smtp_server: SmtpServer, message: Message
    ) -> None:
        with pytest.raises(ChannelAuthError):
            await make_notifier(security="starttls").send(message)
        assert smtp_server.handler.logins == []
        assert smtp_server.received == []

    async def test_starttls_checks_the_certificate_unless_told_not_to(
        self, make_notifier: MakeNotifier, starttls_smtp_server: SmtpServer, message: Message
    ) -> None:
        where = {"host": starttls_smtp_server.host, "port": starttls_smtp_server.port}
        with pytest.raises(ChannelUnavailable):
            await make_notifier(security="starttls", **where).send(message)
        assert starttls_smtp_server.handler.logins == []

        await make_notifier(security="starttls", validate_certs=False, **where).send(message)
        [received] = starttls_smtp_server.received
        assert received.over_tls
        assert received.login == USERNAME


class TestEmailSettings:
    def test_a_valid_configuration_has_no_problems(self, make_notifier: MakeNotifier) -> None:
        assert make_notifier(reply_to="kefu@shop.example.cn").problems({}) == []

    @pytest.mark.parametrize("field", ["from_address", "reply_to"])
    @pytest.mark.parametrize("value", ["service", "服务@shop.example.cn", "a@b@c", "x@"])
    def test_an_address_smtp_cannot_carry_is_reported_at_start(
        self, make_notifier: MakeNotifier, field: str, value: str
    ) -> None:
        [problem] = make_notifier(**{field: value}).problems({})
        assert problem.startswith(f"{field}: ")

    def test_a_password_in_clear_text_to_a_remote_server_is_reported_at_start(
        self, make_notifier: MakeNotifier
    ) -> None:
        [problem] = make_notifier(host="smtp.example.net").problems({})
        assert "clear text" in problem
        assert make_notifier(host="smtp.example.net", security="starttls").problems({}) == []
