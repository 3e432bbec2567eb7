"""The hourly limit on confirmations to new customers, all addresses together
(``outbound.new_customer_confirmations_per_hour``).

Under ``policy.customers = "open"`` a mail from an address the shop never heard from makes
a customer and a request, and the confirmation goes to that address. Spam forged in the
names of a thousand addresses would so have the shop mail a thousand people who never
wrote (backscatter, which gets a shop's domain listed as a spam source); the hourly limit
per address does not bound it. Beyond this limit the request is opened and the team told
as always; only the confirmation is recorded, not sent. A customer made more than an
hour ago costs no statement more.

Counted, and held back beyond the limit, are the confirmations not held back (queued,
sent, failed …) of the requests of customers made in the last hour, the first request or
a later one: a forger who has a forged address made a customer by one mail would
otherwise have the next mail in its name confirmed as a known customer's (within the
hourly limit per address, ten mails to each victim). On PostgreSQL the count is taken
under one advisory lock for all new customers (:func:`helpdeskd.store.db.lock_words`),
held until the transaction ends: two daemons, or one's two store processes, count one
after the other, and together they send no more than the limit. So new customers' mail
is stored one group at a time across daemons (older customers' never waits for it); two groups that hold this lock and
a request's (or a repeat's) in opposite order are the writer's "gave way" case (run again
alone). SQLite's ``BEGIN IMMEDIATE`` runs one writer at a time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from helpdeskd.domain import Event
from helpdeskd.outbound.states import SUPPRESSED
from helpdeskd.store import statements
from helpdeskd.store.db import lock_words

KEY = "outbound.new_customer_confirmations_per_hour"
#: what the log line of a message whose confirmation this limit held back says
HELD_OVER_LIMIT = f"confirmation held back: over {KEY}"
#: the limit's window
HOUR = timedelta(hours=1)
#: the words of the advisory lock the count is taken under
_LOCK = "helpdeskd confirmations to new customers"


class FirstContact:
    """For :meth:`~helpdeskd.service.Helpdesk.create_request` (``first_contact``): called
    with the time and when the request's customer was made, it says why the confirmation
    is held back ("" when it goes), and keeps that in :attr:`held`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = ""

    def __call__(self, now: datetime, customer_made: datetime | None) -> str:
        if self.limit <= 0 or customer_made is None or customer_made < now - HOUR:  # (0: no limit)
            return ""
        lock_words(_LOCK)
        if confirmations_to_new_customers(now, self.limit) < self.limit:
            return ""
        self.held = (f"not sent: {self.limit} confirmations went to new customers' addresses in the last hour "
                     f"(the limit {KEY}); mail from many new addresses at once may be forged in their names "
                     "(spam); the team was told of the request; outbox retry sends this confirmation")
        return self.held


def confirmations_to_new_customers(now: datetime, upto: int) -> int:
    """The confirmations not held back of the requests of the customers made in the last
    hour, counted up to ``upto`` (one cached statement)."""
    return statements.confirmations_to_new_customers(now - HOUR, upto, Event.CONFIRMATION.value, SUPPRESSED)
