"""Gateway settings: a TOML file, then ``GATEWAY_*`` environment variables, then secret files.

Nested names use ``__``: ``GATEWAY_KAFKA__BOOTSTRAP_SERVERS``,
``GATEWAY_CONNECTORS__WECHAT__TOKEN``. A secret may also come from a file
named like its variable in ``GATEWAY_SECRETS_DIR`` (e.g. a mounted
``/run/secrets/GATEWAY_CONNECTORS__WECHAT__TOKEN``). Precedence, highest
first: environment, secret files, TOML file, defaults.

The ``[connectors]`` section is built from the registry, so a plugin's
channel gets its own typed, validated section. A channel is served when its
section exists (in the file or the environment) and does not say ``enabled = false``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from connectors.errors import ConfigError
from outbound.settings import NotificationSettings
from service.registry import Registry


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the webhook server listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the webhook server listens on.")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Larger request bodies are refused with 413."
    )
    body_timeout_seconds: float = Field(
        10.0, gt=0, description="A request body not fully received by then is refused with 408."
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        description="A larger request line plus header fields is refused with 431.",
    )
    max_headers: int = Field(
        100, ge=8, description="A request with more header fields is refused with 431."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Headers not complete this long after the connection opens or the "
        "request's first byte arrives are refused with 408.",
    )


class KafkaSettings(_Section):
    bootstrap_servers: str | None = Field(
        None, description="Comma-separated host:port list; unset writes JSON Lines instead."
    )
    topic: str = Field("complaints.v1", description="Topic the complaint stream is written to.")
    enable_idempotence: bool = Field(
        True, description="Idempotent producer; turn off only for brokers without InitProducerId."
    )
    acks: Literal["all", "1"] = Field("all", description="Acknowledgements to wait for.")
    client_id: str = Field("complaint-gateway", description="Kafka client id.")
    linger_ms: int = Field(5, ge=0, description="How long the producer waits to fill a batch.")
    request_timeout_ms: int = Field(15_000, ge=1000, description="Per-request timeout.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How to reach the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol uses SASL."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")

    def producer_options(self) -> dict[str, Any]:
        return {
            **self.client_options(),
            "acks": "all" if self.acks == "all" else 1,
            "enable_idempotence": self.enable_idempotence,
            "linger_ms": self.linger_ms,
            "request_timeout_ms": self.request_timeout_ms,
        }

    def client_options(self) -> dict[str, Any]:
        """What every client (producer or consumer) needs: where, who, how securely."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return options


class OutboxSettings(_Section):
    batch_size: int = Field(500, ge=1, le=10_000, description="Records per sink batch.")
    retention_days: float = Field(
        30,
        gt=0,
        description="Sent records are kept this long: for replay, and for the embedded link "
        "index, which is rebuilt from them at start (see linking.open_days).",
    )
    synchronous: Literal["full", "normal"] = Field(
        "full", description="SQLite fsync level: full survives power loss, normal a crash."
    )


class DedupeSettings(_Section):
    window_seconds: int = Field(
        86_400, ge=20, description="A redelivery within this window is not published again."
    )


class TriageSettings(_Section):
    enabled: bool = Field(
        True, description="Label category, priority and expectations before the outbox."
    )
    rules: Path | None = Field(
        None, description="A rules file (TOML) instead of the shipped one: triage/rules.toml."
    )


class LinkingSettings(_Section):
    enabled: bool = Field(
        True,
        description="Resolve one customer across channels and link reports of one incident "
        "(dedupe.duplicate_of, dedupe.batch).",
    )
    window_days: float = Field(
        7,
        gt=0,
        le=90,
        description="Words alone, a phone tail, and the batch signal look back this far.",
    )
    open_days: float = Field(
        30,
        gt=0,
        le=365,
        description="The same order or customer finds an unresolved incident this old "
        "(embedded state: keep outbox.retention_days at least as long across restarts).",
    )
    burst_minutes: float = Field(
        30, ge=0, description="Messages of one customer this close are one complaint in parts."
    )
    similar_text: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Text similarity (Jaccard of bigrams) that links on words alone.",
    )
    batch_customers: int = Field(
        3, ge=2, description="Different customers with one fault of one product: a batch signal."
    )
    verified_phone_channels: tuple[str, ...] = Field(
        ("phone", "store"),
        description="Channels whose contact phone is the customer's own (links identities).",
    )


class StateSettings(_Section):
    backend: Literal["embedded", "redis"] = Field(
        "embedded",
        description="Where dedupe, identity and linking state live: this process (embedded: "
        "memory and <data_dir>/state.sqlite3) or Redis, shared by every replica.",
    )
    redis_url: SecretStr | None = Field(
        None, description="redis://[:password@]host:port/db (set it in GATEWAY_STATE__REDIS_URL)."
    )
    key_prefix: str = Field("cgw:", description="Prefix of every Redis key the gateway writes.")
    claim_seconds: float = Field(
        5, gt=0, le=60, description="How long one replica holds a message it is taking in."
    )
    wait_seconds: float = Field(
        3, ge=0, le=30, description="How long a replica waits for another's claim before a 503."
    )

    @model_validator(mode="after")
    def _redis_needs_a_url(self) -> StateSettings:
        if self.backend == "redis" and self.redis_url is None:
            raise ValueError("backend 'redis' needs redis_url (GATEWAY_STATE__REDIS_URL)")
        return self


class JsonLinesSettings(_Section):
    path: Path | None = Field(None, description="Default: <data_dir>/complaints.jsonl.")


class GatewaySettingsBase(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(Path("./data"), description="Outbox, quarantine and JSON Lines output.")
    log_level: str = Field("INFO", description="Python logging level.")
    http: HttpSettings = HttpSettings()
    kafka: KafkaSettings = KafkaSettings()
    outbox: OutboxSettings = OutboxSettings()
    dedupe: DedupeSettings = DedupeSettings()
    triage: TriageSettings = TriageSettings()
    linking: LinkingSettings = LinkingSettings()
    state: StateSettings = StateSettings()
    jsonl: JsonLinesSettings = JsonLinesSettings()
    notifications: NotificationSettings = NotificationSettings()
    connectors: Any = None
    notifiers: Any = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("secrets_dir"):
            sources.append(NestedSecretsSettingsSource(file_secret_settings))
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @property
    def jsonl_path(self) -> Path:
        return self.jsonl.path or self.data_dir / "complaints.jsonl"

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.sqlite3"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def notifications_path(self) -> Path:
        return self.data_dir / "notifications.sqlite3"

    @property
    def notifications_jsonl_path(self) -> Path:
        return self.data_dir / "notifications.jsonl"

    def enabled_notifiers(self) -> dict[str, Any]:
        """The notifier sections present and not ``enabled = false``, in the file's order."""
        sections = self.notifiers.model_dump(exclude_none=True) if self.notifiers else {}
        return {
            name: getattr(self.notifiers, name)
            for name in sections
            if getattr(self.notifiers, name).enabled
        }

    def enabled_connectors(self) -> dict[str, Any]:
        sections = self.connectors.model_dump(exclude_none=True) if self.connectors else {}
        return {
            name: getattr(self.connectors, name)
            for name in sections
            if getattr(self.connectors, name).enabled
        }


def settings_class(
    registry: Registry, config_file: Path | None = None, secrets_dir: Path | None = None
) -> type[GatewaySettingsBase]:
    """The settings model for the installed plugins, reading ``config_file`` if given."""
    connectors_model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "ConnectorsSettings",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **{
            name: (klass.settings_model | None, None)
            for name, klass in sorted(registry.connectors.items())
        },
    )
    notifiers_model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "NotifiersSettings",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **{
            name: (klass.settings_model | None, None)
            for name, klass in sorted(registry.notifiers.items())
        },
    )
    if secrets_dir is None and os.environ.get("GATEWAY_SECRETS_DIR"):
        secrets_dir = Path(os.environ["GATEWAY_SECRETS_DIR"])

    class GatewaySettings(GatewaySettingsBase):
        model_config = SettingsConfigDict(
            toml_file=config_file,
            secrets_dir=secrets_dir,
            **({"secrets_nested_delimiter": "__"} if secrets_dir else {}),
        )
        connectors: connectors_model = connectors_model()
        notifiers: notifiers_model = notifiers_model()

    return GatewaySettings


def load_settings(
    registry: Registry, config_file: Path | None = None, **overrides: Any
) -> GatewaySettingsBase:
    """Read the settings; raises :class:`ConfigError` listing every problem at once."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError([f"config file {config_file} does not exist"])
    try:
        return settings_class(registry, config_file)(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            [
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            ]
        ) from None


def describe_settings(registry: Registry) -> list[tuple[str, str, str, str]]:
    """Every setting the installed plugins accept: (TOML path, type, default, description).

    Built from the models themselves, so a plugin's connector section is
    documented like a built-in one and the list is never kept by hand.
    """
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{path}.")
                continue
            kind = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
            if field.is_required():
                default = "(required)"
            elif field.default_factory is not None:
                default = repr(field.default_factory())  # type: ignore[call-arg]
            else:
                default = "(secret)" if "Secret" in kind else repr(field.default)
            rows.append((path, kind, default, field.description or ""))

    for name, field in GatewaySettingsBase.model_fields.items():
        annotation = field.annotation
        if name in ("connectors", "notifiers"):
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            walk(annotation, f"{name}.")
        else:
            rows.append(
                (
                    name,
                    getattr(annotation, "__name__", str(annotation)),
                    repr(field.default),
                    field.description or "",
                )
            )
    for connector, klass in sorted(registry.connectors.items()):
        walk(klass.settings_model, f"connectors.{connector}.")
    for notifier, notifier_class in sorted(registry.notifiers.items()):
        walk(notifier_class.settings_model, f"notifiers.{notifier}.")
    return rows
