"""The values a request is made of, as the customer gave them: its subject and
description (either may stand in for the other) and its order id."""

from __future__ import annotations

import re

from helpdeskd.errors import InvalidRequest
from helpdeskd.mail.reply_words import GREETINGS

__all__ = ["ORDER_ID_MAX", "SUBJECT_MAX", "clean_order_id", "required_order_id", "stored_subject",
           "subject_and_description"]

SUBJECT_MAX = 200
ORDER_ID_MAX = 100

#: a line that only greets ("Hello,", "Dear support team,", "Guten Tag"): no request's title
_GREETING = re.compile(rf"(?:{GREETINGS})\b[^.!?]{{0,40}}[,!:]?", re.IGNORECASE)


def subject_and_description(subject: str, description: str) -> tuple[str, str]:
    """Both trimmed; either may stand in for the other, but not both empty."""
    subject = " ".join(subject.split())
    description = description.strip()
    if not subject and not description:
        raise InvalidRequest("subject and description: both are empty")
    if not subject:
        lines = [" ".join(line.split()) for line in description.splitlines() if line.strip()]
        subject = next((line for line in lines[:5] if not _GREETING.fullmatch(line)), lines[0])
    subject = stored_subject(subject)
    return subject, description or subject


def stored_subject(subject: str) -> str:
    """``subject`` (on one line) as a request keeps it: cut to :data:`SUBJECT_MAX` characters."""
    return subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 1].rstrip() + "…"


def clean_order_id(value: str | None) -> str | None:
    """An order id without a leading ``#``; None for none; InvalidRequest when malformed."""
    if value is None:
        return None
    order = value.strip().lstrip("#")
    if not order:
        return None
    if any(c.isspace() for c in order):
        raise InvalidRequest(f"order_id: {value!r} is not an order id: it has white space (an order id is one word)")
    if len(order) > ORDER_ID_MAX:
        raise InvalidRequest(f"order_id: {value!r} is not an order id: it is {len(order)} characters; "
                             f"at most {ORDER_ID_MAX}")
    return order


def required_order_id(value: str) -> str:
    """An order id asked for by name (``--order``): as :func:`clean_order_id`, and one that
    is empty refused too, not taken for none."""
    order = clean_order_id(value)
    if order is None:
        why = "it is empty" if not value.strip() else "nothing follows the '#'"
        raise InvalidRequest(f"order_id: {value!r} is not an order id: {why}")
    return order


def valid_order_id(given: str | None) -> str | None:
    """``given`` as an order id, None when it cannot be one (an id read from mail's text)."""
    try:
        return clean_order_id(given)
    except InvalidRequest:
        return None
