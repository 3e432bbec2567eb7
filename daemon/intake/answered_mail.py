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
without a word; :func:`copies_our_mail` tells a reply that is only such a copy (nothing
typed above it, nothing for the stripper to find) from an answer that opens with words of
ours.

:func:`keep_customer_quotes` is what an inline reply keeps of its ``>`` quotes for the
customer: the lines quoting the customer's own words on the request, and those quoting
none of our mails and team's words (the agent's own quote of a policy), never a quoted
line of our notice (its facts, separators, how to answer).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence

import peewee as pw
from helpdeskd.domain import MessageKind
from helpdeskd.mail.html import html_to_text
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.attribution import attribution_end
from helpdeskd.mail.strip import FENCE, QUOTE, SEPARATOR
from helpdeskd.mail.unquoted_original import answers_inside_original, header_block_start
from helpdeskd.store.models import Agent, Message, Outbox, Ticket

__all__ = [
    "agent_marks", "answered_row", "answers_inside_our_mail", "comments_in_history", "copies_our_mail",
    "for_the_customer", "keep_customer_quotes", "our_mail_answered",
]

#: a line this long is telling enough to be looked for in the mails we sent
_TELLING = 24
#: the share of a reply's text (in characters) a copy of one of our mails is made of
_MOSTLY = 0.8


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
    return tuple(_texts_of(bytes(row.data)))


def _texts_of(data: bytes) -> list[str]:
    """The texts of our mail ``data``: its plain part, and its HTML part as text."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    texts: list[str] = []
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        if part is not None:
            content = str(part.get_content())  # type: ignore[attr-defined]
            texts.append(html_to_text(content) if kind == "html" else content)
    return texts


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


def copies_our_mail(ticket_id: int, text: str) -> bool:
    """Whether ``text`` is a copy of a mail we sent about request ``ticket_id`` (an
    Outlook-style reply with nothing typed above its unquoted history reads as new text):
    its first telling line is our mail's own wording (not the customer's or an agent's
    words on the request, which an agent may paste or say again) and most of it is in
    that mail. An answer that only opens with words of ours ("Thank you for contacting
    Example Shop.", our confirmation's first words) is the agent's."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    first = next((line for line in lines if len(line) >= _TELLING), "")
    if not first:
        return False
    sent = (
        Outbox.select(Outbox.data)
        .where((Outbox.ticket == ticket_id) & Outbox.data.is_null(False))
        .order_by(Outbox.id.desc())
        .limit(10)
    )
    for row in sent:
        message = email.message_from_bytes(bytes(row.data), policy=email.policy.default)
        part = message.get_body(("plain",))
        ours = " ".join(str(part.get_content()).split()) if part is not None else ""  # type: ignore[attr-defined]
        if first not in ours:
            continue
        if _mostly_in(lines, ours) and not _words_on_the_request(ticket_id, first):
            return True
    return False


def _mostly_in(lines: list[str], ours: str) -> bool:
    """Whether most of ``lines`` (by characters) are in ``ours``; stops at the first
    lines too many that are not (a long answer is not searched to its end)."""
    allowed = (1 - _MOSTLY) * sum(len(line) for line in lines)
    missing = 0
    for line in lines:
        if line not in ours:
            missing += len(line)
            if missing > allowed:
                return False
    return True


def _words_on_the_request(ticket_id: int, line: str) -> bool:
    """Whether ``line`` is in what a customer or an agent wrote on request ``ticket_id``."""
    bodies = Message.select(Message.body).where(Message.ticket == ticket_id)
    return any(line in " ".join(row.body.split()) for row in bodies)


#: outbox states of a mail that went to nobody: never rendered when suppressed by a limit,
#: or failed before it was (helpdeskd.outbound.outbox's names)
_NEVER_WRITTEN = frozenset({"suppressed", "failed"})
#: an address (a request's own, ``support+12.a.TOKEN@``, or one of a quoted mail's header)
_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
#: the quote marks at the start of a line that :data:`helpdeskd.mail.strip.QUOTE` reads as quoted
_QUOTE_MARKS = re.compile(r"^\s*(?:[A-Za-z]{1,3})?>[\s>]*")


def for_the_customer(ticket_id: int, text: str) -> str:
    """``text`` with the quotes of our mails and of the team's words on request
    ``ticket_id`` left out, unless they quote the customer's own words: what the agent
    quoted from elsewhere (a line of the shop's policy, the carrier's answer) stays."""
    if not any(QUOTE.match(line) for line in text.split("\n")):
        return text
    ticket = Ticket.get_by_id(ticket_id)
    follow_ups = Message.select(Message.body).where(
        (Message.ticket == ticket_id) & (Message.kind == MessageKind.CUSTOMER.value)
    )
    return keep_customer_quotes(text, [ticket.description, *(row.body for row in follow_ups)], _ours(ticket_id))


def _ours(ticket_id: int) -> list[str] | None:
    """The texts of our mails about request ``ticket_id`` (the plain part, the HTML part as
    text) and the team's words on it (notes, responses, changes); None when a mail of
    ours is without its text, not yet written (rendered just before it is sent) or no
    longer kept (pruned): a quote of it could not be told from the agent's own."""
    texts = [row.body for row in Message.select(Message.body).where(
        (Message.ticket == ticket_id) & (Message.kind != MessageKind.CUSTOMER.value))]
    rows = Outbox.select(Outbox.data, Outbox.state).where(Outbox.ticket == ticket_id).tuples()
    for data, state in rows:
        if data is None:
            if state in _NEVER_WRITTEN:
                continue  # (nobody read it)
            return None
        texts += _texts_of(bytes(data))
    return texts


def keep_customer_quotes(text: str, customer_words: Sequence[str], ours: Sequence[str] | None = None) -> str:
    """``text`` with each ``>`` quoted line kept only when it quotes ``customer_words``,
    or, with ``ours`` (our mails and the team's words), when it quotes none of ``ours``.

    A quoted line quotes words when what it holds (without its ``>`` marks, whitespace
    normalised) is found, as whole words, in one of them, however the lines were
    wrapped; a run of quoted lines quotes none of ``ours`` when :func:`_from_elsewhere`
    says so (a run mixing both keeps only the customer's words). An empty quoted line
    stays only between kept ones. Unquoted lines, and everything in a code fence, are
    the sender's and stay as they are; only the blank lines a dropped quote leaves
    behind go.
    """
    said = "\n".join(" ".join(words.split()) for words in customer_words)
    known = None if ours is None else "\n".join(" ".join(words.split()) for words in ours)
    lines = text.split("\n")
    out: list[str] = []
    in_code = dropped = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if in_code or FENCE.match(line) or not QUOTE.match(line):
            if FENCE.match(line):
                in_code = not in_code
            if line.strip():
                out.append(line)
                dropped = False
            elif not (dropped and (not out or not out[-1].strip())):
                out.append(line)  # the sender's blank line, not one left by a dropped quote
            i += 1
            continue
        end = i
        while end < len(lines) and QUOTE.match(lines[end]):
            end += 1
        kept = _kept_quotes(lines[i:end], said, known)
        out.extend(kept)
        dropped = not kept
        i = end
    return text if out == lines else "\n".join(out).rstrip()


def _kept_quotes(block: list[str], said: str, ours: str | None) -> list[str]:
    """The lines of one run of quoted lines that quote the customer's words, or (with
    ``ours``) none of ours."""
    words = [" ".join(_QUOTE_MARKS.sub("", line, count=1).split()) for line in block]
    keep = [bool(w) and _found(w, said) for w in words]
    if not any(keep) and ours is not None and _from_elsewhere(words, ours):
        keep = [bool(w) for w in words]
    if not any(keep):
        return []
    first, last = keep.index(True), len(keep) - 1 - keep[::-1].index(True)
    kept: list[str] = []
    for j in range(first, last + 1):
        if keep[j]:
            kept.append(block[j])
        elif not words[j] and kept and _QUOTE_MARKS.sub("", kept[-1], count=1).strip():
            kept.append(block[j])  # one empty quoted line between kept ones
    return kept


def _from_elsewhere(words: list[str], ours: str) -> bool:
    """Whether a run of quoted lines (``words``: each line's, normalised) is what the agent
    quoted from elsewhere: none of its lines is in ``ours`` (our mails, the team's words),
    names an address, or introduces or separates quoted mail (``On …, Ann wrote:``,
    ``-----Original Message-----``), which mail programs put inside a quote."""
    lines = [w for w in words if w]
    return bool(lines) and not any(
        _found(w, ours) or _ADDRESS.search(w) or SEPARATOR.match(w) or attribution_end([w], 0) is not None
        for w in lines
    )


def _found(words: str, said: str) -> bool:
    """Whether ``words`` occur in ``said`` as whole words (not inside a longer word)."""
    before = r"(?<!\w)" if words[0].isalnum() or words[0] == "_" else ""
    after = r"(?!\w)" if words[-1].isalnum() or words[-1] == "_" else ""
    return re.search(before + re.escape(words) + after, said) is not None
