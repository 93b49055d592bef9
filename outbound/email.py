"""E-mail notifications, submitted over SMTP with aiosmtplib.

Each :meth:`EmailNotifier.send` opens its own connection (TLS or STARTTLS,
then AUTH), submits one message and says QUIT. Status notifications are few
and far between, and a fresh connection per attempt leaves no pooled
session to go stale between them, so no attempt inherits another's state or
has to guess whether a dead pooled connection took its mail. Sends may run
concurrently: they share nothing.

The message is a ``multipart/alternative`` of the text and a small HTML
rendering of it, in UTF-8 and base64, with headers encoded per RFC 2047: it
travels over any MTA, without SMTPUTF8 or 8BITMIME.

Errors are mapped in one place, :func:`channel_error`, by the SMTP step
that failed and the reply code:

* no connection, a timeout or a lost connection before the message content
  went out, any 4xx reply: :class:`ChannelUnavailable`;
* a 4xx reply whose text asks us to slow down (SMTP has no code of its
  own for that: "450 4.7.1 Too many messages, slow down", SES's "454
  Throttling failure"): :class:`ChannelRateLimited`, without ``retry_after``;
* our credentials refused or required (530, 534, 535, 538), the server
  refusing to relay for us, or lacking the STARTTLS or AUTH the settings
  require: :class:`ChannelAuthError`. 454 is a *temporary* authentication
  failure (RFC 4954) and stays unavailable;
* a 5xx reply to RCPT: :class:`RecipientUnreachable` (``mailbox_refused``);
* a 5xx reply to MAIL or DATA: :class:`DeliveryRefused` (``sender_refused``,
  ``message_refused``);
* a timeout or a lost connection during DATA: :class:`DeliveryInDoubt`.
  aiosmtplib sends the DATA command and the content in one call, so a
  server that stalls before its "354 go ahead" cannot be told from one that
  stalls after the content; both are in doubt, which costs an operator's
  resend at worst, never a duplicate.

Error messages give the reply code and the server's text with every
address in it masked (``c***@example.com``), never the password.
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import re
from collections.abc import Mapping
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import ClassVar, Literal

import aiosmtplib
from pydantic import Field, SecretStr

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
    DeliveryRefused,
    RecipientUnreachable,
)
from outbound.base import Message, Notifier, NotifierSettings, Receipt
from outbound.templates import DEFAULT_SUBJECTS
from schemas.status import Node
from service.logs import mask_email

Security = Literal["starttls", "tls", "none"]

#: The SMTP step under way: connecting (greeting, EHLO, STARTTLS, AUTH), envelope, content.
Step = Literal["connect", "MAIL", "RCPT", "DATA"]

DEFAULT_PORTS: dict[Security, int] = {"starttls": 587, "tls": 465, "none": 25}

#: Replies that refuse or demand our credentials (RFC 4954): retrying will not help.
CREDENTIALS_REFUSED: Mapping[int, str] = {
    530: "authentication required",
    534: "authentication mechanism too weak",
    535: "authentication credentials invalid",
    538: "encryption required for the authentication mechanism",
}

#: How providers say "slow down" in a 4xx reply's text.
_SLOW_DOWN = re.compile(
    r"\b(?:rate|throttl\w*|slow down|quota|too many (?:messages|mails?|e-?mails|connections))\b",
    re.IGNORECASE,
)
#: "554 5.7.1 Relay access denied", "550 5.7.1 Unable to relay": the server does not know us.
_RELAY_DENIED = re.compile(r"\brelay", re.IGNORECASE)
_ADDRESS_IN_TEXT = re.compile(r"[^\s<>()\[\]\"',;:@]+@[^\s<>()\[\]\"',;]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class EmailNotifierSettings(NotifierSettings):
    host: str = Field(description="SMTP submission server of the mail provider.")
    port: int | None = Field(
        None, ge=1, le=65535, description="SMTP port; unset: 587 (starttls), 465 (tls), 25 (none)."
    )
    security: Security = Field(
        "starttls",
        description="starttls: upgrade a plain connection and refuse to go on without TLS; "
        "tls: TLS from the first byte (port 465); none: no encryption (a local relay only).",
    )
    username: str | None = Field(None, description="SMTP AUTH user name; unset: no login.")
    password: SecretStr | None = Field(
        None, description="SMTP AUTH password (often an app password or API key)."
    )
    from_address: str = Field(
        description="Sender address (From, MAIL FROM); its domain's SPF/DKIM must cover the server."
    )
    from_name: str = Field("客户服务中心", description="Sender name the customer sees.")
    reply_to: str | None = Field(
        None, description="Where the customer's replies go; unset: to from_address."
    )
    validate_certs: bool = Field(
        True, description="Check the server's TLS certificate; turn off for a test server only."
    )
    local_hostname: str | None = Field(
        None, description="Name this gateway gives in EHLO; unset: the domain of from_address."
    )


class EmailNotifier(Notifier):
    """Sends a notification as one e-mail; the shared HTTP client is not used.

    The Message-ID is derived from ``message.key``, so a resend of the same
    notification carries the same Message-ID as the first attempt. That is
    the mail's only idempotency, and a weak one: receiving MTAs do not
    deduplicate on it, though some mail clients thread or hide the copy.
    """

    name: ClassVar[str] = "email"
    channel: ClassVar[str] = "email"
    settings_model: ClassVar[type[NotifierSettings]] = EmailNotifierSettings

    settings: EmailNotifierSettings

    def problems(self, texts: Mapping[Node, str]) -> list[str]:
        settings = self.settings
        found: list[str] = []
        if smtp_address(settings.from_address) is None:
            found.append("from_address: not an address SMTP can carry (user@domain, ASCII user)")
        if settings.reply_to is not None and smtp_address(settings.reply_to) is None:
            found.append("reply_to: not an address SMTP can carry (user@domain, ASCII user)")
        if settings.security == "none" and settings.password and not _is_loopback(settings.host):
            found.append(
                "security: 'none' would send the password in clear text; use starttls or tls"
            )
        return found

    async def send(self, message: Message) -> Receipt:
        recipient = smtp_address(message.recipient)
        if recipient is None:
            raise RecipientUnreachable(
                f"email: {mask_email(message.recipient)} is not an address SMTP can carry",
                reason="invalid_address",
            )
        mail = self.compose(message, recipient)
        client = self._client()
        step: Step = "connect"
        reply: aiosmtplib.SMTPResponse | None = None
        try:
            await client.connect()
            step = "MAIL"
            await client.mail(self._sender().addr_spec)
            step = "RCPT"
            await client.rcpt(recipient.addr_spec)
            step = "DATA"
            reply = await client.data(mail.as_bytes())
            await client.quit()
        except (aiosmtplib.SMTPException, OSError) as exc:
            if reply is None:  # after the 250, a lost goodbye changes nothing
                raise channel_error(exc, step) from None
        finally:
            client.close()
        return Receipt(
            provider=self.name, message_id=str(mail["Message-ID"]), detail=_masked(reply.message)
        )

    def compose(self, message: Message, recipient: Address) -> EmailMessage:
        """The e-mail for ``message``: subject, text and HTML alternatives, tracing headers."""
        settings = self.settings
        sender = self._sender()
        subject = _CONTROL.sub(" ", message.subject).strip()  # no header injection
        if not subject:
            subject = DEFAULT_SUBJECTS[message.node].format(ticket_no=message.ticket_no)
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["Subject"] = subject
        mail["From"] = Address(settings.from_name, sender.username, sender.domain)
        mail["To"] = recipient
        reply_to = smtp_address(settings.reply_to) if settings.reply_to else None
        if reply_to is not None:
            mail["Reply-To"] = reply_to
        mail["Date"] = format_datetime(self.clock.now())
        mail["Message-ID"] = message_id(message.key, sender.domain)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to us
        mail["X-Complaint-Record"] = message.record_id
        mail["X-Complaint-Node"] = message.node
        footer = _footer(message.ticket_no, replies_read=reply_to is not None)
        signature = settings.from_name
        plain = "\n".join([message.text, "", signature, "", *footer, ""])
        mail.set_content(plain, subtype="plain", charset="utf-8", cte="base64")
        mail.add_alternative(
            _html(subject, message.text, footer, signature),
            subtype="html",
            charset="utf-8",
            cte="base64",
        )
        return mail

    def _sender(self) -> Address:
        sender = smtp_address(self.settings.from_address)
        if sender is None:  # problems() keeps the gateway from starting with one
            raise ChannelAuthError("email: from_address is not an e-mail address")
        return sender

    def _client(self) -> aiosmtplib.SMTP:
        settings = self.settings
        password = settings.password.get_secret_value() if settings.password else None
        return aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port or DEFAULT_PORTS[settings.security],
            username=settings.username,
            password=password if settings.username else None,
            local_hostname=settings.local_hostname or self._sender().domain,
            timeout=settings.timeout_seconds,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            validate_certs=settings.validate_certs,
        )


def channel_error(exc: Exception, step: Step) -> ChannelError:
    """The gateway's error for what went wrong at ``step`` (see the module docstring)."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, f"SMTP {exc.code} at {step}: {_masked(exc.message)}"
        if 400 <= code < 500:
            if _SLOW_DOWN.search(exc.message):
                return ChannelRateLimited(f"email: slow down: {text}")
            return ChannelUnavailable(f"email: try later: {text}")
        if code in CREDENTIALS_REFUSED or isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return ChannelAuthError(f"email: credentials refused: {text}")
        if step == "RCPT" and _RELAY_DENIED.search(exc.message):
            return ChannelAuthError(f"email: the server does not relay for us: {text}")
        if step == "RCPT":
            return RecipientUnreachable(f"email: recipient refused: {text}", "mailbox_refused")
        if step == "MAIL":
            return DeliveryRefused(f"email: sender refused: {text}", "sender_refused")
        if step == "DATA":
            return DeliveryRefused(f"email: message refused: {text}", "message_refused")
        return ChannelUnavailable(f"email: {text}")
    if isinstance(exc, OSError):  # timeouts, lost and refused connections, TLS failures
        if step == "DATA":
            return DeliveryInDoubt(f"email: no answer to the message ({type(exc).__name__})")
        return ChannelUnavailable(f"email: {type(exc).__name__} at {step}")
    if step == "connect":  # no STARTTLS or no AUTH offered, though the settings require it
        return ChannelAuthError(
            f"email: the server lacks what the settings require: {_masked(str(exc))}"
        )
    return ChannelUnavailable(f"email: {type(exc).__name__} at {step}")


def message_id(key: str, domain: str) -> str:
    """A Message-ID that is the same for every attempt of one notification."""
    local = key if _PLAIN_KEY.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<notify.{local}@{domain}>"


def smtp_address(value: str) -> Address | None:
    """``value`` as an address SMTP can carry without SMTPUTF8 (IDNA domain), or None."""
    try:
        parsed = Address(addr_spec=value)
        domain = parsed.domain.encode("idna").decode("ascii")
    except (ValueError, IndexError, HeaderParseError):  # the parser's failures vary by input
        return None
    if not parsed.username or not parsed.username.isascii() or not domain:
        return None
    return Address(username=parsed.username, domain=domain)


def _masked(text: str) -> str:
    return _ADDRESS_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)[:300]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _footer(ticket_no: str, *, replies_read: bool) -> list[str]:
    return [
        f"反馈编号：{ticket_no}",
        "如需补充说明，直接回复本邮件即可。"
        if replies_read
        else "此邮件由系统自动发送，请勿直接回复。",
    ]


def _html(subject: str, text: str, footer: list[str], signature: str) -> str:
    body, sign, notes = (
        html.escape(value).replace("\n", "<br>\n") for value in (text, signature, "\n".join(footer))
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n'
        f'<head><meta charset="utf-8"><title>{html.escape(subject)}</title></head>\n'
        '<body style="margin:0;padding:24px;background:#f5f6f8;">\n'
        '<div style="max-width:560px;margin:0 auto;padding:24px;background:#ffffff;'
        "border-radius:6px;font-family:-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;"
        'font-size:15px;line-height:1.7;color:#222222;">\n'
        f'<p style="margin:0 0 16px;">{body}</p>\n'
        f'<p style="margin:0 0 16px;">{sign}</p>\n'
        f'<p style="margin:0;font-size:13px;color:#666666;">{notes}</p>\n'
        "</div>\n</body>\n</html>\n"
    )
