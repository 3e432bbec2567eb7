"""Customers and agents: who may open requests and who may answer them."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from helpdeskd.domain import normalize_email
from helpdeskd.errors import InvalidRequest, NotFound
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Agent, Customer


def one_line(name: str) -> str:
    """A person's name on one line: line breaks and runs of space become one space."""
    return " ".join(name.split())[:200]


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


def import_customers(data: bytes) -> ImportResult:
    """Read a CSV with an ``email`` column (and optionally ``name``); all or nothing.

    Spreadsheet exports are taken as they come: UTF-8 with or without a byte order mark,
    UTF-16, or windows-1252; commas or semicolons; header names in any case; extra
    columns ignored; blank rows skipped. Existing customers get the file's name.
    """
    text = _decode_csv(data)
    lines = text.splitlines()
    header = next((line for line in lines if line.strip()), "")
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "email" not in fields:
        raise InvalidRequest(
            f"customers file: the header row must have an 'email' column (found: {', '.join(fields) or 'nothing'})"
        )
    rows = []
    for row in reader:
        clean = {k.strip().lower(): one_line(v or "") for k, v in row.items() if isinstance(k, str)}
        if not any(clean.values()):
            continue  # a blank row
        try:
            rows.append((normalize_email(clean.get("email", ""), "email"), clean.get("name", "")))
        except InvalidRequest as exc:
            raise InvalidRequest(f"customers file line {reader.line_num}: {exc}") from None
    return _upsert_customers(rows)


def _decode_csv(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _upsert_customers(rows: Iterable[tuple[str, str]]) -> ImportResult:
    added = updated = 0
    with write_transaction():
        for email, name in rows:
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
    address = normalize_email(email, "email")
    with write_transaction():
        existing = Agent.get_or_none(Agent.email == address)
        if existing is not None and existing.active:
            raise InvalidRequest(f"agent {address} already exists")
        if existing is not None:  # re-adding a disabled agent enables it again
            existing.active = True
            existing.name = one_line(name) or existing.name
            existing.save()
            return existing
        return Agent.create(email=address, name=one_line(name))


def disable_agent(email: str) -> Agent:
    address = normalize_email(email, "agent")
    with write_transaction():
        agent = Agent.get_or_none(Agent.email == address)
        if agent is None:
            raise NotFound(f"agent {address} not found")
        agent.active = False
        agent.save()
        return agent


def list_agents() -> list[Agent]:
    return list(Agent.select().order_by(Agent.email))


def find_active_agent(email: str) -> Agent:
    """The registered, active agent with this address (the specification's 404 otherwise)."""
    address = normalize_email(email, "agent")
    agent = Agent.get_or_none(Agent.email == address)
    if agent is None:
        raise NotFound(f"agent {address} not found")
    if not agent.active:
        raise NotFound(f"agent {address} is disabled")
    return agent
