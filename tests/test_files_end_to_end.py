"""Files, end to end: a customer's and an agent's files through a real daemon.

A customer's mail goes by SMTP to a daemon on 127.0.0.1; what the team and the customer
received is read from a real SMTP sink, as their mail programs read it, and what the
admin gets from ``helpdeskd show`` and ``helpdeskd attachment``. Every file must come
out byte for byte as it went in, under a name that is readable and safe.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import re
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage, Message
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.store.models import Attachment, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr, people
from tests.daemon_harness import RunningDaemon, make_mail
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.sink import Sink
from tests.test_cli import Admin

SUPPORT, TEAM = "support@shop.test", "team@shop.test"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 5 + b"\xff\xd9"
HEAD = (b"From: Ann <ann@example.org>\r\nTo: support@shop.test\r\nSubject: Broken blender\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe files are attached.\r\n")


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


@pytest.fixture
def admin(tmp_path: Path, db_url: str, desk: Desk) -> Admin:
    """The command line on the desk's database (its people are the desk's)."""
    return Admin(tmp_path, db_url)


def mail_with(*parts: bytes) -> bytes:
    """A customer's mail: a line of text, then ``parts`` (each its headers, a blank line, its body)."""
    return HEAD + b"".join(b"--b\r\n" + part + b"\r\n" for part in parts) + b"--b--\r\n"


def part(ctype: str, data: bytes, disposition: str | None = "attachment; filename=\"f.bin\"") -> bytes:
    head = f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n"
    if disposition is not None:
        head += f"Content-Disposition: {disposition}\r\n"
    return head.encode() + b"\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n")


def files_of(msg: Message) -> list[tuple[str | None, str, bytes]]:
    """(name, type, bytes) of each file a received mail carries."""
    return [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
            for p in msg.walk() if p.get_content_disposition() in ("attachment", "inline") and not p.is_multipart()]


def stored() -> list[tuple[str, str, bytes]]:
    return [(a.filename, a.content_type, bytes(a.data)) for a in Attachment.select().order_by(Attachment.id)]


def send_new(desk: Desk, raw: bytes | EmailMessage) -> EmailMessage:
    """Send a new request; the team's notice of it."""
    before = len(desk.sink.received)
    code, text = desk.daemon.send(raw, CUSTOMER, [SUPPORT])
    assert code == 250, text
    return desk.mail_to(TEAM, after=before)


def saved(admin: Admin, tmp_path: Path, attachment_id: int) -> bytes:
    out = tmp_path / f"saved-{attachment_id}"
    admin.outside("attachment", str(attachment_id), "--output", str(out))
    return out.read_bytes()


# -- the files a shop's customers send ---------------------------------------------------------


def test_every_kind_of_file_reaches_the_team_and_the_admin_byte_for_byte(
    desk: Desk, admin: Admin, tmp_path: Path
) -> None:
    """Photos, invoices, iPhone HEIC, a calendar invite, a zip of logs, a voice memo, a
    spreadsheet sent as application/octet-stream, names in other scripts, two files of
    one name, the same file twice, a file with no name: each is stored, listed by
    ``show``, saved by ``attachment`` and carried by the team's notice unchanged."""
    logs = io.BytesIO()
    with zipfile.ZipFile(logs, "w") as archive:
        archive.writestr("app.log", "ERROR blender motor stalled\n" * 50)
    sent = [
        ("IMG_0412.jpg", "image/jpeg", JPEG),
        ("Rechnung Nr. 12 – März.pdf", "application/pdf", PDF),
        ("IMG_0413.HEIC", "image/heic", b"\x00\x00\x00\x18ftypheic" + bytes(range(200))),
        ("invite.ics", "text/calendar", b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"),
        ("logs.zip", "application/zip", logs.getvalue()),
        ("Voice Memo 3.m4a", "audio/mp4", b"\x00\x00\x00\x20ftypM4A " + bytes(300)),
        ("orders.xlsx", "application/octet-stream", b"PK\x03\x04" + bytes(range(100))),
        ("写真 (1).jpg", "image/jpeg", JPEG[::-1]),
        ("שובר.pdf", "application/pdf", PDF[:100]),
        ("IMG_0412.jpg", "image/jpeg", JPEG + b"second"),
        ("IMG_0412.jpg", "image/jpeg", JPEG),
    ]
    msg = make_mail(subject="Broken blender", body="Photos and the invoice attached.")
    for name, ctype, data in sent:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    msg.add_attachment(b"no name at all", maintype="application", subtype="octet-stream")
    notice = send_new(desk, msg)

    expected = [*sent, ("attachment-12.bin", "application/octet-stream", b"no name at all")]
    assert stored() == expected
    assert files_of(notice) == expected
    listing = text_of(notice)
    for name, ctype, data in expected:
        assert f"  - {name} ({ctype}, " in listing
    shown = admin.outside("show", str(Ticket.get().id)).stdout
    ids = [a.id for a in Attachment.select().order_by(Attachment.id)]
    for file_id, (name, ctype, data) in zip(ids, expected, strict=True):
        assert f"[attachment {file_id}: {name} ({ctype}, {len(data)} bytes)]" in shown
        assert saved(admin, tmp_path, file_id) == data


def test_files_however_the_mail_program_labels_them_arrive_unchanged(desk: Desk) -> None:
    """A PDF marked inline or with no Content-Disposition (its name on Content-Type only),
    base64 in lines of odd lengths or all on one line or without its padding, everything
    as application/octet-stream as some webmails send it."""
    odd = base64.b64encode(PDF).decode()
    odd_lines = "\r\n".join(odd[i:i + 57] for i in range(0, len(odd), 57)).encode()
    raw = mail_with(
        part("application/pdf", PDF, "inline"),
        part('application/pdf; name="no-disposition.pdf"', PDF, None),
        b"Content-Type: application/pdf; name=\"odd-lines.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + odd_lines,
        b"Content-Type: image/jpeg; name=\"one-line.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(JPEG),
        b"Content-Type: image/jpeg; name=\"no-padding.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(JPEG + b"x").rstrip(b"="),
        part("application/octet-stream", JPEG, 'attachment; filename="photo.jpg"'),
    )
    notice = send_new(desk, raw)
    expected = [
        ("attachment-1.pdf", "application/pdf", PDF),
        ("no-disposition.pdf", "application/pdf", PDF),
        ("odd-lines.pdf", "application/pdf", PDF),
        ("one-line.jpg", "image/jpeg", JPEG),
        ("no-padding.jpg", "image/jpeg", JPEG + b"x"),
        ("photo.jpg", "application/octet-stream", JPEG),
    ]
    assert stored() == expected
    assert files_of(notice) == expected


def test_a_file_encoded_in_pieces_arrives_whole(desk: Desk, admin: Admin, tmp_path: Path) -> None:
    """Some programs encode a file in pieces, each with its own base64 padding (``==`` in
    the middle of the part). The standard library's decoder stops at the first padding:
    the invoice was stored, shown and sent to the team cut to its first piece."""
    pieces = b"\r\n".join(base64.b64encode(PDF[i:i + 700]) for i in range(0, len(PDF), 700))
    assert b"=\r\n" in pieces  # (padding inside, not only at the end)
    raw = mail_with(b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + pieces)
    notice = send_new(desk, raw)
    assert stored() == [("invoice.pdf", "application/pdf", PDF)]
    assert files_of(notice) == [("invoice.pdf", "application/pdf", PDF)]
    assert saved(admin, tmp_path, Attachment.get().id) == PDF


def test_a_list_footer_after_a_files_end_is_no_part_of_the_file(desk: Desk) -> None:
    """Text after the file's padding that is not base64 pieces is not decoded into the file."""
    raw = mail_with(b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(PDF).replace(b"\n", b"\r\n")
                    + b"\r\n-- \r\nThanks\r\n")
    send_new(desk, raw)
    assert stored() == [("a.pdf", "application/pdf", PDF)]


# -- a mail the customer forwarded ------------------------------------------------------------

CARRIER = (b"From: Carrier <noreply@carrier.example>\r\nTo: ann@example.org\r\n"
           b"Subject: Your parcel\r\n is delayed\r\nMessage-ID: <inner@carrier.example>\r\n"
           b"DKIM-Signature: v=1; a=rsa-sha256; d=carrier.example;\r\n\tb=c2lnbmF0dXJl\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + "Paket 123 ist verspätet.\r\n".encode())


def test_a_forwarded_mail_is_kept_as_it_was_sent(desk: Desk, admin: Admin, tmp_path: Path) -> None:
    """"Forward as attachment": the carrier's mail, as the customer's program sent it. It
    was stored written again with LF line ends (its DKIM signature no longer the mail's)."""
    raw = mail_with(b"Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"Your parcel.eml\"\r\n"
                    b"\r\n" + CARRIER)
    notice = send_new(desk, raw)
    assert stored() == [("Your parcel.eml", "message/rfc822", CARRIER)]
    assert saved(admin, tmp_path, Attachment.get().id) == CARRIER
    (name, ctype, data), = files_of(notice)  # (8-bit: it goes as an .eml file)
    assert (name, data) == ("Your parcel.eml", CARRIER)


def test_a_forwarded_mail_encoded_in_base64_reaches_the_team_as_the_mail_it_is(desk: Desk) -> None:
    """RFC 2046 allows a message/rfc822 part no base64, yet some programs encode it: the
    parser read the base64 text as the mail, and the team got an .eml of base64 lines
    with no headers, which their program showed as an empty mail."""
    raw = mail_with(b"Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(CARRIER).replace(b"\n", b"\r\n"))
    notice = send_new(desk, raw)
    assert stored() == [("fwd.eml", "message/rfc822", CARRIER)]
    (name, ctype, data), = files_of(notice)
    assert (name, data) == ("fwd.eml", CARRIER)
    inner = email.message_from_bytes(data, policy=email.policy.default)
    assert inner["Subject"] == "Your parcel is delayed"


# -- names -----------------------------------------------------------------------------------


def test_names_that_hide_what_a_file_is_are_made_plain(desk: Desk) -> None:
    """A run of spaces pushed the real extension out of sight ("invoice.pdf      ….exe");
    a name of dots only (``..``) was kept as the file's name; a long name was cut at 200
    characters with its extension, so no program opened the file."""
    long_name = "Bestellung-" + "1234567890" * 30 + ".pdf"
    raw = mail_with(
        part("application/pdf", PDF, 'attachment; filename="invoice.pdf' + " " * 60 + '.txt"'),
        part("application/pdf", PDF, 'attachment; filename=".."'),
        part("application/pdf", PDF, f'attachment; filename="{long_name}"'),
    )
    notice = send_new(desk, raw)
    names = [name for name, _, _ in stored()]
    assert names[:2] == ["invoice.pdf .txt", "attachment-2.pdf"]
    assert names[2] == long_name[:196] + ".pdf"
    assert [name for name, _, _ in files_of(notice)] == names


def test_a_winmail_dat_file_name_cannot_read_backwards(desk: Desk) -> None:
    """Outlook's winmail.dat names its files itself; a right-to-left override in such a
    name ("invoice\\u202efdp.exe", shown as "invoiceexe.pdf") reached the team's notice."""
    from tests.test_tnef import (ATT_ATTACH_DATA, ATT_ATTACHMENT, MESSAGE_ATTRS, PR_ATTACH_LONG_FILENAME, attr,
                                 props, rend_data, stream, unicode_prop)
    attachment_level = 2
    tnef = stream(*MESSAGE_ATTRS, rend_data(), attr(attachment_level, ATT_ATTACH_DATA, PDF),
                  attr(attachment_level, ATT_ATTACHMENT,
                       props(unicode_prop(PR_ATTACH_LONG_FILENAME, "invoice\u202efdp.txt"))))
    raw = mail_with(part("application/ms-tnef", tnef, 'attachment; filename="winmail.dat"'))
    notice = send_new(desk, raw)
    assert [(name, data) for name, _, data in stored()] == [("invoice_fdp.txt", PDF)]
    for text in (text_of(notice), text_of(notice, "html"), notice.as_string()):
        assert "\u202e" not in text
    assert "invoice_fdp.txt (" in text_of(notice)


# -- what is dangerous to open -----------------------------------------------------------------


def zip_of(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"content of " + name.encode())
    return buffer.getvalue()


def test_programs_stay_on_the_server_and_the_notice_still_arrives(desk: Desk, admin: Admin, tmp_path: Path) -> None:
    """An .exe labelled image/jpeg, a script in a .zip: Gmail refuses a mail carrying one
    (the team would never hear of the request), and in the notice it was one click from
    running. They are listed with the command that fetches them; the rest goes along."""
    exe = b"MZ\x90\x00" + bytes(200)
    harmless = zip_of("logs/app.log", "screenshot.png")
    raw = mail_with(
        part("image/jpeg", exe, 'attachment; filename="photo.exe"'),
        part("application/zip", zip_of("docs/readme.txt", "docs/setup.js"), 'attachment; filename="docs.zip"'),
        part("application/octet-stream", exe, 'attachment; filename="update.SCR."'),
        part("application/zip", harmless, 'attachment; filename="logs.zip"'),
        part("image/jpeg", JPEG, 'attachment; filename="photo.jpg"'),
    )
    notice = send_new(desk, raw)
    assert [name for name, _, _ in stored()] == ["photo.exe", "docs.zip", "update.SCR.", "logs.zip", "photo.jpg"]
    assert files_of(notice) == [("logs.zip", "application/zip", harmless), ("photo.jpg", "image/jpeg", JPEG)]
    listing = text_of(notice)
    ids = [a.id for a in Attachment.select().order_by(Attachment.id)]
    for file_id in ids[:3]:
        assert f"helpdeskd attachment {file_id} --output FILE" in listing
    assert listing.count("a program or script: not sent by mail") == 3
    assert "too big" not in listing  # (they are not)
    for file_id in ids[3:]:
        assert f"helpdeskd attachment {file_id} " not in listing
    assert saved(admin, tmp_path, ids[0]) == exe  # (the admin still has it, as sent)


# -- sizes -------------------------------------------------------------------------------------


@pytest.fixture
def small_desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    """A desk whose limit for one file is 1,000 bytes."""
    people()
    outbound = {"transport": "smtp", "smtp_host": "127.0.0.1", "starttls": "no", "retry_base_seconds": 0.2}
    with Sink() as sink, RunningDaemon(config, database, outbound={**outbound, "smtp_port": sink.port},
                                       max_attachment_size=1000) as daemon:
        yield Desk(daemon, sink)


def test_a_file_at_the_limit_is_kept_and_one_byte_over_is_named(small_desk: Desk) -> None:
    raw = mail_with(part("application/pdf", PDF[:1000], 'attachment; filename="at-limit.pdf"'),
                    part("application/pdf", PDF[:1001], 'attachment; filename="over.pdf"'))
    notice = send_new(small_desk, raw)
    assert stored() == [("at-limit.pdf", "application/pdf", PDF[:1000])]
    assert files_of(notice) == [("at-limit.pdf", "application/pdf", PDF[:1000])]
    assert "[Not stored: over.pdf (1,001 bytes) is over the 1,000-byte limit" in text_of(notice)


def test_an_agents_file_one_byte_over_the_limit_is_refused_naming_it(small_desk: Desk) -> None:
    ticket, _ = small_desk.open("The lid cracked.", "Lid")
    answer = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Lid", body="The label is attached.")
    answer.add_attachment(PDF[:1001], maintype="application", subtype="pdf", filename="Rücksendeetikett.pdf")
    code, text, _ = small_desk.send(answer, BOB, addr(ticket))
    assert code == 552 and "Rücksendeetikett.pdf (1,001 bytes) is over the 1,000-byte limit for attachments" in text, text


# -- the way back: an agent's files, and the admin's -----------------------------------------------


def test_an_agents_files_reach_the_customer_byte_for_byte(desk: Desk) -> None:
    ticket, _ = desk.open("The lid cracked.", "Lid")
    answer = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Lid",
                       body="Here is the return label and a photo of the new lid.\n\nBob")
    answer.add_attachment(PDF, maintype="application", subtype="pdf", filename="Rücksendeetikett.pdf")
    answer.add_attachment(JPEG, maintype="image", subtype="jpeg", filename="新しい蓋.jpg")
    code, text, before = desk.send(answer, BOB, addr(ticket))
    assert code == 250, text
    received = desk.mail_to(CUSTOMER, after=before)
    assert files_of(received) == [("Rücksendeetikett.pdf", "application/pdf", PDF), ("新しい蓋.jpg", "image/jpeg", JPEG)]


def test_a_follow_up_and_a_reopening_carry_their_files_to_the_team(desk: Desk) -> None:
    ticket, _ = desk.open("The lid cracked.", "Lid")
    follow = make_mail(subject=f"Re: [Ticket #{ticket}] Lid", body="Forgot the photo.")
    follow.add_attachment(JPEG, maintype="image", subtype="jpeg", filename="lid.jpg")
    code, text, before = desk.send(follow, CUSTOMER, SUPPORT)
    assert code == 250, text
    assert files_of(desk.mail_to(TEAM, after=before)) == [("lid.jpg", "image/jpeg", JPEG)]
    code, text, before = desk.send(make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Lid",
                                             body="A new lid is on its way."), BOB, addr(ticket))
    assert code == 250, text
    desk.mail_to(CUSTOMER, after=before)
    assert "answered" in text_of(desk.mail_to(TEAM, after=before))  # (before the next step's notice)
    again = make_mail(subject=f"Re: [Ticket #{ticket}] Lid", body="The new lid is cracked too.")
    again.add_attachment(JPEG + b"2", maintype="image", subtype="jpeg", filename="lid.jpg")
    code, text, before = desk.send(again, CUSTOMER, SUPPORT)
    assert code == 250 and "reopened" in text, text
    notice = desk.mail_to(TEAM, after=before)
    assert "reopened" in text_of(notice)
    assert files_of(notice) == [("lid.jpg", "image/jpeg", JPEG + b"2")]


def test_apple_mails_picture_between_paragraphs_keeps_both_paragraphs_and_the_picture(desk: Desk) -> None:
    """Apple Mail puts a picture between two text parts, each part a paragraph."""
    raw = mail_with(part("image/jpeg", JPEG, 'inline; filename="IMG_0007.jpeg"'),
                    b"Content-Type: text/plain; charset=utf-8\r\n\r\nAnd this is the second paragraph.")
    notice = send_new(desk, raw)
    words = text_of(notice)
    assert "The files are attached." in words and "And this is the second paragraph." in words
    assert files_of(notice) == [("IMG_0007.jpeg", "image/jpeg", JPEG)]


def test_respond_from_the_command_line_sends_files(desk: Desk, admin: Admin, tmp_path: Path) -> None:
    ticket, _ = desk.open("The lid cracked.", "Lid")
    label = tmp_path / "Rücksendeetikett.pdf"
    label.write_bytes(PDF)
    before = len(desk.sink.received)
    admin.outside("respond", str(ticket), "--agent", BOB, "--message", "The return label is attached.",
          "--attach", str(label), "--attach", str(tmp_path / "label.pdf"), code=2)
    admin.outside("respond", str(ticket), "--agent", BOB, "--message", "The return label is attached.", "--attach", str(label))
    received = desk.mail_to(CUSTOMER, after=before)
    assert files_of(received) == [("Rücksendeetikett.pdf", "application/pdf", PDF)]
    assert "The return label is attached." in text_of(received)


def test_respond_refuses_a_file_over_the_limit_naming_it(desk: Desk, admin: Admin, tmp_path: Path) -> None:
    ticket, _ = desk.open("The lid cracked.", "Lid")
    admin.config.write_text(admin.config.read_text(encoding="utf-8") + "[server]\nmax_attachment_size = 1000\n",
                            encoding="utf-8")
    big = tmp_path / "big.pdf"
    big.write_bytes(PDF[:1001])
    result = admin.outside("respond", str(ticket), "--agent", BOB, "--message", "Attached.", "--attach", str(big), code=3)
    assert re.search(r"--attach .*big\.pdf: 1001 bytes is over the 1000-byte limit", result.stderr), result.stderr
    assert Ticket.get_by_id(ticket).status == "Pending"

