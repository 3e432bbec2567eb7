"""Did our own mail server authenticate the sender? Reading ``Authentication-Results``.

An agent's reply counts only when its ``From:`` is a registered agent; with
``[agents] require_authentication`` it must also carry an ``Authentication-Results``
header (RFC 8601) written by one of *our* MTAs — named by its authserv-id in
``trusted_authserv_ids`` — that reports

- ``dkim=pass`` for a signing domain (``header.d``, else the domain of ``header.i``)
  aligned with the From domain, or
- ``spf=pass`` for an envelope sender (``smtp.mailfrom``) whose domain is aligned.

*Aligned* means the same domain, or one a subdomain of the other (``shop.example`` and
``mail.shop.example``), never a bare top-level name. That is DMARC's relaxed alignment
for a parent and its child; two sibling subdomains do not align here (telling their
organisational domain apart would need the Public Suffix List, a stricter rule needs
nothing).

Headers from any other authserv-id are ignored: anyone can write such a header, and
RFC 8601 §5 leaves it to the receiving MTA to remove forged copies of its own. A header
that does not parse is ignored too, so a broken header can only refuse a message,
never let one in. The parsing itself is done by the ``authres`` package (Apache-2.0),
the reference Python implementation of RFC 8601 that dkimpy uses.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import authres

log = logging.getLogger(__name__)

__all__ = ["AuthCheck", "aligned", "check_sender"]

#: longer header values are not parsed (no MTA writes one; a forger might)
MAX_HEADER_CHARS = 8192


@dataclass(frozen=True)
class AuthCheck:
    """The verdict on one message: ``passed``, and in words what passed or why nothing did."""

    passed: bool
    detail: str


def _clean_domain(value: str) -> str:
    return value.strip().strip("<>\"'").strip().rstrip(".").lower()


def aligned(domain: str, from_domain: str) -> bool:
    """Whether an authenticated ``domain`` vouches for the From domain ``from_domain``."""
    a, f = _clean_domain(domain), _clean_domain(from_domain)
    if not a or not f or "." not in a or "." not in f:
        return False
    return a == f or f.endswith("." + a) or a.endswith("." + f)


def _shown(domain: str) -> str:
    """A domain as it may appear in an SMTP reply: printable, and not too long."""
    clean = "".join(c if c.isprintable() and not c.isspace() else "?" for c in domain)
    return clean if len(clean) <= 64 else clean[:61] + "..."


def _domain_of(identity: str) -> str:
    """The domain of ``user@domain``, ``@domain`` or ``domain``."""
    return _clean_domain(identity.rpartition("@")[2])


def _property(result: authres.core.AuthenticationResult, ptype: str, name: str) -> str | None:
    for prop in result.properties:
        if (prop.type or "").lower() == ptype and (prop.name or "").lower() == name:
            return str(prop.value or "")
    return None


def _authenticated_domain(result: authres.core.AuthenticationResult) -> str | None:
    """The domain a passing DKIM or SPF result vouches for (None: not such a result)."""
    if (result.result or "").lower() != "pass":
        return None
    method = (result.method or "").lower()
    if method == "dkim":
        d = _property(result, "header", "d")
        i = _property(result, "header", "i")
        found = d if d else (_domain_of(i) if i else "")
        return _clean_domain(found) or None
    if method == "spf":
        mailfrom = _property(result, "smtp", "mailfrom")
        return _domain_of(mailfrom) if mailfrom else None
    return None


def _parse(value: str) -> authres.AuthenticationResultsHeader | None:
    if len(value) > MAX_HEADER_CHARS:
        return None
    try:
        return authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # noqa: BLE001 - any header we cannot read is simply not trusted
        log.debug("unparseable Authentication-Results header ignored", exc_info=True)
        return None


def check_sender(
    header_values: Iterable[str], from_addr: str, trusted_authserv_ids: Collection[str]
) -> AuthCheck:
    """Whether one of our MTAs reports a DKIM or SPF pass aligned with ``from_addr``.

    ``header_values`` are the raw ``Authentication-Results`` values (any order);
    ``trusted_authserv_ids`` the lower-cased authserv-ids of our own MTAs.
    """
    from_domain = _domain_of(from_addr)
    trusted = {t.lower() for t in trusted_authserv_ids}
    seen_trusted = False
    unaligned: list[str] = []
    for value in header_values:
        header = _parse(value)
        if header is None or (header.authserv_id or "").lower() not in trusted:
            continue
        seen_trusted = True
        for result in header.results:
            domain = _authenticated_domain(result)
            if domain is None:
                continue
            if aligned(domain, from_domain):
                method = result.method.lower()
                return AuthCheck(True, f"{method}=pass for {_shown(domain)} ({header.authserv_id})")
            unaligned.append(f"{result.method.lower()}=pass for {_shown(domain)}")
    if not seen_trusted:
        return AuthCheck(False, "it carries no Authentication-Results from our mail server")
    if unaligned:
        shown = ", ".join(unaligned[:3])
        return AuthCheck(False, f"{shown} does not match the sender's domain {_shown(from_domain)}")
    return AuthCheck(False, f"our mail server found no DKIM or SPF pass for {_shown(from_domain)}")
