"""Mail whose ``From`` a mailing list rewrote: who wrote it.

A list (Google Groups, Mailman 2.1 and 3, Sympa …) that passes on mail from a domain
publishing a strict DMARC policy (Yahoo, AOL, many companies) cannot keep the author's
``From``: the author's DKIM signature would no longer hold, and receivers would reject it.
So it writes its own address there, with the author's name and its own
(``'Ann Lee' via Support <support@lists.example>``, ``Ann Lee via Customers <…>``), and
names the author in ``X-Original-From`` (Google Groups) or ``Reply-To`` (Google Groups,
Mailman). A shop whose support address is such a group, relaying to helpdeskd, would
otherwise see every such customer as the list: refused as a stranger, or, being list mail,
kept as automatic and never seen.

The author counts only when the rewritten name names them: the words before `` via `` are
the author's name (or address, or its local part, which lists use for a mail without a
name). Taking the author from these headers trusts them as far as any ``From`` is trusted
(whoever could write them could as well have written the author's ``From``); where our
MTA must vouch for the author (``policy.authenticate_customers``,
``agents.require_authentication``) such mail never counts as theirs
(:mod:`helpdeskd.intake.authorship`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from helpdeskd.mail.addresses import MailboxResult, parse_single_mailbox

__all__ = ["VIA", "list_author"]

#: "'Ann Lee' via Support", "Ann Lee via Customers" (the words before " via ", the list's name)
VIA = re.compile(r"^\s*(?P<name>.+?)\s+via\s+\S.*$", re.I | re.S)


def _plain(name: str) -> str:
    """A name as compared: quotes around it dropped, case and spacing ignored."""
    return " ".join(name.strip().strip("'\"").split()).casefold()


def list_author(sender: MailboxResult, headers: Mapping[str, str],
                charset: str | Sequence[str] | None = None) -> MailboxResult | None:
    """The author of a mail whose ``From`` (``sender``) a mailing list rewrote, from its
    ``X-Original-From`` else its ``Reply-To``; None when ``From`` is the writer's own."""
    via = VIA.match(sender.name) if sender.addr and sender.name else None
    if via is None:
        return None
    written = _plain(via.group("name"))
    for header in ("x-original-from", "reply-to"):
        author = parse_single_mailbox(headers.get(header), charset) if headers.get(header) else None
        if author is None or author.addr is None or author.addr == sender.addr:
            continue
        if written in {_plain(author.name), author.addr, author.addr.rpartition("@")[0]} - {""}:
            return MailboxResult(author.addr, author.name or via.group("name").strip().strip("'\""), None)
    return None
