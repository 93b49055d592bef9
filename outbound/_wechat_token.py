"""The WeChat ``access_token``: fetched once, shared by every concurrent sender.

Every WeChat API call carries ``?access_token=…``. A token lives about two
hours (``expires_in``, "currently at most 7200 s"), fetching one with
``/cgi-bin/token`` invalidates the previous one after five minutes, and the
account may fetch only 2000 a day. So one :class:`AccessTokenCache` per
account holds the token for all senders (WeChat's "central token server"):

* :meth:`AccessTokenCache.get` answers the cached token until ``expires_in``
  minus a safety margin has passed on the injected clock, then fetches a new
  one. Callers arriving while a fetch is in flight await that same fetch
  (single flight), and share its failure too: a fetch that fails is not
  repeated once per waiting caller.
* :meth:`AccessTokenCache.invalidate` is called with the token an API refused
  (40001, 40014, 42001). Only the first caller to report a given token causes
  a fetch; callers reporting a token that was already replaced, or already
  reported, get the current one. Twenty sends refused at once cost one fetch.

With ``use_stable_token`` the cache uses ``POST /cgi-bin/stable_token``
instead, whose tokens are isolated from ``/cgi-bin/token`` and which answers
the same token while it is valid. It never sets ``force_refresh`` (limited to
20 a day): a refused stable token is fetched again normally, and if WeChat
answers the same token, the retried call fails and says so.

The secret travels in the token request's query string (or JSON body), the
token in every API URL: neither, nor any URL, appears in an error, a log
line or a ``repr``. Errors name the endpoint, the errcode and WeChat's
request id (``rid``) only.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.errors import (
    ChannelAuthError,
    ChannelError,
    ChannelRateLimited,
    ChannelUnavailable,
    DeliveryInDoubt,
)
from outbound._http import send_request
from service.clock import Clock

log = logging.getLogger(__name__)

#: "invalid credential, access_token is invalid or not latest"
INVALID_CREDENTIAL = 40001
#: "invalid access_token"
INVALID_ACCESS_TOKEN = 40014
#: "access_token expired"
ACCESS_TOKEN_EXPIRED = 42001
#: The answers that mean "fetch a new token and call again, once".
TOKEN_REFUSED = frozenset({INVALID_CREDENTIAL, INVALID_ACCESS_TOKEN, ACCESS_TOKEN_EXPIRED})

#: "invalid appid"
INVALID_APPID = 40013
#: "invalid appsecret"
INVALID_APPSECRET = 40125
#: "invalid ip, not in whitelist": the server's IP is not on the account's API allow-list.
IP_NOT_WHITELISTED = 40164
#: "api freq out of limit" (also the daily quota of an API).
API_FREQ_OUT_OF_LIMIT = 45009
#: "system error" / "system busy": WeChat's own transient failure.
SYSTEM_BUSY = -1

_RID = re.compile(r"\brid: ?([0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8})\b")


def request_id(errmsg: str) -> str:
    """`` (rid 5f1c…)`` when WeChat's errmsg names its request id, else empty.

    Only the id is kept: the rest of an errmsg is not ours to repeat.
    """
    found = _RID.search(errmsg)
    return f" (rid {found.group(1)})" if found else ""


def read_answer(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object WeChat answered, or None if the answer is not one."""
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def errcode_of(answer: dict[str, Any]) -> int | None:
    """``errcode`` as an int (0 when absent, as in a token answer); None if it is not a number."""
    errcode = answer.get("errcode", 0)
    if isinstance(errcode, bool) or not isinstance(errcode, int):
        return None
    return errcode


def token_error(errcode: int, errmsg: str) -> ChannelError:
    """The error for a nonzero errcode from the token endpoint.

    Anything but flow control and WeChat's own failure is a credentials or
    account-setup problem (AppID, AppSecret, IP allow-list): retrying would
    only spend the daily token quota.
    """
    what = f"wechat access_token: errcode {errcode}{request_id(errmsg)}"
    if errcode == API_FREQ_OUT_OF_LIMIT:
        return ChannelRateLimited(f"{what}: api freq out of limit")
    if errcode == SYSTEM_BUSY:
        return ChannelUnavailable(f"{what}: system busy")
    if errcode == INVALID_APPID:
        return ChannelAuthError(f"{what}: invalid appid")
    if errcode == INVALID_APPSECRET:
        return ChannelAuthError(f"{what}: invalid appsecret")
    if errcode == IP_NOT_WHITELISTED:
        return ChannelAuthError(f"{what}: this server's IP is not on the account's allow-list")
    return ChannelAuthError(f"{what}: token refused")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    good_until: datetime


class AccessTokenCache:
    """One account's access token, shared by all its senders; see the module docstring."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Clock,
        *,
        base_url: str,
        app_id: str,
        app_secret: SecretStr,
        use_stable_token: bool = False,
        margin_seconds: float = 300.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._http = http
        self._clock = clock
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._app_secret = app_secret
        self._use_stable_token = use_stable_token
        self._margin = margin_seconds
        self._timeout = timeout_seconds
        self._token: _Token | None = None
        self._fetching: asyncio.Future[_Token] | None = None
        self._reported: str | None = None

    def __repr__(self) -> str:
        return f"AccessTokenCache(app_id={self._app_id!r})"

    async def get(self) -> str:
        """The current token; fetches one (or joins the fetch in flight) when there is none."""
        token = self._token
        if token is not None and self._clock.now() < token.good_until:
            return token.value
        if self._fetching is None:
            self._fetching = asyncio.create_task(self._fetch())
            self._fetching.add_done_callback(self._fetched)
        # Shielded: one caller giving up does not cancel the fetch the others await.
        return (await asyncio.shield(self._fetching)).value

    async def invalidate(self, stale: str) -> str:
        """Report that WeChat refused ``stale``; answer the token to retry with.

        Only the first report of a token drops it: a token already replaced or
        already reported is not fetched again.
        """
        if stale != self._reported:
            self._reported = stale
            if self._token is not None and self._token.value == stale:
                log.warning("wechat access token of %s refused; fetching another", self._app_id)
                self._token = None
        return await self.get()

    async def aclose(self) -> None:
        """Cancel a fetch still in flight."""
        if self._fetching is not None:
            self._fetching.cancel()

    def _fetched(self, done: asyncio.Future[_Token]) -> None:
        self._fetching = None
        if not done.cancelled():
            done.exception()  # a failure nobody awaits any more is still retrieved

    def _request(self) -> httpx.Request:
        secret = self._app_secret.get_secret_value()
        if self._use_stable_token:
            return self._http.build_request(
                "POST",
                f"{self._base_url}/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": self._app_id,
                    "secret": secret,
                    "force_refresh": False,
                },
                timeout=self._timeout,
            )
        return self._http.build_request(
            "GET",
            f"{self._base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self._app_id, "secret": secret},
            timeout=self._timeout,
        )

    async def _fetch(self) -> _Token:
        try:
            response = await send_request(self._http, self._request(), "wechat access_token")
        except DeliveryInDoubt as exc:
            # Fetching a token delivers nothing: an unanswered fetch is just unavailable.
            raise ChannelUnavailable(str(exc)) from None
        if response.status_code != 200:
            raise ChannelUnavailable(f"wechat access_token: HTTP {response.status_code}")
        answer = read_answer(response)
        errcode = None if answer is None else errcode_of(answer)
        if answer is None or errcode is None:
            raise ChannelUnavailable("wechat access_token: unreadable answer")
        if errcode != 0:
            raise token_error(errcode, str(answer.get("errmsg", "")))
        value = answer.get("access_token")
        expires_in = answer.get("expires_in")
        if not isinstance(value, str) or not value:
            raise ChannelUnavailable("wechat access_token: answer without a token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            raise ChannelUnavailable("wechat access_token: answer without a lifetime")
        # Keep the margin, but never let it eat more than half of a short lifetime.
        lifetime = max(expires_in - self._margin, expires_in / 2)
        log.info("wechat access token fetched for %s, valid %d s", self._app_id, expires_in)
        self._token = _Token(value, self._clock.now() + timedelta(seconds=lifetime))
        return self._token
