"""Our own mail come back: the warning an admin needs.

Mail from helpdeskd's own address (a ``From:`` that is support@, the status, a team's or
a category's address, a request's reply address), or carrying our header, Message-ID or
``X-Loop``, is kept and answered by nothing (:mod:`helpdeskd.mail.loops`): an answer would
come back too, and loop. Nobody is mailed about it either: the team's notice would go
where our mail goes, and when that is the way our mail comes back (the team's address an
alias that includes support@), it would come back as well. What is left is the log: one
warning line a message, naming the likely cause, which only a mail admin can mend.
"""

from __future__ import annotations

from helpdeskd.mail.message import InboundMail

#: how :func:`helpdeskd.mail.loops.automatic_reason` and the intake name such mail
CAME_BACK = "our own mail came back"


def came_back(mail: InboundMail, reason: str, support: str) -> str:
    """The warning for ``mail``, automatic for ``reason``, when it is our own mail come back
    (``support``: the support address, named as where a forward may point); "" otherwise.
    It is logged once the message is stored (:meth:`~helpdeskd.intake.process.Outcome.log_after_commit`)."""
    if not reason.startswith(CAME_BACK):
        return ""
    why = reason.removeprefix(CAME_BACK).strip(" ()") or "our header"
    return (
        f"Message-ID {mail.message_id or '-'}, subject {mail.subject[:200]!r}, is our own mail come back ({why}; "
        f"{_last_hop(mail)}): kept, no request opened and nothing sent, so that it cannot loop. Most likely a "
        f"forward or an alias sends mail of ours back to helpdeskd (a customer's or the team's mailbox forwarding "
        f"to {support}, an alias that includes one of helpdeskd's addresses), or a mail program sends as one of them"
    )


def _last_hop(mail: InboundMail) -> str:
    """Whence the mail came to us, as the topmost ``Received`` line says ("received from
    mx.example.net (… [192.0.2.1])"), or that none says it."""
    received = " ".join(mail.headers.get("received", "").split())
    hop = received.split(" by ", 1)[0].split(";", 1)[0].strip()[:200]
    if not hop.startswith("from "):
        return "no Received line says whence it came"
    return "received " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in hop)  # (nothing rewrites the log)
