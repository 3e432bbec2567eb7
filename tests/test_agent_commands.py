"""Agent email commands through real SMTP into a real daemon, both engines: each command,
combinations, and bad commands (nothing changed, the agent told, the customer sent nothing).
"""

from __future__ import annotations

import json
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.domain import Status
from helpdeskd.store.models import Message, Outbox, RawMessage, Ticket

from tests.agent_mail import (
    BOB,
    CAROL,
    QUOTE,
    addr,
    command_results,
    customer_rows,
    open_ticket,
    people,
    reply,
    state,
    the_response,
)
from tests.conftest import make_config
from tests.daemon_harness import RunningDaemon, make_mail


def test_plain_reply_resolves_and_sends_the_text(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    code, text = reply(running, ticket, "It was shipped today.\n\nBob" + QUOTE)
    assert code == 250 and "Response recorded" in text
    assert the_response(ticket).body == "It was shipped today.\n\nBob"
    assert [r.event for r in customer_rows(ticket)] == ["resolution"]
    assert Ticket.get_by_id(ticket).assignee_id == directory.find_active_agent(BOB).id
    assert command_results(ticket) == []


def test_default_reply_status_in_progress(database: pw.Database, db_url: str) -> None:
    people()
    with RunningDaemon(make_config(db_url, default_agent_reply_status=Status.IN_PROGRESS), database) as daemon:
        ticket = open_ticket(daemon)
        assert reply(daemon, ticket, "Working on it.")[0] == 250
    assert Ticket.get_by_id(ticket).status == "In Progress"
    assert [r.event for r in customer_rows(ticket)] == ["response"]


@pytest.mark.parametrize(
    ("commands", "status", "event"),
    [
        ("#status in-progress", "In Progress", "response"),
        ("#status resolved", "Resolved", "resolution"),
        ("#status pending", "Pending", "response"),
    ],
)
def test_status_with_text_sends_the_text_without_the_command(
    running: RunningDaemon, commands: str, status: str, event: str
) -> None:
    ticket = open_ticket(running)
    assert reply(running, ticket, f"{commands}\n\nWe are on it." + QUOTE)[0] == 250
    assert the_response(ticket).body == "We are on it."
    assert Ticket.get_by_id(ticket).status == status
    (row,) = customer_rows(ticket)
    assert (row.event, row.source_id) == (event, the_response(ticket).id)
    assert command_results(ticket) == []


def test_category_order_and_assign_with_text(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    # (giving it to a colleague, the text goes to the customer only when a #status says so)
    body = "#category billing\n#order #A-1234\n#assign carol@shop.test\n#status resolved\n\nYour refund is on its way."
    assert reply(running, ticket, body + QUOTE)[0] == 250
    t = Ticket.get_by_id(ticket)
    assert (t.category, t.order_id, t.assignee.email, t.status) == ("Payment", "A-1234", CAROL, "Resolved")
    assert the_response(ticket).body == "Your refund is on its way."
    assert [r.event for r in customer_rows(ticket)] == ["resolution"]


def test_commands_alone_change_the_request_and_confirm_to_the_agent(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    code, text = reply(running, ticket, "#status in-progress\n#assign\n#order A77" + QUOTE)
    assert code == 250 and "Commands carried out" in text
    t = Ticket.get_by_id(ticket)
    assert (t.status, t.assignee.email, t.order_id) == ("In Progress", BOB, "A77")
    assert customer_rows(ticket) == []
    assert Message.select().where((Message.ticket == ticket) & (Message.kind == "response")).count() == 0
    (result,) = command_results(ticket)
    # the mail tells of the request as the commands left it, however late it is sent
    assert result["facts"] == {"status": "In Progress", "category": "General", "order_id": "A77"}
    assert {key: result[key] for key in ("applied", "commands")} == {
        "applied": True,
        "commands": [
            {"line": "#status in-progress", "ok": True, "explanation": "Status set to In Progress; nothing was sent to the customer.",
             "code": "status_set_not_sent", "params": {"status": "In Progress"}},
            {"line": "#assign", "ok": True, "explanation": "Assigned to you.", "code": "assigned_to_you", "params": {}},
            {"line": "#order A77", "ok": True, "explanation": "Order id set to A77.", "code": "order_set",
             "params": {"order": "A77"}},
        ],
    }


def test_note_keeps_the_text_internal(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    code, text = reply(running, ticket, "#note\n#status in-progress\n\nCustomer called; warehouse checks." + QUOTE)
    assert code == 250 and "Internal note" in text
    note = Message.get((Message.ticket == ticket) & (Message.kind == "note"))
    assert note.body == "Customer called; warehouse checks."
    assert Ticket.get_by_id(ticket).status == "In Progress"
    assert customer_rows(ticket) == []
    (result,) = command_results(ticket)
    assert result["applied"] is True and [c["ok"] for c in result["commands"]] == [True, True]  # type: ignore[index,union-attr]
    assert Outbox.get(Outbox.event == "command_result").source_id == note.id


@pytest.mark.parametrize(("body", "reason"), [("Out of stock, sorry.", "Out of stock, sorry."), ("", None)])
def test_cancel_with_and_without_a_reason(running: RunningDaemon, body: str, reason: str | None) -> None:
    ticket = open_ticket(running)
    code, text = reply(running, ticket, f"#cancel\n\n{body}" + QUOTE)
    assert code == 250 and "cancelled" in text
    assert Ticket.get_by_id(ticket).status == "Cancelled"
    (row,) = customer_rows(ticket)
    assert row.event == "cancellation"
    assert (json.loads(row.payload)["reason"] or None) == reason
    assert row.automatic is False  # a person's decision, sent as the agent's
    assert command_results(ticket) == []


def test_note_and_cancel_cancels_without_the_note(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    assert reply(running, ticket, "#cancel\n#note\nDuplicate of another request.")[0] == 250
    assert Ticket.get_by_id(ticket).status == "Cancelled"
    (row,) = customer_rows(ticket)
    assert (row.event, json.loads(row.payload)["reason"]) == ("cancellation", "")
    assert Message.get((Message.ticket == ticket) & (Message.kind == "note")).body == "Duplicate of another request."


@pytest.mark.parametrize(
    ("body", "bad_line", "words"),
    [
        ("#frobnicate\nShipped.", "#frobnicate", "Unknown command"),
        ("#status later\nShipped.", "#status later", "Unknown status"),
        ("#category Furniture\n#status in-progress\nShipped.", "#category Furniture", "Unknown category"),
        ("#cancel\n#status resolved\nShipped.", "#status resolved", "conflicts"),
        ("#assign zed@shop.test\nShipped.", "#assign zed@shop.test", "not found"),
        ("#note\n" + QUOTE, "#note", "needs the text"),
        # a command under the text: acted on as text, the note would reach the customer
        ("Hi team,\n#note\nOn the fraud list; no refund." + QUOTE, "#note", "below your text"),
        ("Shipped today.\n\n  \uff03Status in-progress\n" + QUOTE, "\uff03Status in-progress", "below your text"),
        # a hand-over with a line for the colleague: mailed to the customer as the answer
        ("#assign carol@shop.test\nCarol, this is a VAT question, can you take it?" + QUOTE,
         "#assign carol@shop.test", "add #note to leave the text for them"),
    ],
)
def test_a_bad_command_changes_nothing_and_tells_the_agent(
    running: RunningDaemon, body: str, bad_line: str, words: str
) -> None:
    ticket = open_ticket(running)
    before = state(ticket)
    code, text = reply(running, ticket, body)
    assert code == 250 and "nothing was done" in text
    assert state(ticket) == before
    assert customer_rows(ticket) == []
    (result,) = command_results(ticket)
    assert result["applied"] is False
    bad = [c for c in result["commands"] if not c["ok"]]  # type: ignore[union-attr]
    assert [c["line"] for c in bad] == [bad_line] and words in bad[0]["explanation"]
    raw = RawMessage.select().order_by(RawMessage.id.desc()).get()
    assert (raw.ticket_id, raw.state) == (ticket, "processed")  # accepted and kept


def test_a_hand_over_with_a_note_assigns_and_sends_nothing_to_the_customer(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    body = "#assign carol@shop.test\n#note\nCarol, this is a VAT question, can you take it?" + QUOTE
    assert reply(running, ticket, body)[0] == 250
    assert customer_rows(ticket) == [] and Ticket.get_by_id(ticket).status == "Pending"
    assert Ticket.get_by_id(ticket).assignee.email == "carol@shop.test"


@pytest.mark.parametrize("note", ["# note", "\u200b#note", "\uff03note", "\ufeff # Note:"])
def test_a_note_reads_as_one_however_the_keyboard_typed_it(running: RunningDaemon, note: str) -> None:
    ticket = open_ticket(running)
    assert reply(running, ticket, f"{note}\nOn the fraud list; no refund." + QUOTE)[0] == 250
    assert customer_rows(ticket) == [] and Ticket.get_by_id(ticket).status == "Pending"
    assert Message.get((Message.ticket == ticket) & (Message.kind == "note")).body == "On the fraud list; no refund."


@pytest.mark.parametrize("first", ["#order A 1 %%\n#frobnicate", "#category Payment"])
def test_every_wrong_line_of_a_reply_is_named_at_once(running: RunningDaemon, first: str) -> None:
    """Wrong words (an unknown command) and commands the request refuses (an unknown
    agent, an empty note) come back in one answer, not one round trip each."""
    ticket = open_ticket(running)
    before = state(ticket)
    body = f"{first}\n#assign nobody@example.com\n#note\n\n{QUOTE}"
    assert reply(running, ticket, body)[0] == 250
    assert state(ticket) == before
    (result,) = command_results(ticket)
    bad = {c["line"]: c["explanation"] for c in result["commands"] if not c["ok"]}  # type: ignore[union-attr]
    assert "#assign nobody@example.com" in bad and "not found" in bad["#assign nobody@example.com"]
    assert "#note" in bad and "needs the text" in bad["#note"]
    if first.startswith("#order"):
        assert {"#order A 1 %%", "#frobnicate"} <= set(bad)
    else:
        assert [c for c in result["commands"] if c["line"] == "#category Payment"] == [  # type: ignore[union-attr]
            {"line": "#category Payment", "ok": True, "explanation": "Understood, but not carried out.",
             "code": "not_carried_out", "params": {}}]


def test_status_the_request_cannot_take_is_refused_by_line(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    assert reply(running, ticket, "#cancel")[0] == 250
    before = state(ticket)
    assert reply(running, ticket, "#category Payment\n#status in-progress")[0] == 250
    assert state(ticket) == before  # the category change was undone too
    result = command_results(ticket)[-1]
    assert result["commands"] == [
        {"line": "#category Payment", "ok": True, "explanation": "Understood, but not carried out.",
         "code": "not_carried_out", "params": {}},
        {"line": "#status in-progress", "ok": False,
         "explanation": f"Support request {ticket} is Cancelled; it cannot become In Progress.",
         "code": "cannot_become", "params": {"ticket": ticket, "status": "Cancelled", "new_status": "In Progress"}},
    ]


def test_a_cancelled_request_is_given_to_no_one(running: RunningDaemon) -> None:
    """``#assign`` on a Cancelled request would send a colleague work they cannot do (an
    answer to it is refused): it is refused by line, and nobody is told of an assignment."""
    ticket = open_ticket(running)
    assert reply(running, ticket, "#cancel")[0] == 250
    before = state(ticket)
    assert reply(running, ticket, f"#assign {CAROL}\n#note\nCarol, can you look at this one?")[0] == 250
    assert state(ticket) == before and Ticket.get_by_id(ticket).assignee is None
    assert not Outbox.select().where((Outbox.ticket == ticket) & (Outbox.event == "assigned")).exists()
    refused = {c["line"]: c["explanation"] for c in command_results(ticket)[-1]["commands"] if not c["ok"]}
    assert refused == {f"#assign {CAROL}": f"Request {ticket} is cancelled; it cannot be given to anyone."}


@pytest.mark.parametrize("command", ["#category Payment", "#assign"])
def test_answer_to_a_cancelled_request_is_refused_in_smtp(running: RunningDaemon, command: str) -> None:
    """Whatever commands come with it (an edit the request would refuse alone too)."""
    ticket = open_ticket(running)
    assert reply(running, ticket, "#cancel")[0] == 250
    before = state(ticket)
    code, text = reply(running, ticket, f"{command}\nShipped after all.")
    assert code == 550 and "5.6.0" in text and "cancelled" in text
    assert state(ticket) == before


def test_same_reply_twice_changes_nothing_the_second_time(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    msg = make_mail(sender=BOB, to=addr(ticket), subject="Re: Parcel", body="Shipped.", Message_ID="<r1@shop.test>")
    assert running.send(msg, BOB, [addr(ticket)])[0] == 250
    code, text = running.send(msg, BOB, [addr(ticket)])
    assert code == 250 and "Already received" in text
    assert len(customer_rows(ticket)) == 1


def test_commands_in_an_html_only_outlook_reply(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = BOB, addr(ticket), "RE: Parcel"
    msg.set_content(
        "<html><body><p>#status in-progress</p><p>#category Payment</p><p>We refund you today.</p>"
        "<p>Bob</p><div id=\"divRplyFwdMsg\"><b>From:</b> Shop Support<br><b>Sent:</b> Monday<br>"
        "<b>To:</b> Bob<br><b>Subject:</b> Parcel</div><div>My parcel did not arrive.</div></body></html>",
        subtype="html",
    )
    assert running.send(msg, BOB, [addr(ticket)])[0] == 250
    assert the_response(ticket).body == "We refund you today.\n\nBob"
    t = Ticket.get_by_id(ticket)
    assert (t.status, t.category) == ("In Progress", "Payment")
