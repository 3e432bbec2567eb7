"""The verdict of the shop's spam filter, as the headers it adds to a message say.

helpdeskd filters no spam itself: the MTA in front of it does (SpamAssassin, rspamd), and
says what it found in headers of its own. A message it marked as spam would open a
request, and send its confirmation to whatever address the spammer wrote in ``From:``
(backscatter, which gets a shop's domain listed as a spam source): the intake keeps such
a message in quarantine instead, where an admin can reprocess a false positive.

Read: SpamAssassin's ``X-Spam-Flag: YES`` and ``X-Spam-Status: Yes, score=…``, rspamd's
``X-Spam: Yes``. The filters remove such headers from the mail they receive (SpamAssassin
does, rspamd with ``remove_upstream_spam_flag``, its default), so one a sender wrote
never reaches us; one that did would only put the sender's own mail in quarantine.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SPAM_HEADERS", "spam_verdict"]

#: the headers read, lowercased, each with the first word that says "spam"
SPAM_HEADERS: dict[str, str] = {"x-spam-flag": "yes", "x-spam-status": "yes", "x-spam": "yes"}


def spam_verdict(headers: Mapping[str, str]) -> str | None:
    """``"X-Spam-Flag: YES"`` (the header as the filter wrote it, one line, at most 200
    characters) when a spam filter's header marks the message as spam; None otherwise.
    ``headers``: lowercased names, each with its first value (``InboundMail.headers``)."""
    for name, word in SPAM_HEADERS.items():
        value = headers.get(name)
        if value is None:
            continue
        first = value.replace(",", " ").split(maxsplit=1)
        if first and first[0].lower() == word:
            shown = "-".join(part.capitalize() for part in name.split("-"))
            return f"{shown}: {' '.join(value.split())}"[:200]
    return None
