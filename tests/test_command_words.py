"""The words of a command result: each line's sentence carries a code and parameters,
and the shipped ``_command_results.txt`` words every code exactly as the sentence the
program wrote before (byte for byte, text and HTML part). Replies go through real SMTP
into a real daemon; the sentences in OLD are what the previous version wrote for them.
German wording through real SMTP: tests/test_translated_templates.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from helpdeskd import command_words as words
from helpdeskd.domain import Category, Event
from helpdeskd.outbound.context import CommandLine
from helpdeskd.outbound.render import check_templates, render
from helpdeskd.outbound.samples import sample_context

from tests.agent_mail import BOB, CAROL, QUOTE, addr, command_results, open_ticket, reply
from tests.daemon_harness import RunningDaemon, make_mail

SHIPPED = Path(__file__).resolve().parents[1] / "templates"

#: (the state the request is in, the agent's reply, a file attached) for each kind of result
CASES: list[tuple[str, str, bool]] = [
    ("open", "#frobnicate\nShipped.", False),
    ("open", "#note now\nShipped.", False),
    ("open", "#assign not-an-address\n#note\nShipped.", False),
    ("open", "#status\nShipped.", False),
    ("open", "#category\nShipped.", False),
    ("open", "#order\nShipped.", False),
    ("open", "#status later\nShipped.", False),
    ("open", "#status cancelled\nShipped.", False),
    ("open", "#category Furniture\nShipped.", False),
    ("open", "#order A 1 %%\nShipped.", False),
    ("open", "#status resolved\n#status in-progress\nShipped.", False),
    ("open", "#cancel\n#status resolved\nShipped.", False),
    ("open", "Hi team,\n#note\nOn the fraud list; no refund.", False),
    ("open", f"#assign {CAROL}\nCarol, this is a VAT question, can you take it?" + QUOTE, False),
    ("open", "#status in-progress", True),
    ("open", "#category Payment\n#order A77\n#assign\n#status in-progress" + QUOTE, False),
    ("open", "#note\n#status in-progress\n\nThe warehouse checks." + QUOTE, False),
    ("open", f"#assign {CAROL}\n#note\nCarol, can you take it?" + QUOTE, False),
    ("open", "#assign BOB@shop.test\n#note\nTaking this one myself." + QUOTE, False),
    ("open", "#assign zed@shop.test\n#note\nZed, can you take it?" + QUOTE, False),
    ("open", "#assign dave@shop.test\n#note\nDave, can you take it?" + QUOTE, False),
    ("open", "#note\n" + QUOTE, False),
    ("cancelled", "#category Payment\n#status in-progress", False),
    ("cancelled", "#cancel", False),
    ("cancelled", f"#assign {CAROL}\n#note\nCarol, can you look at this one?", False),
    ("resolved", "#cancel", False),
]

#: what the previous version wrote for CASES: (line, ok, explanation) of each result
#: (N: the request's number)
OLD: list[list[tuple[str, bool, str]]] = [
    [("#frobnicate", False, "Unknown command #frobnicate; the commands are #status, #cancel, #note, #category, "
      "#order, #assign.")],
    [("#note now", False, "#note takes no argument; write the text on the lines below.")],
    [("#assign not-an-address", False, "#assign takes an agent's email address, or nothing for yourself; "
      "'not-an-address' is not one."),
     ("#note", True, "Understood, but not carried out.")],
    [("#status", False, "#status needs a status: pending, in-progress or resolved.")],
    [("#category", False, "#category needs a category: Order, Product, Account, Technical, Payment, General.")],
    [("#order", False, "#order needs an order id, for example #order A1234.")],
    [("#status later", False, "Unknown status 'later'; use pending, in-progress or resolved.")],
    [("#status cancelled", False, "To cancel a request write #cancel, not a status.")],
    [("#category Furniture", False, "Unknown category 'Furniture'; allowed: Order, Product, Account, Technical, "
      "Payment, General.")],
    [("#order A 1 %%", False, "'A 1 %%' is not an order id: use letters, digits and - _ . / only.")],
    [("#status resolved", True, "Understood, but not carried out."),
     ("#status in-progress", False, "#status in-progress conflicts with #status resolved on line 1.")],
    [("#cancel", True, "Understood, but not carried out."),
     ("#status resolved", False, "#status resolved conflicts with #cancel on line 1: a cancelled request takes "
      "no other status.")],
    [("#note", False, "#note below your text: commands go on their own lines at the top of the reply, before "
      "any text, so nothing was done; send the reply again with the command first.")],
    [("#assign carol@shop.test", False, "#assign carol@shop.test with text below it: add #note to leave the "
      "text for them, or #status in-progress (or resolved) to send it to the customer too; nothing was done.")],
    [("#status in-progress", False, "label.pdf attached, but there is no text to send or keep it with: write "
      "your answer below the commands to send it to the customer, or add #note and a line to keep it on the "
      "request; nothing was done.")],
    [("#category Payment", True, "Category set to Payment."),
     ("#order A77", True, "Order id set to A77."),
     ("#assign", True, "Assigned to you."),
     ("#status in-progress", True, "Status set to In Progress; nothing was sent to the customer.")],
    [("#note", True, "Your text was kept as an internal note; nothing of it was sent to the customer."),
     ("#status in-progress", True, "Status set to In Progress.")],
    [("#assign carol@shop.test", True, "Assigned to carol@shop.test."),
     ("#note", True, "Your text was kept as an internal note; nothing of it was sent to the customer.")],
    [("#assign BOB@shop.test", True, "Assigned to you."),
     ("#note", True, "Your text was kept as an internal note; nothing of it was sent to the customer.")],
    [("#assign zed@shop.test", False, "Agent zed@shop.test not found."),
     ("#note", True, "Understood, but not carried out.")],
    [("#assign dave@shop.test", False, "Agent dave@shop.test is disabled."),
     ("#note", True, "Understood, but not carried out.")],
    [("#note", False, "#note needs the text of the note on the lines below the commands.")],
    [("#category Payment", True, "Understood, but not carried out."),
     ("#status in-progress", False, "Support request N is Cancelled; it cannot become In Progress.")],
    [("#cancel", False, "Support request N is already cancelled.")],
    [("#assign carol@shop.test", False, "Request N is cancelled; it cannot be given to anyone."),
     ("#note", True, "Understood, but not carried out.")],
    [("#cancel", False, "Support request N is resolved; it cannot be cancelled.")],
]

#: the results no reply above brings in a command_result mail: a reply that sends the
#: customer something gets no command_result; the others the program cannot reach by mail
UNMAILED: list[tuple[words.Explanation, str]] = [
    (words.cancelled(note=True), "Request cancelled; the customer was told, without your note."),
    (words.cancelled(reason=True), "Request cancelled; the customer was told with your text as the reason."),
    (words.cancelled(), "Request cancelled; the customer was told (no reason given)."),
    (words.status_set("Resolved", sent=True), "Status set to Resolved; your text was sent to the customer."),
    (words.done(), "Done."),
    (words.refused("order_id: 'x y' is not an order id"), "Order_id: 'x y' is not an order id."),
]


def _answer(
    running: RunningDaemon, subject: str, state: str, body: str, attached: bool
) -> tuple[int, list[dict[str, object]]]:
    """Open a request, bring it to ``state``, send the reply; the request's number and the
    lines of the command result it brought."""
    ticket = open_ticket(running, subject)
    if state != "open":
        to_state = "#cancel\n\nA duplicate." if state == "cancelled" else "#status resolved\n\nRefunded."
        assert reply(running, ticket, to_state)[0] == 250
    before = len(command_results(ticket))
    mail = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Parcel not delivered", body=body)
    if attached:
        mail.add_attachment(b"%PDF-1.4 label", maintype="application", subtype="pdf", filename="label.pdf")
    code, text = running.send(mail, BOB, [addr(ticket)])
    assert code == 250, text
    (result,) = command_results(ticket)[before:]
    return ticket, result["commands"]  # type: ignore[return-value]


def _lines(entries: list[dict[str, object]]) -> tuple[CommandLine, ...]:
    return tuple(CommandLine.stored(entry) for entry in entries)


def _without_codes(lines: tuple[CommandLine, ...]) -> tuple[CommandLine, ...]:
    """The lines as the previous version's mail had them: the sentence only."""
    return tuple(dataclasses.replace(line, code="", params={}) for line in lines)


def _mail(lines: tuple[CommandLine, ...], templates_dir: Path | None = None) -> tuple[str, str]:
    ctx = dataclasses.replace(sample_context(Event.COMMAND_RESULT, Category.GENERAL), commands=lines)
    rendered = render(Event.COMMAND_RESULT, ctx, templates_dir=templates_dir)
    return rendered.text, rendered.html


def _previous_templates(folder: Path) -> Path:
    """The command_result templates as the previous version shipped them: each line's
    sentence printed as it is."""
    folder.mkdir()
    for name, words_were in [
        ("command_result.txt", "command.explanation | wordwrap"),
        ("command_result.html", "command.explanation"),
    ]:
        now = (SHIPPED / name).read_text(encoding="utf-8")
        words_are = "results.explain(command) | trim" + (" | wordwrap" if name.endswith(".txt") else " | forceescape")
        import_line = '{% import "_command_results.txt" as results %}\n'
        assert now.count(words_are) == 2 and now.count(import_line) == 1
        (folder / name).write_text(now.replace(words_are, words_were).replace(import_line, ""), encoding="utf-8")
    return folder


def test_every_result_keeps_its_sentence_and_the_shipped_words_are_it_byte_for_byte(
    running: RunningDaemon, tmp_path: Path
) -> None:
    previous = _previous_templates(tmp_path / "previous")
    seen: set[str] = set()
    for number, ((state, body, attached), old) in enumerate(zip(CASES, OLD, strict=True)):
        ticket, entries = _answer(running, f"Parcel {number}", state, body, attached)
        assert [(e["line"], e["ok"], e["explanation"]) for e in entries] == [
            (line, ok, text.replace("request N", f"request {ticket}").replace("Request N", f"Request {ticket}"))
            for line, ok, text in old], body
        lines = _lines(entries)
        assert all(line.code in words.CODES for line in lines), body
        assert all(set(line.params) == set(words.CODES[line.code]) for line in lines), body
        seen |= {line.code for line in lines}
        assert _mail(lines) == _mail(_without_codes(lines), previous), body  # (the mail the previous version sent)
    for said, old_sentence in UNMAILED:
        assert str(said) == old_sentence
        line = CommandLine("#x", True, str(said), said.code, dict(said.params))
        assert _mail((line,)) == _mail(_without_codes((line,)), previous)
        seen.add(said.code)
    assert seen == set(words.CODES)  # every kind of result, worded by the shipped template


def test_a_line_without_a_code_shows_its_sentence() -> None:
    """A mail queued before lines had codes, or a refusal without a code of its own."""
    stored = CommandLine.stored({"line": "#cancel", "ok": True, "explanation": "Request cancelled."})
    assert (stored.code, stored.params) == ("", {})
    text, html = _mail((stored, dataclasses.replace(stored, line="#order", code="no_such_code")))
    assert text.count("      Request cancelled.\n") == 2
    assert html.count("<code>#cancel</code>: Request cancelled.</li>") == 1


def test_the_html_part_escapes_the_words_of_a_translation(tmp_path: Path) -> None:
    """A translation's command_result.html that prints the words without forceescape
    would show what an agent wrote as markup: ``templates check`` names it."""
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "command_result.html").write_text(
        (SHIPPED / "command_result.html").read_text(encoding="utf-8").replace(" | forceescape", ""), encoding="utf-8")
    (problem,) = check_templates(folder)
    assert problem.endswith("command_result.html: text written by a customer or agent reaches the HTML unescaped")


def test_templates_check_words_every_result_of_a_translation(tmp_path: Path) -> None:
    """``templates check`` renders a result of every code: a translation's mistake in the
    words of one a test mail would rarely bring (a disabled agent) is found before any
    agent gets it."""
    assert {said.code for said in words.examples()} == set(words.CODES)
    assert all(set(said.params) == set(words.CODES[said.code]) for said in words.examples())
    folder = tmp_path / "tpl"
    folder.mkdir()
    shipped = (SHIPPED / "_command_results.txt").read_text(encoding="utf-8")
    wrong = shipped.replace("Agent {{ p.agent }} is disabled.", "Mitarbeiter {{ p.agnt }} ist deaktiviert.")
    assert wrong != shipped
    (folder / "_command_results.txt").write_text(wrong, encoding="utf-8")
    (problem,) = check_templates(folder)
    assert problem.startswith(f"{folder / '_command_results.txt'}:") and "has no attribute 'agnt'" in problem, problem
    (folder / "_command_results.txt").write_text(shipped, encoding="utf-8")
    assert check_templates(folder) == []
