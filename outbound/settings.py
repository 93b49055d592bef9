"""The ``[notifications]`` settings: routing, policy, timers, templates and where state lives.

Each provider has its own section (``[notifiers.aliyun_sms]``...), built
from the registry like the connectors'; a provider is used once its
section exists. These settings say how the providers are combined.
"""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from schemas.record import Priority
from schemas.status import Node


def _sla_defaults() -> dict[Priority, float]:
    return {"P1": 15.0, "P2": 60.0, "P3": 1440.0, "P4": 4320.0}


def _provider_defaults() -> dict[str, tuple[str, ...]]:
    return {"sms": ("aliyun_sms", "tencent_sms")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(_Section):
    start: time = Field(time(21, 0), description="No SMS from this local time...")
    end: time = Field(
        time(8, 0), description="...until this one, when held messages go out (= start: none)."
    )
    timezone: str = Field("Asia/Shanghai", description="The customers' time zone (IANA name).")
    exempt_priorities: tuple[Priority, ...] = Field(
        ("P1",), description="Complaints of these priorities are messaged at any hour."
    )
    exempt_nodes: tuple[Node, ...] = Field(
        ("overdue_warning",), description="These nodes are sent at any hour."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class SlaSettings(_Section):
    enabled: bool = Field(
        True,
        description="Send overdue_warning when no in_progress came within the priority's time.",
    )
    first_response_minutes: dict[Priority, float] = Field(
        default_factory=_sla_defaults,
        description="Minutes from arrival to the first in_progress, per priority.",
    )


class NotificationSettings(_Section):
    enabled: bool = Field(
        True, description="Send status notifications (needs at least one [notifiers.*] section)."
    )
    store: Literal["sqlite", "postgresql"] = Field(
        "sqlite",
        description="Where the directory, ledger, queue and timers live; postgresql for replicas.",
    )
    postgres_dsn: SecretStr | None = Field(
        None, description="PostgreSQL connection string when store = 'postgresql'."
    )
    postgres_schema: str = Field(
        "complaint_gateway", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Schema to use."
    )
    status_topic: str = Field(
        "complaint-status.v1", description="Kafka topic of the ticket system's status updates."
    )
    outcomes_topic: str = Field(
        "complaint-notifications.v1", description="Kafka topic every outcome is published to."
    )
    consumer_group: str = Field(
        "complaint-gateway-notifications", description="Consumer group reading status_topic."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token of POST /status; unset refuses every request."
    )
    brand: str = Field("", max_length=20, description="The {brand} variable of the texts.")
    route: tuple[str, ...] = Field(
        ("wechat", "sms", "email"),
        description="Channels to try, in order, when the complaint's own cannot be used.",
    )
    reply_channels: dict[str, str] = Field(
        default_factory=lambda: {
            "wechat": "wechat",
            "email": "email",
            "phone": "sms",
            "weibo_dm": "weibo",
            "weibo": "weibo",
        },
        description="The delivery channel that answers each complaint channel on its own "
        "ground (a caller gets an SMS on the number that called); others use the route. "
        "weibo_dm is a Weibo private message, weibo a comment or @mention: both are answered "
        "by a fans-service reply, and only inside the window private messages open.",
    )
    providers: dict[str, tuple[str, ...]] = Field(
        default_factory=_provider_defaults,
        description="Provider order per channel: the first is primary, the rest take over "
        "when it fails on its side.",
    )
    mandatory_nodes: tuple[Node, ...] = Field(
        ("resolved",), description="Nodes sent even to customers who opted out."
    )
    quiet_hours: QuietHours = QuietHours()
    sla: SlaSettings = SlaSettings()
    survey_delay_minutes: float | None = Field(
        10.0, ge=0, description="Send the survey this long after resolved; unset: never by itself."
    )
    survey_url: str = Field(
        "",
        description="The {survey_url} of surveys the gateway sends by itself; "
        "{ticket_no} in it is filled in.",
    )
    wechat_window_hours: float = Field(
        48.0,
        gt=0,
        description="Customer-service messages are allowed this long after the "
        "customer's last message.",
    )
    wechat_window_quota: int = Field(
        5, ge=0, description="Customer-service messages allowed per customer message."
    )
    weibo_window_hours: float = Field(
        48.0,
        gt=0,
        description="Weibo fans-service replies are allowed this long after the customer's "
        "last private message.",
    )
    texts: dict[str, dict[Node, str]] = Field(
        default_factory=dict,
        description="Own texts per channel and node ({ticket_no}, {eta}...) over the defaults.",
    )
    subjects: dict[Node, str] = Field(
        default_factory=dict, description="Own e-mail subjects per node."
    )
    retention_days: float = Field(
        180, gt=0, description="Contacts, progress and the ledger are kept this long."
    )
    max_attempts: int = Field(
        8, ge=1, description="Rounds over a channel's providers before a dead letter."
    )
    retry_initial_seconds: float = Field(2.0, gt=0, description="First wait between rounds.")
    retry_max_seconds: float = Field(300.0, gt=0, description="Longest wait between rounds.")
    lease_seconds: float = Field(
        300.0, ge=30, description="A send claimed longer ago than this is declared in doubt."
    )
    workers: int = Field(16, ge=1, le=512, description="Notifications sent at once.")
