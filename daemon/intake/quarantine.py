"""Messages kept in quarantine: listed, reprocessed or dropped by an admin."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from helpdeskd.errors import InvalidRequest, NotFound
from helpdeskd.intake.process import Intake, Outcome
from helpdeskd.mail.decode import decode_header_text, desurrogate
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import RawMessage

QUARANTINED = "quarantined"
#: how much of a kept message is read for its headers
_HEAD_MAX = 256 * 1024


def list_quarantined() -> list[RawMessage]:
    return list(
        RawMessage.select().where(RawMessage.state == QUARANTINED).order_by(RawMessage.received_at, RawMessage.id)
    )


def subject_of(raw: bytes) -> str:
    """The decoded ``Subject`` of a kept message, read from its header block only (the
    list shows it: spam told from a customer's mail at a glance); "" for none."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    head = BytesHeaderParser(policy=compat32).parsebytes(raw[: min(end, _HEAD_MAX)] + b"\n\n")
    value = next((str(v) for name, v in head.raw_items() if name.strip().lower() == "subject"), "")
    # (raw 8-bit text: UTF-8, else the most common charset of mail that declares none)
    return " ".join(decode_header_text(desurrogate(value, ("utf-8", "windows-1252"))).split())[:200]


def get_quarantined(raw_id: int) -> RawMessage:
    row = RawMessage.get_or_none((RawMessage.id == raw_id) & (RawMessage.state == QUARANTINED))
    if row is None:
        raise NotFound(f"quarantined message {raw_id} not found")
    return row


class _Undone(Exception):
    """Rolls the reprocessing back: the intake refused the message."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reply)
        self.outcome = outcome


def reprocess(intake: Intake, raw_id: int) -> Outcome:
    """Run a quarantined message through the intake again; it leaves quarantine when it
    is accepted (stored, or kept in quarantine anew). A refusal changes nothing but the
    row's error, and raises :class:`InvalidRequest` saying it: over SMTP the sender learns
    of a refusal, here nobody would, so the message is never dropped that way."""
    try:
        with write_transaction():
            row = get_quarantined(raw_id)
            data, mail_from = bytes(row.data), row.mail_from
            rcpts = [r for r in row.rcpt_to.split(",") if r]
            if not rcpts:
                raise InvalidRequest(f"quarantined message {raw_id} has no recorded recipient")
            row.delete_instance()
            outcome = intake.apply(intake.prepare(data, mail_from, rcpts, reviewed=True))
            if not outcome.accepted:
                raise _Undone(outcome)
            return outcome
    except _Undone as undone:
        reply = undone.outcome.reply
        with write_transaction():
            RawMessage.update(error=f"reprocessed and refused: {reply}").where(
                RawMessage.id == raw_id
            ).execute()
        raise InvalidRequest(
            f"quarantined message {raw_id} was refused again ({reply}); it stays in quarantine "
            f"(helpdeskd quarantine drop {raw_id} deletes it)"
        ) from None


def drop(raw_id: int) -> None:
    with write_transaction():
        get_quarantined(raw_id).delete_instance()
