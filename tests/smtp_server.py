"""A real SMTP server for tests: aiosmtpd on a free loopback port, told how to answer.

Fixtures (import them into a test module to use them):

* ``smtp_server``: a fresh server for one test, stopped at teardown. It
  offers AUTH PLAIN/LOGIN without TLS (``auth_require_tls=False``) and takes
  :data:`USERNAME`/:data:`PASSWORD`, but lets a client send without logging in;
* ``starttls_smtp_server``: the same, offering STARTTLS with a certificate
  of a throwaway CA that no client trusts.

:meth:`SmtpServer.behave` makes the server accept, refuse at a step with
a real SMTP reply, refuse every login, or hang at DATA: it then reads the
whole message and never answers, so the client times out after the content
went out. The server runs in aiosmtpd's own thread and event loop, so a
client in the test's loop talks to it over a real socket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.brokers import free_port
from tests.imap_server import TlsFiles, make_tls_files

USERNAME = "notify@shop.example.cn"
PASSWORD = "smtp-Pa55-wörd-for-tests"

Step = Literal["MAIL", "RCPT", "DATA"]
Behaviour = Literal[
    "accept",
    "unavailable",  # 421 at MAIL
    "rate_limited",  # 450 4.7.1 "slow down" at MAIL
    "mailbox_refused",  # 550 5.1.1 at RCPT, naming the address
    "message_refused",  # 554 at the end of DATA
    "refuse_login",  # 535 to every AUTH
    "hang",  # reads the message, never answers
]

#: What each behaviour answers, and at which step.
REPLIES: dict[Behaviour, tuple[Step, str]] = {
    "unavailable": ("MAIL", "421 4.3.2 Service not available, closing transmission channel"),
    "rate_limited": ("MAIL", "450 4.7.1 Too many messages, slow down"),
    "mailbox_refused": ("RCPT", "550 5.1.1 <{address}>: mailbox unavailable"),
    "message_refused": ("DATA", "554 5.6.0 Message refused: content rejected"),
}


@dataclasses.dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    #: The user the client logged in as, None if it did not.
    login: str | None
    over_tls: bool

    def parsed(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)


class ScriptedHandler:
    """aiosmtpd's handler hooks and authenticator, answering as told."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        #: Every AUTH attempt's user name, accepted or not.
        self.logins: list[str] = []
        self.replies: dict[Step, str] = {}
        self.hang_at: Step | None = None
        self.refuse_login = False

    def behave(self, behaviour: Behaviour) -> None:
        self.replies = {}
        if behaviour in REPLIES:
            step, reply = REPLIES[behaviour]
            self.replies[step] = reply
        self.hang_at = "DATA" if behaviour == "hang" else None
        self.refuse_login = behaviour == "refuse_login"

    def reply_at(self, step: Step, reply: str) -> None:
        """Answer ``reply`` at ``step`` (``{address}`` is the address given there)."""
        self.replies[step] = reply

    async def _scripted(self, step: Step, address: str = "") -> str | None:
        if self.hang_at == step:
            await asyncio.Event().wait()  # until the controller stops and cancels it
        reply = self.replies.get(step)
        return reply.format(address=address) if reply else None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if reply := await self._scripted("MAIL", address):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if reply := await self._scripted("RCPT", address):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if reply := await self._scripted("DATA"):
            return reply
        auth = session.auth_data if session.authenticated else None
        self.received.append(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=envelope.original_content or b"",
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
                over_tls=session.ssl is not None,
            )
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.received):04d} for <{envelope.rcpt_tos[0]}>"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        self.logins.append(data.login.decode())
        valid = (data.login, data.password) == (USERNAME.encode(), PASSWORD.encode())
        if self.refuse_login or not valid:
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8
        return AuthResult(success=True, auth_data=data)


@dataclasses.dataclass
class SmtpServer:
    host: str
    port: int
    handler: ScriptedHandler

    @property
    def received(self) -> list[ReceivedMail]:
        return self.handler.received

    def behave(self, behaviour: Behaviour) -> None:
        self.handler.behave(behaviour)


def running_server(tls_context: ssl.SSLContext | None = None) -> Iterator[SmtpServer]:
    handler = ScriptedHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="smtp.test",
        ready_timeout=5.0,
        authenticator=handler.authenticate,
        auth_require_tls=False,
        tls_context=tls_context,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    yield from running_server()


@pytest.fixture(scope="session")
def smtp_tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("smtp-tls")))


@pytest.fixture
def starttls_smtp_server(smtp_tls_files: TlsFiles) -> Iterator[SmtpServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(smtp_tls_files.cert_file, smtp_tls_files.key_file)
    yield from running_server(context)
