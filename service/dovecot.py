"""A private, throwaway Dovecot IMAP server on a free loopback port.

For ``complaint-gateway demo`` (which shows the ``imap`` poller when Debian's
``dovecot-imapd`` is installed) and the mailbox benchmark. The tests use the
fuller ``tests/imap_server.py`` (TLS and STARTTLS too). This one is plaintext
IMAP on 127.0.0.1 only, one passwd-file user, maildirs, and
everything of its own (config, ``base_dir``, ``state_dir``, log) in a
short-named directory under ``/tmp`` (unix socket paths must stay under 108
bytes). Nothing is read from ``/etc/dovecot``; a system Dovecot is never
touched. As root the login processes run as the package's ``dovenull`` user
and the mail processes as ``nobody`` (Dovecot refuses to serve mail as UID 0);
as another user, everything runs as that user without chroots.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

DOVECOT = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
USERNAME = "complaints@example.com"
PASSWORD = "throwaway-imap-pass"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def dovecot_config(
    root: Path,
    port: int,
    *,
    tls: tuple[Path, Path] | None = None,
    tls_port: int = 0,
    instance: str = "dovecot-gateway",
) -> str:
    """The whole configuration, nothing read from ``/etc/dovecot``.

    Plaintext IMAP on ``port``; with ``tls`` (certificate and key files) also
    STARTTLS there and implicit TLS on ``tls_port``. Any user name is allowed
    (``auth_username_chars`` empty), so non-ASCII logins can be tested.
    """
    if os.geteuid() == 0:
        mail_user = "nobody"
        users = "default_internal_user = dovecot\ndefault_login_user = dovenull\n"
        chroots = ""
    else:
        me = pwd.getpwuid(os.geteuid())
        mail_user, group = me.pw_name, grp.getgrgid(me.pw_gid).gr_name
        users = (
            f"default_internal_user = {mail_user}\ndefault_internal_group = {group}\n"
            f"default_login_user = {mail_user}\n"
        )
        chroots = "".join(
            f"service {name} {{\n  chroot =\n}}\n" for name in ("anvil", "imap-login")
        )
    uid = pwd.getpwnam(mail_user)
    if tls is None:
        ssl = "ssl = no"
        imaps = "  inet_listener imaps {\n    port = 0\n  }"
    else:
        ssl = f"ssl = yes\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}"
        imaps = (
            f"  inet_listener imaps {{\n    address = {HOST}\n    port = {tls_port}\n"
            "    ssl = yes\n  }"
        )
    return f"""\
instance_name = {instance}-{port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = {HOST}
{users}first_valid_uid = 1
last_valid_uid = 0
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_username_chars =
{ssl}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid.pw_uid} gid={uid.pw_gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
{imaps}
}}
{chroots}"""


class Dovecot:
    """``with Dovecot() as server:`` a running server on ``server.port``; removed on exit."""

    def __init__(
        self, binary: str = DOVECOT, start_timeout: float = 15, password: str = PASSWORD
    ) -> None:
        self.binary = binary
        self.password = password
        self.start_timeout = start_timeout
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-bench-", dir="/tmp"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self._process.pid if self._process else 0

    def log_text(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text("utf-8", errors="replace") if path.exists() else "(no log)"

    def __enter__(self) -> Dovecot:
        self.root.chmod(0o755)  # Dovecot's unprivileged users read the passwd-file
        config = self.root / "dovecot.conf"
        config.write_text(dovecot_config(self.root, self.port))
        passwd = self.root / "passwd"
        passwd.write_text(f"{USERNAME}:{{PLAIN}}{self.password}\n", "utf-8")
        passwd.chmod(0o644)
        mail = self.root / "mail"
        mail.mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        with (self.root / "console.log").open("wb") as console:
            self._process = subprocess.Popen(
                [self.binary, "-F", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stopping reaches every child
            )
        try:
            self._wait_listening()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited:\n{self.log_text()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"dovecot did not listen on {self.port}") from None
                time.sleep(0.05)

    def _stop(self) -> None:
        """Kill the master and its children at once (SIGTERM makes Dovecot linger 1-3 s)."""
        try:
            if self._process is not None and self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
