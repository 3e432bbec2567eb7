"""Customers and agents: who may open requests and who may answer them."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import getaddresses

from helpdeskd.config import MailConfig
from helpdeskd.domain import Status, ascii_address, normalize_email
from helpdeskd.errors import InvalidRequest, NotFound
from helpdeskd.mail.ticket_addresses import RecipientKind, parse_recipient
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Agent, Customer, Ticket


def one_line(name: str) -> str:
    """A person's name on one line: line breaks and runs of space become one space."""
    return " ".join(name.split())[:200]


def is_own_address(mail: MailConfig, email: str) -> bool:
    """Whether ``email`` is one of helpdeskd's own addresses (support, status, a team's, a
    category's, a request's signed address): its mail is ours, or the team's, and it is
    nobody's to open requests from or to answer for."""
    clean = ascii_address(email)
    ours = {mail.support_address, mail.status_address, mail.team_address, *mail.category_addresses,
            *mail.teams.values()}  # (kept as ascii_address gives them)
    kind = parse_recipient(clean, mail.support_local, mail.domain, b"").kind  # (as the listener reads it)
    return clean in ours or kind in (RecipientKind.TICKET, RecipientKind.BAD_TOKEN)


class OwnAddresses:
    """:func:`is_own_address` for one configuration, with the answers for the addresses
    asked about lately kept (the intake asks it of every new request's ``To`` and ``From``)."""

    #: the most answers kept (all are dropped when one more comes)
    KEPT = 4096

    def __init__(self, mail: MailConfig) -> None:
        self.mail = mail
        self._known: dict[str, bool] = {}

    def __call__(self, email: str) -> bool:
        known = self._known.get(email)
        if known is None:
            if len(self._known) >= self.KEPT:
                self._known.clear()
            known = self._known[email] = is_own_address(self.mail, email)
        return known


def find_customer(email: str) -> Customer:
    address = normalize_email(email, "customer")
    customer = Customer.get_or_none(Customer.email == address)
    if customer is None:
        raise NotFound(f"customer {address} not found")
    return customer


def add_customer(email: str, name: str = "") -> Customer:
    address = normalize_email(email, "email")
    with write_transaction():
        if Customer.get_or_none(Customer.email == address) is not None:
            raise InvalidRequest(f"customer {address} already exists")
        return Customer.create(email=address, name=one_line(name))


def list_customers() -> list[Customer]:
    return list(Customer.select().order_by(Customer.email))


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int


#: header names of the email and name columns, as they are compared: case-insensitive,
#: without spaces, hyphens, underscores and dots ("E-Mail-Adresse" is ``emailadresse``)
EMAIL_HEADERS = ("email", "emailaddress", "mail", "mailaddress", "emailadresse", "mailadresse",
                 # Thunderbird's and Google Contacts' exports ("Primary Email", "E-mail 1 - Value"),
                 # helpdesks' that name several addresses in one cell ("Emails")
                 "primaryemail", "email1value", "emails", "emailaddresses")
NAME_HEADERS = ("name", "fullname", "displayname", "customername")
#: a first and a last name column, joined when there is no name column (shop exports)
FIRST_NAME_HEADERS = ("firstname", "givenname", "forename", "vorname")
LAST_NAME_HEADERS = ("lastname", "surname", "familyname", "nachname")
#: what the error says is accepted
EMAIL_HEADERS_SHOWN = ("email, e-mail, mail, email address, e-mail-adresse, primary email, e-mail 1 - value, emails "
                       "(any case; spaces, - and _ ignored)")


def import_customers(data: bytes, refuse: Callable[[str], None] | None = None) -> ImportResult:
    """Read a CSV with an email column (and optionally a name); all or nothing.

    Spreadsheet exports are taken as they come: UTF-8 with or without a byte order mark,
    UTF-16, or windows-1252; commas, semicolons or tabs; the usual spellings of the
    column names in any case (:data:`EMAIL_HEADERS`, :data:`NAME_HEADERS`, or first and
    last name columns); extra columns ignored; blank rows skipped. An email cell may hold
    ``Name <address>`` (its name taken when the row has no other) or several addresses,
    each a customer with the row's name. Existing customers get the file's name.
    ``refuse`` raises InvalidRequest for an address that may not be a customer (one of
    helpdeskd's own), named with its line as a malformed one is.
    """
    text, delimiter = _without_separator_line(_decode_csv(data))
    if delimiter is None:
        header = next((line for line in text.splitlines() if line.strip()), "")
        delimiter = max(",;\t", key=header.count)  # ties: the comma
    unclosed = _unclosed_quote(text, delimiter)
    if unclosed is not None:  # read leniently, it would take the rest of the file for one cell
        raise InvalidRequest(f"customers file line {unclosed}: a quoted cell is not closed (its \" has no "
                             "closing \" before the end of the file)")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        fields = next((row for row in reader if any(cell.strip() for cell in row)), [])
        columns = _columns(fields)
        rows = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank row
            try:
                named = _name(row, *columns[1:])
                for email, name in _addresses(_cell(row, columns[0])):
                    if refuse is not None:
                        refuse(email)
                    rows.append((email, named or name))
            except InvalidRequest as exc:
                raise InvalidRequest(f"customers file line {reader.line_num}: {exc}") from None
    except csv.Error as exc:
        raise InvalidRequest(f"customers file line {reader.line_num}: {exc}") from None
    return _upsert_customers(rows)


def _without_separator_line(text: str) -> tuple[str, str | None]:
    """``text`` without the ``sep=;`` line a file made for Excel may begin with (it names
    the delimiter), and that delimiter; the line is kept as a blank one, so lines keep
    their numbers."""
    first, newline, rest = text.partition("\n")
    hint = first.strip().strip('"').strip()
    if hint.casefold().startswith("sep=") and len(hint) == 5:
        return newline + rest, hint[4]
    return text, None


def _unclosed_quote(text: str, delimiter: str) -> int | None:
    """The line where a quoted cell that runs to the end of the file begins, or None.

    The lenient reader takes such a cell, and every row after it, as one cell without a
    word; the strict one says so. Other strict complaints (``"Ann" Lee``) are left to the
    lenient reading, which takes them as a spreadsheet means them."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    while True:
        began = reader.line_num + 1
        try:
            next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return began


def _header_key(name: str) -> str:
    return "".join(c for c in name.casefold() if c not in " -_.\t\ufeff")


def _columns(fields: list[str]) -> tuple[int, int | None, int | None, int | None]:
    """The indexes of the email, name, first name and last name columns."""
    keys = [_header_key(f) for f in fields]

    def find(names: tuple[str, ...]) -> int | None:
        return next((keys.index(n) for n in names if n in keys), None)

    email = find(EMAIL_HEADERS)
    if email is None:
        found = ", ".join(f.strip() for f in fields if f.strip()) or "nothing"
        raise InvalidRequest(
            f"customers file: no email column in the header row (found: {found}); "
            f"accepted: {EMAIL_HEADERS_SHOWN}"
        )
    return email, find(NAME_HEADERS), find(FIRST_NAME_HEADERS), find(LAST_NAME_HEADERS)


#: an address in a cell that may hold several ("ann@a.example, ann@b.example", Google's
#: "ann@a.example ::: ann@b.example")
_ADDRESS_IN_CELL = re.compile(r"[^\s<>,;:\"'()]+@[^\s<>,;:\"'()]+")
_NAMED_ADDRESS = re.compile(r"\s*([^<>]*)<\s*([^<>\s]+)\s*>\s*")


def _addresses(cell: str) -> list[tuple[str, str]]:
    """The addresses of an email cell, each with the name the cell gives it: one address,
    ``Ann Lee <ann@example.org>`` (a From line pasted in), or several (a helpdesk's export
    of a contact's addresses), each a customer. InvalidRequest naming what is wrong."""
    if not cell.strip():
        raise InvalidRequest("the email cell is empty (a contact without an address cannot be a customer: "
                             "give its address, or remove the row)")
    found = _ADDRESS_IN_CELL.findall(cell)
    if len(found) > 1:
        listed = getaddresses([cell.replace(":::", ",").replace(";", ",")])
        if [a for _, a in listed] != found:  # (words besides the addresses: not lost unread)
            raise InvalidRequest(f"email: {cell!r} is not a list of addresses (write them apart by commas: "
                                 "ann@example.org, ann@example.net)")
        return [(normalize_email(a, "email"), n) for n, a in listed]
    named = _NAMED_ADDRESS.fullmatch(cell)
    if named and len(found) == 1:
        return [(normalize_email(named.group(2), "email"), named.group(1).strip().strip('"').strip())]
    return [(normalize_email(cell, "email"), "")]


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def _name(cells: list[str], name: int | None, first: int | None, last: int | None) -> str:
    if name is not None:
        return one_line(_cell(cells, name))
    return one_line(f"{_cell(cells, first)} {_cell(cells, last)}")


def _decode_csv(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    if data.startswith(codecs.BOM_UTF8):  # says UTF-8: a stray bad byte is not windows-1252
        return data.decode("utf-8-sig", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _upsert_customers(rows: Iterable[tuple[str, str]]) -> ImportResult:
    """Add or rename the customers of ``rows``; an address on several rows (a shop's export
    of orders names a customer once per order) is one customer, named by its last name given."""
    merged: dict[str, str] = {}
    for email, name in rows:
        merged[email] = name or merged.get(email, "")
    added = updated = 0
    with write_transaction():
        for email, name in merged.items():
            existing = Customer.get_or_none(Customer.email == email)
            if existing is None:
                Customer.create(email=email, name=name)
                added += 1
            elif name and existing.name != name:
                existing.name = name
                existing.save()
                updated += 1
    return ImportResult(added, updated)


def add_agent(email: str, name: str = "") -> Agent:
    """Register an agent; re-adding a disabled one enables it again, and an active one
    given a new name is renamed (an agent keeps their requests: no need to disable them)."""
    address = normalize_email(email, "email")
    with write_transaction():
        existing = Agent.get_or_none(Agent.email == address)
        if existing is not None and existing.active:
            if not one_line(name) or one_line(name) == existing.name:
                raise InvalidRequest(f"agent {address} already exists")
            existing.name = one_line(name)
            existing.save()
            return existing
        if existing is not None:  # re-adding a disabled agent enables it again
            existing.active = True
            existing.name = one_line(name) or existing.name
            existing.save()
            return existing
        return Agent.create(email=address, name=one_line(name))


def learn_agent_name(email: str, display_name: str) -> None:
    """An agent registered without a name takes the display name of their mail (so the
    customer does not read ``frank@shop.example via ...`` and that address as the
    sign-off); a name once known is changed only by an admin."""
    name = one_line(display_name)
    if name and "@" not in name:
        Agent.update(name=name).where((Agent.email == normalize_email(email, "agent")) & (Agent.name == "")).execute()


def disable_agent(email: str) -> Agent:
    return disable_agent_releasing(email)[0]


def disable_agent_releasing(email: str) -> tuple[Agent, list[int]]:
    """Disable an agent, and release the open (Pending, In Progress) requests they hold: a
    disabled agent counts as not found, so the team's notices would name as holding them
    someone who can no longer answer, and the next agent who answers would not take them.
    Returns the agent and the released requests' ids."""
    address = normalize_email(email, "agent")
    with write_transaction():
        agent = Agent.get_or_none(Agent.email == address)
        if agent is None:
            raise NotFound(f"agent {address} not found")
        agent.active = False
        agent.save()
        held = Ticket.assignee == agent.id
        held &= Ticket.status.in_([Status.PENDING.value, Status.IN_PROGRESS.value])
        released = [t for (t,) in Ticket.select(Ticket.id).where(held).order_by(Ticket.id).tuples()]
        if released:
            Ticket.update(assignee=None).where(Ticket.id.in_(released)).execute()
        return agent, released


def list_agents() -> list[Agent]:
    return list(Agent.select().order_by(Agent.email))


def find_agent(email: str) -> Agent:
    """The agent with this address, a disabled one too (the requests they held stay theirs)."""
    address = normalize_email(email, "agent")
    agent = Agent.get_or_none(Agent.email == address)
    if agent is None:
        raise NotFound(f"agent {address} not found")
    return agent


def find_active_agent(email: str) -> Agent:
    """The registered, active agent with this address (the specification's 404 otherwise)."""
    agent = find_agent(email)
    if not agent.active:
        raise NotFound(f"agent {agent.email} is disabled")
    return agent
