"""A customer's side over weeks, and mail loops: "no duplicate tickets, no mail loops,
no strangers writing into someone's ticket".

Real SMTP into a real daemon on 127.0.0.1, a real SMTP sink as its smarthost, on both
engines; weeks pass by moving a request's ``resolved_at`` back. A loop is any mail the
sink receives that no person wrote for: every test counts what went out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.store.models import Customer, Message, Outbox, RawMessage, Ticket, utcnow

from tests.agent_mail import BOB, addr, people
from tests.corpus import corpus_dir, corpus_entries
from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Received, Sink
from tests.outbound_mail import smtp_out

ANN = "ann@example.org"
SUPPORT = "support@shop.test"


def _daemon(database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    people()
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        yield daemon, sink


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    yield from _daemon(database, config)


@pytest.fixture
def open_desk(database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    yield from _daemon(database, replace(config, policy=replace(config.policy, customers="open")))


def _send(daemon: RunningDaemon, msg: EmailMessage | bytes, sender: str = ANN, rcpt: str = SUPPORT) -> str:
    code, text = daemon.send(msg, sender, [rcpt])
    assert code == 250, text
    return text


def _all_sent(sink: Sink) -> list[Received]:
    """Everything the daemon has to send, once it arrived: what the outbox holds not
    held back is what the sink gets (the rows are written before 250 is answered)."""
    due = Outbox.select().where(Outbox.state != "suppressed").count()
    received = sink.wait_for(due)
    assert len(received) == due, [r.message["Subject"] for r in received]
    return received


def _to_ann(sink: Sink) -> list[EmailMessage]:
    return [r.message for r in _all_sent(sink) if r.rcpt_tos == [ANN]]


def _opened(daemon: RunningDaemon, sink: Sink) -> EmailMessage:
    """Ann's request 1, and its confirmation as her mail program shows it."""
    assert "request 1 opened" in _send(daemon, make_mail(Message_ID="<ann-1@example.org>"))
    return _to_ann(sink)[0]


def _answer(daemon: RunningDaemon, sink: Sink, ticket: int, words: str) -> None:
    """Bob answers on the agent address (Resolved), or cancels with ``#cancel``."""
    to = addr(ticket)
    _send(daemon, make_mail(sender=BOB, to=to, subject=f"Re: [Ticket #{ticket}] Parcel", body=words), BOB, to)
    _all_sent(sink)


def _weeks_pass(ticket: int) -> None:
    Ticket.update(resolved_at=utcnow() - timedelta(days=30)).where(Ticket.id == ticket).execute()


def _reply_to(mail: EmailMessage, body: str, n: int) -> EmailMessage:
    return make_mail(subject=f"Re: {mail['Subject']}", body=body, In_Reply_To=mail["Message-ID"],
                     References=mail["Message-ID"], Message_ID=f"<ann-reply-{n}@example.org>")


# ------------------------------------------------------------ a closed request's old mail


@pytest.mark.parametrize("closing", ["resolved long ago", "cancelled"])
def test_answering_a_closed_requests_old_mail_again_opens_one_request(
    desk: tuple[RunningDaemon, Sink], closing: str
) -> None:
    """Weeks later Ann answers the confirmation of her closed request, then again ("forgot
    the photo"), and once more on its reply address: one new request, one confirmation."""
    daemon, sink = desk
    confirmation = _opened(daemon, sink)
    if closing == "cancelled":
        _answer(daemon, sink, 1, "#cancel\nYou asked us to cancel it.")
    else:
        _answer(daemon, sink, 1, "It was sent again today.")
        _weeks_pass(1)
    first = _send(daemon, _reply_to(confirmation, "It broke again.", 1))
    assert "request 2 opened (following 1)" in first
    again = _send(daemon, _reply_to(confirmation, "Forgot to say: the lid is cracked too.", 2))
    assert "added to support request 2" in again
    to = addr(1, "c")
    third = _send(daemon, make_mail(to=to, subject="Re: [Ticket #1] Parcel", body="And the box was wet."), rcpt=to)
    assert "added to support request 2" in third
    assert [(t.id, t.linked_to_id) for t in Ticket.select().order_by(Ticket.id)] == [(1, None), (2, 1)]
    assert [m.body for m in Message.select().where((Message.ticket == 2) & (Message.kind == "customer"))
            .order_by(Message.id)] == ["It broke again.", "Forgot to say: the lid is cracked too.",
                                       "And the box was wet."]
    confirmations = [m for m in _to_ann(sink) if m["Auto-Submitted"]]
    assert [str(m["Subject"]) for m in confirmations] == ["[Ticket #1] Parcel not delivered",
                                                          "[Ticket #2] Parcel not delivered"]


def test_the_chain_is_followed_to_the_latest_request(desk: tuple[RunningDaemon, Sink]) -> None:
    """Request 2 followed 1 and was resolved long ago too: an answer to 1's mail follows 2."""
    daemon, sink = desk
    confirmation = _opened(daemon, sink)
    _answer(daemon, sink, 1, "It was sent again today.")
    _weeks_pass(1)
    _send(daemon, _reply_to(confirmation, "It broke again.", 1))
    _all_sent(sink)
    _answer(daemon, sink, 2, "A new one is on its way.")
    second = _send(daemon, _reply_to(confirmation, "Still broken, sorry.", 2))  # 2 in its grace period
    assert "support request 2 reopened" in second
    _answer(daemon, sink, 2, "Fixed now.")
    _weeks_pass(2)
    third = _send(daemon, _reply_to(confirmation, "Broken once more.", 3))
    assert "request 3 opened (following 2)" in third
    assert [(t.id, t.linked_to_id) for t in Ticket.select().order_by(Ticket.id)] == [(1, None), (2, 1), (3, 2)]


# ------------------------------------------------------------ the same mail twice


@pytest.mark.parametrize("body", ["Please refund order A1.\n\nAnn",
                                  "> Your parcel A1 could not be delivered.\n> Your carrier"],
                         ids=["words", "a quote alone"])
def test_a_resent_mail_joins_the_request_it_repeats(desk: tuple[RunningDaemon, Sink], body: str) -> None:
    """Outlook's "Resend", a double click on Send, or one mail written to support@ and
    billing@ as two: the same subject and text with a new Message-ID opens no second
    request and sends no second confirmation; the team sees it came again."""
    daemon, sink = desk
    mail = make_mail(subject="Refund for order A1", body=body)
    _send(daemon, mail)
    del mail["Message-ID"]
    mail["Message-ID"] = "<resent-1@example.org>"
    assert "added to support request 1" in _send(daemon, mail)
    del mail["Message-ID"]
    mail["Message-ID"] = "<resent-2@example.org>"
    assert "added to support request 1" in _send(daemon, mail, rcpt="billing@shop.test")
    assert "request 2 opened" in _send(daemon, make_mail(subject="Refund for order A1", body="Also order A2."))
    assert Ticket.select().count() == 2
    assert len([m for m in _to_ann(sink) if m["Auto-Submitted"]]) == 2
    assert Message.select().where(Message.ticket == 1).count() == 3


# ------------------------------------------------------------ loops


def _stripped_of_our_signs(mail: Received) -> bytes:
    """Our mail as a forwarder that re-creates messages passes it on: our own header and
    Message-ID gone, From and subject kept."""
    data = re.sub(rb"(?im)^(X-Helpdeskd-Ticket|Auto-Submitted|X-Auto-Response-Suppress):.*\r\n", b"", mail.data)
    return re.sub(rb"(?im)^Message-ID:.*\r\n", b"Message-ID: <fwd-1@fwd.example>\r\n", data)


def test_our_mail_forwarded_back_with_a_new_message_id_opens_nothing(open_desk: tuple[RunningDaemon, Sink]) -> None:
    """Ann's address forwards to support@, through a forwarder that gives our confirmation
    a new Message-ID and drops our header: From is still our own address, which must not
    become a customer with a request and a confirmation of its own."""
    daemon, sink = open_desk
    _opened(daemon, sink)
    confirmation = next(r for r in _all_sent(sink) if r.rcpt_tos == [ANN])
    text = _send(daemon, _stripped_of_our_signs(confirmation), "srs0=hh=tt=shop.test=support@fwd.example")
    assert "not answered" in text
    assert Ticket.select().count() == 1
    assert Customer.get_or_none(Customer.email == SUPPORT) is None
    assert RawMessage.get(RawMessage.message_id == "fwd-1@fwd.example").state == "automatic"
    assert len(_all_sent(sink)) == 2


@pytest.mark.parametrize("address", [SUPPORT, "status@shop.test", "team@shop.test", "billing@shop.test",
                                     "billing-team@shop.test", "Support@SHOP.test"])
def test_mail_from_any_of_our_own_addresses_opens_nothing(open_desk: tuple[RunningDaemon, Sink], address: str) -> None:
    daemon, sink = open_desk
    assert "not answered" in _send(daemon, make_mail(sender=address), address)
    assert (Ticket.select().count(), Customer.select().where(Customer.email == address.lower()).count()) == (0, 0)
    assert _all_sent(sink) == []


def test_is_own_address(config: Config) -> None:
    mail = config.mail
    ticket = addr(7, "c")
    assert [directory.is_own_address(mail, a) for a in (SUPPORT, "STATUS@shop.test", ticket, "team@shop.test")] == [
        True] * 4
    assert [directory.is_own_address(mail, a) for a in (ANN, BOB, "support@shop.test.evil", "supportx@shop.test",
                                                        "support+1@other.test")] == [False] * 5


def _corpus_automatic() -> list[tuple[str, bytes]]:
    return [(e.file, e.read()) for e in corpus_entries() if e.kind == "autoreply" and "body_only" not in e.tags]


def test_real_out_of_office_replies_to_our_confirmation_are_never_answered(desk: tuple[RunningDaemon, Sink]) -> None:
    """Each real auto-reply of the corpus, delivered as Ann's answer to our confirmation
    (her address as its sender): kept, not one mail more goes out."""
    corpus_dir()
    daemon, sink = desk
    _opened(daemon, sink)
    before = len(_all_sent(sink))
    replayed = _corpus_automatic()
    assert len(replayed) >= 10
    for name, raw in replayed:
        code, text = daemon.send(raw, ANN, [SUPPORT])
        assert code == 250 and "not answered" in text, (name, text)
    assert len(_all_sent(sink)) == before
    assert (Ticket.select().count(), Message.select().count()) == (1, 1)


def test_a_new_topic_written_in_reply_to_a_closed_request_s_mail_is_the_new_request_s_subject(
    desk: tuple[RunningDaemon, Sink]
) -> None:
    """Ann answers an old mail of ours, but about something else, under a subject of her
    own: the request it opens is about that, not about the old one's subject."""
    daemon, sink = desk
    confirmation = _opened(daemon, sink)
    _answer(daemon, sink, 1, "It was sent again today.")
    _weeks_pass(1)
    mail = _reply_to(confirmation, "Can I return the blue one?", 1)
    mail.replace_header("Subject", "AW: A question about returns")
    assert "request 2 opened (following 1)" in _send(daemon, mail)
    assert [t.subject for t in Ticket.select().order_by(Ticket.id)] == ["Parcel not delivered",
                                                                       "A question about returns"]
