"""The agent's changes in the service layer (both engines), and which inline images of a
reply belong to its new text (table-driven, pure)."""

from __future__ import annotations

import email
import email.policy
import json

import pytest
from helpdeskd import directory
from helpdeskd.agent_actions import AgentActions, CommandReport
from helpdeskd.config import Config
from helpdeskd.domain import Category, Status
from helpdeskd.errors import InvalidRequest, NotFound
from helpdeskd.mail.commands import Command, CommandName
from helpdeskd.mail.inline_images import images_outside_new_text, referenced_content_ids
from helpdeskd.outbound.views import build_mail
from helpdeskd.records import NewAttachment
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Message, Outbox, Ticket

BOB, CAROL = "bob@shop.test", "carol@shop.test"


@pytest.fixture
def actions(helpdesk: Helpdesk) -> AgentActions:
    directory.add_customer("ann@example.org", "Ann")
    directory.add_agent(BOB, "Bob")
    directory.add_agent(CAROL, "Carol")
    return AgentActions(helpdesk)


def _ticket(helpdesk: Helpdesk) -> int:
    return helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id


def test_single_changes_are_recorded_and_mail_only_a_new_assignee(
    helpdesk: Helpdesk, actions: AgentActions, config: Config
) -> None:
    tid = _ticket(helpdesk)
    actions.set_category(tid, BOB, "billing")  # an alias: Payment, whose team is told (below)
    rows = Outbox.select().count()
    actions.set_order(tid, BOB, "#A-1")
    actions.assign(tid, BOB)  # taking it oneself tells nobody
    assert Outbox.select().count() == rows
    actions.assign(tid, BOB, CAROL)
    ticket = Ticket.get_by_id(tid)
    assert (ticket.category, ticket.order_id, ticket.assignee.email) == ("Payment", "A-1", CAROL)
    events = [m.body for m in Message.select().where(Message.kind == "event").order_by(Message.id)]
    assert events == ["Category changed from Order to Payment.", "Order id set to A-1.",
                      f"Assigned to {BOB}.", f"Assigned to {CAROL}."]
    (told,) = Outbox.select().where((Outbox.event == "assigned") & (Outbox.recipients == CAROL))
    assert Outbox.select().count() == rows + 1
    mail = email.message_from_bytes(build_mail(config, told).data, policy=email.policy.default)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Bob assigned request" in text and "Where is it?" in text
    assert mail["Reply-To"].startswith(f"support+{tid}.a.")  # Carol can answer the customer from it
    actions.assign(tid, CAROL)
    assert Ticket.get_by_id(tid).assignee.email == CAROL and Outbox.select().count() == rows + 1


def test_moving_a_request_to_another_teams_category_tells_that_team(
    helpdesk: Helpdesk, actions: AgentActions, config: Config
) -> None:
    """billing-team@ handles Payment: without a mail it would first hear of the request
    when the customer wrote again. A move within one team's categories tells no one."""
    tid = _ticket(helpdesk)
    rows = Outbox.select().count()
    actions.set_category(tid, BOB, "Product")  # the default team's, as Order is
    assert Outbox.select().count() == rows
    actions.set_category(tid, BOB, "Payment")
    (told,) = Outbox.select().where(Outbox.id > rows)
    assert (told.event, told.recipients) == ("assigned", "billing-team@shop.test")
    mail = email.message_from_bytes(build_mail(config, told).data, policy=email.policy.default)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    moved = f"Bob moved request #{tid} to Payment, which this address handles."
    assert moved in text and moved in html and "Where is it?" in text and "assigned" not in text
    assert mail["Reply-To"].startswith(f"support+{tid}.a.")  # the team can answer the customer from it


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda a, t: a.set_category(t, BOB, "Furniture"), InvalidRequest),
        (lambda a, t: a.set_order(t, BOB, "A 1"), InvalidRequest),
        (lambda a, t: a.assign(t, BOB, "zed@shop.test"), NotFound),
        (lambda a, t: a.assign(t, "zed@shop.test"), NotFound),
        (lambda a, t: a.set_category(999, BOB, "Order"), NotFound),
    ],
)
def test_single_change_errors(helpdesk: Helpdesk, actions: AgentActions, call: object, error: type[Exception]) -> None:
    tid = _ticket(helpdesk)
    with pytest.raises(error):
        call(actions, tid)  # type: ignore[operator]
    assert Ticket.get_by_id(tid).category == "Order"


def test_carry_out_is_all_or_nothing(helpdesk: Helpdesk, actions: AgentActions) -> None:
    tid = _ticket(helpdesk)
    commands = [Command(CommandName.CATEGORY, Category.PAYMENT), Command(CommandName.ASSIGN, "zed@shop.test")]
    outcome = actions.carry_out(tid, BOB, commands, "Refund sent.")
    assert not outcome.applied and outcome.refused is not None
    assert outcome.refused[0] == commands[1] and "not found" in outcome.refused[1]
    assert Ticket.get_by_id(tid).category == "Order"
    assert Message.select().count() == 1


def test_carry_out_with_text_goes_through_respond(helpdesk: Helpdesk, actions: AgentActions) -> None:
    """The same outbox row as ``helpdeskd respond`` writes: the customer gets the same mail."""
    by_mail, by_cli = _ticket(helpdesk), _ticket(helpdesk)
    attachment = NewAttachment("label.pdf", "application/pdf", b"%PDF")
    outcome = actions.carry_out(by_mail, BOB, [Command(CommandName.STATUS, Status.IN_PROGRESS)], " Shipped. ",
                                attachments=[attachment])
    helpdesk.respond(by_cli, BOB, "Shipped.", "in-progress")
    rows = [Outbox.get((Outbox.ticket == t) & (Outbox.event == "response")) for t in (by_mail, by_cli)]
    assert [(r.recipients, r.automatic, r.source.body) for r in rows] == [("ann@example.org", False, "Shipped.")] * 2
    assert outcome.message is not None and [a.filename for a in outcome.message.attachments] == ["label.pdf"]


def _text_of(config: Config, row: Outbox) -> str:
    mail = email.message_from_bytes(build_mail(config, row).data, policy=email.policy.default)
    return mail.get_body(("plain",)).get_content()  # type: ignore[union-attr, no-any-return]


def test_every_mail_of_a_reply_tells_the_request_as_the_whole_reply_left_it(
    helpdesk: Helpdesk, actions: AgentActions, config: Config
) -> None:
    tid = _ticket(helpdesk)
    commands = [Command(CommandName.CATEGORY, Category.PAYMENT), Command(CommandName.ORDER, "B-998"),
                Command(CommandName.ASSIGN, CAROL), Command(CommandName.STATUS, Status.IN_PROGRESS)]
    before = Outbox.select().count()
    assert actions.carry_out(tid, BOB, commands, "The refund is on its way.").applied
    rows = {row.event: row for row in Outbox.select().order_by(Outbox.id).offset(before)}
    assert set(rows) == {"assigned", "response", "answered"}
    for row in rows.values():  # the assignment was queued first, before the rest was done
        facts = json.loads(row.payload)["facts"]
        assert facts == {"status": "In Progress", "category": "Payment", "order_id": "B-998"}, row.event
    for team in (rows["assigned"], rows["answered"]):
        text = _text_of(config, team)
        for line in ("Category:  Payment", "Order:     B-998", "Status:    In Progress"):
            assert line in text, (team.event, text)


def test_a_response_sent_as_open_with_status_pending_tells_the_team_pending(
    helpdesk: Helpdesk, actions: AgentActions, config: Config
) -> None:
    tid = _ticket(helpdesk)
    before = Outbox.select().count()
    actions.carry_out(tid, BOB, [Command(CommandName.STATUS, Status.PENDING)], "We are waiting for the supplier.")
    assert Ticket.get_by_id(tid).status == "Pending"
    (team,) = Outbox.select().where((Outbox.id > before) & (Outbox.event == "answered"))
    assert f"answered the customer on request #{tid}; it is now Pending." in _text_of(config, team)


def test_carry_out_without_text_or_commands_is_invalid(helpdesk: Helpdesk, actions: AgentActions) -> None:
    with pytest.raises(InvalidRequest):
        actions.carry_out(_ticket(helpdesk), BOB, [], "  ")


# --- inline images -------------------------------------------------------------------------

NEW = "<p>Here is the photo of the label.</p>"
# (id, html, content ids, those outside the new text)
IMAGE_CASES = [
    ("in-the-text", f'{NEW}<img src="cid:a@x">', ["a@x"], set()),
    ("gmail-signature", f'{NEW}<div class="gmail_signature">Bob<img src="cid:logo@x"></div>', ["logo@x"], {"logo@x"}),
    ("thunderbird-signature", f'{NEW}<pre class="moz-signature" cols="72">Bob <img src="cid:l@x"></pre>', ["l@x"], {"l@x"}),
    ("outlook-autosig", f'{NEW}<p><a name="_MailAutoSig">Bob</a></p><p><img src="cid:image001.png@01D"></p>',
     ["image001.png@01D"], {"image001.png@01D"}),
    ("outlook-web-signature", f'{NEW}<div id="Signature"><img src="cid:s@x"></div>', ["s@x"], {"s@x"}),
    ("dash-dash-delimiter", f'{NEW}<div>-- <br>Bob<br><img src="cid:s@x"></div>', ["s@x"], {"s@x"}),
    ("apple-quote", f'{NEW}<blockquote type="cite">old<img src="cid:q@x"></blockquote>', ["q@x"], {"q@x"}),
    ("gmail-quote", f'{NEW}<div class="gmail_quote">On Mon wrote:<img src=cid:q@x></div>', ["q@x"], {"q@x"}),
    ("shown-in-text-and-quote", f'{NEW}<img src="cid:a@x"><blockquote type="cite"><img src="cid:a@x"></blockquote>',
     ["a@x"], set()),
    ("not-referenced", NEW, ["a@x"], set()),
    ("percent-encoded-and-case", f'{NEW}<blockquote type="cite"><img src="CID:Q%40X"></blockquote>', ["<q@x>"], {"<q@x>"}),
    ("nothing-but-the-quote", '<blockquote type="cite">old<img src="cid:q@x"></blockquote>', ["q@x"], set()),
    ("cid-in-the-text-is-no-reference", "<p>write cid:q@x</p>", ["q@x"], set()),
    ("no-html", "", ["a@x"], set()),
    ("broken-html", f'{NEW}<div class="gmail_signature"<img src="cid:s@x"', ["s@x"], set()),
]


@pytest.mark.parametrize(("html", "cids", "outside"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES])
def test_images_outside_new_text(html: str, cids: list[str], outside: set[str]) -> None:
    assert images_outside_new_text(html, cids) == outside


def test_referenced_content_ids() -> None:
    assert referenced_content_ids('<img src="cid:A@x"><td background=\'cid:b%40x\'>') == {"a@x", "b@x"}
    assert referenced_content_ids(None) == frozenset()


def test_huge_html_is_linear() -> None:
    html = "<a " + "cid:x " * 200_000 + NEW + "cid:y>" * 100_000
    assert images_outside_new_text(html, ["x", "y"]) <= {"x", "y"}


def test_one_agents_own_mail_is_never_in_a_colleagues_thread(
    helpdesk: Helpdesk, actions: AgentActions, config: Config
) -> None:
    tid = _ticket(helpdesk)
    result = actions.report_commands(tid, BOB, [CommandReport("#order A1", True, "order set")], applied=True)
    actions.assign(tid, BOB, CAROL)
    mails = {row.event: build_mail(config, row) for row in Outbox.select().order_by(Outbox.id)}
    to_bob = mails["command_result"].message_id.strip("<>")
    assert Outbox.get_by_id(result.id).recipients == BOB
    to_carol = email.message_from_bytes(mails["assigned"].data, policy=email.policy.default)
    assert to_bob not in str(to_carol["References"]) and to_bob not in str(to_carol["In-Reply-To"])
    assert mails["new_request"].message_id in str(to_carol["References"])  # the team's notice is hers too
