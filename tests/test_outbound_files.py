"""Outgoing mail carrying files and long texts: the customer's and the agent's files travel
with the mail, a team mail names the files too big for it, and quotes at most a cap of the
customer's text; built by the outbox or sent through a real SMTP sink.
"""

from __future__ import annotations

import email
import email.policy

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.outbound import views
from helpdeskd.outbound.views import NOTICE_TEXT_MAX, build_mail
from helpdeskd.records import NewAttachment
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Attachment, Outbox

from tests.daemon_harness import RunningDaemon, make_mail
from tests.outbound_mail import ann_and_bob, bodies, by_rcpt, smtp_out
from tests.sink import Sink


@pytest.fixture
def people(database: pw.Database) -> None:
    ann_and_bob()


def test_files_travel_with_the_mail(database: pw.Database, config: Config, people: None) -> None:
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        photo = make_mail(subject="Broken lid", body="See the photo.")
        photo.add_attachment(b"\xff\xd8\xff\xe0 jpeg bytes", maintype="image", subtype="jpeg", filename="lid.jpg")
        assert daemon.send(photo, "ann@example.org", ["support@shop.test"])[0] == 250
        team = by_rcpt(sink.wait_for(2))["team@shop.test"]
        assert [(p.get_filename(), p.get_content()) for p in team.iter_attachments()] == [
            ("lid.jpg", b"\xff\xd8\xff\xe0 jpeg bytes")]
        answer = make_mail(sender="bob@shop.test", to=team["Reply-To"], subject="Re: lid",
                           body="Here is your return label.")
        answer.add_attachment(b"%PDF-1.4 label", maintype="application", subtype="pdf", filename="label.pdf")
        assert daemon.send(answer, "bob@shop.test", [team["Reply-To"]])[0] == 250
        later = sink.wait_for(4)[2:]  # the resolution, and the team's copy of it
        resolution = by_rcpt(later)["ann@example.org"]
        copy = by_rcpt(later)["team@shop.test"]
    assert "Here is your return label." in bodies(copy)[0] and "answered the customer" in bodies(copy)[0]
    assert [p.get_filename() for p in copy.iter_attachments()] == ["label.pdf"]
    assert [(p.get_filename(), p.get_content()) for p in resolution.iter_attachments()] == [
        ("label.pdf", b"%PDF-1.4 label")]
    assert "Here is your return label." in bodies(resolution)[0]


def test_every_team_notice_quotes_at_most_the_cap_of_the_customers_text(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    huge = ("All work and no play makes Jack a dull boy. " * 25 + "\n") * 1_000  # 1.1 million characters
    tid = helpdesk.create_request("ann@example.org", "Order", "Long story", huge, "A1").id
    helpdesk.add_follow_up(tid, "ann@example.org", huge)
    helpdesk.respond(tid, "bob@shop.test", "Sorted.")
    helpdesk.add_follow_up(tid, "ann@example.org", huge)  # reopens it
    mails = {row.event: build_mail(config, row) for row in Outbox.select().order_by(Outbox.id)}
    assert set(mails) == {"confirmation", "new_request", "follow_up", "resolution", "answered", "reopened"}
    for event in ("new_request", "follow_up", "reopened"):
        assert len(mails[event].data) < 3 * NOTICE_TEXT_MAX, event  # text and HTML, encoded
        msg = email.message_from_bytes(mails[event].data, policy=email.policy.default)
        for part in bodies(msg):
            assert part.count("more characters; see: helpdeskd show") == 1, event
            assert "All work and no play" in part
    # the customer's mail quotes none of it: number, subject, category, order, the promise
    assert b"All work and no play" not in mails["confirmation"].data
    assert len(mails["confirmation"].data) < 10_000


def test_a_cancellation_carries_the_agents_files_and_the_team_copy_offers_no_answer(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Grinder broken", "It stopped.").id
    label = NewAttachment("return-label.pdf", "application/pdf", b"%PDF-1.4 label")
    helpdesk.cancel(tid, "bob@shop.test", "We replace it instead; please use the return label.", attachments=[label])
    mails = {row.event: build_mail(config, row) for row in Outbox.select().order_by(Outbox.id)}
    cancellation = email.message_from_bytes(mails["cancellation"].data, policy=email.policy.default)
    assert [(p.get_filename(), p.get_content()) for p in cancellation.iter_attachments()] == [
        ("return-label.pdf", b"%PDF-1.4 label")]
    copy = email.message_from_bytes(mails["answered"].data, policy=email.policy.default)
    assert [p.get_filename() for p in copy.iter_attachments()] == ["return-label.pdf"]
    for part in bodies(copy):
        assert "cancelled request" in part and "answer the customer" not in part


def test_files_too_big_for_a_team_mail_are_named_with_the_command_to_fetch_them(
    database: pw.Database, config: Config, people: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "NOTICE_FILES_MAX", 1_000)
    files = [NewAttachment(f"photo-{i}.jpg", "image/jpeg", bytes([i]) * 600) for i in range(3)]
    Helpdesk(config).create_request("ann@example.org", "Product", "Broken lid", "See the photos.", attachments=files)
    notice = email.message_from_bytes(
        build_mail(config, Outbox.get(Outbox.event == "new_request")).data, policy=email.policy.default)
    assert [p.get_filename() for p in notice.iter_attachments()] == ["photo-0.jpg"]  # 600 of 1,000 bytes
    text, html = bodies(notice)
    later = [a.id for a in Attachment.select().order_by(Attachment.id)][1:]
    for part in (text, html):
        assert part.count("too big to go with this mail") == 2
        assert all(f"helpdeskd attachment {file_id} --output FILE" in part for file_id in later)
