"""The notifier contract (status updates back to the customer's channel).

Notifiers register under the entry-point group ``complaint_gateway.notifiers``.
The outbound pipeline that drives them arrives with the status-event issue;
this module fixes the contract so plugins and the registry can rely on it.

:meth:`Notifier.send` is called once per status notification. It raises
:class:`ChannelUnavailable` or :class:`ChannelRateLimited` for failures worth
retrying (the caller owns retries) and :class:`ChannelAuthError` or
:class:`PayloadError` for ones that are not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar


class Notifier(ABC):
    channel: ClassVar[str]

    @abstractmethod
    async def send(self, recipient: str, template: str, values: Mapping[str, str]) -> str:
        """Deliver one notification; returns the platform's message id."""
