"""Where a complaint stands: the status update a ticket system sends back, ``StatusUpdate`` v1.

The ticket system (over Kafka topic ``complaint-status.v1`` or ``POST
/status``) tells the gateway that a complaint reached a node; the gateway
turns that into notifications to the customer. Nodes follow a complaint's
life in order (:data:`NODES`); an update for an earlier node than one
already seen is refused unless it says ``reopens``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.record import ChannelId, Contacts, UtcDatetime

STATUS_SCHEMA_VERSION: Literal["1"] = "1"

Node = Literal[
    "accepted",  # 受理
    "in_progress",  # 处理中
    "solution_proposed",  # 方案确定
    "overdue_warning",  # 超时预警与安抚
    "resolved",  # 结果通知
    "survey",  # 满意度调研
]
#: The nodes in the order a complaint passes them.
NODES: tuple[Node, ...] = (
    "accepted",
    "in_progress",
    "solution_proposed",
    "overdue_warning",
    "resolved",
    "survey",
)

VariableName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
VariableValue = Annotated[str, StringConstraints(max_length=500)]


def node_rank(node: Node) -> int:
    """Position of ``node`` in a complaint's life (``accepted`` is 0)."""
    return NODES.index(node)


class StatusUpdate(BaseModel):
    """A complaint reached ``node`` in the ticket system."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal["1"] = STATUS_SCHEMA_VERSION
    record_id: str = Field(
        min_length=1, max_length=64, description="The complaint record this update is about."
    )
    node: Node = Field(description="The node the complaint reached.")
    occurred_at: UtcDatetime = Field(description="When the ticket system moved it (RFC 3339).")
    ticket_no: str = Field(
        min_length=1, max_length=64, description="The ticket's number, shown to the customer."
    )
    variables: dict[VariableName, VariableValue] = Field(
        default_factory=dict,
        description="What the node's message needs: eta, solution, tracking_no, survey_url...",
    )
    channels: tuple[ChannelId, ...] | None = Field(
        None, description="Notify on these channels only, in this order (overrides routing)."
    )
    recipient: Contacts | None = Field(
        None,
        description="Whom to notify instead of the record's customer (a ticket opened by hand).",
    )
    reopens: bool = Field(
        False, description="The complaint was reopened: an earlier node than before is expected."
    )
