"""Who an outgoing mail goes to and where a reply to it goes: its ``To`` and ``Reply-To``.

:func:`helpdeskd.outbound.views.build_mail` addresses every mail it sends with
:func:`addressed`, and ``helpdeskd templates preview`` shows the same headers above a
sample mail.
"""

from __future__ import annotations

from collections.abc import Sequence

from helpdeskd.config import Config
from helpdeskd.domain import Event
from helpdeskd.mail.ticket_addresses import ticket_address

Recipient = str | tuple[str, str]  # an address, or (display name, address)


def addressed(
    config: Config,
    event: Event,
    ticket_id: int | None,
    recipients: Sequence[str],
    recipient_name: str | None,
    *,
    to_agents: bool,
) -> tuple[list[Recipient], str | None]:
    """The ``To`` and ``Reply-To`` of a mail about request ``ticket_id`` (None: a digest).

    A reply goes to the request's signed address, the agents' (``to_agents``: a mail to
    the team or an agent) or the customer's; a status digest's to the status address (a
    reply brings the list again), a pending digest's to the team it went to. A customer
    alone in ``To`` is named (``recipient_name``); the team's and agents' mail names no one.
    """
    mail = config.mail
    secret = mail.secret.encode("utf-8")
    reply_to = None
    if ticket_id is not None and secret:
        reply_to = ticket_address(mail.support_local, mail.domain, ticket_id, "a" if to_agents else "c", secret)
    elif event == Event.STATUS_DIGEST:  # a reply asks for the list again, it opens no request
        reply_to = mail.status_address
    elif event == Event.PENDING_DIGEST:  # a reply reaches the colleagues, it opens no request
        reply_to = recipients[0]
    to: list[Recipient] = list(recipients)
    if not to_agents and recipient_name and len(to) == 1:
        to = [(recipient_name, recipients[0])]
    return to, reply_to
