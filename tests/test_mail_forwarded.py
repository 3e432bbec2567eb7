"""The original a forward carries (:mod:`helpdeskd.mail.forwarded`): table tests of the
pure parser, written forwards of each mail program and language, and real forwards from
the shared corpus."""

from __future__ import annotations

import random
from email.message import EmailMessage

import pytest
from helpdeskd.mail import forwarded as forwarded_module
from helpdeskd.mail.forwarded import ATTACHED, INLINE, forwarded, inline_original, read_author
from helpdeskd.mail.parse import parse_message

from tests.corpus import corpus_dir, corpus_entries
from tests.daemon_harness import wire_bytes

BODY = "The zipper broke on the second day.\nOrder A1234."

GMAIL = """Can someone take this? She called too.

---------- Forwarded message ---------
From: Zoe Miller <zoe@example.net>
Date: Mon, 5 Jan 2026 at 10:00
Subject: Broken zipper
To: Bob <bob@shop.test>


""" + BODY

GMAIL_FR = """Pour vous.

---------- Message transféré ---------
De : Zoe Miller <zoe@example.net>
Date: lun. 5 janv. 2026 à 10:00
Subject: Broken zipper
To: <bob@shop.test>

""" + BODY

OUTLOOK = """Please handle.

Bob
________________________________
From: Zoe Miller <zoe@example.net>
Sent: Monday, January 5, 2026 10:00 AM
To: Bob Smith <bob@shop.test>
Subject: Broken zipper

""" + BODY

OUTLOOK_MAILTO = """Please handle.

-----Original Message-----
From: Zoe Miller [mailto:zoe@example.net]
Sent: Monday, January 5, 2026 10:00 AM
To: Bob Smith
Subject: Broken zipper

""" + BODY

OUTLOOK_DE = """Bitte übernehmen.

________________________________
Von: Zoe Miller <zoe@example.net<mailto:zoe@example.net>>
Gesendet: Montag, 5. Januar 2026 10:00
An: Bob <bob@shop.test>
Betreff: Kaputter Reißverschluss

""" + BODY

OUTLOOK_TOP = """From: Zoe Miller <mailto:zoe@example.net>
Sent: Monday, January 5, 2026 10:00 AM
To: Bob
Subject: Broken zipper

""" + BODY

APPLE = """For you.

Begin forwarded message:

From: Zoe Miller <zoe@example.net>
Subject: Broken zipper
Date: 5 January 2026 at 10:00:00 CET
To: bob@shop.test

""" + BODY

APPLE_QUOTED = "For you.\n\n> Begin forwarded message:\n>\n> From: Zoe Miller <zoe@example.net>\n" \
    "> Subject: Broken zipper\n> Date: 5 January 2026 at 10:00:00 CET\n> To: bob@shop.test\n>\n" \
    + "\n".join(f"> {line}" for line in BODY.split("\n"))

THUNDERBIRD = """

-------- Forwarded Message --------
Subject: \tBroken zipper
Date: \tMon, 5 Jan 2026 10:00:00 +0100
From: \tZoe Miller <zoe@example.net>
To: \tBob <bob@shop.test>, Carol
 <carol@shop.test>

""" + BODY

THUNDERBIRD_ES = """Para ti.

-------- Mensaje reenviado --------
Asunto: \tBroken zipper
Fecha: \tMon, 5 Jan 2026 10:00:00 +0100
De: \tZoe Miller <zoe@example.net>
Para: \tBob <bob@shop.test>

""" + BODY

OUTLOOK_NL = """Graag oppakken.

________________________________
Van: Zoe Miller <zoe@example.net>
Verzonden: maandag 5 januari 2026 10:00
Aan: Bob <bob@shop.test>
Onderwerp: Broken zipper

""" + BODY

OUTLOOK_FR = """Merci.

________________________________
De : Zoe Miller <zoe@example.net>
Envoyé : lundi 5 janvier 2026 10:00
À : Bob <bob@shop.test>
Objet : Broken zipper

""" + BODY


@pytest.mark.parametrize(
    ("text", "note", "subject"),
    [
        (GMAIL, "Can someone take this? She called too.", "Broken zipper"),
        (GMAIL_FR, "Pour vous.", "Broken zipper"),
        (OUTLOOK, "Please handle.\n\nBob", "Broken zipper"),
        (OUTLOOK_MAILTO, "Please handle.", "Broken zipper"),
        (OUTLOOK_DE, "Bitte übernehmen.", "Kaputter Reißverschluss"),
        (OUTLOOK_TOP, "", "Broken zipper"),
        (APPLE, "For you.", "Broken zipper"),
        (APPLE_QUOTED, "For you.", "Broken zipper"),
        (THUNDERBIRD, "", "Broken zipper"),
        (THUNDERBIRD_ES, "Para ti.", "Broken zipper"),
        (OUTLOOK_NL, "Graag oppakken.", "Broken zipper"),
        (OUTLOOK_FR, "Merci.", "Broken zipper"),
    ],
    ids=["gmail", "gmail-fr", "outlook", "outlook-mailto", "outlook-de", "outlook-top", "apple", "apple-quoted",
         "thunderbird", "thunderbird-es", "outlook-nl", "outlook-fr"],
)
def test_inline_forwards(text: str, note: str, subject: str) -> None:
    found = inline_original(text)
    assert found is not None
    words, original = found
    assert (words, original.author, original.name, original.subject) == (note, "zoe@example.net", "Zoe Miller", subject)
    assert original.text == BODY and original.form == INLINE and original.automatic is None


@pytest.mark.parametrize(
    "text",
    [
        "My parcel did not arrive.",
        # a quote, no forward
        "Yes.\n\nOn Mon, 5 Jan 2026 at 10:00, Zoe <zoe@example.net> wrote:\n> Is it shipped?",
        # a separator with no header block under it
        "See below.\n\n---------- Forwarded message ---------\nThe zipper broke.",
        # several authors, or none, in From
        GMAIL.replace("Zoe Miller <zoe@example.net>", "zoe@example.net, ann@example.org"),
        GMAIL.replace("Zoe Miller <zoe@example.net>", "Zoe Miller"),
        # a header block in the middle of the text, with no separator above it
        "Please handle.\nFrom: Zoe <zoe@example.net>\nSent: Monday\nTo: Bob\nSubject: Zipper\n\nBroken.",
    ],
    ids=["plain", "reply", "separator-only", "several-authors", "no-address", "block-without-separator"],
)
def test_no_inline_forward(text: str) -> None:
    assert inline_original(text) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Zoe Miller <zoe@example.net>", ("zoe@example.net", "Zoe Miller")),
        ("Zoe Miller [mailto:Zoe@Example.net]", ("zoe@example.net", "Zoe Miller")),
        ("Zoe Miller <mailto:zoe@example.net>", ("zoe@example.net", "Zoe Miller")),
        ("Zoe Miller <zoe@example.net<mailto:zoe@example.net>>", ("zoe@example.net", "Zoe Miller")),
        ("zoe@example.net", ("zoe@example.net", "")),
        ("*Zoe Miller* <zoe@example.net>", ("zoe@example.net", "Zoe Miller")),
        ("\"Miller, Zoe\" <zoe@example.net>", ("zoe@example.net", "Miller, Zoe")),
        ("zoe@example.net, ann@example.org", None),
        ("Zoe Miller", None),
        ("", None),
    ],
)
def test_read_author(value: str, expected: tuple[str, str] | None) -> None:
    assert read_author(value) == expected


@pytest.mark.parametrize(
    ("author", "subject", "automatic"),
    [
        ("MAILER-DAEMON@mx.example.net", "Undelivered Mail Returned to Sender", "sent by a mailer daemon"),
        ("no-reply@shop.example", "Your order", "a no-reply sender"),
        ("zoe@example.net", "Automatic reply: Broken zipper", "automatic reply subject"),
    ],
)
def test_an_automatic_original_is_said_so(author: str, subject: str, automatic: str) -> None:
    found = inline_original(GMAIL.replace("Zoe Miller <zoe@example.net>", author).replace(
        "Subject: Broken zipper", f"Subject: {subject}"))
    assert found is not None and found[1].automatic == automatic


def _original(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Zoe Miller <zoe@example.net>"
    msg["To"] = "bob@shop.test"
    msg["Subject"] = "Broken zipper"
    msg["Message-ID"] = "<zipper-1@example.net>"
    msg["Date"] = "Mon, 05 Jan 2026 10:00:00 +0100"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(BODY)
    msg.add_attachment(b"\xff\xd8 a photo", maintype="image", subtype="jpeg", filename="zipper.jpg")
    return msg


def _attached(note: str, *originals: EmailMessage) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bob <bob@shop.test>"
    msg["To"] = "support@shop.test"
    msg["Subject"] = "Fw: Broken zipper"
    msg.set_content(note)
    for original in originals:
        msg.add_attachment(original)
    return wire_bytes(msg)


def test_attached_forward() -> None:
    found = forwarded(parse_message(_attached("Can someone take this?\n\n-- \nBob, Shop", _original())))
    assert found is not None
    original = found.original
    assert found.note == "Can someone take this?"
    assert (original.author, original.name, original.subject, original.message_id, original.form) == (
        "zoe@example.net", "Zoe Miller", "Broken zipper", "zipper-1@example.net", ATTACHED)
    assert original.text == BODY and original.date is not None and original.date.hour == 10
    assert [(a.filename, a.data) for a in original.attachments] == [("zipper.jpg", b"\xff\xd8 a photo")]
    assert original.automatic is None


def test_attached_html_only_original_is_read_as_text() -> None:
    html = EmailMessage()
    html["From"] = "zoe@example.net"
    html["Subject"] = "Broken zipper"
    html.set_content("<p>The zipper <b>broke</b>.</p>", subtype="html")
    found = forwarded(parse_message(_attached("", html)))
    assert found is not None and found.note == "" and found.original.text == "The zipper broke."


def test_attached_automatic_original_is_said_so() -> None:
    found = forwarded(parse_message(_attached("FYI", _original(Auto_Submitted="auto-replied"))))
    assert found is not None and found.original.automatic == "Auto-Submitted: auto-replied"


def test_several_attached_mails_are_no_forward_of_one_customer() -> None:
    other = _original()
    other.replace_header("From", "ann@example.org")
    assert forwarded(parse_message(_attached("Two of them", _original(), other))) is None


def test_html_only_outlook_forward() -> None:
    """Outlook's HTML: a rule above the block, no blank line between the block and the text."""
    msg = EmailMessage()
    msg["From"] = "bob@shop.test"
    msg["Subject"] = "FW: Broken zipper"
    msg.set_content(
        '<div>Please handle.</div><div id="appendonsend"></div><hr style="display:inline-block;width:98%">'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> Zoe Miller &lt;zoe@example.net&gt;'
        "<br><b>Sent:</b> Monday, January 5, 2026 10:00 AM<br><b>To:</b> Bob &lt;bob@shop.test&gt;<br>"
        "<b>Subject:</b> Broken zipper</font><div>&nbsp;</div></div><div>The zipper broke.</div>", subtype="html")
    found = forwarded(parse_message(wire_bytes(msg)))
    assert found is not None and found.note == "Please handle."
    assert (found.original.author, found.original.subject, found.original.text) == (
        "zoe@example.net", "Broken zipper", "The zipper broke.")


def test_inline_forward_keeps_the_forwards_files() -> None:
    msg = EmailMessage()
    msg["From"] = "bob@shop.test"
    msg["Subject"] = "Fwd: Broken zipper"
    msg.set_content(GMAIL)
    msg.add_attachment(b"photo", maintype="image", subtype="png", filename="zipper.png")
    found = forwarded(parse_message(wire_bytes(msg)))
    assert found is not None and [a.filename for a in found.original.attachments] == ["zipper.png"]


# --- real forwards nobody here wrote (the shared corpus) ----------------------------------


@pytest.mark.parametrize(
    ("file", "form", "author", "name", "subject", "starts"),
    [
        ("discourse_email_reply_trimmer/emails/forwarded_gmail.txt", INLINE, "foo@discourse.org",
         "Foo Discourse", "This email is going to be forwarded", "Lorem ipsum dolor sit amet"),
        ("discourse_email_reply_trimmer/emails/forwarded_apple.txt", INLINE, "foo@discourse.org",
         "Foo Discourse", "This email is going to be forwarded", "Lorem ipsum dolor sit amet"),
        ("discourse_email_reply_trimmer/emails/forwarded_message.txt", INLINE, "foo@bar.com",
         "Some One", "Some subject that spans over 2 lines", "This is a forwarded email."),
        ("django_helpdesk/utf-nondecodable.eml", INLINE, "nikola@example.cz", "Nikola",
         "Cyklozaměstnavatel - změna vyhodnocení", "Ahoj Johne,"),
        ("mailgun_flanker/multi-received-headers.eml", INLINE, "hello@example.com", "Hello",
         "Fwd: Please forward this email to me", "---------- Forwarded message ----------"),
        ("mikel_mail/mime_emails/raw_email2.eml", INLINE, "xxxxxxxx@xxx.com", "xxxxx xxxxxx",
         "Signed email causes file attachments", "Hi,"),
        ("mikel_mail/attachment_emails/attachment_message_rfc822.eml", ATTACHED, "xxxx@xxxx.com",
         "Test Tester", "Another PDF", "Just attaching another PDF"),
        ("mimekit/messages/simple-embedded-message.eml", ATTACHED, "mimekit@example.com", "",
         "embedded message", "This is the embedded message body."),
        ("php_mime_mail_parser/issue158a", ATTACHED, "example@example.com", "Example Name", "Test 5",
         "An original PLAIN TEXT message body"),
    ],
)
def test_corpus_forwards(file: str, form: str, author: str, name: str, subject: str, starts: str) -> None:
    data = (corpus_dir() / file).read_bytes()
    if file.endswith(".txt"):  # (bodies without headers: the forward's text as a mail program sent it)
        data = b"From: bob@shop.test\nSubject: Fwd\nContent-Type: text/plain; charset=utf-8\n\n" + data
    found = forwarded(parse_message(data))
    assert found is not None
    original = found.original
    assert (original.form, original.author, original.name, original.subject) == (form, author, name, subject)
    assert original.text.startswith(starts), original.text[:80]
    assert original.automatic is None


def test_the_quick_look_for_an_author_line_misses_none() -> None:
    """Mail with no line naming an author is not read line by line; the quick look finds
    every line the header block's reading takes for a From (corpus texts, and lines built
    of quote marks, stars, spaces, names and colons)."""
    texts = [parse_message((corpus_dir() / e.file).read_bytes()).text for e in corpus_entries()] if corpus_dir().is_dir() else []
    rng = random.Random(7)
    pieces = [">", " ", "*", "\u00a0", "\t", "From", "FROM", "from", "Von", "De", "van", "Från", "От", "To", "Subject",
              ":", "\uff1a", "x", "ann@example.org", "\n", "> >", "**", "Fromage"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(20000)]
    found = 0
    for text in texts:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if any(forwarded_module._field(line)[0] == "from" for line in lines):
            found += 1
            assert forwarded_module._names_author("\n".join(lines)), repr(text[:200])
    assert found > 1000  # (the lines built name an author often enough to tell)
