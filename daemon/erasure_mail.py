"""The mail about no request that ``helpdeskd customers forget`` takes with a customer,
found by reading, outside the write lock (the rows found are deleted by id in the last
write transaction, and what arrived meanwhile is read there).

A received mail about no request (``raw_message.ticket_id`` NULL, and no conversation
entry holding it) is the customer's when

- it was sent to the reply address of one of their requests (an out-of-office reply with
  a null envelope sender, a delivery report about our mail to them), or
- its envelope sender (BATV's and SRS's rewrites of it too), or its header ``From``,
  ``Reply-To`` or ``Sender``, is their address (a question to the status address,
  quarantined mail; a contact form's mail, a mailing list's), or
- it is a delivery report about one of our lists of their requests, or about mail to
  their address.

When the address is an agent's too, a mail sent to another request's reply address is
the agent's, and stays.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterable

import peewee as pw

from helpdeskd.config import MailConfig
from helpdeskd.domain import Event, ascii_address, ascii_domain
from helpdeskd.mail.addresses import parse_address_list
from helpdeskd.mail.ticket_addresses import RecipientKind, parse_recipient
from helpdeskd.mail.parse import parse_message
from helpdeskd.store.models import Message, Outbox, RawMessage

#: received mails listed (envelope only) per query
LIST_BATCH = 500
#: received mails whose bytes are read per query
READ_BATCH = 20


class LooseMail:
    """The customer's received mail about no request, read in passes by id: each
    :meth:`read` goes on from the last mail the one before read."""

    def __init__(self, address: str, mail: MailConfig, requests: Iterable[int], *, agent: bool) -> None:
        self.address = address
        self.requests = set(requests)
        self.agent = agent
        self.found: set[int] = set()
        self.upto = 0
        self._mail = mail
        self._domain = ascii_domain(mail.domain.lower())
        self._secrets = (mail.secret.encode("utf-8"), *(old.encode("utf-8") for old in mail.previous_secrets))
        self._needle = address.rpartition("@")[0].encode("utf-8") + b"@"
        self._lists = self._our_lists()

    def read(self) -> set[int]:
        """Read the mail received since the last read; the ids of the customer's among all
        read so far."""
        while True:
            rows = list(RawMessage.select(RawMessage.id, RawMessage.mail_from, RawMessage.rcpt_to)
                        .where(RawMessage.ticket_id.is_null() & (RawMessage.id > self.upto))
                        .order_by(RawMessage.id).limit(LIST_BATCH).tuples())
            to_read = []
            for raw_id, sender, rcpt_to in rows:
                named = self._requests_named(rcpt_to)
                if named & self.requests:
                    self.found.add(raw_id)
                elif self.agent and named:
                    continue  # (the agent's mail about another customer's request)
                elif _same(envelope_address(sender), self.address):
                    self.found.add(raw_id)
                else:
                    to_read.append(raw_id)
            for start in range(0, len(to_read), READ_BATCH):
                for raw_id, data in (RawMessage.select(RawMessage.id, RawMessage.data)
                                     .where(RawMessage.id.in_(to_read[start:start + READ_BATCH])).tuples()):
                    if self._written_by(bytes(data)):
                        self.found.add(raw_id)
            if rows:
                self.upto = rows[-1][0]
            if len(rows) < LIST_BATCH:
                return self.found

    def deletable(self) -> list[int]:
        """Of the mail found, what is still about no request and held by no conversation
        entry (call in the write transaction that deletes it)."""
        if not self.found:
            return []
        ids = sorted(self.found)
        held = {r for (r,) in Message.select(Message.raw).where(Message.raw.in_(ids)).tuples()}
        about_none = {r for (r,) in RawMessage.select(RawMessage.id)
                      .where(RawMessage.id.in_(ids) & RawMessage.ticket_id.is_null()).tuples()}
        return [r for r in ids if r in about_none and r not in held]

    def _requests_named(self, rcpt_to: str) -> set[int]:
        """The requests whose reply address is among ``rcpt_to`` (signed with the secret
        or one kept in ``mail.previous_secrets``; one since retired too: it names the
        request all the same)."""
        named = set()
        for recipient in rcpt_to.split(","):
            if "+" not in recipient:
                continue
            match = parse_recipient(ascii_address(recipient.strip().strip("<>")), self._mail.support_local,
                                    self._domain, self._secrets[0], previous=self._secrets[1:])
            if match.kind in (RecipientKind.TICKET, RecipientKind.BAD_TOKEN) and match.ticket_id is not None:
                named.add(match.ticket_id)
        return named

    def _written_by(self, data: bytes) -> bool:
        """Whether the mail's ``From``, ``Reply-To`` or ``Sender`` is the customer's
        address, or it is a delivery report about mail to them (one of our lists)."""
        if not data or self._needle not in data.lower():
            return False
        mail = parse_message(data)
        senders = {mail.from_addr, *mail.reply_to,
                   *(a for h in ("from", "sender") for a in parse_address_list(mail.headers.get(h)))}
        if mail.dsn is not None and not self.agent:  # (a report of mail to an agent is the agent's)
            senders.add(mail.dsn.recipient)
        if any(s and _same(s, self.address) for s in senders):
            return True
        return bool(mail.dsn_original_message_id and mail.dsn_original_message_id in self._lists)

    def _our_lists(self) -> set[str]:
        """The Message-IDs (without angle brackets) of our lists of requests sent to them."""
        return {m.strip("<>") for m in lists_to(self.address, Outbox.message_id).values() if m}


def envelope_address(sender: str) -> str:
    """The address behind an envelope sender, undoing the rewrites that keep it whole:
    BATV's ``prvs=TAG=local@domain`` and SRS's ``SRS0=HASH=TT=domain=local@forwarder``
    (``SRS1=...`` ends the same way)."""
    plain = sender.strip().strip("<>").lower()
    local, at, domain = plain.rpartition("@")
    fields = local.split("=")
    if at and fields[0] in ("srs0", "srs1") and len(fields) >= 5 and fields[-1] and fields[-2]:
        return f"{fields[-1]}@{fields[-2]}"
    if at and fields[0] in ("prvs", "msprvs1", "btv1") and len(fields) >= 3 and fields[-1]:
        return f"{fields[-1]}@{domain}"
    return plain


def _same(found: str, address: str) -> bool:
    try:
        return ascii_address(found).lower() == address
    except (UnicodeError, ValueError):
        return found.lower() == address


def lists_to(address: str, column: pw.Field = Outbox.id) -> dict[int, object]:
    """Our lists of requests sent to ``address`` (mail about no request to them): id → ``column``."""
    query = Outbox.select(Outbox.id, column, Outbox.recipients).where(
        Outbox.ticket.is_null() & (Outbox.event == Event.STATUS_DIGEST.value) & Outbox.recipients.contains(address))
    return {i: value for i, value, recipients in query.tuples() if address in recipients.split(",")}


def digests_naming(address: str) -> list[int]:
    """The team's digests, rendered, whose text names ``address`` (one being sent too:
    it is waited for, and emptied once sent)."""
    query = Outbox.select(Outbox.id, Outbox.data).where(
        Outbox.ticket.is_null() & (Outbox.event == Event.PENDING_DIGEST.value) & Outbox.data.is_null(False))
    return [i for i, data in query.tuples() if address in _text_of(bytes(data)).lower()]


def _text_of(data: bytes) -> str:
    """A mail's headers and decoded text parts, for a look for an address."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    parts = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            try:
                parts.append(str(part.get_content()))  # type: ignore[attr-defined]
            except (LookupError, ValueError):
                parts.append(part.get_payload(decode=True).decode("utf-8", "replace"))  # type: ignore[union-attr]
    return "\n".join(parts)

