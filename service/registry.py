"""The plugin registry: connectors, normalizers and notifiers from entry points.

Plugins register under ``complaint_gateway.connectors``,
``complaint_gateway.normalizers`` and ``complaint_gateway.notifiers``.
Connectors and normalizers are registered under the connector's name
(``asterisk_csv``): each connector has the normalizer of its name, which must
produce the connector's record channel (``phone``); one normalizer class may
serve several connectors. Notifiers are registered under their provider's name
(``aliyun_sms``) and declare the delivery channel they serve (``sms``).
``gateway.py`` builds one registry and passes it down; nothing registers
itself on import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from connectors.base import Connector
from normalizer.base import Normalizer
from outbound.base import Notifier
from schemas import CHANNEL_ID_PATTERN

GROUPS = {
    "connectors": "complaint_gateway.connectors",
    "normalizers": "complaint_gateway.normalizers",
    "notifiers": "complaint_gateway.notifiers",
}
_CHANNEL = re.compile(CHANNEL_ID_PATTERN)


class RegistryError(Exception):
    """The installed plugins do not fit together (listed all at once)."""


@dataclass(frozen=True)
class Registry:
    connectors: Mapping[str, type[Connector]]
    normalizers: Mapping[str, Normalizer]
    notifiers: Mapping[str, type[Notifier]]

    @classmethod
    def from_entry_points(cls) -> Registry:
        loaded = {kind: list(entry_points(group=group)) for kind, group in GROUPS.items()}
        return cls.from_plugins(
            connectors=_load(loaded["connectors"]),
            normalizers=_load(loaded["normalizers"]),
            notifiers=_load(loaded["notifiers"]),
        )

    @classmethod
    def from_plugins(
        cls,
        *,
        connectors: Iterable[tuple[str, Any]],
        normalizers: Iterable[tuple[str, Any]],
        notifiers: Iterable[tuple[str, Any]] = (),
    ) -> Registry:
        problems: list[str] = []
        conn = _index("connector", connectors, Connector, "name", problems)
        norm_classes = _index("normalizer", normalizers, Normalizer, None, problems)
        notif = _index("notifier", notifiers, Notifier, "name", problems)
        for name, klass in conn.items():
            normalizer = norm_classes.get(name)
            if normalizer is None:
                problems.append(f"connector {name!r} has no normalizer")
            elif normalizer.channel != klass.channel:
                problems.append(
                    f"connector {name!r} feeds channel {klass.channel!r} but its normalizer "
                    f"produces {normalizer.channel!r}"
                )
        for name in norm_classes.keys() - conn.keys():
            problems.append(f"normalizer {name!r} names no connector")
        if problems:
            raise RegistryError("; ".join(problems))
        return cls(
            connectors=conn,
            normalizers={name: klass() for name, klass in norm_classes.items()},
            notifiers=notif,
        )


def _load(points: list[EntryPoint]) -> list[tuple[str, Any]]:
    return [(point.name, point.load()) for point in points]


def _index(
    kind: str,
    plugins: Iterable[tuple[str, Any]],
    base: type,
    named_by: str | None,
    problems: list[str],
) -> dict[str, Any]:
    """Entry point name → class, checking names, base classes, clashes and
    (``named_by``) that the class calls itself what it is registered as."""
    index: dict[str, Any] = {}
    for name, klass in plugins:
        if not _CHANNEL.match(name):
            problems.append(f"{kind} name {name!r} is not an identifier ({CHANNEL_ID_PATTERN})")
        elif not (isinstance(klass, type) and issubclass(klass, base)):
            problems.append(f"{kind} {name!r} is not a {base.__name__}")
        elif not _CHANNEL.match(str(getattr(klass, "channel", ""))):
            problems.append(f"{kind} {name!r} declares no valid channel")
        elif named_by and getattr(klass, named_by, None) != name:
            problems.append(
                f"{kind} {name!r} is registered under another name than its {named_by} "
                f"{getattr(klass, named_by, None)!r}"
            )
        elif name in index and index[name] is not klass:
            problems.append(f"two {kind}s are registered as {name!r}")
        else:
            index[name] = klass
    return index
