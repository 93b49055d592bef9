"""What every time-window marketplace poller (Taobao, JD, Pinduoduo) must do with its window.

A test module subclasses :class:`WindowPollerContract` and says how to reach its
fake platform: make one, add an item at a time, change an item, build a poller
and read the cursor's remembered keys. The platform's own paging and error
rules stay in the module's own tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import httpx

from connectors.polling import PollingConnector
from schemas import RawEvent


class WindowPollerContract:
    #: Settings that make the platform answer two items a page.
    two_a_page: ClassVar[dict[str, Any]]

    def platform(self) -> Any:
        raise NotImplementedError

    def poller(self, platform: Any, **overrides: Any) -> PollingConnector:
        raise NotImplementedError

    def add(self, platform: Any, ident: int, text: str, seconds_ago: float) -> None:
        """An item ``ident`` with the buyer's ``text``, changed ``seconds_ago`` before NOW."""
        raise NotImplementedError

    def change(self, platform: Any, ident: int, seconds_ago: float) -> None:
        """Item ``ident`` changes state again, ``seconds_ago`` before NOW (negative: after)."""
        raise NotImplementedError

    def seen(self, cursor: str | None) -> list[str]:
        """The source keys the cursor remembers."""
        raise NotImplementedError

    @staticmethod
    def ids(events: Sequence[RawEvent]) -> list[str]:
        return [str(e.message_id) for e in events]

    async def test_an_item_changed_in_the_boundary_second_is_neither_missed_nor_repeated(
        self,
    ) -> None:
        platform = self.platform()
        self.add(platform, 801, "先到", 30)
        poller = self.poller(platform)
        first = await poller.poll(None)
        assert self.ids(first.events) == ["801"]
        # the platform lists a second item of the very same second only after our poll
        self.add(platform, 802, "同一秒", 30)
        second = await poller.poll(first.cursor)
        assert self.ids(second.events) == ["802"]
        again = await poller.poll(first.cursor)  # a crash before the commit repeats it
        assert [e.source_key for e in again.events] == [e.source_key for e in second.events]
        third = await poller.poll(second.cursor)
        assert third.events == [] and self.seen(third.cursor) == self.seen(second.cursor)

    async def test_old_seen_keys_leave_the_cursor_once_out_of_the_overlap(self) -> None:
        platform = self.platform()
        self.add(platform, 901, "早的", 1000)
        poller = self.poller(platform, overlap_seconds=60)
        first = await poller.poll(None)
        self.add(platform, 902, "新的", 10)
        second = await poller.poll(first.cursor)
        assert [key.split(":")[0] for key in self.seen(second.cursor)] == ["902"]

    async def test_an_item_changed_during_the_walk_pushes_no_other_past_a_page(self) -> None:
        platform = self.platform()
        for n in range(6):
            self.add(platform, 1100 + n, f"第{n}单", 100 - n)
        answer_page: Callable[[httpx.Request], httpx.Response] = platform.handle
        asked = 0

        def handle(request: httpx.Request) -> httpx.Response:
            nonlocal asked
            answer = answer_page(request)
            asked += 1
            if asked == 1:  # just after page 1, the first item changes again: it leaves
                self.change(platform, 1100, -5)
            return answer

        platform.handle = handle
        result = await self.poller(platform, **self.two_a_page).poll(None)
        # without walking the window again, 1102 moves up to page 1 after it was read
        assert sorted(self.ids(result.events)) == [str(1100 + n) for n in range(6)]
