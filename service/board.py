"""What each enabled connector is doing, for ``GET /channels`` and the metrics.

One :class:`ConnectorState` per connector, updated by the HTTP server (a
webhook request taken in or refused) and by the poll runner (a poll that
succeeded or failed). Errors are kept as their class name and message only:
the gateway's own messages never carry secrets, and a platform library's
message is cut short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

_MESSAGE_CHARS = 300


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass
class ConnectorState:
    name: str
    kind: str
    channel: str
    last_success: datetime | None = None
    last_error_at: datetime | None = None
    last_error: tuple[str, str] | None = None
    consecutive_failures: int = 0
    taken_in: int = 0
    cursor: str | None = None
    stopped: str | None = None

    def succeeded(self, at: datetime, taken_in: int = 0, cursor: str | None = None) -> None:
        self.last_success = at
        self.consecutive_failures = 0
        self.taken_in += taken_in
        if cursor is not None:
            self.cursor = cursor

    def failed(self, at: datetime, error: BaseException | tuple[str, str]) -> None:
        if isinstance(error, BaseException):
            error = (type(error).__name__, str(error))
        self.last_error = (error[0], error[1][:_MESSAGE_CHARS])
        self.last_error_at = at
        self.consecutive_failures += 1

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": self.kind,
            "channel": self.channel,
            "last_success": _stamp(self.last_success),
            "last_error": (
                {
                    "class": self.last_error[0],
                    "message": self.last_error[1],
                    "at": _stamp(self.last_error_at),
                }
                if self.last_error
                else None
            ),
            "consecutive_failures": self.consecutive_failures,
            "taken_in": self.taken_in,
        }
        if self.kind == "poller":
            entry["cursor"] = self.cursor
            entry["stopped"] = self.stopped
        return entry


class ConnectorBoard:
    def __init__(self, states: list[ConnectorState]) -> None:
        self.states = {state.name: state for state in states}

    def get(self, name: str) -> ConnectorState | None:
        return self.states.get(name)

    def as_json(self) -> dict[str, Any]:
        return {name: state.as_json() for name, state in sorted(self.states.items())}
