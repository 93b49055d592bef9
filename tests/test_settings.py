"""Settings from TOML, environment and secret files; check-config lists every problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gateway
from connectors.errors import ConfigError
from service.registry import Registry
from service.settings import load_settings

TOML = """
data_dir = "{data}"
[http]
port = 9191
[kafka]
topic = "complaints.test"
[connectors.store]
secret = "from-the-file"
max_skew_seconds = 60
"""


def test_toml_then_environment_then_secret_files(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(TOML.format(data=tmp_path / "d"))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "GATEWAY_CONNECTORS__WECHAT__TOKEN").write_text("token-from-file")
    monkeypatch.setenv("GATEWAY_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("GATEWAY_HTTP__PORT", "9292")
    monkeypatch.setenv("GATEWAY_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    settings = load_settings(registry, config)
    assert settings.http.port == 9292  # the environment wins over the file
    assert settings.kafka.topic == "complaints.test"
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.enable_idempotence is True
    assert settings.connectors.store.secret.get_secret_value() == "from-the-file"
    assert settings.connectors.store.max_skew_seconds == 60
    assert settings.connectors.wechat.token.get_secret_value() == "token-from-file"
    assert set(settings.enabled_connectors()) == {"store", "wechat"}
    for secret in ("from-the-file", "token-from-file"):
        assert secret not in repr(settings) and secret not in str(settings)


def test_defaults_with_no_configuration(registry: Registry) -> None:
    settings = load_settings(registry)
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)
    assert settings.http.max_body_bytes == 1024 * 1024
    assert settings.data_dir == Path("data")
    assert settings.jsonl_path == Path("data/complaints.jsonl")
    assert settings.kafka.bootstrap_servers is None and settings.kafka.topic == "complaints.v1"
    assert settings.enabled_connectors() == {}


def test_every_problem_is_reported_at_once(registry: Registry) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            registry,
            http={"port": 70000},
            connectors={"wechat": {"encoding_aes_key": "short-secret"}, "store": {}},
        )
    locations = {problem.split(":")[0] for problem in caught.value.problems}
    assert {
        "http.port",
        "connectors.wechat.token",
        "connectors.wechat.encoding_aes_key",
        "connectors.store.secret",
    } <= locations
    assert "short-secret" not in str(caught.value)


def test_shared_state_in_redis_needs_its_url_and_linking_windows_are_checked(
    registry: Registry,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(registry, state={"backend": "redis"}, linking={"window_days": 0})
    problems = "; ".join(caught.value.problems)
    assert "state" in problems and "redis_url" in problems
    assert "linking.window_days" in problems
    settings = load_settings(
        registry, state={"backend": "redis", "redis_url": "redis://:pw@127.0.0.1:6379/0"}
    )
    assert "pw" not in repr(settings.state)


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, gateway.__file__, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def clean_env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | extra


def test_check_config_lists_all_errors_without_echoing_secrets(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[http]\nport = "eighty"\n[connectors.wechat]\n'
        'token = "hunter2-token"\nencoding_aes_key = "tooShortKey"\n'
        "[connectors.store]\nmax_skew_seconds = 0\n"
    )
    result = run_cli("check-config", "--config", str(config), env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    for where in (
        "http.port",
        "connectors.wechat.encoding_aes_key",
        "connectors.wechat",
        "connectors.store.secret",
        "connectors.store.max_skew_seconds",
    ):
        assert where in result.stderr
    assert "hunter2-token" not in result.stderr + result.stdout
    assert "tooShortKey" not in result.stderr + result.stdout


def test_check_config_accepts_a_good_configuration(tmp_path: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text(TOML.format(data=tmp_path / "d"))
    result = run_cli(
        "check-config",
        "--config",
        str(config),
        env=clean_env(GATEWAY_CONNECTORS__WECHAT__TOKEN="t"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "channels store, wechat" in result.stdout
    assert "from-the-file" not in result.stdout


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", "nope.toml", env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2 and "nope.toml does not exist" in result.stderr


def test_check_config_validates_the_phone_and_email_connectors(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[connectors.imap]\nhost = "imap.example.cn"\nsecurity = "ssl"\n'
        'password = "mailbox-secret-1"\ninterval_seconds = 0\n'
        '[connectors.freeswitch]\nusername = "cdr"\n'
        "[connectors.asterisk_csv]\nmax_bytes = 10\n"
        '[connectors.email_mime]\nsecret = "relay-secret-2"\nmax_skew_seconds = 0\n'
    )
    result = run_cli("check-config", "--config", str(config), env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    for where in (
        "connectors.imap.security",
        "connectors.imap.username",
        "connectors.imap.interval_seconds",
        "connectors.freeswitch.password",
        "connectors.asterisk_csv.max_bytes",
        "connectors.email_mime.max_skew_seconds",
    ):
        assert where in result.stderr, where
    assert "mailbox-secret-1" not in result.stderr + result.stdout
    assert "relay-secret-2" not in result.stderr + result.stdout


def test_check_config_settings_documents_every_connector_setting(
    tmp_path: Path, registry: Registry
) -> None:
    result = run_cli("check-config", "--settings", env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = {line.split("  (")[0] for line in result.stdout.splitlines() if "  (" in line}
    for name, klass in registry.connectors.items():
        for setting in klass.settings_model.model_fields:
            assert f"connectors.{name}.{setting}" in listed
    assert "http.max_header_bytes" in listed and "kafka.topic" in listed
    assert "connectors.imap.password  (SecretStr, default (required))" in result.stdout


def test_the_example_configuration_is_valid_once_its_secrets_come_from_the_environment(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import notification_problems

    secrets = {
        "CONNECTORS__EMAIL_MIME__SECRET": "s",
        "CONNECTORS__FREESWITCH__PASSWORD": "s",
        "CONNECTORS__IMAP__PASSWORD": "s",
        "CONNECTORS__STORE__SECRET": "s",
        "CONNECTORS__TCCC__PASSWORD": "s",
        "CONNECTORS__WECHAT__TOKEN": "s",
        "CONNECTORS__WEIBO_DM__APP_SECRET": "s",
        "CONNECTORS__DOUYIN_SHOP__APP_SECRET": "s",
        "CONNECTORS__WEIBO__ACCESS_TOKEN": "s",
        "CONNECTORS__TAOBAO__APP_SECRET": "s",
        "CONNECTORS__TAOBAO__SESSION": "s",
        "CONNECTORS__JD__APP_SECRET": "s",
        "CONNECTORS__JD__ACCESS_TOKEN": "s",
        "CONNECTORS__PINDUODUO__CLIENT_SECRET": "s",
        "CONNECTORS__PINDUODUO__ACCESS_TOKEN": "s",
        "NOTIFIERS__ALIYUN_SMS__ACCESS_KEY_ID": "s",
        "NOTIFIERS__ALIYUN_SMS__ACCESS_KEY_SECRET": "s",
        "NOTIFIERS__WECHAT__APP_SECRET": "s",
        "NOTIFICATIONS__API_TOKEN": "s",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(f"GATEWAY_{name}", value)
    example = Path(__file__).parent.parent / "gateway.example.toml"
    settings = load_settings(registry, example)
    assert set(settings.enabled_notifiers()) == {"aliyun_sms", "wechat"}
    assert settings.notifications.quiet_hours.start.hour == 21
    assert notification_problems(settings, registry) == []
