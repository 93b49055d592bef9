"""Opening the dedupe, identity and linking state the configuration names.

``[state] backend = "embedded"`` (the default): exact dedupe and the link
index in this process's memory, both warmed from the outbox at start-up (it
keeps every record of the window), and the identity map and resolved
incidents in ``<data_dir>/state.sqlite3``. ``"redis"``: all three in Redis,
shared by every replica behind the load balancer (:mod:`dedupe.redis_state`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from dedupe.identity_sqlite import SQLiteIdentityMap
from dedupe.index_memory import MemoryLinkIndex
from dedupe.linking import Linker, LinkSettings, entry_of
from dedupe.state import DedupeStore
from dedupe.store import MemoryDedupeStore
from outbox.sqlite import SQLiteOutbox
from schemas import ComplaintRecord
from service.clock import Clock
from service.settings import GatewaySettingsBase

log = logging.getLogger(__name__)

_WARM_SLICE = 2_000


async def _always_ready() -> None:
    return None


@dataclass
class GatewayState:
    dedupe: DedupeStore
    linker: Linker | None
    #: raises StateUnavailable with the reason when the state cannot be reached (for /readyz)
    check: Callable[[], Awaitable[None]] = _always_ready
    backend: str = "embedded"
    warmed_keys: int = 0
    warmed_entries: int = 0


def link_settings(settings: GatewaySettingsBase) -> LinkSettings:
    section = settings.linking
    return LinkSettings(
        window=timedelta(days=section.window_days),
        open_window=timedelta(days=section.open_days),
        burst=timedelta(minutes=section.burst_minutes),
        similar_text=section.similar_text,
        batch_customers=section.batch_customers,
        verified_phone_channels=section.verified_phone_channels,
    )


async def open_state(
    settings: GatewaySettingsBase,
    clock: Clock,
    outbox: SQLiteOutbox,
    stack: contextlib.AsyncExitStack,
) -> GatewayState:
    window = timedelta(seconds=settings.dedupe.window_seconds)
    linking = link_settings(settings) if settings.linking.enabled else None
    if settings.state.backend == "redis":
        return await _open_redis(settings, window, linking, stack)
    dedupe = MemoryDedupeStore(clock, window)
    warmed = dedupe.warm(await outbox.recent_keys(clock.now() - window))
    if linking is None:
        return GatewayState(dedupe, None, warmed_keys=warmed)
    identity = SQLiteIdentityMap(settings.state_path)
    stack.callback(identity.close)
    horizon = max(linking.window, linking.open_window)
    if timedelta(days=settings.outbox.retention_days) < horizon:
        log.warning(
            "outbox.retention_days (%s) is shorter than linking.open_days (%s): after a restart"
            " the embedded link index knows only the records the outbox still keeps",
            settings.outbox.retention_days,
            settings.linking.open_days,
        )
    since = clock.now() - horizon
    index = MemoryLinkIndex(
        horizon.total_seconds(),
        on_close=identity.remember_resolved,
        closed=identity.resolved_since(since),
    )
    entries = await warm_index(index, outbox, since.timestamp())
    return GatewayState(
        dedupe, Linker(identity, index, linking), warmed_keys=warmed, warmed_entries=entries
    )


async def warm_index(index: MemoryLinkIndex, outbox: SQLiteOutbox, since: float) -> int:
    """File the outbox's records of the window in ``index``, as the linker left them."""
    seq, count = 0, 0
    while True:
        rows = await outbox.after(seq, _WARM_SLICE)
        if not rows:
            return count
        for row in rows:
            seq = row.seq
            record = ComplaintRecord.model_validate_json(row.record_json)
            if record.received_at.timestamp() < since:
                continue
            entry = entry_of(record, record.customer.id)
            index.put(
                replace(
                    entry,
                    root=record.dedupe.duplicate_of or record.record_id,
                    batch=record.dedupe.batch,
                )
            )
            count += 1


async def _open_redis(
    settings: GatewaySettingsBase,
    window: timedelta,
    linking: LinkSettings | None,
    stack: contextlib.AsyncExitStack,
) -> GatewayState:
    from dedupe.redis_state import RedisState

    section = settings.state
    assert section.redis_url is not None  # the settings refuse redis without a URL
    state = RedisState(
        section.redis_url.get_secret_value(),
        prefix=section.key_prefix,
        dedupe_window=window,
        link_window=max(linking.window, linking.open_window) if linking else window,
        claim_seconds=section.claim_seconds,
        wait_seconds=section.wait_seconds,
    )
    stack.push_async_callback(state.aclose)
    await state.ping()
    linker = Linker(state.identity, state.index, linking) if linking else None
    return GatewayState(state.dedupe, linker, check=state.ping, backend="redis")
