"""The vocabulary of a support request: categories, statuses, events. Pure, no I/O."""

from __future__ import annotations

import enum
import functools
import unicodedata
from collections.abc import Mapping

import idna

from helpdeskd.errors import BadAddress, InvalidRequest
from helpdeskd.mail.local_part import canonical_local, is_atext, unquoted, unusable_reason


class Category(enum.StrEnum):
    ORDER = "Order"  # order status, delivery, tracking
    PRODUCT = "Product"  # product quality, defects, returns
    ACCOUNT = "Account"  # account access, password, profile
    TECHNICAL = "Technical"  # website bugs, technical problems
    PAYMENT = "Payment"  # payments, refunds, billing
    GENERAL = "General"  # everything else


class Status(enum.StrEnum):
    PENDING = "Pending"  # awaiting support staff review
    IN_PROGRESS = "In Progress"  # being handled
    RESOLVED = "Resolved"  # resolved, response sent to the customer
    CANCELLED = "Cancelled"  # closed without resolution


class MessageKind(enum.StrEnum):
    """One entry of a request's conversation."""

    CUSTOMER = "customer"  # the customer's first message or a follow-up
    RESPONSE = "response"  # an agent's response, sent to the customer
    NOTE = "note"  # an internal note, never sent
    EVENT = "event"  # a change recorded by the system (status, cancellation ...)


class Event(enum.StrEnum):
    """Why an outbox row exists; each event has a template set of the same name."""

    CONFIRMATION = "confirmation"  # to the customer: we got your request
    NEW_REQUEST = "new_request"  # to the team: a new request arrived
    RESPONSE = "response"  # an agent's response, request stays open
    RESOLUTION = "resolution"  # an agent's response that resolves the request
    CANCELLATION = "cancellation"  # to the customer: the request was cancelled
    REOPENED = "reopened"  # to the team: a resolved request was reopened
    FOLLOW_UP = "follow_up"  # to the team: the customer added information
    STATUS_DIGEST = "status_digest"  # to a customer: the list of their requests
    COMMAND_RESULT = "command_result"  # to an agent: what their email commands did
    ANSWERED = "answered"  # to the team: what an agent wrote to the customer
    ASSIGNED = "assigned"  # to an agent: a colleague gave them the request
    UNDELIVERED = "undelivered"  # to the team: what an agent wrote the customer did not arrive
    PENDING_DIGEST = "pending_digest"  # to the team, daily: the requests awaiting review


#: Which status may follow which. Cancelled is final: a customer writing again
#: opens a new linked request instead.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.IN_PROGRESS, Status.RESOLVED, Status.CANCELLED}),
    Status.IN_PROGRESS: frozenset({Status.PENDING, Status.RESOLVED, Status.CANCELLED}),
    Status.RESOLVED: frozenset({Status.PENDING, Status.IN_PROGRESS, Status.RESOLVED}),
    Status.CANCELLED: frozenset(),
}


def can_transition(old: Status, new: Status) -> bool:
    return new in TRANSITIONS[old]


def parse_category(value: str, aliases: Mapping[str, str] | None = None) -> Category:
    """The category named by ``value`` (case-insensitive, aliases allowed).

    Raises InvalidRequest naming the field (``category: ...``) and the allowed values.
    """
    wanted = value.strip().casefold()
    for category in Category:
        if category.value.casefold() == wanted:
            return category
    for alias, target in (aliases or {}).items():
        if alias.casefold() == wanted:
            return parse_category(target)
    allowed = ", ".join(c.value for c in Category)
    raise InvalidRequest(f"category: unknown category {value!r}; allowed: {allowed}")


def parse_status(value: str) -> Status:
    """The status named by ``value``: ``In Progress``, ``in-progress`` and ``in_progress`` alike."""
    wanted = value.strip().casefold().replace("-", " ").replace("_", " ")
    for status in Status:
        if status.value.casefold() == wanted:
            return status
    allowed = ", ".join(s.value for s in Status)
    raise InvalidRequest(f"status: unknown status {value!r}; allowed: {allowed}")


def ascii_domain(domain: str) -> str:
    """``domain`` as DNS and most mail software write it, in IDNA A-labels (``münchen.de``
    is ``xn--mnchen-3ya.de``): one address has one form. Unchanged when it is ASCII, and
    when it is no valid internationalised domain name (callers refuse a result that
    is not ASCII).

    IDNA 2008 (the ``idna`` package), not Python's own ``idna`` codec: that one follows
    IDNA 2003, which maps ``straße.de`` to ``strasse.de`` (another registered domain) and
    drops soft hyphens and zero-width characters, so that mail for one domain would be
    taken for, and sent to, another's. Such characters make a name invalid here instead."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(unicodedata.normalize("NFC", domain.lower())).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain


def ascii_address(address: str) -> str:
    """``address`` in the one form kept of it: its local part lower-cased, in Unicode NFC
    and quoted only when it must be (:func:`canonical_local`), its domain lower-cased in
    A-labels (:func:`ascii_domain`). An address whose local part is not one (a stray
    quote) is only lower-cased."""
    local, at, domain = address.strip().rpartition("@")
    text = unquoted(local) if at else None
    if text is None:
        return address.strip().lower()
    return f"{canonical_local(text)}@{ascii_domain(domain.lower())}"


def normalize_email(value: str, field: str = "email") -> str:
    """A plain addr-spec in the form :func:`ascii_address` gives (``"John"@Example.org.``
    is ``john@example.org``); InvalidRequest naming ``field`` and the problem otherwise."""
    return _normalized(value, field)


@functools.lru_cache(maxsize=4096)
def _normalized(value: str, field: str) -> str:
    """:func:`normalize_email`, kept for the addresses met lately (the same customers
    write again; 4 µs each time): a refusal raises anew, it is not kept."""
    stripped = value.strip()
    if stripped.endswith(".") and not stripped.endswith(".."):  # the root of the DNS
        stripped = stripped[:-1]
    local, at, domain = stripped.rpartition("@")
    text = unquoted(local)
    if not at or text is None or (text is local and not all(c == "." or is_atext(c) for c in local)):
        hint = " (give the address alone, without a name or <>: ann@example.org)" if "<" in stripped else ""
        raise BadAddress(field, value, f"is not an email address{hint}")
    problem = unusable_reason(text)
    if problem:
        raise BadAddress(field, value, problem)
    email = ascii_address(stripped)
    domain = email.rpartition("@")[2]
    if not domain.isascii():
        raise BadAddress(field, value, "has a domain that is no valid internationalised domain name (IDNA 2008)")
    bad = set(' \t\r\n,;:<>()[]"\\@')  # (':' too: 'mailto:x@…' is no address)
    if (
        "." not in domain
        or domain.startswith(".")
        or domain.endswith(".")
        or ".." in domain
        or any(c in bad for c in domain)
        or len(email) > 320
    ):
        raise BadAddress(field, value, "is not an email address")
    return email
