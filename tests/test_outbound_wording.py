"""What each outgoing mail says, read as its recipient: the agent's name and sign-off,
reasons, the status digest, the assigned mail, the command help, the undelivered alert and
the team's facts; built by the outbox, or sent through a real SMTP sink.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.outbound import views
from helpdeskd.outbound.context import greeted
from helpdeskd.outbound.views import build_mail
from helpdeskd.records import NewAttachment
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Attachment, Outbox, Ticket

from tests.daemon_harness import RunningDaemon, make_mail
from tests.outbound_mail import ann_and_bob, bodies, smtp_out
from tests.sink import Sink


@pytest.fixture
def people(database: pw.Database) -> None:
    ann_and_bob()


@pytest.mark.parametrize(
    ("text", "name", "signed"),
    [
        ("Thanks.\n\nMit freundlichen Grüßen\nCarol Ødegård\nExample Shop | Kundenservice", "Carol Ødegård", True),
        ("Shipped.\n\nBob", "Bob Stone", True),
        ("Shipped.\n\nBest, Bob", "Bob Stone", True),
        ("Shipped.\n\nCheers,\nBob Stone (Support)", "Bob Stone", True),
        ("Shipped today.", "Bob Stone", False),
        ("Bob will call you tomorrow about the parcel and the refund.\nThanks", "Bob Stone", False),
        ("I asked Bob.", "Bob", False),  # a sentence, not a sign-off
        ("Shipped.\n\nfrank@shop.test", "frank@shop.test", True),
        # a directory's "Family, Given" (Outlook's address book writes names so)
        ("Shipped.\n\nBob", "Stone, Bob", True),
        ("Shipped.\n\nRegards,\nBob Stone", "Stone, Bob", True),
        ("Shipped.\n\nStone, Bob", "Stone, Bob", True),
        ("Shipped.\n\nAnn", "Stone, Bob", False),
        ("Shipped.\n\nThanks, Bob.", "Bob Stone", True),  # a sign-off with a full stop
        ("Shipped.\n\nBob Stone.", "Bob Stone", True),
        ("Shipped, as I told Bob.", "Bob Stone", False),
        # a company signature under the name (Outlook, Apple Mail)
        ("Shipped.\n\nKind regards,\nBob Stone\nCustomer Care Team Lead\nExample Shop GmbH\nHauptstraße 5\n"
         "10115 Berlin\nPhone +49 30 1234567\nwww.example-shop.test", "Bob Stone", True),
        ("Shipped.\n\nBob\nCustomer Care Team Lead\nExample Shop GmbH\nHauptstraße 5\n10115 Berlin\n"
         "www.example-shop.test", "Bob Stone", True),
        ("Bob asked me to check it.\nIt shipped.\nThe number is 123.\nIt comes Monday.\nSorry.\nAnn", "Bob Stone", False),
        ("Hi Carol,\n\nGood news, Carol.\nIt shipped.\nThe number is 123.\nIt comes Monday.\nIt is insured.\n"
         "Sorry for the wait.", "Carol Berg", False),
    ],
)
def test_signed_by(text: str, name: str, signed: bool) -> None:
    assert views.signed_by(text, name) is signed


@pytest.mark.parametrize("text", ["It left the warehouse today.", "It left the warehouse today.\n\nBest regards,\nBob Stone"])
def test_the_agents_name_closes_the_response_once(
    database: pw.Database, config: Config, people: None, text: str
) -> None:
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    helpdesk.respond(ticket.id, "bob@shop.test", text, "in-progress")
    mail = email.message_from_bytes(build_mail(config, Outbox.get(Outbox.event == "response")).data,
                                    policy=email.policy.default)
    plain, html = bodies(mail)  # type: ignore[arg-type]
    assert plain.count("Bob Stone") == 1 and html.count("Bob Stone") == 1
    assert "Bob Stone via" in mail["From"]


def test_the_agents_own_signature_line_does_not_hide_the_closing_lines(
    database: pw.Database, config: Config, people: None
) -> None:
    """Mail programs grey out everything after "-- " (and cut it from replies): the agent's
    sign-off stays, the separator goes, our "just reply" lines stay readable."""
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    helpdesk.respond(ticket.id, "bob@shop.test", "It left today.\n-- \nBob Stone\nExample Shop", "in-progress")
    mail = email.message_from_bytes(build_mail(config, Outbox.get(Outbox.event == "response")).data,
                                    policy=email.policy.default)
    plain, _ = bodies(mail)  # type: ignore[arg-type]
    lines = plain.splitlines()
    assert lines.count("-- ") == 1  # the shop's footer only
    assert lines.index("Bob Stone") < lines.index("-- ") and "It left today." in lines
    assert next(i for i, line in enumerate(lines) if "just reply" in line) < lines.index("-- ")


# -- what each mail says, read as its recipient ------------------------------------------


def _mail(config: Config, event: str) -> EmailMessage:
    row = Outbox.select().where(Outbox.event == event).order_by(Outbox.id.desc()).get()
    return email.message_from_bytes(build_mail(config, row).data, policy=email.policy.default)  # type: ignore[return-value]


def _parts(mail: EmailMessage) -> tuple[str, str]:
    """The text and HTML of ``mail`` with plain line breaks."""
    text, html = bodies(mail)
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_a_cancellation_reason_written_as_a_letter_stands_as_written(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    letter = "Hello Ann,\n\nthe plate was sold by a marketplace seller, not by us.\n\nBest regards\nBob"
    tid = helpdesk.create_request("ann@example.org", "Order", "Broken plate", "It broke.").id
    helpdesk.cancel(tid, "bob@shop.test", letter)
    for part in _parts(_mail(config, "cancellation")):
        assert "Reason:" not in part and "Hello Ann Lee" not in part  # no label, one greeting
        assert "We have cancelled" not in part
        assert "Hello Ann," in part and "marketplace seller" in part
    text, html = _parts(_mail(config, "cancellation"))
    assert text.startswith(f"We have closed your request #{tid} (“Broken plate”).\n\nHello Ann,\n")
    assert f"We have closed your request #{tid} (&ldquo;Broken plate&rdquo;)." in html
    assert text.count("Bob") == 1  # their own sign-off; no second one

    one_line = helpdesk.create_request("ann@example.org", "Order", "Wrong size", "Too small.").id
    helpdesk.cancel(one_line, "bob@shop.test", "You already sent the same question as #12.")
    text, html = _parts(_mail(config, "cancellation"))
    assert text.startswith("Hello Ann Lee,\n\nWe have closed your request")
    assert "\nReason: You already sent the same question as #12.\n" in text
    assert "Reason: You already sent" in html


def test_an_agent_without_a_name_is_not_shown_to_the_customer_by_address(
    database: pw.Database, config: Config, people: None
) -> None:
    directory.add_agent("dave@shop.test")  # `agents add` without --name
    helpdesk = Helpdesk(config)
    first = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    helpdesk.respond(first, "dave@shop.test", "It left the warehouse today.", "in-progress")
    second = helpdesk.create_request("ann@example.org", "Order", "Mug", "Broken.").id
    helpdesk.cancel(second, "dave@shop.test", "A new mug is on its way.")
    for event in ("response", "cancellation"):
        mail = _mail(config, event)
        assert mail["From"].addresses[0].display_name == f"{config.shop.name} Support", event
        assert "dave" not in str(mail["From"])
        for part in _parts(mail):
            assert "dave@shop.test" not in part, event
    team = _mail(config, "answered")  # the team may see who it was
    assert "dave@shop.test" in _parts(team)[0]


def test_the_status_digest_is_answered_at_the_status_address_and_names_each_tag(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Where is my parcel", "x").id
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        ask = make_mail(to="status@shop.test", subject="my requests", Message_ID="<ask@example.org>")
        assert daemon.send(ask, "ann@example.org", ["status@shop.test"])[0] == 250
        (digest,) = [r.message for r in sink.wait_for(3) if r.message["Subject"].startswith("Your requests")]
        assert digest["Reply-To"] == config.mail.status_address
        text, html = _parts(digest)
        assert f"  [Ticket #{tid}] Where is my parcel\n" in text and f"[Ticket #{tid}]</td>" in html
        opened = text.split("      Opened ")[1].split(",")[0]  # (both parts give when it was opened)
        assert ">Opened</th>" in html and f">{opened}," in html, (opened, html)
        for part in (text, html):
            assert "reply to our latest email about it" in _words(part)
            assert "reply to any of our emails" not in part
        # the customer presses Reply on the list: they get the list again, no request opens
        reply = make_mail(to=digest["Reply-To"], subject=f"Re: {digest['Subject']}", body="About it: still nothing.",
                          In_Reply_To=digest["Message-ID"], References=digest["Message-ID"])
        assert daemon.send(reply, "ann@example.org", [digest["Reply-To"]])[0] == 250
        sink.wait_for(4)
    assert [t.id for t in Ticket.select()] == [tid]
    assert Outbox.select().where(Outbox.event == "status_digest").count() == 2


def test_the_assigned_mail_carries_the_colleagues_note_and_the_latest_conversation(
    database: pw.Database, config: Config, people: None
) -> None:
    from helpdeskd.agent_actions import AgentActions
    from helpdeskd.mail.commands import Command, CommandName

    directory.add_agent("carol@shop.test", "Carol Berg")
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is my parcel?").id
    helpdesk.respond(tid, "bob@shop.test", "It left the warehouse on Monday.", "in-progress")
    long_story = "\n".join(f"Day {day}: no parcel." for day in range(1, 31))
    helpdesk.add_follow_up(tid, "ann@example.org", long_story)
    helpdesk.add_note(tid, "bob@shop.test", "Called DHL, they do not answer.")
    outcome = AgentActions(helpdesk).carry_out(
        tid, "bob@shop.test", [Command(CommandName.ASSIGN, "carol@shop.test"), Command(CommandName.NOTE)],
        "Carol, this is a DHL thing, can you take it?")
    assert outcome.applied
    mail = _mail(config, "assigned")
    assert mail["To"].addresses[0].addr_spec == "carol@shop.test"
    text, html = _parts(mail)
    note = text.index("Carol, this is a DHL thing, can you take it?")
    assert text.index("Bob Stone assigned request") < text.index("their note to you") < note
    assert note < text.index("  Request:   #") < text.index("the conversation so far")
    said = [text.index(words) for words in ("Where is my parcel?", "It left the warehouse on Monday.",
                                             "Day 1: no parcel.", "Called DHL, they do not answer.")]
    assert said == sorted(said) and said[0] > note  # oldest first, after the facts
    assert "--- Ann Lee (customer), " in text and "--- Bob Stone (to the customer), " in text
    assert "--- Bob Stone (internal note), " in text
    assert "Day 15: no parcel." in text and "Day 16: no parcel." not in text  # its first lines
    assert f"[... more; see: helpdeskd show {tid}]" in text
    assert text.index("Called DHL") < text.index("Reply to this email to answer")
    for words in ("Their note to you:", "Carol, this is a DHL thing", "Called DHL, they do not answer.",
                  "It left the warehouse on Monday.", "Ann Lee (customer)"):
        assert words in html, words


def test_the_command_help_says_where_the_text_goes(database: pw.Database, config: Config, people: None) -> None:
    Helpdesk(config).create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    for part in _parts(_mail(config, "new_request")):
        words = _words(part.replace("<code>", "").replace("</code>", "").replace("<strong>", "")
                       .replace("</strong>", ""))
        assert ("Any text below the commands is sent to the customer, unless you add #note or send "
                "commands only.") in words
        assert "with a message for them, write #assign ADDRESS and #note" in words


def test_command_result_explanations_wrap_within_78_columns(
    database: pw.Database, config: Config, people: None
) -> None:
    from helpdeskd.agent_actions import AgentActions, CommandReport

    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    explanation = ("#assign carol@shop.test with text below it: add #note to leave the text for them, or "
                   "#status in-progress (or resolved) to send it to the customer too; nothing was done.")
    AgentActions(helpdesk).report_commands(
        tid, "bob@shop.test", [CommandReport("#assign carol@shop.test", False, explanation)], applied=False)
    text, _ = _parts(_mail(config, "command_result"))
    assert max(len(line) for line in text.splitlines()) <= 78
    assert explanation in _words(text)
    assert "\n  #assign carol@shop.test\n      #assign carol@shop.test with text below it:" in text


def test_the_team_copy_of_a_cancellation_gives_the_reason_the_customer_read(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Grinder", "It stopped.").id
    helpdesk.cancel(tid, "bob@shop.test", "You already sent this as #1.")
    text, html = _parts(_mail(config, "answered"))
    assert "---------- the reason given to the customer ----------\nYou already sent this as #1.\n" in text
    assert "The reason given to the customer:" in html and "You already sent this as #1." in html
    for part in (text, html):
        assert "Cancelled:" not in part and "sent to the customer ---" not in part
    bare = helpdesk.create_request("ann@example.org", "Order", "Kettle", "Leaks.").id
    helpdesk.cancel(bare, "bob@shop.test")
    for part in _parts(_mail(config, "answered")):
        assert "(no reason given)" in part and "Cancelled." not in part


def test_the_undelivered_alert_lists_the_files_and_advises_for_any_refusal(
    database: pw.Database, config: Config, people: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpdeskd.outbound.outbox import tell_team_undelivered

    monkeypatch.setattr(views, "NOTICE_FILES_MAX", 1_000)
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    files = [NewAttachment("label.pdf", "application/pdf", b"%PDF" * 10),
             NewAttachment("Video of the damaged parcel.mp4", "video/mp4", b"\0" * 2_000)]
    helpdesk.respond(tid, "bob@shop.test", "Here is your label.", "in-progress", attachments=files)
    row = Outbox.get(Outbox.event == "response")
    tell_team_undelivered(config, row.id, "delivery report: 5.2.2 552 5.2.2 <ann@example.org>: Mailbox full")
    text, html = _parts(_mail(config, "undelivered"))
    big = Attachment.get(Attachment.filename == "Video of the damaged parcel.mp4").id
    assert "Attachments:\n  - label.pdf (application/pdf," in text and "label.pdf" in html
    assert f"\n      helpdeskd attachment {big} --output FILE\n" in text
    assert max(len(line) for line in text[text.index("Attachments:"):].splitlines()) <= 78
    for part in (text, html):
        assert "Mailbox full" in part and "Check their address" not in part
        assert "reach the customer another way" in _words(part)


def test_the_teams_facts_name_who_has_the_request(database: pw.Database, config: Config, people: None) -> None:
    from helpdeskd.agent_actions import AgentActions

    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    new_text, _ = _parts(_mail(config, "new_request"))
    assert "Assigned:" not in new_text  # nobody has it yet
    AgentActions(helpdesk).assign(tid, "bob@shop.test")
    helpdesk.add_follow_up(tid, "ann@example.org", "Any news?")
    text, html = _parts(_mail(config, "follow_up"))
    assert "\n  Assigned:  Bob Stone\n" in text
    assert ">Assigned</td><td>Bob Stone</td>" in html


def test_the_teams_mails_name_whose_words_they_carry(database: pw.Database, config: Config, people: None) -> None:
    """In the inbox a new request, a follow-up and a colleague's answer look different."""
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    helpdesk.add_follow_up(tid, "ann@example.org", "Any news?")
    helpdesk.respond(tid, "bob@shop.test", "It left today.", "in-progress")
    shop = f"{config.shop.name} Support"
    assert _mail(config, "new_request")["From"].addresses[0].display_name == f"Ann Lee via {shop}"
    assert _mail(config, "follow_up")["From"].addresses[0].display_name == f"Ann Lee via {shop}"
    assert _mail(config, "answered")["From"].addresses[0].display_name == f"Bob Stone via {shop}"
    assert _mail(config, "response")["From"].addresses[0].display_name == f"Bob Stone via {shop}"
    assert all(_mail(config, e)["From"].addresses[0].addr_spec == config.mail.support_address
               for e in ("new_request", "answered"))


def test_the_resolution_promises_no_reopening_the_grace_period_may_refuse() -> None:
    """"Just reply to this email to reopen it": after policy.reopen_grace_days a reply opens
    a new request linked to it instead (DESIGN §2)."""
    from helpdeskd.domain import Event
    from helpdeskd.outbound.render import render
    from helpdeskd.outbound.samples import samples

    for ctx in samples(Event.RESOLUTION):
        rendered = render(Event.RESOLUTION, ctx)
        for part in (rendered.text, rendered.html):
            assert "reopen" not in part and "reply to this email and we will take it up again" in _words(part)


@pytest.mark.parametrize(("name", "said"), [
    ("Lee, Ann", "Ann Lee"), ("Lee,Ann", "Ann Lee"), ("  Lee ,  Ann Marie ", "Ann Marie Lee"),
    ("Lee, Ann (Sales)", "Ann Lee"), ("Lee, Ann [ACME]", "Ann Lee"), ("O'Brien-Smith, Ann", "Ann O'Brien-Smith"),
    ("Ødegård, Åse", "Åse Ødegård"), ("Lee, A.", "A. Lee"),
    ("Ann Lee", "Ann Lee"), ("Ann Lee, PhD", "Ann Lee, PhD"), ("Acme, Inc.", "Acme, Inc."),
    ("Lee, Ann, Dr.", "Lee, Ann, Dr."), ("Lee, Jr.", "Lee, Jr."), ("Unit 4, Block 2", "Unit 4, Block 2"),
    ("ann@example.org, Lee", "ann@example.org, Lee"), ("Shop, Returns Department Team", "Shop, Returns Department Team"),
    ("John Smith, Ph.D.", "John Smith, Ph.D."), ("Ann Lee, M.D.", "Ann Lee, M.D."), ("Maria Garcia, CEO", "Maria Garcia, CEO"),
    ("Acme, S.A.", "Acme, S.A."), ("García López, María", "García López, María"),
    ("van der Berg, Anna", "Anna van der Berg"),
])
def test_a_directory_s_family_comma_given_name_is_greeted_given_name_first(name: str, said: str) -> None:
    assert greeted(name) == said


def test_the_customer_named_family_comma_given_is_greeted_given_name_first(
    database: pw.Database, config: Config, people: None
) -> None:
    """Outlook and Exchange send ``"Lee, Ann" <ann@…>``: "Hello Lee, Ann," reads as if
    Lee were greeted and Ann addressed."""
    directory.add_customer("ann.lee@example.org", "Lee, Ann")
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann.lee@example.org", "Order", "Parcel", "Where is it?").id
    helpdesk.cancel(tid, "bob@shop.test", "Sent twice.")
    for event in ("confirmation", "cancellation"):
        mail = _mail(config, event)
        assert mail["To"].addresses[0].display_name == "Lee, Ann"  # (the address as the customer gave it)
        text, html = _parts(mail)
        assert text.startswith("Hello Ann Lee,\n") and "<p>Hello Ann Lee,</p>" in html, (event, text)
