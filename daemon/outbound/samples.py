"""Sample contexts for every event: ``templates preview`` shows them, ``templates check``
renders every template with them (each category, every optional part filled and none,
customer text that tries to inject markup, texts a mail to the team shows only the start
of, and a command result of every kind)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

from helpdeskd import command_words as words
from helpdeskd.domain import Category, Event, MessageKind, Status
from helpdeskd.outbound.context import (
    AttachmentView,
    CommandLine,
    MessageView,
    RenderContext,
    ShopInfo,
    TicketView,
)

__all__ = ["BY_AN_AGENT", "HOSTILE", "sample_context", "sample_recipients", "samples"]


_SAMPLE_TIME = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
_SAMPLE_SHOP = ShopInfo(
    name="Example Shop",
    signature="Example Shop customer care\nhttps://shop.example",
    reply_time="within 24 hours",
    support_address="support@shop.example",
    domain="shop.example",
    timezone=UTC,  # (a shop's own: ``shop=shop_info(config)``)
)
_SAMPLE_STATUS: Mapping[Event, Status] = {
    Event.RESPONSE: Status.IN_PROGRESS,
    Event.RESOLUTION: Status.RESOLVED,
    Event.CANCELLATION: Status.CANCELLED,
    Event.COMMAND_RESULT: Status.IN_PROGRESS,
    Event.ANSWERED: Status.RESOLVED,
    Event.ASSIGNED: Status.IN_PROGRESS,
    Event.UNDELIVERED: Status.RESOLVED,
}
_SAMPLE_BODY: Mapping[Event, str] = {
    Event.RESPONSE: "Hello Anna,\n\nyour parcel left our warehouse yesterday; I have asked "
    "the carrier for its tracking number and will write again tomorrow.",
    Event.RESOLUTION: "Hello Anna,\n\nthe carrier confirms delivery to your neighbour at "
    "number 12. Sorry for the trouble!",
    Event.CANCELLATION: "We closed this request because you told us the parcel arrived.",
    Event.REOPENED: "The parcel still has not arrived, the neighbour has nothing.",
    Event.FOLLOW_UP: "Here is the photo of the label you asked for.\nThanks, Anna",
    Event.ANSWERED: "Hello Anna,\n\nthe carrier confirms delivery to your neighbour at number 12.",
    Event.ASSIGNED: "Carol, can you ask the carrier where the parcel is? Anna has waited\n"
    "a week now.\n\nBob",
    Event.UNDELIVERED: "Hello Anna,\n\nthe carrier confirms delivery to your neighbour at number 12.",
}


def sample_context(
    event: Event,
    category: Category = Category.ORDER,
    *,
    minimal: bool = False,
    shop: ShopInfo | None = None,
) -> RenderContext:
    """A plausible context for ``event``: every optional part filled, or none (``minimal``)."""
    shop = shop or _SAMPLE_SHOP
    ticket = TicketView(
        id=1042,
        subject=f"{category.value} question: parcel not delivered",
        category=category,
        order_id=None if minimal else "A1234",
        status=_SAMPLE_STATUS.get(event, Status.PENDING),
        customer_email="anna@customer.example",
        customer_name=None if minimal else "Anna Example",
        description="Hello,\n\nmy order was due on Monday and has not arrived yet.\n"
        "Can you tell me where it is?\n\nAnna",
        created_at=_SAMPLE_TIME,
        updated_at=_SAMPLE_TIME,
    )
    body = _SAMPLE_BODY.get(event)
    if event is Event.CANCELLATION and minimal:
        body = None
    message = None
    if body is not None:
        from_customer = event in (Event.FOLLOW_UP, Event.REOPENED)
        message = MessageView(
            body=body,
            author_name=None if minimal else ("Anna Example" if from_customer else "Bob Agent"),
            author_email="anna@customer.example" if from_customer else "bob@shop.example",
            created_at=_SAMPLE_TIME,
            kind=MessageKind.NOTE if event is Event.ASSIGNED else None,
        )
    if event is Event.ASSIGNED and minimal:  # assigned with no text of its own
        message = None
    conversation: tuple[MessageView, ...] = ()
    if event is Event.ASSIGNED and not minimal:
        conversation = (
            MessageView(ticket.description, "Anna Example", "anna@customer.example", _SAMPLE_TIME,
                        MessageKind.CUSTOMER),
            MessageView("Hello Anna,\n\nwe are looking into it and will write again tomorrow.",
                        "Bob Agent", "bob@shop.example", _SAMPLE_TIME, MessageKind.RESPONSE),
        )
    attachments: tuple[AttachmentView, ...] = ()
    if not minimal and event in (Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED):
        attachments = (
            AttachmentView("label photo.jpg", "image/jpeg", 482_113),
            AttachmentView("invoice-A1234.pdf", "application/pdf", 20_480),
        )
    commands: tuple[CommandLine, ...] = ()
    if event is Event.COMMAND_RESULT:
        commands = (
            (_command("#status resolvd", False, words.unknown_status("resolvd")),
             _command("#order A1234", True, words.not_carried_out()))
            if minimal
            else (_command("#status in-progress", True, words.status_set(Status.IN_PROGRESS, sent=False)),
                  _command(f"#category {category.value}", True, words.category_set(category.value)))
        )
    tickets: tuple[TicketView, ...] = ()
    if event is Event.STATUS_DIGEST and not minimal:
        tickets = tuple(
            dataclasses.replace(ticket, id=1040 + i, status=status, order_id=order_id)
            for i, (status, order_id) in enumerate(
                [(Status.RESOLVED, "A1200"), (Status.IN_PROGRESS, None), (Status.PENDING, "A1234")]
            )
        )
    if event is Event.PENDING_DIGEST and not minimal:  # (minimal: all taken up before it went out)
        tickets = tuple(
            dataclasses.replace(ticket, id=1040 + i, order_id=order_id, created_at=_SAMPLE_TIME - waited,
                                updated_at=_SAMPLE_TIME - waited)
            for i, (waited, order_id) in enumerate(
                [(timedelta(days=3, hours=2), "A1200"), (timedelta(hours=5), None), (timedelta(minutes=40), "A1234")]
            )
        )
    digest = event is Event.PENDING_DIGEST
    team = (category,) if minimal else tuple(dict.fromkeys((category, Category.GENERAL)))  # a team's categories
    linked = event in (Event.CONFIRMATION, Event.NEW_REQUEST) and not minimal
    return RenderContext(
        event=event,
        shop=shop,
        ticket=None if event in (Event.STATUS_DIGEST, Event.PENDING_DIGEST) else ticket,
        message=message,
        agent_name=None if minimal else "Bob Agent",
        recipient_name=None if minimal else "Anna Example",
        tickets=tickets,
        attachments=attachments,
        commands=commands,
        conversation=conversation,
        category_filter=category if event is Event.STATUS_DIGEST and not minimal else None,
        # (the minimal assigned mail is one to the team a request was moved to)
        team_categories=team if digest or (event is Event.ASSIGNED and minimal) else (),
        as_of=_SAMPLE_TIME if digest else None,
        linked_ticket_id=1001 if linked else None,
        delivery_problem="anna@customer.example: 550 5.1.1 <anna@customer.example>: mailbox unknown"
        if event is Event.UNDELIVERED else None,
    )


#: the events an agent's own act sends (a response, a cancellation): not automatic mail
BY_AN_AGENT = frozenset({Event.RESPONSE, Event.RESOLUTION, Event.CANCELLATION})


def sample_recipients(event: Event, ctx: RenderContext, team: str) -> list[str]:
    """Who the sample mail of ``event`` goes to: the sample customer, ``team`` (the team
    address of the sample's category), the agent who sent commands, or the colleague
    given the request (the minimal sample: the team it was moved to); agents at the
    team's domain."""
    domain = team.rpartition("@")[2]
    if event is Event.COMMAND_RESULT:
        return [f"bob@{domain}"]
    if event is Event.ASSIGNED:
        return [f"carol@{domain}"] if ctx.message is not None else [team]
    if event in (Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED, Event.ANSWERED, Event.UNDELIVERED,
                 Event.PENDING_DIGEST):
        return [team]
    return ["anna@customer.example"]


def _command(line: str, ok: bool, said: words.Explanation) -> CommandLine:
    return CommandLine(line, ok, str(said), said.code, dict(said.params))


HOSTILE = "<script>alert(1)</script>"


def _hostile(ctx: RenderContext) -> RenderContext:
    """``ctx`` with markup in every field a customer or agent writes."""

    def ticket(view: TicketView) -> TicketView:
        return dataclasses.replace(
            view, subject=HOSTILE, description=HOSTILE, customer_name=HOSTILE,
            order_id=HOSTILE,
        )

    return dataclasses.replace(
        ctx,
        ticket=ticket(ctx.ticket) if ctx.ticket else None,
        tickets=tuple(ticket(t) for t in ctx.tickets),
        message=dataclasses.replace(ctx.message, body=HOSTILE) if ctx.message else None,
        conversation=tuple(dataclasses.replace(m, body=HOSTILE, author_name=HOSTILE)
                           for m in ctx.conversation),
        agent_name=HOSTILE,
        recipient_name=HOSTILE,
        attachments=tuple(dataclasses.replace(a, filename=HOSTILE) for a in ctx.attachments),
        # (in the parameters a template words, and in a sentence without a code)
        commands=(*(dataclasses.replace(c, line=HOSTILE, params={
                        k: HOSTILE if k in words.WRITTEN else v for k, v in c.params.items()})
                    for c in ctx.commands), CommandLine(HOSTILE, True, HOSTILE)),
        delivery_problem=HOSTILE if ctx.delivery_problem else None,
    )


#: the mails to the team that quote a text (a customer's, an agent's, the conversation's
#: entries): only its start when it is long (``cut``, ``description_cut``)
_QUOTING = frozenset({Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED, Event.ANSWERED, Event.ASSIGNED,
                      Event.UNDELIVERED, Event.COMMAND_RESULT})


def _cut(ctx: RenderContext) -> RenderContext:
    """``ctx`` with every text it quotes shown only by its start: the rest left out."""
    return dataclasses.replace(
        ctx,
        ticket=dataclasses.replace(ctx.ticket, description_cut=48_211) if ctx.ticket else None,
        message=dataclasses.replace(ctx.message, cut=3_502) if ctx.message else None,
        conversation=tuple(dataclasses.replace(m, cut=1_840) for m in ctx.conversation),
    )


def samples(event: Event) -> Iterator[RenderContext]:
    for category in Category:
        for minimal in (False, True):
            yield sample_context(event, category, minimal=minimal)
    yield _hostile(sample_context(event, Category.GENERAL))
    if event in _QUOTING:  # (and the markup in the texts still escaped)
        for minimal in (False, True):
            yield _cut(_hostile(sample_context(event, Category.GENERAL, minimal=minimal)))
    if event is Event.COMMAND_RESULT:  # every kind of result, carried out and refused
        for ok in (True, False):
            every = tuple(_command(f"#line {n}", ok, said) for n, said in enumerate(words.examples(), start=1))
            yield dataclasses.replace(sample_context(event, Category.GENERAL), commands=every)
