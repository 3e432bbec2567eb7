"""Whether an agent's reply is nothing but their signature block: Outlook, Outlook on the
web and Apple Mail add the signature without a ``-- `` line, so a reply of commands only,
or Reply then Send, ends in one. Such a block is the agent's name first (after a closing
at most; a title may follow on its line) and a company signature's lines; a sentence to
the customer, or a postscript, makes it an answer."""

from __future__ import annotations

import re
from collections.abc import Sequence

from helpdeskd.mail.strip import QUOTE
from helpdeskd.outbound.context import greeted, greets

__all__ = ["only_a_signature"]

#: the most lines a signature block has (a name, a title, a company, two lines of address,
#: telephone, web, a legal notice of several lines)
_SIGNATURE_LINES = 16
#: the words of a closing before a name on its line ("Best, Bob", "Viele Grüße, Bob")
_CLOSING_WORDS = frozenset("""
best regards thanks thank cheers sincerely yours kind warm warmest kindest many greetings rgds br
grüße grüßen gruß gruss danke viele freundlichen herzliche cordialement merci salutations amitiés
saludos atentamente gracias cordiali saluti distinti grazie groeten bedankt hälsningar mvh cumprimentos obrigado
""".split())
#: what separates a name from a title after it on one line ("Bob Stone | Support")
_TITLE_AFTER = re.compile(r"\s*[|,(/–—·•]\s*|\s+-\s+")
#: a sentence to the customer ("The refund went out today."): five words or more, ending
#: as a sentence ends...
_SENTENCE = re.compile(r"^\S+(?:\s+\S+){4,}.*[.!?]$")
#: ...but for a signature's legal notice
_LEGAL = re.compile(
    r"confidential|intended|recipient|privileged|disclaimer|registered|registergericht|vertraulich|"
    r"empfänger|geschäftsführer|confidentiel|destinataire|confidencial|destinatario|riservat",
    re.IGNORECASE,
)
#: a postscript below the name is the agent's words: "P.S.", "PS:", "P.P.S."
_POSTSCRIPT = re.compile(r"(?:p\.?\s?){1,2}s\b", re.IGNORECASE)
#: a short answer, not a closing, when it opens a reply with a comma after it ("Yes,\nBob")
_ANSWER_WORDS = frozenset(
    "yes no ok okay sure done yep nope yeah correct right agreed confirmed absolutely fixed sent "
    "ja nein oui non si sí".split()
)


def only_a_signature(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` is nothing but the agent's signature block: its first line is the
    agent's name (after a closing like "Best regards," at most; perhaps with a title after
    it: "Bob Stone | Customer Care"), and what follows is a company signature's (title,
    company, address, telephone, web, a legal notice: at most :data:`_SIGNATURE_LINES`
    lines), with no postscript and no sentence to the customer."""
    lines = [line.strip() for line in text.split("\n") if line.strip() and not QUOTE.match(line)]
    if not lines or len(lines) > _SIGNATURE_LINES or any(_POSTSCRIPT.match(line) for line in lines):
        return False
    closing = lines[0].endswith(",") and len(lines[0].split()) <= 4 and not greets(lines[0])
    if closing and {w.strip(",.!").casefold() for w in lines[0].split()} <= _ANSWER_WORDS:
        closing = False  # "Yes," answers the customer
    first = 1 if len(lines) > 1 and closing else 0
    if not any(_is_the_name(lines[first], name) for name in names):
        return False
    return not any(_SENTENCE.search(line) and not _LEGAL.search(line) for line in lines[first + 1 :])


def _is_the_name(line: str, name: str) -> bool:
    """Whether ``line`` is ``name`` (whole, or its given name alone), alone or before a
    title: "Bob Stone", "Bob", "Bob Stone | Customer Care", "Bob Stone, Support"; not
    "Bob here", "Will send a replacement today"."""
    wanted = str(greeted(name)).casefold().split()
    closing, comma, after = line.partition(",")
    if comma and set(closing.casefold().replace("!", " ").split()) & _CLOSING_WORDS:  # "Best, Bob" on one line
        line = after
    head = _TITLE_AFTER.split(line.strip(), maxsplit=1)[0].strip(" .!").split()
    if not wanted or [w.casefold() for w in head] in (wanted, wanted[:1]):
        return bool(wanted)
    # the name we know and a family name after it ("Bob" known, "Bob Stone" signed), not "Bob here"
    known = len(wanted)
    return ([w.casefold() for w in head[:known]] == wanted and 0 < len(head) - known <= 2
            and all(w[:1].isupper() for w in head[known:]))
