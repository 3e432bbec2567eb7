"""Finding requests by their order id and by the words of their text (``helpdeskd list
--order``, ``--search``), alike on SQLite and PostgreSQL.

A word is found in a request when its subject, its description or one of its conversation
entries (the customer's mails, the responses, the internal notes, the recorded changes
with a cancellation's reason) contains it, letters in any case: both are compared after
:func:`fold` (Unicode NFC, then lower case: "MÜLLER" and "Müller" are one, "ß" is not
"ss"). ``%`` and ``_`` are letters like any other.

SQLite's ``LIKE`` folds only ASCII letters, and what PostgreSQL's ``lower`` and ``ILIKE``
fold depends on the database's locale (only ASCII under ``C``; a Turkish one lowers "I"
to "ı"). So the database is asked only for the requests that can match: those with the
word's ASCII characters in order, each run of other characters standing for any text
(``Müller`` asks for ``%m%ller%``), compared with ASCII folding on both engines
(PostgreSQL: ``COLLATE "C"``). Python then reads those requests' text and keeps the ones
that match, newest first, until it has as many as asked for. A word with no ASCII
character at all ("Привет") narrows nothing in SQL: every request is read.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import peewee as pw

from helpdeskd.errors import InvalidRequest
from helpdeskd.store.db import is_sqlite
from helpdeskd.store.models import Customer, Message, Ticket

__all__ = ["SEARCH_MAX", "TextSearch", "fold", "matching_requests", "order_condition", "order_matches"]

#: the longest ``--search`` taken, in characters (SQLite refuses a LIKE pattern over 50,000 bytes)
SEARCH_MAX = 1000
#: requests whose text Python reads at once
_CHUNK = 500
#: what ends or opens a word in a sentence, and is no part of what is looked for ("arrived,")
_SENTENCE_MARKS = ".,;:!?\"'()[]{}<>«»‹›„“”‚‘’¡¿…"
#: the ASCII characters :func:`fold` makes of a non-ASCII one ("İ" is "i" and a dot above, the
#: Kelvin sign "k", the Greek question mark ";", the Greek varia "`"): the database's text
#: may hold the non-ASCII one where the folded word has these
_FOLDED_INTO = frozenset("ik;`")
#: the words of a search the database narrows by (the others only Python checks)
_NARROWING = 3


def fold(text: str) -> str:
    """``text`` as it is compared: composed (NFC: "u" and a combining diaeresis are "ü"), in
    lower case."""
    return unicodedata.normalize("NFC", text).lower()


@dataclass(frozen=True)
class TextSearch:
    """What ``--search`` looks for: its words (folded), each to be found somewhere in a request."""

    words: tuple[str, ...]

    @classmethod
    def of(cls, text: str, field: str) -> TextSearch:
        """The words of ``text`` (split at white space, each once, without the marks of a
        sentence at their ends: a line pasted from a mail); InvalidRequest naming ``field``
        for none or for text over :data:`SEARCH_MAX` characters."""
        if len(text) > SEARCH_MAX:
            raise InvalidRequest(f"{field}: {len(text)} characters is over the {SEARCH_MAX} a search may have")
        words = tuple(dict.fromkeys(w for w in (w.strip(_SENTENCE_MARKS) for w in fold(text).split()) if w))
        if not words:
            raise InvalidRequest(f"{field}: {text!r} has no word to look for")
        return cls(words)

    def condition(self) -> pw.Expression | None:
        """What the database keeps: the requests where the ASCII skeleton of each of the
        :data:`_NARROWING` words with the most ASCII characters is found (each is a pass over
        all the text: a pasted sentence is not twenty; Python checks every word); None when
        no word has an ASCII character: nothing to narrow by."""
        found: pw.Expression | None = None
        anchored = sorted((w for w in self.words if _ascii_count(w)), key=_ascii_count, reverse=True)
        for word in anchored[:_NARROWING]:
            pattern = _skeleton(word)
            where = _like(Ticket.subject, pattern) | _like(Ticket.description, pattern)
            where |= Ticket.id.in_(Message.select(Message.ticket).where(_like(Message.body, pattern)))
            found = where if found is None else found & where
        return found

    def found_in(self, texts: list[str]) -> bool:
        """Whether each word is in one of ``texts`` (subject, description, entries)."""
        folded = [fold(t) for t in texts]
        return all(any(word in text for text in folded) for word in self.words)


def order_condition(order: str) -> pw.Expression:
    """What the database keeps for requests about order ``order`` (a clean order id, see
    :func:`helpdeskd.request_fields.clean_order_id`): an ASCII one exactly, letters in any
    case; another (rare: the order tags of mail are ASCII) by its skeleton, for
    :func:`order_matches` to decide. (Not indexed: reading every request's order id took
    7-10 ms at 20,000 requests, 20-50 ms with descriptions of 5 KB, beside the ~0.5 s a
    command takes to start.)"""
    if order.isascii():
        return pw.fn.LOWER(_ascii_folded(Ticket.order_id)) == order.lower()
    return _like(Ticket.order_id, _skeleton(fold(order), anchored=True))


def order_matches(stored: str | None, order: str) -> bool:
    """Whether a request's order id ``stored`` is ``order``, letters in any case."""
    return stored is not None and fold(stored) == fold(order)


def matching_requests(
    candidates: pw.ModelSelect, order: str | None, search: TextSearch | None, limit: int | None
) -> list[Ticket]:
    """The first ``limit`` of ``candidates`` (requests, newest first) about order ``order``
    (:func:`order_matches`) whose text ``search`` finds; their text is read a few hundred
    requests at a time, and only the ones kept are made into requests with their customer."""
    ids = [t for (t,) in candidates.select(Ticket.id).order_by(Ticket.created_at.desc(), Ticket.id.desc()).tuples()]
    found: list[Ticket] = []
    for chunk in _chunks(ids):
        texts: dict[int, list[str]] = {}
        for ticket_id, stored_order, subject, description in Ticket.select(
            Ticket.id, Ticket.order_id, Ticket.subject, Ticket.description
        ).where(Ticket.id.in_(chunk)).tuples():
            if order is None or order_matches(stored_order, order):
                texts[ticket_id] = [subject, description]
        if search is not None and texts:
            for ticket_id, body in Message.select(Message.ticket, Message.body).where(
                Message.ticket.in_(list(texts))
            ).tuples():
                texts[ticket_id].append(body)
        kept = [t for t in chunk if t in texts and (search is None or search.found_in(texts[t]))]
        if limit is not None:
            kept = kept[: limit - len(found)]
        if kept:  # (one gone meanwhile, a customer forgotten, is left out)
            rows = {t.id: t for t in Ticket.select(Ticket, Customer).join(Customer).where(Ticket.id.in_(kept))}
            found.extend(rows[t] for t in kept if t in rows)
        if limit is not None and len(found) >= limit:
            break
    return found


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _ascii_count(word: str) -> int:
    return sum(c.isascii() for c in word)


def _skeleton(word: str, *, anchored: bool = False) -> str:
    """The ``LIKE`` pattern of ``word`` (folded): its ASCII characters (``%``, ``_`` and
    ``\\`` escaped), each run of others ``%`` (any text: "ü" may be written "u" and a
    combining mark, "Ü", ...); within text unless ``anchored``."""
    parts: list[str] = []
    wild = False  # (the last part is a wildcard)
    for char in word:
        if char in _FOLDED_INTO:  # (the stored letter may be "İ" or the Kelvin sign: any one)
            parts.append("_")
            wild = False
        elif char.isascii():
            parts.append("\\" + char if char in "\\%_" else char)
            wild = False
        elif not wild:
            parts.append("%")
            wild = True
    if anchored:
        return "".join(parts)
    if parts[:1] != ["%"]:
        parts.insert(0, "%")
    if not wild:
        parts.append("%")
    return "".join(parts)


def _like(column: pw.Field, pattern: str) -> pw.Expression:
    """``column`` matches ``pattern`` with ASCII letters in any case, others as they are,
    on both engines (PostgreSQL's ``ILIKE`` under the "C" collation folds as SQLite's
    ``LIKE`` does, whatever the database's locale)."""
    rhs = pw.NodeList((pw.Value(pattern, converter=False), pw.SQL("ESCAPE"), pw.Value("\\", converter=False)))
    return pw.Expression(_ascii_folded(column), pw.OP.ILIKE, rhs)


def _ascii_folded(column: pw.Field) -> pw.Node:
    """``column`` for ``lower`` and ``ILIKE`` to fold only its ASCII letters, as SQLite's do."""
    return column if is_sqlite() else pw.NodeList((column, pw.SQL('COLLATE "C"')))
