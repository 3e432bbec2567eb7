"""Peewee models. The schema itself is made only by the migrations in ``migrations/``.

All timestamps are naive UTC. Models are bound to :data:`database`, a proxy that
:func:`helpdeskd.store.db.open_database` initialises.
"""

from __future__ import annotations

from datetime import UTC, datetime

import peewee as pw

database = pw.DatabaseProxy()


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return datetime.combine(now.date(), now.time())  # (naive: replace(tzinfo=None) costs six times more)


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Customer(BaseModel):
    email = pw.CharField(max_length=320, unique=True)
    name = pw.CharField(max_length=200, default="")
    created_at = pw.DateTimeField(default=utcnow)


class Agent(BaseModel):
    email = pw.CharField(max_length=320, unique=True)
    name = pw.CharField(max_length=200, default="")
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)


class RawMessage(BaseModel):
    """The bytes of every accepted message, kept whatever became of it."""

    message_id = pw.CharField(max_length=998, null=True, unique=True)
    sha256 = pw.CharField(max_length=64, unique=True)
    mail_from = pw.CharField(max_length=320, default="")
    rcpt_to = pw.TextField(default="")
    data = pw.BlobField()
    received_at = pw.DateTimeField(default=utcnow)
    #: processed | automatic | quarantined
    state = pw.CharField(max_length=20, default="processed")
    route = pw.CharField(max_length=40, default="")
    error = pw.TextField(default="")
    ticket_id = pw.IntegerField(null=True)
    #: when ``helpdeskd prune`` dropped ``data`` (then empty); None while it is kept
    pruned_at = pw.DateTimeField(null=True)
    #: written with ``pruned_at``: helpdeskd.intake.copies.content_digest of the mail, by
    #: which a copy with other bytes (a relay's) is still known (its Message-ID kept)
    content_sha256 = pw.CharField(max_length=64, null=True)


class Ticket(BaseModel):
    """A support request."""

    customer = pw.ForeignKeyField(Customer, backref="tickets", on_delete="RESTRICT")
    category = pw.CharField(max_length=20)
    subject = pw.CharField(max_length=998)
    description = pw.TextField()
    order_id = pw.CharField(max_length=100, null=True)
    status = pw.CharField(max_length=20)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    resolved_at = pw.DateTimeField(null=True)
    assignee = pw.ForeignKeyField(Agent, null=True, backref="assigned", on_delete="SET NULL")
    linked_to = pw.ForeignKeyField("self", null=True, backref="follow_ons", on_delete="SET NULL")

    class Meta:
        table_name = "ticket"


class Message(BaseModel):
    """One entry of a request's conversation."""

    ticket = pw.ForeignKeyField(Ticket, backref="messages", on_delete="CASCADE")
    #: customer | response | note | event (helpdeskd.domain.MessageKind)
    kind = pw.CharField(max_length=20)
    author_email = pw.CharField(max_length=320, default="")
    agent = pw.ForeignKeyField(Agent, null=True, on_delete="SET NULL")
    body = pw.TextField(default="")
    #: the Message-ID header of the email this came from or became (no angle brackets)
    message_id = pw.CharField(max_length=998, null=True, index=True)
    raw = pw.ForeignKeyField(RawMessage, null=True, on_delete="SET NULL")
    created_at = pw.DateTimeField(default=utcnow)


class Attachment(BaseModel):
    message = pw.ForeignKeyField(Message, backref="attachments", on_delete="CASCADE")
    filename = pw.CharField(max_length=255, default="")
    content_type = pw.CharField(max_length=255, default="application/octet-stream")
    content_id = pw.CharField(max_length=998, null=True)
    inline = pw.BooleanField(default=False)
    size = pw.IntegerField(default=0)
    data = pw.BlobField()
    #: when ``helpdeskd prune --files`` dropped ``data`` (then empty; ``size`` stays); None while kept
    pruned_at = pw.DateTimeField(null=True)


class Outbox(BaseModel):
    """A mail to send, written in the same transaction as the change that causes it."""

    event = pw.CharField(max_length=30)
    ticket = pw.ForeignKeyField(Ticket, null=True, backref="outbox", on_delete="CASCADE")
    #: the conversation entry this mail carries, if any
    source = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    #: comma-separated addresses
    recipients = pw.TextField()
    #: event details as JSON (a digest's category filter, a command's results ...)
    payload = pw.TextField(default="")
    automatic = pw.BooleanField(default=True)
    #: an admin's retry: the hourly limit of automatic mail does not hold this one back
    limit_override = pw.BooleanField(default=False)
    #: queued | sending | sent | failed | suppressed | bounced
    state = pw.CharField(max_length=20, default="queued")
    created_at = pw.DateTimeField(default=utcnow)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    lease_until = pw.DateTimeField(null=True)
    #: host:pid of the worker holding the lease
    claimed_by = pw.CharField(max_length=100, default="")
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(default="")
    message_id = pw.CharField(max_length=998, null=True, index=True)
    data = pw.BlobField(null=True)
    sent_at = pw.DateTimeField(null=True)
    #: when ``helpdeskd prune`` dropped ``data`` (then NULL; a retry renders the mail again)
    pruned_at = pw.DateTimeField(null=True)

    def recipient_list(self) -> list[str]:
        return [r for r in self.recipients.split(",") if r]


ALL_MODELS: tuple[type[BaseModel], ...] = (
    Customer,
    Agent,
    RawMessage,
    Ticket,
    Message,
    Attachment,
    Outbox,
)
