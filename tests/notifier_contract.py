"""The contract every notifier's test class inherits (``class TestAliyunSms(NotifierContract)``).

A subclass provides two fixtures:

* ``notifier``: the notifier under test, pointed at a fake of its provider
  (respx for HTTP APIs, a real SMTP server for e-mail);
* ``provider``: a :class:`FakeProvider` that makes the provider behave as
  each test needs and counts what it accepted.

and the class attributes ``notifier_class`` (what is under test),
``recipient`` and ``secrets``: every credential value the notifier was
built with, none of which may ever show in a repr or an error.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

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
from outbound.base import Message, Notifier
from outbound.templates import DEFAULT_TEXTS

Condition = Literal[
    "ok",  # accepts the message
    "unavailable",  # 5xx or connection refused
    "rate_limited",  # the provider's own flow-control answer
    "in_doubt",  # takes the request, never answers
    "unreachable",  # says the recipient is invalid / cannot be reached
    "refused",  # rejects the message itself (template, signature)
    "auth",  # rejects our credentials
]

#: What each condition must raise.
EXPECTED: dict[Condition, type[ChannelError]] = {
    "unavailable": ChannelUnavailable,
    "rate_limited": ChannelRateLimited,
    "in_doubt": DeliveryInDoubt,
    "unreachable": RecipientUnreachable,
    "refused": DeliveryRefused,
    "auth": ChannelAuthError,
}


class FakeProvider(Protocol):
    def arrange(self, condition: Condition) -> None:
        """Answer the next sends as ``condition`` says."""
        ...

    def accepted(self) -> int:
        """How many messages the provider took so far."""
        ...


def sample_message(recipient: str) -> Message:
    return Message(
        key="7f3c2a91d0b84e6f",
        record_id="wechat:4c1d7e2b9a0f6e35",
        node="accepted",
        recipient=recipient,
        ticket_no="TS20240520",
        text=DEFAULT_TEXTS["accepted"].format(ticket_no="TS20240520"),
        subject="您的反馈已受理（编号：TS20240520）",
        params={"ticket_no": "TS20240520"},
        reply_window_open=False,
    )


class NotifierContract:
    #: the class under test (the registry test finds each notifier's contract class by it)
    notifier_class: ClassVar[type[Notifier]]
    secrets: ClassVar[tuple[str, ...]] = ()
    #: A recipient in the form this channel takes (E.164, OpenID, address).
    recipient: ClassVar[str] = ""

    @pytest.fixture
    def message(self) -> Message:
        return sample_message(self.recipient)

    async def test_a_message_the_provider_takes_returns_its_message_id(
        self, notifier: Notifier, provider: FakeProvider, message: Message
    ) -> None:
        assert type(notifier) is self.notifier_class
        provider.arrange("ok")
        receipt = await notifier.send(message)
        assert receipt.provider == notifier.name
        assert receipt.message_id
        assert provider.accepted() == 1

    @pytest.mark.parametrize("condition", list(EXPECTED))
    async def test_each_failure_raises_its_error_without_secrets_or_recipient(
        self,
        notifier: Notifier,
        provider: FakeProvider,
        message: Message,
        condition: Condition,
    ) -> None:
        provider.arrange(condition)
        with pytest.raises(ChannelError) as caught:
            await notifier.send(message)
        assert type(caught.value) is EXPECTED[condition] or (
            # a more specific error is fine (an auth failure is never "unreachable")
            isinstance(caught.value, EXPECTED[condition])
        )
        assert provider.accepted() == 0
        shown = f"{caught.value!s} {caught.value!r}"
        for secret in self.secrets:
            assert secret not in shown
        assert self.recipient not in shown

    async def test_rate_limited_answers_say_how_long_to_wait_when_the_provider_does(
        self, notifier: Notifier, provider: FakeProvider, message: Message
    ) -> None:
        provider.arrange("rate_limited")
        with pytest.raises(ChannelRateLimited) as caught:
            await notifier.send(message)
        assert caught.value.retry_after is None or caught.value.retry_after >= 0

    def test_the_notifier_and_its_settings_never_show_a_secret(self, notifier: Notifier) -> None:
        shown = f"{notifier!r} {notifier!s} {notifier.settings!r} {notifier.settings!s}"
        for secret in self.secrets:
            assert secret not in shown

    def test_the_default_texts_are_sendable_as_configured(self, notifier: Notifier) -> None:
        assert notifier.problems(DEFAULT_TEXTS) == []
