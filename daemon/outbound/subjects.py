"""The subject of a mail about one request names that request once.

Mail that comes in has its ``[Ticket #N]`` tags and reply prefixes removed from the
subject it gives a request; a subject typed on the command line
(``helpdeskd create --subject "Re: [Ticket #12] Parcel"``) keeps them, and the template's
own tag before it would read ``[Ticket #13] Re: [Ticket #12] Parcel``: two requests in
one subject, and a reply prefix in the middle. :func:`one_ticket_tag` keeps the first tag
(the template's) and drops the later ones with the reply prefixes that stood before them.
"""

from __future__ import annotations

from helpdeskd.mail.tags import TICKET_TAG, strip_prefixes

__all__ = ["one_ticket_tag"]


def one_ticket_tag(subject: str) -> str:
    """``subject`` (on one line) with only its first ``[Ticket #N]`` tag."""
    first = TICKET_TAG.search(subject)
    if first is None or not TICKET_TAG.search(subject, first.end()):
        return subject
    rest = strip_prefixes(TICKET_TAG.sub(" ", subject[first.end():]))
    return " ".join(f"{subject[: first.end()]} {rest}".split())
