"""E-mail → complaint records (``channel = "email"``).

Two connectors feed this channel: ``imap`` (a poller) and ``email_mime`` (a
raw message POSTed by a mail relay). Both hand over the raw RFC 5322 bytes,
read by :func:`normalizer._mime.read_mail`, and share the source-key scope
``email``: the key is the sender's address and the ``Message-ID`` (else a
hash of sender, date, subject and text), so a mail that arrives both ways is
one record, and another sender's reuse of a Message-ID is not.

* ``customer.id`` is ``email:<lower-cased address>``; a mail without a
  usable From is malformed.
* ``description`` is the customer's new words (quoted replies below them are
  left out); with no words, the subject.
* ``source.thread_id`` is the thread's root Message-ID (``References``, then
  ``In-Reply-To``), so a follow-up is recognisably the same conversation.
* attachments are listed by name, type, size and content hash
  (``mail-attachment:sha256:...``), never inlined: the raw message is in the outbox.
* auto-replies and bounces are ``NotAComplaint("mail:<kind>")``.
"""

from __future__ import annotations

from datetime import datetime

from connectors.errors import MalformedPayload
from normalizer._mime import Mail, read_mail
from normalizer.base import Normalizer, NotAComplaint, build_record
from schemas import ComplaintRecord, RawEvent

CHANNEL = "email"
SCOPE = "email"
_SUBJECT_CHARS = 120


def mail_event(
    raw: bytes, received_at: datetime, connector: str, transport_key: str | None = None
) -> RawEvent:
    """Read one raw message into an event keyed by its Message-ID (pure).

    ``transport_key`` (mailbox, UIDVALIDITY and UID for IMAP) is kept as the
    event's header for inspection; it is not the dedupe key, which must be
    the same however the mail arrived.
    """
    mail = read_mail(raw)
    # the sender's address with the Message-ID: a Message-ID is the sender's to choose, so
    # another sender reusing one (broken software, or on purpose) is not taken as a repeat
    source_key = f"{mail.from_address or ''}|{mail.message_id or mail.fallback_key}"
    return RawEvent(
        channel=CHANNEL,
        connector=connector,
        scope=SCOPE,
        source_key=source_key,
        received_at=received_at,
        payload={"mail": mail},
        body=raw,
        media_type="message/rfc822",
        message_id=mail.message_id,
        headers={"transport_key": transport_key} if transport_key else {},
    )


class EmailNormalizer(Normalizer):
    channel = CHANNEL

    def normalize(self, event: RawEvent) -> ComplaintRecord | NotAComplaint:
        mail = event.payload.get("mail")
        if not isinstance(mail, Mail):
            raise MalformedPayload("the event holds no parsed mail", "missing_field")
        if mail.automated:
            return NotAComplaint(f"mail:{mail.automated}")
        if not mail.from_address:
            raise MalformedPayload("the mail has no usable From address", "missing_field")
        subject = mail.subject.strip()
        detail = f"邮件：{subject[:_SUBJECT_CHARS]}" if subject else "邮件"
        return build_record(
            event,
            customer={
                "id": f"email:{mail.from_address}",
                "contacts": {"email": mail.from_address},
            },
            description=mail.text if mail.text.strip() else subject,
            channel_detail=detail,
            occurred_at=mail.date,
            attachments=[
                {
                    "url": f"mail-attachment:{part.sha256}",
                    "media_type": part.media_type,
                    "name": part.name,
                    "size": part.size,
                }
                for part in mail.attachments
            ],
            thread_id=mail.thread_root or mail.message_id,
        )
