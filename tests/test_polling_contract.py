"""The polling connector contract, inherited by every poller's test class.

A poller's class supplies a configured connector over a real platform (a
file, a real IMAP server) and ways to add messages to it and to break it;
the contract checks what every poller must do: resume from its cursor,
repeat itself exactly after a crash (same source keys, so the same record
ids), classify platform failures, and keep its secrets.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors._imap import append_message
from connectors.errors import ChannelAuthError, ChannelUnavailable
from connectors.polling import PollingConnector
from service.registry import Registry
from service.senders import asterisk_cdr_line
from tests.brokers import free_port
from tests.fakes import FrozenClock
from tests.imap_server import PASSWORD, USERNAME, DovecotServer, dovecot_server, dovecot_tls_files

__all__ = ["dovecot_server", "dovecot_tls_files"]  # fixtures used below

NOW = datetime(2026, 11, 23, 2, 15, tzinfo=UTC)


class PollingConnectorContract:
    name: ClassVar[str]
    secret_values: ClassVar[tuple[str, ...]] = ()

    def settings_section(self, tmp_path: Path) -> dict[str, Any]:
        raise NotImplementedError

    def add_messages(self, tmp_path: Path, texts: Sequence[str]) -> None:
        """Put complaints with these texts on the platform, in this order."""
        raise NotImplementedError

    def break_platform(self, tmp_path: Path, how: str) -> dict[str, Any] | None:
        """Make the platform fail as ``how`` ("unavailable", "credentials"): the settings
        overrides that do it (``{}`` if the platform itself was broken), None: n/a."""
        raise NotImplementedError

    def connector(self, tmp_path: Path, **overrides: Any) -> PollingConnector:
        klass = Registry.from_entry_points().connectors[self.name]
        section = self.settings_section(tmp_path) | overrides
        connector = klass(klass.settings_model.model_validate(section), FrozenClock(NOW))
        assert isinstance(connector, PollingConnector)
        return connector

    async def texts_after(self, connector: PollingConnector, cursor: str | None) -> Any:
        result = await connector.poll(cursor)
        registry = Registry.from_entry_points()
        texts = [
            getattr(registry.normalizers[self.name].normalize(e), "description", None)
            for e in result.events
        ]
        return texts, result

    # -- the contract -------------------------------------------------------------------

    def test_class_is_registered_under_its_name(self) -> None:
        klass = Registry.from_entry_points().connectors[self.name]
        assert klass.name == self.name and klass.kind == "poller"

    async def test_resumes_from_its_cursor(self, tmp_path: Path) -> None:
        connector = self.connector(tmp_path)
        self.add_messages(tmp_path, ["第一条投诉", "第二条投诉"])
        first, result = await self.texts_after(connector, None)
        assert first == ["第一条投诉", "第二条投诉"]
        self.add_messages(tmp_path, ["第三条投诉"])
        second, later = await self.texts_after(connector, result.cursor)
        assert second == ["第三条投诉"]
        nothing, last = await self.texts_after(connector, later.cursor)
        assert nothing == [] and last.cursor in (None, later.cursor)
        await connector.aclose()

    async def test_a_repeated_poll_gives_the_same_source_keys(self, tmp_path: Path) -> None:
        """A crash after fetching and before committing repeats the poll: same keys, same ids."""
        connector = self.connector(tmp_path)
        self.add_messages(tmp_path, ["重复一", "重复二"])
        once = await connector.poll(None)
        again = await connector.poll(None)
        assert [e.source_key for e in once.events] == [e.source_key for e in again.events]
        assert len({e.source_key for e in once.events}) == 2
        assert {e.connector for e in once.events} == {self.name}
        await connector.aclose()

    @pytest.mark.parametrize(
        ("how", "error"),
        [("unavailable", ChannelUnavailable), ("credentials", ChannelAuthError)],
    )
    async def test_platform_failures_are_classified(
        self, tmp_path: Path, how: str, error: type[Exception]
    ) -> None:
        overrides = self.break_platform(tmp_path, how)
        if overrides is None:
            pytest.skip(f"{self.name} has no {how} failure")
        connector = self.connector(tmp_path, **overrides)
        with pytest.raises(error) as caught:
            await connector.poll(None)
        for secret in self.secret_values:
            assert secret not in str(caught.value)
        await connector.aclose()

    async def test_secrets_never_show(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        connector = self.connector(tmp_path)
        shown = [repr(connector), repr(connector.settings), connector.settings.model_dump_json()]
        self.add_messages(tmp_path, ["看看日志"])
        result = await connector.poll(None)
        shown += [caplog.text, result.cursor or ""]
        for secret in self.secret_values:
            assert not any(secret in text for text in shown)
        await connector.aclose()

    def test_every_setting_is_described(self) -> None:
        model = Registry.from_entry_points().connectors[self.name].settings_model
        for setting, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{setting} has no description"


class TestAsteriskCsvContract(PollingConnectorContract):
    name = "asterisk_csv"

    def settings_section(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": str(tmp_path / "cdr-csv" / "Master.csv")}

    def add_messages(self, tmp_path: Path, texts: Sequence[str]) -> None:
        path = tmp_path / "cdr-csv" / "Master.csv"
        path.parent.mkdir(exist_ok=True)
        with path.open("ab") as log:
            for text in texts:
                n = sum(1 for _ in path.open("rb")) if path.exists() else 0
                log.write(
                    asterisk_cdr_line(
                        src="13812345678",
                        dst="4008123123",
                        start="2026-11-23 10:00:00",
                        answer="2026-11-23 10:00:05",
                        billsec=60,
                        uniqueid=f"1763863200.{n + 100 + len(text)}{abs(hash(text)) % 1000}",
                        userfield=text,
                    )
                )
                log.flush()

    def break_platform(self, tmp_path: Path, how: str) -> dict[str, Any] | None:
        if how != "unavailable":
            return None
        directory = tmp_path / "cdr-csv"
        directory.mkdir(exist_ok=True)
        (directory / "Master.csv").write_bytes(b"")
        os.chmod(directory / "Master.csv", 0)
        if os.access(directory / "Master.csv", os.R_OK):  # root reads anything: remove the dir
            os.chmod(directory / "Master.csv", 0o644)
            (directory / "Master.csv").unlink()
            directory.rmdir()
            (tmp_path / "cdr-csv").write_bytes(b"not a directory")
        return {}


def complaint_mail(text: str, n: int) -> bytes:
    """A customer's mail as a mail client sends it."""
    return (
        "From: =?utf-8?b?5byg5LiJ?= <Zhang.San@Example.cn>\r\n"
        "To: kefu@brand.example.cn\r\n"
        "Subject: =?utf-8?b?5oqV6K+J?=\r\n"
        f"Message-ID: <contract-{n}-{abs(hash(text))}@mail.example.cn>\r\n"
        "Date: Mon, 23 Nov 2026 10:15:00 +0800\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{text}\r\n"
    ).encode()


class TestImapContract(PollingConnectorContract):
    name = "imap"
    secret_values = (PASSWORD,)

    @pytest.fixture(autouse=True)
    def _dovecot(self, dovecot_server: DovecotServer) -> None:
        self.server = dovecot_server

    def settings_section(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.server.port,
            "security": "plain",
            "username": USERNAME,
            "password": PASSWORD,
        }

    def add_messages(self, tmp_path: Path, texts: Sequence[str]) -> None:
        account = self.server.account("plain")
        for n, text in enumerate(texts):
            append_message(account, "INBOX", complaint_mail(text, n))

    def break_platform(self, tmp_path: Path, how: str) -> dict[str, Any] | None:
        if how == "credentials":
            return {"password": "not-the-password"}
        return {"port": free_port()}  # nothing listens there


async def test_asterisk_can_start_at_the_end_of_a_file_with_years_of_history(
    tmp_path: Path,
) -> None:
    contract = TestAsteriskCsvContract()
    contract.add_messages(tmp_path, ["去年的投诉", "前年的投诉"])
    connector = contract.connector(tmp_path, start_at="end")
    first = await connector.poll(None)
    assert not first.events and first.cursor is not None
    contract.add_messages(tmp_path, ["今天的投诉"])
    texts, _ = await contract.texts_after(connector, first.cursor)
    assert texts == ["今天的投诉"]


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ({"timezone": "Asia/Shanghia"}, "time zone"),
        ({"text_column": "summary"}, "text_column"),
        ({"columns": ["src", "src", "userfield"]}, "distinct"),
    ],
)
def test_asterisk_settings_that_would_fail_every_poll_are_refused_at_start(
    setting: dict[str, Any], problem: str
) -> None:
    from pydantic import ValidationError

    from connectors.asterisk_csv import AsteriskCsvSettings

    with pytest.raises(ValidationError, match=problem):
        AsteriskCsvSettings.model_validate(setting)
