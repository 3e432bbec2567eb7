"""What of an agent's files reaches the customer: never our own notice forwarded as an
attachment (it holds the team's words and the request's agent address), and never a
program or script, which Gmail refuses and Outlook blocks (the answer would not arrive,
and the agent would believe it had)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.store.models import Message, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr, customer_rows, state
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.test_cli import Admin


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def _answer(ticket: int, body: str) -> EmailMessage:
    return make_mail(sender=BOB, to=addr(ticket), subject=f"Fw: [Ticket #{ticket}] Lid", body=body)


def _files(msg: EmailMessage) -> list[str]:
    return [str(p.get_filename()) for p in msg.walk() if p.get_content_disposition() == "attachment"]


def test_the_team_notice_forwarded_as_an_attachment_never_reaches_the_customer(desk: Desk) -> None:
    """Outlook's and Gmail's "Forward as attachment" of the notice, sent to the request's
    agent address with a line for the customer: the line goes, the notice does not."""
    ticket, notice = desk.open("The lid cracked.", "Lid")
    answer = _answer(ticket, "A new lid is on its way.")
    answer.add_attachment(notice.as_bytes(), maintype="message", subtype="rfc822")
    also = make_mail(subject="From the carrier", body="Delivered on Monday.")  # a mail not ours: it goes
    answer.add_attachment(also.as_bytes(), maintype="message", subtype="rfc822")
    code, text, before = desk.send(answer, BOB, addr(ticket))
    assert code == 250, text
    received = desk.mail_to(CUSTOMER, after=before)
    assert "A new lid is on its way." in text_of(received)
    assert len(_files(received)) == 1 and b"Delivered on Monday." in received.as_bytes()
    assert addr(ticket).encode() not in received.as_bytes() and b"The lid cracked." not in received.as_bytes()
    response = Message.get((Message.ticket == ticket) & (Message.kind == "response"))
    assert [a.content_type for a in response.attachments] == ["message/rfc822"]


def test_the_notice_forwarded_as_an_attachment_alone_is_no_answer(desk: Desk) -> None:
    ticket, notice = desk.open("The lid cracked.", "Lid")
    before = state(ticket)
    answer = _answer(ticket, "")
    answer.add_attachment(notice.as_bytes(), maintype="message", subtype="rfc822")
    code, text, _ = desk.send(answer, BOB, addr(ticket))
    assert (code, text.split(" ", 1)[0]) == (550, "5.6.0") and "no text of its own" in text, text
    assert state(ticket) == before and customer_rows(ticket) == []


def _zip_with(name: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, b"MZ fake")
    return out.getvalue()


@pytest.mark.parametrize(("name", "data"), [
    ("driver.exe", b"MZ fake"), ("fix.js", b"alert(1)"), ("driver.zip", _zip_with("setup/driver.exe")),
])
def test_a_program_in_an_agents_answer_is_refused_not_mailed(desk: Desk, name: str, data: bytes) -> None:
    ticket, _ = desk.open("The printer driver fails.", "Lid")
    before = state(ticket)
    answer = _answer(ticket, "Here is the new driver.")
    answer.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    code, text, _ = desk.send(answer, BOB, addr(ticket))
    assert (code, text.split(" ", 1)[0]) == (550, "5.7.1"), text
    assert f"Not sent: {name} is a program or script" in " ".join(text.split()), text
    assert state(ticket) == before and customer_rows(ticket) == []
    # a note keeps it with the team, as before
    note = _answer(ticket, "#note\nThe driver I tried.")
    note.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    assert desk.send(note, BOB, addr(ticket))[0] == 250
    assert customer_rows(ticket) == []
    assert [a.filename for a in Message.get((Message.ticket == ticket) & (Message.kind == "note")).attachments] == [name]


def test_respond_refuses_a_program_naming_it(desk: Desk, tmp_path: Path, db_url: str) -> None:
    ticket, _ = desk.open("The printer driver fails.", "Lid")
    driver = tmp_path / "driver.zip"
    driver.write_bytes(_zip_with("driver.exe"))
    admin = Admin(tmp_path, db_url)
    result = admin.outside("respond", str(ticket), "--agent", BOB, "--message", "Attached.", "--attach", str(driver),
                           code=3)
    assert "driver.zip is a program or script, or an archive holding one" in result.stderr, result.stderr
    assert Ticket.get_by_id(ticket).status == "Pending" and customer_rows(ticket) == []


def test_an_answer_sent_with_forward_does_not_send_the_customer_their_own_photo_back(desk: Desk) -> None:
    """Outlook and Gmail attach the forwarded notice's files: the customer's photo went back
    to them with the answer, as if the shop had sent it."""
    photo = b"\x89PNG\r\n\x1a\n the customer's photo"
    msg = make_mail(subject="Lid", body="The lid cracked, see the photo.")
    msg.add_attachment(photo, maintype="image", subtype="png", filename="IMG_0042.png")
    code, text, before = desk.send(msg, CUSTOMER, "support@shop.test")
    assert code == 250, text
    ticket = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
    desk.mail_to(CUSTOMER, after=before)  # (the confirmation in too: the answer is the next mail to her)
    desk.mail_to("team@shop.test", after=before)
    answer = _answer(ticket, "A new lid is on its way; here is the label.")
    answer.add_attachment(photo, maintype="image", subtype="png", filename="IMG_0042.png")
    answer.add_attachment(b"%PDF-1.4 label", maintype="application", subtype="pdf", filename="label.pdf")
    code, text, before = desk.send(answer, BOB, addr(ticket))
    assert code == 250, text
    assert _files(desk.mail_to(CUSTOMER, after=before)) == ["label.pdf"]
    # in a reply (not a forward) the agent attached it on purpose: it goes
    again = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Lid", body="Is this the one?")
    again.add_attachment(photo, maintype="image", subtype="png", filename="IMG_0042.png")
    code, text, before = desk.send(again, BOB, addr(ticket))
    assert code == 250, text
    assert _files(desk.mail_to(CUSTOMER, after=before)) == ["IMG_0042.png"]
