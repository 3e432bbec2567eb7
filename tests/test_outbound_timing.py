"""Mail rendered late tells of the moment it was queued, on both engines.

The outbox worker may render a row long after its event (the daemon was stopped, or
busy), and in one pass with the rows queued after it. Each mail must still thread under
the mail that existed when its event happened, and state the request as it was then.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.agent_actions import AgentActions, CommandReport
from helpdeskd.config import Config
from helpdeskd.domain import Category, Event, Status
from helpdeskd.intake.process import Intake
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.outbound import outbox
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Outbox, Ticket

from tests.daemon_harness import make_mail, wire_bytes

SECRET = b"s3cret-for-tests-only-0123456789"
CUSTOMER, BOB = "ann@example.org", "bob@shop.test"


@pytest.fixture
def people(database: pw.Database) -> None:
    directory.add_customer(CUSTOMER, "Ann Lee")
    directory.add_agent(BOB, "Bob Stone")


def render_pass(config: Config) -> dict[int, EmailMessage]:
    """One pass of the worker over every due row (claimed, rendered, stored), unsent."""
    with write_transaction():
        claimed = outbox.claim(config, "test-host:1", 100)
    built = outbox.render_rows(config, claimed)
    with write_transaction():
        outbox.store_rendered(config, built)
    mails = {}
    for row_id, data, error in built:
        assert data is not None, error
        mails[row_id] = email.message_from_bytes(data, policy=email.policy.default)
    return mails


def of(mails: dict[int, EmailMessage], ticket: int, event: Event) -> list[EmailMessage]:
    rows = Outbox.select(Outbox.id).where((Outbox.ticket == ticket) & (Outbox.event == event.value))
    return [mails[row.id] for row in rows.order_by(Outbox.id)]


def confirmation_state(ticket: int) -> str:
    return str(Outbox.get((Outbox.ticket == ticket) & (Outbox.event == Event.CONFIRMATION.value)).state)


def texts(msg: EmailMessage) -> str:
    parts = [msg.get_body((kind,)) for kind in ("plain", "html")]
    return "\n".join(part.get_content() for part in parts if part is not None)


def refs(msg: EmailMessage) -> list[str]:
    return str(msg["References"] or "").split()


def deliver(intake: Intake, msg: EmailMessage, sender: str, rcpt: str) -> str:
    outcome = intake.ingest(wire_bytes(msg), sender, [rcpt])
    assert outcome.accepted, outcome.reply
    return outcome.reply


def test_agent_replies_queued_before_rendering_thread_and_state_as_they_happened(
    database: pw.Database, config: Config, people: None
) -> None:
    """The reported case: three agent replies arrive while no mail is rendered."""
    intake = Intake(config)
    deliver(intake, make_mail(Message_ID="<c0@example.org>"), CUSTOMER, "support@shop.test")
    tid = Ticket.get().id
    agents = ticket_address("support", "shop.test", tid, "a", SECRET)
    for n, body in enumerate(["#status wrong\n\nSorry.",
                              "#status in-progress\n#note\nAsked the warehouse.",
                              "It was left with your neighbour."], start=1):
        deliver(intake, make_mail(sender=BOB, to=agents, subject=f"Re: [Ticket #{tid}] Parcel",
                                  body=body, Message_ID=f"<r{n}@shop.test>"), BOB, agents)
    assert Ticket.get_by_id(tid).status == "Resolved"

    mails = render_pass(config)
    assert confirmation_state(tid) == "suppressed"  # overtaken by the resolution: not sent
    (notice,) = of(mails, tid, Event.NEW_REQUEST)
    first, second = of(mails, tid, Event.COMMAND_RESULT)
    (resolution,) = of(mails, tid, Event.RESOLUTION)

    # the refused reply (1): the result answers that reply, before replies 2 and 3 existed
    assert first["In-Reply-To"] == "<r1@shop.test>"
    assert refs(first) == [notice["Message-ID"], "<r1@shop.test>"]
    assert f"Request #{tid} (Pending)" in texts(first)
    # reply 2 (status and note): answers that reply, knows nothing of reply 3
    assert second["In-Reply-To"] == "<r2@shop.test>"
    assert refs(second) == [notice["Message-ID"], first["Message-ID"], "<r2@shop.test>"]
    assert f"Request #{tid} (In Progress)" in texts(second)
    # the notice tells of the new request, not of the request as it is now
    assert "Status:    Pending" in texts(notice)
    # the customer's thread: their mail and ours to them, never the team's
    assert resolution["In-Reply-To"] == "<c0@example.org>"
    assert refs(resolution) == ["<c0@example.org>"]
    # every Message-ID kept is the one sent
    for row_id, msg in mails.items():
        assert f"<{Outbox.get_by_id(row_id).message_id}>" == msg["Message-ID"]


def test_responses_in_a_row_answer_each_other_when_rendered_in_one_pass(
    helpdesk: Helpdesk, config: Config, people: None
) -> None:
    ticket = helpdesk.create_request(CUSTOMER, "Order", "Parcel late", "Where is it?", "A1")
    helpdesk.respond(ticket.id, BOB, "We are looking into it.", Status.IN_PROGRESS)
    helpdesk.respond(ticket.id, BOB, "Found it: it is on its way.")

    mails = render_pass(config)
    assert confirmation_state(ticket.id) == "suppressed"  # overtaken by the response: not sent
    (notice,) = of(mails, ticket.id, Event.NEW_REQUEST)
    (response,) = of(mails, ticket.id, Event.RESPONSE)
    (resolution,) = of(mails, ticket.id, Event.RESOLUTION)
    assert response["In-Reply-To"] is None  # (made on the command line: no mail before it)
    assert resolution["In-Reply-To"] == response["Message-ID"]
    assert refs(resolution) == [response["Message-ID"]]
    assert notice["Message-ID"] not in refs(response) + refs(resolution)


def test_mail_states_the_category_order_and_status_of_its_event(
    helpdesk: Helpdesk, config: Config, people: None
) -> None:
    ticket = helpdesk.create_request(CUSTOMER, "Order", "Parcel late", "Where is it?")
    actions = AgentActions(helpdesk)
    actions.set_category(ticket.id, BOB, Category.PAYMENT)
    actions.set_order(ticket.id, BOB, "A1234")
    helpdesk.set_status(ticket.id, BOB, Status.IN_PROGRESS)

    mails = render_pass(config)
    (confirmation,) = of(mails, ticket.id, Event.CONFIRMATION)
    (notice,) = of(mails, ticket.id, Event.NEW_REQUEST)
    text = texts(confirmation)
    assert "Category:        Order" in text and "Please tell us your order number" in text
    assert "A1234" not in text and "Payment" not in text
    notice_text = texts(notice)
    assert "Category:  Order" in notice_text and "Order:     (none given)" in notice_text
    assert "Status:    Pending" in notice_text and ">Status</td><td>Pending</td>" in notice_text


def test_command_result_answers_the_agents_reply_it_is_about(
    helpdesk: Helpdesk, config: Config, people: None
) -> None:
    ticket = helpdesk.create_request(CUSTOMER, "Order", "Parcel late", "Where is it?", "A1")
    lines = [CommandReport("#status wrong", False, "Unknown status 'wrong'.")]
    AgentActions(helpdesk).report_commands(ticket.id, BOB, lines, applied=False, in_reply_to="<r1@shop.test>")
    helpdesk.respond(ticket.id, BOB, "Shipped.")

    mails = render_pass(config)
    (notice,) = of(mails, ticket.id, Event.NEW_REQUEST)
    (result,) = of(mails, ticket.id, Event.COMMAND_RESULT)
    assert result["In-Reply-To"] == "<r1@shop.test>"
    assert refs(result) == [notice["Message-ID"], "<r1@shop.test>"]
    assert f"Request #{ticket.id} (Pending)" in texts(result)


def test_mail_never_received_is_not_answered(helpdesk: Helpdesk, config: Config, people: None) -> None:
    ticket = helpdesk.create_request(CUSTOMER, "Order", "Parcel late", "Where is it?", "A1")
    Outbox.update(state="suppressed").where(Outbox.event == Event.CONFIRMATION.value).execute()
    helpdesk.respond(ticket.id, BOB, "Shipped.")
    mails = render_pass(config)
    (resolution,) = of(mails, ticket.id, Event.RESOLUTION)
    # the request was made on the command line (no Message-ID); the confirmation never went
    assert resolution["In-Reply-To"] is None and resolution["References"] is None


def test_rows_queued_before_the_payload_kept_their_moment_still_render(
    helpdesk: Helpdesk, config: Config, people: None
) -> None:
    intake = Intake(config)
    deliver(intake, make_mail(Message_ID="<c0@example.org>"), CUSTOMER, "support@shop.test")
    tid = Ticket.get().id
    helpdesk.respond(tid, BOB, "Shipped.", Status.IN_PROGRESS)
    Outbox.update(payload="").execute()  # as rows written by an earlier version
    helpdesk.add_follow_up(tid, CUSTOMER, "Thanks!", message_id="c1@example.org")

    mails = render_pass(config)
    (response,) = of(mails, tid, Event.RESPONSE)
    (notice,) = of(mails, tid, Event.NEW_REQUEST)
    (follow_up,) = of(mails, tid, Event.FOLLOW_UP)
    assert response["In-Reply-To"] == "<c0@example.org>"  # (the confirmation it overtook is not sent)
    assert "c1@example.org" not in str(response["References"])  # written after it was queued
    assert "Status:    In Progress" in texts(notice)  # no facts kept: the request as it is
    assert follow_up["Message-ID"].endswith("@shop.test>")
