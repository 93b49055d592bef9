"""Limits on the size, count and arrival time of HTTP request headers.

uvicorn's httptools protocol reads a header section for as long as the client
keeps sending it, however large it grows and however slowly it comes: one
connection trickling a header can be held open for minutes, and httptools
buffers a 200 KB header field whole before anything can look at it. Limits in
the ASGI app come too late, so :class:`BoundedHttpToolsProtocol` enforces them
in the protocol, before a request reaches the app:

====  =========================================================================
408   the header section was not complete ``header_timeout_seconds`` after the
      connection opened or the request's first byte arrived
431   the request line and header fields exceed ``max_header_bytes``, or there
      are more than ``max_headers`` fields
====  =========================================================================

Each refusal is answered like the app's own (a JSON body ``{"error", "reason"}``)
with ``connection: close``, logged once at INFO with the peer address only, and
the connection is closed (after a short lingering half-close, so the answer is
not lost to a reset); no ASGI task is started for the refused request. A
connection that never sent a byte is closed without an answer: a response no
request asked for could be read as the answer to one the client is sending.
When an earlier pipelined request still awaits its response, the connection is
closed without an answer too, since a 4xx written then would be read as that
earlier request's response.

Idle keep-alive connections stay uvicorn's business (``timeout_keep_alive``):
the header timer is armed only when a connection opens and when the next
request's first bytes arrive, which is when uvicorn disarms its own timer.

Header bytes are measured twice, each a lower bound of the true size: the
length of every read that ends inside the header section (a field that never
ends is buffered by httptools and never reaches :meth:`on_header`), and the URL
and field bytes httptools hands over (a whole section may arrive in one read).
Body bytes read together with their headers are in neither.

This subclasses uvicorn internals (the parser callbacks, ``self.cycle``,
``server_state.default_headers``); it is written against uvicorn 0.54.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any, ClassVar, Protocol

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

#: The ``": "`` and ``"\r\n"`` around a field, which httptools does not hand over.
_FIELD_FRAMING = 4
#: How long a refused connection is drained, half-closed, before it is closed.
_LINGER_SECONDS = 2.0


class HeaderLimits(Protocol):
    """The limits :func:`bounded_http_protocol` enforces; ``HttpSettings`` is one."""

    @property
    def max_header_bytes(self) -> int: ...

    @property
    def max_headers(self) -> int: ...

    @property
    def header_timeout_seconds(self) -> float: ...


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HeaderLimits`; build it with
    :func:`bounded_http_protocol`, which sets :attr:`limits`.

    A refusal cannot stop httptools from parsing the rest of the read it is in,
    so once a request is refused every parser callback, and uvicorn's 400 and
    WebSocket upgrade for what follows in that read, are ignored.
    """

    limits: ClassVar[HeaderLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timer: asyncio.TimerHandle | None = None
        self._received_any = False
        self._in_message = False
        self._in_headers = False
        self._messages_begun = 0
        self._header_bytes_read = 0
        self._header_bytes_parsed = 0
        self._header_count = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._received_any = True
        between_messages = not self._in_message
        if between_messages and self._header_timer is None:
            self._arm_header_timer()
        begun_before = self._messages_begun
        super().data_received(data)
        if self._refused or not self._in_headers:
            return
        begun = self._messages_begun - begun_before
        if begun == 0:
            self._header_bytes_read += len(data)
        elif begun == 1 and between_messages:
            self._header_bytes_read = len(data)
        else:
            # The request began after the tail of an earlier one in this read.
            self._header_bytes_read = self._header_bytes_parsed
        if self._header_bytes_read > self.limits.max_header_bytes:
            self._refuse_too_large()

    # Parser callbacks

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._messages_begun += 1
        self._in_message = self._in_headers = True
        self._header_bytes_read = self._header_bytes_parsed = self._header_count = 0
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._header_bytes_parsed += len(url)
        if self._header_bytes_parsed > self.limits.max_header_bytes:
            self._refuse_too_large()
        else:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        self._header_bytes_parsed += len(name) + len(value) + _FIELD_FRAMING
        if self._header_count > self.limits.max_headers:
            self._refuse(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too_many_headers",
                f"more than {self.limits.max_headers} header fields",
            )
        elif self._header_bytes_parsed > self.limits.max_header_bytes:
            self._refuse_too_large()
        else:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_headers = False
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_message = False
        super().on_message_complete()

    # uvicorn's answers to what httptools still finds in the rest of a refused read

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            super().handle_websocket_upgrade()

    # Refusals

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout_seconds, self._header_timeout
        )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._received_any:
            self._refused = True
            log.info("closed connection from %s: no request arrived", self._peer())
            self.transport.close()
            return
        self._refuse(
            HTTPStatus.REQUEST_TIMEOUT,
            "header_timeout",
            f"headers not received within {self.limits.header_timeout_seconds:g} s",
        )

    def _refuse_too_large(self) -> None:
        self._refuse(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            f"request line and header fields exceed {self.limits.max_header_bytes} bytes",
        )

    def _refuse(self, status: HTTPStatus, reason: str, message: str) -> None:
        self._refused = True
        self._disarm_header_timer()
        log.info("refused request from %s with %d: %s", self._peer(), status, reason)
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        self.transport.write(self._answer(status, reason, message))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # Closing a socket with unread input makes the kernel send a reset, which
        # can destroy the answer before the client reads it: half-close instead,
        # discard what still comes, and close when the client does or at the latest
        # after _LINGER_SECONDS.
        self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def _answer(self, status: HTTPStatus, reason: str, message: str) -> bytes:
        body = json.dumps({"error": message, "reason": reason}).encode()
        lines = [b"HTTP/1.1 %d %s" % (status, status.phrase.encode())]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _peer(self) -> str:
        if self.client is None:
            return "unknown peer"
        host, port = self.client
        return f"{host}:{port}"


def bounded_http_protocol(limits: HeaderLimits) -> type[BoundedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` that enforces ``limits``."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})
