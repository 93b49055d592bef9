"""Walk the installed plugins: each connector must come with everything a connector needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.store import StoreConnector
from connectors.wechat import WeChatConnector
from normalizer.store import StoreNormalizer
from normalizer.wechat import WeChatNormalizer
from service.registry import Registry, RegistryError
from tests import test_contract, test_polling_contract

FIXTURES = Path(__file__).parent / "fixtures"


def contract_classes() -> dict[str, type]:
    """Test classes inheriting a contract (webhook or poller), by the connector they test.

    Found in every test module: a channel's contract class may live beside its own tests.
    """
    import importlib

    bases = (test_contract.WebhookConnectorContract, test_polling_contract.PollingConnectorContract)
    found: dict[str, type] = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        for klass in vars(module).values():
            if (
                isinstance(klass, type)
                and issubclass(klass, bases)
                and getattr(klass, "name", None)
                and klass.__name__.startswith("Test")
            ):
                found[klass.name] = klass
    return found


def test_the_built_in_connectors_are_installed(registry: Registry) -> None:
    assert {"wechat", "store", "asterisk_csv", "freeswitch", "tccc"} <= set(registry.connectors)
    phone = {n for n, c in registry.connectors.items() if c.channel == "phone"}
    assert phone >= {"asterisk_csv", "freeswitch", "tccc"}


def test_every_installed_connector_has_what_a_connector_needs(registry: Registry) -> None:
    contracts = contract_classes()
    for name, connector in registry.connectors.items():
        assert connector.name == name
        assert registry.normalizers[name].channel == connector.channel
        cases = list((FIXTURES / name).glob("*.raw.*"))
        assert cases, f"{name} has no golden fixtures in tests/fixtures/{name}/"
        assert any(p.name.startswith("error_") for p in cases), f"{name}: no error case"
        assert name in contracts, f"{name} has no contract test class"
        for setting, field in connector.settings_model.model_fields.items():
            assert field.description, f"{name} setting {setting!r} has no description"


def notifier_contract_classes() -> dict[str, type]:
    """Test classes inheriting NotifierContract, by the notifier they test."""
    import importlib

    from tests.notifier_contract import NotifierContract

    found: dict[str, type] = {}
    for path in Path(__file__).parent.glob("test_*notifier*.py"):
        module = importlib.import_module(f"tests.{path.stem}")
        for klass in vars(module).values():
            if (
                isinstance(klass, type)
                and issubclass(klass, NotifierContract)
                and klass.__name__.startswith("Test")
            ):
                found[klass.__name__] = klass
    return found


def test_every_installed_notifier_has_its_contract_tests_and_described_settings(
    registry: Registry,
) -> None:
    assert {"aliyun_sms", "tencent_sms", "wechat", "email"} <= set(registry.notifiers)
    contracts = notifier_contract_classes()
    for name, notifier in registry.notifiers.items():
        assert notifier.name == name
        tested = [k for k in contracts.values() if getattr(k, "notifier_class", None) is notifier]
        assert tested, f"notifier {name} has no NotifierContract test class naming it"
        for setting, field in notifier.settings_model.model_fields.items():
            assert field.description, f"{name} setting {setting!r} has no description"


@pytest.mark.parametrize(
    ("connectors", "normalizers", "problem"),
    [
        ([("wechat", StoreConnector)], [("wechat", StoreNormalizer)], "another name"),
        ([("WeChat", WeChatConnector)], [], "not an identifier"),
        ([("wechat", WeChatConnector)], [], "has no normalizer"),
        (
            [("wechat", WeChatConnector), ("wechat", StoreConnector)],
            [("wechat", WeChatNormalizer)],
            "another name",
        ),
        ([("store", object)], [("store", StoreNormalizer)], "is not a Connector"),
        ([("store", StoreConnector)], [("store", WeChatNormalizer)], "produces 'wechat'"),
        (
            [("store", StoreConnector)],
            [("store", StoreNormalizer), ("fax", StoreNormalizer)],
            "names no connector",
        ),
    ],
    ids=[
        "name-mismatch",
        "bad-id",
        "no-normalizer",
        "clash",
        "wrong-type",
        "normalizer-for-another-channel",
        "orphan-normalizer",
    ],
)
def test_registry_refuses_plugins_that_do_not_fit(
    connectors: list[tuple[str, type]], normalizers: list[tuple[str, type]], problem: str
) -> None:
    with pytest.raises(RegistryError, match=problem):
        Registry.from_plugins(connectors=connectors, normalizers=normalizers)


def test_a_plugin_channel_gets_its_own_settings_section(tmp_path: Path) -> None:
    """A channel added by a plugin is configured like a built-in one."""
    from pydantic import Field, SecretStr

    from connectors.base import ConnectorSettings
    from service.settings import load_settings

    class FaxSettings(ConnectorSettings):
        api_key: SecretStr = Field(description="Fax gateway key.")

    class FaxConnector(WeChatConnector):
        name = "fax_line"
        channel = "fax_line"
        settings_model = FaxSettings  # type: ignore[assignment]

    class FaxNormalizer(WeChatNormalizer):
        channel = "fax_line"

    registry = Registry.from_plugins(
        connectors=[("fax_line", FaxConnector)], normalizers=[("fax_line", FaxNormalizer)]
    )
    settings = load_settings(
        registry, data_dir=tmp_path, connectors={"fax_line": {"api_key": "k-123"}}
    )
    assert list(settings.enabled_connectors()) == ["fax_line"]
    assert "k-123" not in repr(settings)
