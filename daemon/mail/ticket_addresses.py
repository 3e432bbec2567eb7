"""Signed ticket addresses, and what a RCPT address is to us.

Ticket addresses are ``support+N.R.TOKEN@domain``: N the ticket id, R the role (``c``
customer, ``a`` agent), TOKEN the first 16 characters of the base32 HMAC-SHA256 of
``N.R`` under the server secret, checked in constant time.
"""

from __future__ import annotations

import base64
import enum
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from helpdeskd.domain import Category

Role = Literal["c", "a"]
TOKEN_LENGTH = 16


class RecipientKind(enum.StrEnum):
    SUPPORT = "support"  # the plain support address: a new request
    CATEGORY = "category"  # an extra address that implies a category (billing@)
    STATUS = "status"  # the status address: the customer wants a digest
    TICKET = "ticket"  # a ticket address with a valid token
    BAD_TOKEN = "bad_token"  # looks like a ticket address but the token is wrong
    NOT_OURS = "not_ours"  # some other address: refuse, we are no relay


@dataclass(frozen=True)
class RecipientMatch:
    kind: RecipientKind
    ticket_id: int | None = None
    role: Role | None = None
    category: Category | None = None


_TOKEN_BYTES = (TOKEN_LENGTH + 7) // 8 * 5
_DETAIL = re.compile(r"^([1-9][0-9]{0,17})\.([ca])\.([a-z2-7]+)$")


def ticket_token(ticket_id: int, role: Role, secret: bytes) -> str:
    """The TOKEN of a ticket address: truncated base32 HMAC-SHA256 of ``N.R``."""
    if not secret:
        raise ValueError("the ticket address secret must not be empty")
    if role not in ("c", "a"):
        raise ValueError(f"role must be 'c' or 'a', not {role!r}")
    if ticket_id <= 0:
        raise ValueError(f"ticket id must be positive, not {ticket_id}")
    digest = hmac.digest(secret, f"{ticket_id}.{role}".encode("ascii"), "sha256")  # one-shot: in C
    # base32 turns each 5 bytes into 8 characters: encode only the groups the token keeps
    return base64.b32encode(digest[:_TOKEN_BYTES]).decode("ascii").lower()[:TOKEN_LENGTH]


def ticket_address(local: str, domain: str, ticket_id: int, role: Role, secret: bytes) -> str:
    """``local+N.R.TOKEN@domain``, the signed address of ticket N for role R."""
    token = ticket_token(ticket_id, role, secret)
    return f"{local.lower()}+{ticket_id}.{role}.{token}@{domain.lower().rstrip('.')}"


def parse_recipient(
    addr: str,
    local: str,
    domain: str,
    secret: bytes,
    *,
    category_locals: Mapping[str, Category] | None = None,
    status_local: str | None = None,
    previous: Sequence[bytes] = (),
) -> RecipientMatch:
    """Classify a RCPT address: ours (which kind) or not. Case-insensitive. Never raises.
    A ticket address signed with ``secret`` or one of the ``previous`` secrets is good."""
    addr = addr.strip().strip("<>").strip().lower()
    rcpt_local, at, rcpt_domain = addr.rpartition("@")
    if not at or rcpt_domain.rstrip(".") != domain.lower().rstrip("."):
        return RecipientMatch(RecipientKind.NOT_OURS)
    local = local.lower()
    if rcpt_local == local:
        return RecipientMatch(RecipientKind.SUPPORT)
    if status_local and rcpt_local == status_local.lower():
        return RecipientMatch(RecipientKind.STATUS)
    for name, category in (category_locals or {}).items():
        if rcpt_local == name.lower():
            return RecipientMatch(RecipientKind.CATEGORY, category=category)
    if not rcpt_local.startswith(local + "+"):
        return RecipientMatch(RecipientKind.NOT_OURS)
    match = _DETAIL.match(rcpt_local[len(local) + 1 :])
    if not match or not secret:
        return RecipientMatch(RecipientKind.BAD_TOKEN)
    ticket_id = int(match.group(1))
    role: Role = "c" if match.group(2) == "c" else "a"
    given = match.group(3)
    if not any(hmac.compare_digest(ticket_token(ticket_id, role, key), given) for key in (secret, *previous) if key):
        return RecipientMatch(RecipientKind.BAD_TOKEN, ticket_id=ticket_id, role=role)
    return RecipientMatch(RecipientKind.TICKET, ticket_id=ticket_id, role=role)
