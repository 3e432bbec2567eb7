"""Answers written inside the copy of our mail that a reply carries, and the marks Outlook
puts on them.

Outlook quotes the mail being answered without ``>`` marks, below a
``From:/Sent:/To:/Subject:`` block; an agent answering our team notice there, or a
customer our response, leaves answers the stripper takes for history. The mail
answered is ours — the reply's ``In-Reply-To`` (else its last ``References`` id) names
an outbox row of the request, whose rendered bytes we keep — so the copy can be compared
with it (:func:`helpdeskd.mail.unquoted_original.answers_inside_original`) and the reply
read as the ``>`` inline reply it is. A reply to a mail we cannot find there (not ours,
another request's, not rendered) is read as before.

:func:`comments_in_history` is what is left for that case: comments Outlook marked
``[Name]`` inside a copy we could not compare, which an agent's reply must not drop
without a word.
"""

from __future__ import annotations

import email
import email.policy

import peewee as pw
from helpdeskd.mail.html import html_to_text
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.unquoted_original import answers_inside_original, header_block_start
from helpdeskd.store.models import Agent, Outbox

__all__ = ["agent_marks", "answered_row", "answers_inside_our_mail", "comments_in_history", "our_mail_answered"]


def answered_row(ticket_id: int, mail: InboundMail, *fields: pw.Field) -> Outbox | None:
    """``fields`` of our outbox row about request ``ticket_id`` that ``mail`` answers (its
    ``In-Reply-To``, else its last ``References`` id); None when it answers none of ours."""
    wanted = mail.in_reply_to or (mail.references[-1] if mail.references else None)
    if not wanted:
        return None
    return Outbox.select(*fields).where((Outbox.ticket == ticket_id) & (Outbox.message_id == wanted[:998])).first()


def our_mail_answered(ticket_id: int, mail: InboundMail) -> tuple[str, ...]:
    """The texts (the plain part, the HTML part as text) of the mail about request
    ``ticket_id`` that ``mail`` answers; () when it answers none of ours we have."""
    row = answered_row(ticket_id, mail, Outbox.data)
    if row is None or row.data is None:
        return ()
    message = email.message_from_bytes(bytes(row.data), policy=email.policy.default)
    texts: list[str] = []
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        if part is not None:
            content = str(part.get_content())  # type: ignore[attr-defined]
            texts.append(html_to_text(content) if kind == "html" else content)
    return tuple(texts)


def answers_inside_our_mail(ticket_id: int, mail: InboundMail, marks: tuple[str, ...] = ()) -> str | None:
    """``mail``'s text as a ``>`` inline reply when its sender added lines inside the
    unquoted copy of our mail on request ``ticket_id``; None when it did not (or the mail
    answered is not one of ours we have): read it as before. ``marks``: see
    :func:`agent_marks`."""
    text = mail.text if mail.text.strip() else html_to_text(mail.html or "")
    if not (mail.in_reply_to or mail.references) or header_block_start(text.split("\n")) is None:
        return None  # (the common case, without a look at the database)
    originals = our_mail_answered(ticket_id, mail)
    return answers_inside_original(text, originals, marks) if originals else None


def agent_marks(mail: InboundMail) -> tuple[str, ...]:
    """The names an agent's comments may be marked with (Outlook's "[Bob Stone] ..."):
    the display name, the address's local part, the name we know the agent by."""
    names = {n for n in (mail.from_name.strip(), (mail.from_addr or "").split("@")[0]) if n}
    if mail.from_addr:
        found = Agent.get_or_none(Agent.email == mail.from_addr)
        if found is not None and found.name.strip():
            names.add(found.name.strip())
    return tuple(sorted(names, key=len, reverse=True))


def comments_in_history(mail: InboundMail, kept: str) -> str:
    """The first line the agent marked as theirs (``[Name] ...``, as Outlook marks inline
    comments) in the part of the reply that stripping removed; "" when there is none."""
    marks = tuple(f"[{name}]" for name in agent_marks(mail))
    kept_lines = {line.strip() for line in kept.split("\n")}
    for line in mail.text.split("\n"):
        line = line.strip()
        at = min((line.find(m) for m in marks if m in line), default=-1)
        if at >= 0 and line not in kept_lines:
            return line[at : at + 60]
    return ""
