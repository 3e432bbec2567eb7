"""The states of an outbox row (one module, so that the outbox and the hourly limit share them)."""

from __future__ import annotations

QUEUED, SENDING, SENT, FAILED, SUPPRESSED = "queued", "sending", "sent", "failed", "suppressed"
#: sent, and then a delivery report said it never arrived
BOUNCED = "bounced"
STATES = (QUEUED, SENDING, SENT, FAILED, BOUNCED, SUPPRESSED)
