"""The first schema: customers, agents, support requests, conversation, raw mail, outbox."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    """CREATE TABLE customer (
        id {pk},
        email VARCHAR(320) NOT NULL UNIQUE,
        name VARCHAR(200) NOT NULL DEFAULT '',
        created_at {ts} NOT NULL
    )""",
    """CREATE TABLE agent (
        id {pk},
        email VARCHAR(320) NOT NULL UNIQUE,
        name VARCHAR(200) NOT NULL DEFAULT '',
        active {bool} NOT NULL DEFAULT {true},
        created_at {ts} NOT NULL
    )""",
    """CREATE TABLE raw_message (
        id {pk},
        message_id VARCHAR(998),
        sha256 VARCHAR(64) NOT NULL UNIQUE,
        mail_from VARCHAR(320) NOT NULL DEFAULT '',
        rcpt_to TEXT NOT NULL DEFAULT '',
        data {blob} NOT NULL,
        received_at {ts} NOT NULL,
        state VARCHAR(20) NOT NULL DEFAULT 'processed',
        route VARCHAR(40) NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        ticket_id INTEGER
    )""",
    # the same message delivered twice changes nothing: one row per Message-ID
    "CREATE UNIQUE INDEX raw_message_message_id ON raw_message (message_id)",
    "CREATE INDEX raw_message_state ON raw_message (state, received_at)",
    """CREATE TABLE ticket (
        id {pk},
        customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE RESTRICT,
        category VARCHAR(20) NOT NULL,
        subject VARCHAR(998) NOT NULL,
        description TEXT NOT NULL,
        order_id VARCHAR(100),
        status VARCHAR(20) NOT NULL,
        created_at {ts} NOT NULL,
        updated_at {ts} NOT NULL,
        resolved_at {ts},
        assignee_id INTEGER REFERENCES agent (id) ON DELETE SET NULL,
        linked_to_id INTEGER REFERENCES ticket (id) ON DELETE SET NULL
    )""",
    # a customer's requests, newest first, optionally one category
    "CREATE INDEX ticket_customer_category ON ticket (customer_id, category, created_at)",
    # the pending queue, optionally one category
    "CREATE INDEX ticket_status_category ON ticket (status, category, created_at)",
    """CREATE TABLE message (
        id {pk},
        ticket_id INTEGER NOT NULL REFERENCES ticket (id) ON DELETE CASCADE,
        kind VARCHAR(20) NOT NULL,
        author_email VARCHAR(320) NOT NULL DEFAULT '',
        agent_id INTEGER REFERENCES agent (id) ON DELETE SET NULL,
        body TEXT NOT NULL DEFAULT '',
        message_id VARCHAR(998),
        raw_id INTEGER REFERENCES raw_message (id) ON DELETE SET NULL,
        created_at {ts} NOT NULL
    )""",
    "CREATE INDEX message_ticket ON message (ticket_id, created_at)",
    "CREATE INDEX message_message_id ON message (message_id)",
    """CREATE TABLE attachment (
        id {pk},
        message_id INTEGER NOT NULL REFERENCES message (id) ON DELETE CASCADE,
        filename VARCHAR(255) NOT NULL DEFAULT '',
        content_type VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream',
        content_id VARCHAR(998),
        inline {bool} NOT NULL DEFAULT {false},
        size INTEGER NOT NULL DEFAULT 0,
        data {blob} NOT NULL
    )""",
    "CREATE INDEX attachment_message ON attachment (message_id)",
    """CREATE TABLE outbox (
        id {pk},
        event VARCHAR(30) NOT NULL,
        ticket_id INTEGER REFERENCES ticket (id) ON DELETE CASCADE,
        source_id INTEGER REFERENCES message (id) ON DELETE SET NULL,
        recipients TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '',
        automatic {bool} NOT NULL DEFAULT {true},
        state VARCHAR(20) NOT NULL DEFAULT 'queued',
        created_at {ts} NOT NULL,
        next_attempt_at {ts} NOT NULL,
        lease_until {ts},
        claimed_by VARCHAR(100) NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        message_id VARCHAR(998),
        data {blob},
        sent_at {ts}
    )""",
    # the worker's claim query: due rows in order
    "CREATE INDEX outbox_due ON outbox (state, next_attempt_at)",
    "CREATE INDEX outbox_ticket ON outbox (ticket_id)",
    # the hourly limit of automatic mail per address
    "CREATE INDEX outbox_recipients ON outbox (recipients, sent_at)",
    "CREATE INDEX outbox_message_id ON outbox (message_id)",
]


def up(run: Callable[[str], None]) -> None:
    """Run each statement; ``run`` fills in the dialect's {pk}, {ts}, {blob}, {bool} types."""
    for statement in STATEMENTS:
        run(statement)
