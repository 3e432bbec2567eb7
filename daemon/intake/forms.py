"""Mail from the shop's own contact forms.

A contact form (Shopify's, a WordPress plugin's ...) mails what a customer typed from the
form's own address, with ``Reply-To:`` the customer. Taken by its ``From:``, every such
mail would be refused as a stranger's under the ``registered`` policy (the request lost:
the form's platform gets the bounce), or under ``open`` all would be one customer, the
form. For the senders named in ``mail.form_senders`` the ``Reply-To`` is the writer.

That trusts the form's ``Reply-To`` as far as any ``From:`` is trusted: someone who
forges the form's address could as well forge the customer's.
"""

from __future__ import annotations

from dataclasses import replace

from helpdeskd.mail.addresses import parse_single_mailbox
from helpdeskd.mail.message import InboundMail

__all__ = ["written_by_reply_to"]


def written_by_reply_to(mail: InboundMail) -> InboundMail:
    """``mail`` as written by the one address of its ``Reply-To``; unchanged when that
    header is missing or names no single usable address (it is then the form's mail,
    and refused or kept as such) or the mail is automatic (a bounce the form's platform
    relays)."""
    if mail.auto_reason:
        return mail
    found = parse_single_mailbox(mail.headers.get("reply-to"))
    if found.addr is None:
        return mail
    return replace(mail, from_addr=found.addr, from_name=found.name, form_sender=mail.from_addr)
