"""Whether our MTA vouches for who wrote a mail (``policy.authenticate_customers``, and
``agents.require_authentication`` on a customer's address).

A mail counts as its ``From``'s author's when a trusted ``Authentication-Results`` line
shows DKIM or SPF passed, aligned with that ``From`` (:func:`check_sender`). Mail whose
``From`` a mailing list rewrote ("Ann via Customers" <list@…>, the author in
``Reply-To`` or ``X-Original-From``) never counts: the list signs its own ``From``, and
the author it names is its word only; a pass for the author's domain is anyone's at the
author's mail provider ("ann via Team" <eve@gmail.com>, signed by Gmail for gmail.com).
"""

from __future__ import annotations

from helpdeskd.config import Config
from helpdeskd.intake.route import Reject
from helpdeskd.mail.authres import AuthCheck, check_sender
from helpdeskd.mail.message import InboundMail

__all__ = ["unverified", "verdict", "vouched"]


def verdict(config: Config, mail: InboundMail, author: str | None = None) -> AuthCheck:
    """Whether our MTA vouches for ``author`` (the mail's ``From``, when not given), and in
    words what passed or why nothing did."""
    if mail.list_sender is not None and author is None:
        return AuthCheck(False, f"it came through the mailing list <{mail.list_sender}>, which rewrote its From")
    return check_sender(mail.authentication_results, author or mail.from_addr or "",
                        config.agents.trusted_authserv_ids)


def vouched(config: Config, mail: InboundMail) -> bool:
    """Whether our MTA vouches for the mail's author."""
    return verdict(config, mail).passed


def unverified(config: Config, mail: InboundMail) -> Reject | None:
    """With ``policy.authenticate_customers``, the refusal of a customer's mail whose
    author our MTA does not vouch for.

    Replies to the signed ticket address or naming a mail of ours are not checked: only
    the customer has those. The words are the same whether or not the mail names a
    request, so that they tell nobody whose request a number is. A contact form's mail
    (``mail.form_sender``) is checked by the form's own ``From``: what can be checked is
    that the form sent it, not who typed the customer's address into it.
    """
    if not config.policy.authenticate_customers:
        return None
    check = verdict(config, mail, mail.form_sender)
    if check.passed:
        return None
    author = mail.form_sender or mail.from_addr or ""
    return Reject(550, "5.7.1", f"Not accepted: our mail server could not confirm that this mail comes "
                  f"from <{author}> ({check.detail}); to add to a request, reply to our mail about it.")
