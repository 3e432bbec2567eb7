"""What a smarthost's refusal means beyond its first digit.

Providers answer with 5xx replies that are not about the mail at hand:

* a **sending limit** reached (Gmail ``550 5.4.5 Daily user sending limit exceeded``,
  Amazon SES ``554 Message rejected: Sending quota exceeded``, Microsoft 365
  ``554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException``): it is
  over in a day at most (RFC 3463 counts ``X.4.5``, congestion, as a persistent
  transient error), so the mail is kept, and the worker pauses;
* a **configuration** problem of the shop's account, the same for every mail (Microsoft
  365 ``SendAsDeniedException`` and ``5.7.60``, a sender address the provider has not
  verified, a refused ``MAIL FROM`` — the envelope sender is always the support address):
  failing each mail in turn with the same reply would lose them all while nobody is told,
  so the mail is kept, the worker pauses, and the log says what to fix.

A ``421`` reply closes the connection (RFC 5321 3.8): the way out is down for now.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = ["Meaning", "meaning"]


class Meaning(Enum):
    """Why a refusal concerns the way out rather than the mail."""

    LIMIT = "the smarthost's sending limit is reached"
    CONFIGURATION = "the smarthost refuses mail from this account (a configuration problem)"
    CLOSING = "the smarthost closed the connection"


_LIMIT = re.compile(
    r"(?<![\d.])[45]\.4\.5(?![\d.])"  # Gmail's daily limit, congestion (RFC 3463)
    r"|sending (?:quota|limit|rate)|daily (?:message )?quota|quotaexceeded"
    r"|daily (?:user )?(?:sending|smtp relay) limit|submission rate",
    re.I,
)
_CONFIGURATION = re.compile(
    r"sendasdenied|(?<![\d.])5\.7\.60(?![\d.])|(?<![\d.])5\.7\.57(?![\d.])"
    r"|does not have permissions? to send as|authentication required"
    r"|address is not verified|identities failed the check|sending paused|account (?:is )?(?:paused|suspended|disabled)"
    r"|relay(?:ing)? (?:access )?denied|not permitted to relay|unable to relay",
    re.I,
)
#: refusals of ``MAIL FROM`` about this mail's size or its options, not the sender
_ABOUT_THE_MAIL = re.compile(r"(?<![\d.])5\.3\.4(?![\d.])|(?<![\d.])5\.5\.4(?![\d.])|size|too (?:big|large)", re.I)


def meaning(code: int, message: str, stage: str) -> Meaning | None:
    """What the reply ``code message`` to ``stage`` (``MAIL``, ``RCPT``, ``DATA``) says
    of the way out, or None when it is about this mail alone."""
    if code == 421:
        return Meaning.CLOSING
    if _CONFIGURATION.search(message):
        return Meaning.CONFIGURATION
    if _LIMIT.search(message):
        return Meaning.LIMIT
    if stage == "MAIL" and code >= 500 and code != 552 and not _ABOUT_THE_MAIL.search(message):
        return Meaning.CONFIGURATION  # (the envelope sender is the same for every mail)
    return None
