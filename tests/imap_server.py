"""A private Dovecot IMAP server for tests, on free loopback ports.

Fixtures (import them into a test module to use them):

* ``dovecot_tls_files``: a throwaway CA and a server certificate for
  ``127.0.0.1``/``localhost``, made once per session with ``cryptography``;
* ``dovecot_server``: a fresh, empty Dovecot for one test, stopped at teardown
  (also when the test fails). It listens on ``port`` (IMAP, offering STARTTLS
  and accepting plaintext LOGIN without it) and ``tls_port`` (implicit TLS);
  ``account(security)`` builds the matching :class:`ImapAccount`, trusting the test CA.

The server runs ``dovecot -F -c <conf>`` with everything of its own in a
short-named directory under ``/tmp`` (unix socket paths must stay under 108
bytes, which pytest's ``tmp_path`` does not promise): config, ``base_dir``,
``state_dir``, log, a passwd-file with two users and the maildirs. A system
Dovecot on ports 143/993 is never touched. As root (CI), the login processes
run as the package's ``dovenull`` user and the mail processes as ``nobody``,
because Dovecot refuses to serve mail as UID 0; as another user, everything
runs as that user without chroots (Dovecot's "rootless" setup). The server's
log is added to the report of a failing test.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connectors._imap import ImapAccount, Security
from service.dovecot import dovecot_config as service_dovecot_config
from tests.brokers import free_port
from tests.conftest import need_binary
from tests.process import LogsOnFailure

DOVECOT = "/usr/sbin/dovecot"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

USERNAME = "complaints@example.com"
PASSWORD = 'Pa55 "word" \\ 7'  # a space, quotes and a backslash: LOGIN must quote them
INTL_USERNAME = "客服小王"
INTL_PASSWORD = "密码-Ünïcode"  # not ASCII: sent with AUTHENTICATE PLAIN


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclasses.dataclass(frozen=True)
class DovecotServer:
    host: str
    port: int
    tls_port: int
    username: str
    password: str = dataclasses.field(repr=False)
    ca_file: str
    log_path: Path

    def account(self, security: Security = "plain", **overrides: object) -> ImapAccount:
        """An account for this server; ``overrides`` replace fields (``password="wrong"``)."""
        port = self.tls_port if security == "tls" else self.port
        account = ImapAccount(
            self.host, port, security, self.username, self.password, 5.0, self.ca_file
        )
        return dataclasses.replace(account, **overrides)  # type: ignore[arg-type]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate signed by it, valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "complaint-gateway test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def dovecot_config(root: Path, tls: TlsFiles, port: int, tls_port: int) -> str:
    """The whole configuration (``service.dovecot``'s, with TLS and STARTTLS on)."""
    return service_dovecot_config(
        root, port, tls=(tls.cert_file, tls.key_file), tls_port=tls_port, instance="dovecot-test"
    )


class _Dovecot:
    """One ``dovecot -F`` process and its directory; :meth:`stop` removes both."""

    def __init__(self, binary: str, tls: TlsFiles) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
        self.root.chmod(0o755)  # Dovecot's unprivileged users read the passwd-file
        self.port = free_port()
        self.tls_port = free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        config = self.root / "dovecot.conf"
        config.write_text(dovecot_config(self.root, tls, self.port, self.tls_port))
        passwd = self.root / "passwd"
        passwd.write_text(
            f"{USERNAME}:{{PLAIN}}{PASSWORD}\n{INTL_USERNAME}:{{PLAIN}}{INTL_PASSWORD}\n", "utf-8"
        )
        passwd.chmod(0o644)
        mail = self.root / "mail"
        mail.mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        self.log_path = self.root / "dovecot.log"
        self._console = (self.root / "console.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches every child
        )

    def log_text(self) -> str:
        parts = []
        for path in (self.root / "console.log", self.log_path):
            if path.exists():
                parts.append(path.read_text("utf-8", errors="replace"))
        return "\n".join(parts) or "(no log)"

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for port in (self.port, self.tls_port):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"dovecot exited with {self.process.returncode}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"dovecot did not listen on {port}") from None
                    time.sleep(0.02)

    def stop(self) -> None:
        """Kill the master and its children at once (SIGTERM makes Dovecot linger 1-3 s).

        Killed children hold no ports or files; they are left for init to reap,
        which a container's init may do only every few seconds.
        """
        try:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT)
        finally:
            self._console.close()
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("dovecot-tls"))


@pytest.fixture
def dovecot_server(
    dovecot_tls_files: TlsFiles, request: pytest.FixtureRequest
) -> Iterator[DovecotServer]:
    binary = need_binary(DOVECOT, "Dovecot (apt-get install dovecot-imapd)")
    dovecot = _Dovecot(binary, dovecot_tls_files)
    try:
        LogsOnFailure.attach(request, f"dovecot log ({dovecot.root})", dovecot.log_text)
        try:
            dovecot.wait_until_listening()
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}:\n{dovecot.log_text()}")
        yield DovecotServer(
            "127.0.0.1",
            dovecot.port,
            dovecot.tls_port,
            USERNAME,
            PASSWORD,
            str(dovecot_tls_files.ca_file),
            dovecot.log_path,
        )
    finally:
        dovecot.stop()
