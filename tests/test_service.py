"""The support operations against SQLite and PostgreSQL: results, 400s, 404s, transitions."""

from __future__ import annotations

from datetime import datetime, timedelta

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.domain import Category, Event, Status
from helpdeskd.errors import InvalidRequest, NotFound
from helpdeskd.config import Config
from helpdeskd.outbound import outbox
from helpdeskd.outbound.outbox import retry_now
from helpdeskd.records import NewAttachment
from helpdeskd.service import FollowUpOutcome, Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Attachment, Message, Outbox, Ticket, utcnow

from tests.conftest import make_config

CUSTOMER = "ann@example.org"
AGENT = "bob@shop.test"
TEAM = "team@shop.test"


@pytest.fixture
def people(database: pw.Database) -> None:
    directory.add_customer(CUSTOMER, "Ann")
    directory.add_customer("carl@example.org", "Carl")
    directory.add_agent(AGENT, "Bob")


def outbox_events(ticket: Ticket) -> list[tuple[str, str]]:
    rows = Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id)
    return [(r.event, r.recipients) for r in rows]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


# -- create ------------------------------------------------------------------


def test_create_request_stores_fields_and_queues_confirmation_and_team_notice(
    helpdesk: Helpdesk, people: None
) -> None:
    t = helpdesk.create_request(CUSTOMER, "order", " Parcel  late ", "Where is it?", "#A1234")
    t = Ticket.get_by_id(t.id)
    assert (t.category, t.subject, t.description, t.order_id, t.status) == (
        "Order",
        "Parcel late",
        "Where is it?",
        "A1234",
        "Pending",
    )
    assert outbox_events(t) == [
        (Event.CONFIRMATION.value, CUSTOMER),
        (Event.NEW_REQUEST.value, "team@shop.test"),
    ]
    [msg] = Message.select().where(Message.ticket == t)
    assert (msg.kind, msg.author_email, msg.body) == ("customer", CUSTOMER, "Where is it?")


def test_team_notice_goes_to_the_category_team(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Billing", "Refund", "Please refund")
    assert t.category == "Payment"
    assert (Event.NEW_REQUEST.value, "billing-team@shop.test") in outbox_events(t)


def test_create_without_category_is_general_and_attachments_are_kept(
    helpdesk: Helpdesk, people: None
) -> None:
    att = NewAttachment("photo.jpg", "image/jpeg", b"\xff\xd8data", content_id="img1", inline=True)
    t = helpdesk.create_request(CUSTOMER, None, "Hello", "Text", attachments=[att])
    assert t.category == "General"
    [stored] = Attachment.select().join(Message).where(Message.ticket == t)
    assert (stored.filename, stored.size, bytes(stored.data), stored.content_id, stored.inline) == (
        "photo.jpg",
        6,
        b"\xff\xd8data",
        "img1",
        True,
    )


@pytest.mark.parametrize(
    ("subject", "description", "want_subject", "want_description"),
    [
        ("", "First line\nsecond", "First line", "First line\nsecond"),
        ("Only a subject", "  ", "Only a subject", "Only a subject"),
        ("x" * 300, "d", "x" * 199 + "…", "d"),
    ],
)
def test_subject_and_description_stand_in_for_each_other(
    helpdesk: Helpdesk, people: None, subject: str, description: str, want_subject: str, want_description: str
) -> None:
    t = helpdesk.create_request(CUSTOMER, "General", subject, description)
    assert (t.subject, t.description) == (want_subject, want_description)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"category": "Shoes"}, InvalidRequest, "unknown category 'Shoes'"),
        ({"subject": " ", "description": "\n"}, InvalidRequest, "both are empty"),
        ({"order_id": "A 1"}, InvalidRequest, "order_id"),
        ({"customer_email": "not-an-address"}, InvalidRequest, "customer"),
        ({"customer_email": "stranger@example.org"}, NotFound, "not a registered customer"),
    ],
)
def test_create_request_errors(
    helpdesk: Helpdesk, people: None, kwargs: dict[str, str], error: type[Exception], words: str
) -> None:
    args = {"customer_email": CUSTOMER, "category": "Order", "subject": "S", "description": "D"}
    args.update(kwargs)
    with pytest.raises(error, match=words):
        helpdesk.create_request(**args)  # type: ignore[arg-type]
    assert Ticket.select().count() == 0
    assert Outbox.select().count() == 0


def test_open_policy_creates_unknown_customers(database: pw.Database, db_url: str) -> None:
    helpdesk = Helpdesk(make_config(db_url, customers="open"))
    t = helpdesk.create_request("New@Example.org", "General", "Hi", "Hello", customer_name="Nell")
    assert t.customer.email == "new@example.org"
    assert t.customer.name == "Nell"


def test_a_customer_registered_without_a_name_gets_the_name_of_their_mail(helpdesk: Helpdesk) -> None:
    directory.add_customer("dave@example.org")
    first = helpdesk.create_request("dave@example.org", "General", "Hi", "Hello", customer_name=" Dave\r\n Lee ")
    assert first.customer.name == "Dave Lee"
    second = helpdesk.create_request("dave@example.org", "General", "Again", "Hello", customer_name="Mallory")
    assert second.customer.name == "Dave Lee"  # a name once known is not replaced by mail
    assert directory.find_customer("dave@example.org").name == "Dave Lee"


# -- list / details / pending --------------------------------------------------


def test_list_requests_filters_by_customer_category_and_status(helpdesk: Helpdesk, people: None) -> None:
    a = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    b = helpdesk.create_request(CUSTOMER, "Payment", "B", "b")
    c = helpdesk.create_request("carl@example.org", "Order", "C", "c")
    helpdesk.respond(b.id, AGENT, "Done")
    assert [t.id for t in helpdesk.list_requests(CUSTOMER)] == [b.id, a.id]
    assert [t.id for t in helpdesk.list_requests(CUSTOMER, "order")] == [a.id]
    assert [t.id for t in helpdesk.list_requests(None, "Order")] == [c.id, a.id]
    assert [t.id for t in helpdesk.list_requests(None, None, "resolved")] == [b.id]
    assert helpdesk.list_requests("carl@example.org", "Payment") == []


@pytest.mark.parametrize(
    ("customer", "category", "error"),
    [
        ("nobody@example.org", None, NotFound),
        (CUSTOMER, "Shoes", InvalidRequest),
        ("nobody@example.org", "Shoes", InvalidRequest),  # the 400 is checked first
    ],
)
def test_list_requests_errors(
    helpdesk: Helpdesk, people: None, customer: str, category: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        helpdesk.list_requests(customer, category)


def test_get_request_and_its_conversation(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "first")
    helpdesk.add_note(t.id, AGENT, "internal only")
    helpdesk.respond(t.id, AGENT, "answer", "in-progress")
    got = helpdesk.get_request(t.id, CUSTOMER.upper())
    assert got.id == t.id
    assert [(m.kind, m.body) for m in helpdesk.conversation(got)] == [
        ("customer", "first"),
        ("note", "internal only"),
        ("response", "answer"),
    ]


@pytest.mark.parametrize(("ticket_id", "customer"), [(999, None), (1, "carl@example.org")])
def test_get_request_not_found(helpdesk: Helpdesk, people: None, ticket_id: int, customer: str | None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    with pytest.raises(NotFound):
        helpdesk.get_request(t.id if ticket_id == 1 else ticket_id, customer)


def test_pending_requests_oldest_first_with_category_filter(helpdesk: Helpdesk, people: None) -> None:
    a = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    b = helpdesk.create_request(CUSTOMER, "Payment", "B", "b")
    c = helpdesk.create_request(CUSTOMER, "Order", "C", "c")
    helpdesk.set_status(c.id, AGENT, "in-progress")
    assert [t.id for t in helpdesk.pending_requests()] == [a.id, b.id]
    assert [t.id for t in helpdesk.pending_requests("payment")] == [b.id]
    with pytest.raises(InvalidRequest):
        helpdesk.pending_requests("Shoes")


# -- respond / cancel / status ---------------------------------------------------


def test_respond_resolves_by_default_and_queues_the_resolution(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    msg = helpdesk.respond(t.id, AGENT, "  Shipped today.  ")
    t = Ticket.get_by_id(t.id)
    assert (t.status, msg.body, t.assignee.email) == ("Resolved", "Shipped today.", AGENT)
    row = Outbox.select().where(Outbox.event == Event.RESOLUTION.value).get()
    assert (row.recipients, row.automatic, row.source_id) == (CUSTOMER, False, msg.id)


@pytest.mark.parametrize("answer", ["respond", "cancel"])
def test_an_answer_withdraws_a_confirmation_not_sent_yet(helpdesk: Helpdesk, people: None, answer: str) -> None:
    """The daemon was stopped while an admin answered: the customer must not read "we will
    answer within 24 hours" after the answer. A confirmation already sent stays as it was."""
    earlier = helpdesk.create_request(CUSTOMER, "order", "First", "text", "A1")
    Outbox.update(state="sent").where(Outbox.ticket == earlier.id).execute()
    t = helpdesk.create_request(CUSTOMER, "order", "Parcel", "Where is it?", "A2")
    for ticket in (earlier, t):
        if answer == "respond":
            helpdesk.respond(ticket.id, AGENT, "It ships today.", "in-progress")
        else:
            helpdesk.cancel(ticket.id, AGENT, "duplicate")

    def states(ticket: Ticket) -> list[tuple[str, str]]:
        return [(r.event, r.state) for r in Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id)]

    mail = Event.RESPONSE.value if answer == "respond" else Event.CANCELLATION.value
    assert states(t) == [("confirmation", "suppressed"), ("new_request", "queued"), (mail, "queued"),
                         ("answered", "queued")]
    assert states(earlier)[:3] == [("confirmation", "sent"), ("new_request", "sent"), (mail, "queued")]
    withdrawn = Outbox.get((Outbox.ticket == t.id) & (Outbox.event == "confirmation"))
    assert "answered or closed before it went out" in withdrawn.last_error
    # an admin's retry would tell the customer an answer is still to come, after it
    with pytest.raises(InvalidRequest, match=f"the confirmation of request {t.id}, which was answered"):
        retry_now(withdrawn.id)
    assert Outbox.get_by_id(withdrawn.id).state == "suppressed"


@pytest.mark.parametrize("held", ["sending", "failed", "suppressed"])
def test_a_confirmation_the_answer_could_not_withdraw_is_not_sent_after_it(
    helpdesk: Helpdesk, people: None, config: Config, held: str
) -> None:
    """When the answer came, the confirmation was not queued: a worker held it (it died
    then, or the smarthost said 4xx, and the row went back to the queue after), it had
    failed, or the hourly limit held it. It must not go out after the answer: not at
    the next claim, not at an admin's retry."""
    t = helpdesk.create_request(CUSTOMER, "order", "Parcel", "Where is it?", "A2")
    confirmation = Outbox.get((Outbox.ticket == t.id) & (Outbox.event == "confirmation"))
    Outbox.update(state=held, claimed_by="elsewhere:1" if held == "sending" else "").where(
        Outbox.id == confirmation.id).execute()
    helpdesk.respond(t.id, AGENT, "It ships today.", "in-progress")
    assert Outbox.get_by_id(confirmation.id).state == held  # (what the answer itself did not touch)
    if held == "sending":  # given back to the queue, as the worker's host does for a dead one's rows
        Outbox.update(state="queued", claimed_by="", next_attempt_at=utcnow()).where(
            Outbox.id == confirmation.id).execute()
        with write_transaction():
            claimed = outbox.claim(config, "me:1", 50)
        assert "confirmation" not in {row.event for row in claimed}
        assert sorted(row.event for row in claimed if row.ticket_id == t.id) == ["answered", "new_request", "response"]
        assert Outbox.get_by_id(confirmation.id).state == "suppressed"
        assert "answered or closed before it went out" in Outbox.get_by_id(confirmation.id).last_error
    with pytest.raises(InvalidRequest, match=f"the confirmation of request {t.id}, which was answered"):
        retry_now(confirmation.id)
    assert Outbox.get_by_id(confirmation.id).state in (held, "suppressed")


def test_respond_in_progress_queues_a_response(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    helpdesk.respond(t.id, AGENT, "Looking", Status.IN_PROGRESS)
    assert Ticket.get_by_id(t.id).status == "In Progress"
    # the customer's mail, and the team's copy of what was sent
    assert outbox_events(t)[-2:] == [(Event.RESPONSE.value, CUSTOMER), (Event.ANSWERED.value, TEAM)]


def test_default_reply_status_comes_from_config(database: pw.Database, db_url: str, people: None) -> None:
    helpdesk = Helpdesk(make_config(db_url, default_agent_reply_status=Status.IN_PROGRESS))
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    helpdesk.respond(t.id, AGENT, "Looking")
    assert Ticket.get_by_id(t.id).status == "In Progress"


@pytest.mark.parametrize(
    ("ticket", "agent", "text", "error", "words"),
    [
        (999, AGENT, "x", NotFound, "support request 999 not found"),
        (None, "eve@shop.test", "x", NotFound, "agent eve@shop.test not found"),
        (None, "dora@shop.test", "x", NotFound, "disabled"),
        (None, AGENT, "   ", InvalidRequest, "empty"),
    ],
)
def test_respond_errors_change_nothing(
    helpdesk: Helpdesk, people: None, ticket: int | None, agent: str, text: str, error: type[Exception], words: str
) -> None:
    directory.add_agent("dora@shop.test")
    directory.disable_agent("dora@shop.test")
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    before = Outbox.select().count()
    with pytest.raises(error, match=words):
        helpdesk.respond(ticket or t.id, agent, text)
    assert Ticket.get_by_id(t.id).status == "Pending"
    assert Outbox.select().count() == before


def test_cancel_then_respond_or_cancel_again_is_invalid(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    helpdesk.cancel(t.id, AGENT, "duplicate")
    assert Ticket.get_by_id(t.id).status == "Cancelled"
    assert outbox_events(t)[-2:] == [(Event.CANCELLATION.value, CUSTOMER), (Event.ANSWERED.value, TEAM)]
    with pytest.raises(InvalidRequest, match="already cancelled"):
        helpdesk.cancel(t.id, AGENT)
    with pytest.raises(InvalidRequest, match="cancelled"):
        helpdesk.respond(t.id, AGENT, "late answer")
    with pytest.raises(InvalidRequest):
        helpdesk.set_status(t.id, AGENT, "in-progress")


@pytest.mark.parametrize(
    ("ticket", "agent", "error"),
    [(999, AGENT, NotFound), (None, "eve@shop.test", NotFound)],
)
def test_cancel_not_found(helpdesk: Helpdesk, people: None, ticket: int | None, agent: str, error: type[Exception]) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    with pytest.raises(error):
        helpdesk.cancel(ticket or t.id, agent)
    assert Ticket.get_by_id(t.id).status == "Pending"


def test_resolved_request_cannot_be_cancelled(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    helpdesk.respond(t.id, AGENT, "done")
    with pytest.raises(InvalidRequest, match="resolved"):
        helpdesk.cancel(t.id, AGENT)


@pytest.mark.parametrize(
    ("path", "final"),
    [
        (["in-progress"], "In Progress"),
        (["in-progress", "pending"], "Pending"),
        (["in-progress", "resolved"], "Resolved"),
        (["resolved", "in-progress"], "In Progress"),
        (["cancelled"], "Cancelled"),
    ],
)
def test_status_transitions(helpdesk: Helpdesk, people: None, path: list[str], final: str) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    for status in path:
        helpdesk.set_status(t.id, AGENT, status)
    assert Ticket.get_by_id(t.id).status == final


def test_unknown_status_is_invalid(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    with pytest.raises(InvalidRequest, match="unknown status"):
        helpdesk.set_status(t.id, AGENT, "done-ish")


# -- customer follow-ups -----------------------------------------------------------


def test_follow_up_on_open_request_is_appended_and_team_told(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Payment", "A", "a")
    result = helpdesk.add_follow_up(t.id, CUSTOMER, "more info")
    assert (result.outcome, result.ticket.id) == (FollowUpOutcome.APPENDED, t.id)
    assert outbox_events(t)[-1] == (Event.FOLLOW_UP.value, "billing-team@shop.test")


def test_follow_up_from_someone_else_is_not_found(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    with pytest.raises(NotFound):
        helpdesk.add_follow_up(t.id, "carl@example.org", "let me in")
    assert Message.select().where(Message.ticket == t).count() == 1


def test_a_request_reopened_after_its_agent_left_is_nobody_s(helpdesk: Helpdesk, people: None) -> None:
    """Disabling an agent releases the open requests they hold; one they resolved keeps
    their name, and reopened it must not wait for someone who can no longer answer."""
    t = helpdesk.create_request(CUSTOMER, "Order", "Parcel", "Where is it?")
    helpdesk.respond(t.id, AGENT, "It ships today.")
    assert Ticket.get_by_id(t.id).assignee_id is not None
    directory.disable_agent(AGENT)
    assert helpdesk.add_follow_up(t.id, CUSTOMER, "It did not come.").outcome == FollowUpOutcome.REOPENED
    assert (Ticket.get_by_id(t.id).status, Ticket.get_by_id(t.id).assignee_id) == ("Pending", None)


def test_follow_up_reopens_within_grace_and_links_after(database: pw.Database, db_url: str, people: None) -> None:
    clock = Clock()
    helpdesk = Helpdesk(make_config(db_url, reopen_grace_days=7), now=clock)
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a", "A1")
    helpdesk.respond(t.id, AGENT, "done")
    clock.now += timedelta(days=6)
    reopened = helpdesk.add_follow_up(t.id, CUSTOMER, "still broken")
    assert reopened.outcome == FollowUpOutcome.REOPENED
    assert Ticket.get_by_id(t.id).status == "Pending"
    assert outbox_events(t)[-1] == (Event.REOPENED.value, "team@shop.test")

    helpdesk.respond(t.id, AGENT, "done again")
    clock.now += timedelta(days=8)
    later = helpdesk.add_follow_up(t.id, CUSTOMER, "new trouble")
    assert later.outcome == FollowUpOutcome.NEW_LINKED
    new = Ticket.get_by_id(later.ticket.id)
    assert (new.linked_to_id, new.status, new.order_id, new.description) == (t.id, "Pending", "A1", "new trouble")
    assert new.subject == "A"  # the old request's subject, not the reply's
    assert Ticket.get_by_id(t.id).status == "Resolved"


def test_follow_up_on_cancelled_request_opens_a_linked_one(helpdesk: Helpdesk, people: None) -> None:
    t = helpdesk.create_request(CUSTOMER, "Order", "A", "a")
    helpdesk.cancel(t.id, AGENT)
    result = helpdesk.add_follow_up(t.id, CUSTOMER, "why?")
    assert result.outcome == FollowUpOutcome.NEW_LINKED
    assert result.ticket.linked_to_id == t.id
    assert (Event.CONFIRMATION.value, CUSTOMER) in outbox_events(result.ticket)


def test_category_enum_round_trip(helpdesk: Helpdesk, people: None) -> None:
    for category in Category:
        t = helpdesk.create_request(CUSTOMER, category, category.value, "d")
        assert Ticket.get_by_id(t.id).category == category.value



@pytest.mark.parametrize("address", ["a@b@c.de", "ann", "ann@localhost", "ann@.example.org", "a nn@example.org", "",
                                     "mailto:ann@example.org"])
def test_an_address_that_is_not_one_is_refused_naming_the_field(database: pw.Database, address: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^email: .* is not an email address$"):
        directory.add_customer(address)
    assert directory.list_customers() == []


@pytest.mark.parametrize(
    ("description", "subject"),
    [("Hello,\n\nmy parcel did not arrive.\nAnn", "my parcel did not arrive."),
     ("Dear support team,\nThe lid is broken.", "The lid is broken."),
     ("Guten Tag\nDas Paket fehlt.", "Das Paket fehlt."),
     ("Hello there, my parcel did not arrive at all, can you check?", "Hello there, my parcel did not arrive at all, can you check?"),
     ("Hi!", "Hi!")],
)
def test_a_request_without_a_subject_is_titled_by_its_first_line_that_is_not_a_greeting(
    helpdesk: Helpdesk, people: None, description: str, subject: str
) -> None:
    assert helpdesk.create_request(CUSTOMER, "General", "", description).subject == subject

