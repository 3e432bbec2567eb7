"""A shop's month as one randomized run: customers, agents, an admin and a stranger, and the
mail that comes back on its own (out-of-office replies, delivery reports, the same mail twice);
mail a customer's server refuses for good and a notice held back, which the admin finds with
``outbox list --failed`` and sends with ``outbox retry``.

A real daemon on 127.0.0.1 with a real SMTP sink as its smarthost; the admin runs the real
``helpdeskd`` command in a subprocess. The test keeps its own model of the shop (each
request's customer, category and status, the requests that follow closed ones) and after
every step checks it against what the sink received and what the database and the CLI show:
each step's mail is exactly the mail the README promises, every accepted customer mail is on
one request, no mail reaches a stranger, nothing answers automatic mail, answers are threaded,
the facts a mail states are those of its moment, and the daemon logged no 451 and no
traceback. By default one run on each engine (PostgreSQL's with store processes, as `serve`
stores mail); ``HELPDESKD_SHOP_SEEDS=1,2,3 HELPDESKD_SHOP_STEPS=300`` runs those seeds on both
(an even seed with store processes), and a failure names its seed and the steps before it;
``pytest -s`` prints the listener's answers a run met.

The model and its steps are in tests/shop_model.py, tests/shop_conversations.py and
tests/shop_steps.py. Below the month, each thing a run found, as a plain story.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import psycopg
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.outbound.ratelimit import address_lock_key
from helpdeskd.store.models import Ticket

from tests.agent_mail import addr
from tests.daemon_harness import RunningDaemon, make_mail
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.outbound_mail import smtp_out
from tests.shop_model import AGENTS, CUSTOMERS, SUPPORT
from tests.shop_steps import Shop
from tests.sink import Sink

SEEDS = [int(s) for s in os.environ.get("HELPDESKD_SHOP_SEEDS", "0").split(",") if s]
STEPS = int(os.environ.get("HELPDESKD_SHOP_STEPS", "50"))


TOML = """[database]
url = "{url}"
[mail]
domain = "shop.test"
team_address = "team@shop.test"
secret = "s3cret-for-tests-only-0123456789"
category_addresses = {{ "billing@shop.test" = "Payment" }}
category_aliases = {{ Billing = "Payment" }}
teams = {{ Payment = "billing-team@shop.test" }}
[outbound]
pending_digest_at = ""
rate_limit_per_hour = 1000
"""


STEP_WEIGHTS = [("new_request", 4), ("customer_reply", 5), ("agent_reply", 5), ("admin", 2), ("stranger", 1),
                ("automatic", 2), ("twice", 1), ("time_passes", 1), ("colleague", 1), ("status_list", 1),
                ("list_refused", 1), ("resent", 1), ("rush", 1)]


@pytest.fixture
def shop_site(tmp_path: Path, db_url: str, database: pw.Database) -> Iterator[tuple[Path, Config]]:
    """The shop's configuration file (the daemon and the admin's command read the same one),
    its customers and agents."""
    config_file = tmp_path / "helpdeskd.toml"
    config_file.write_text(TOML.format(url=db_url), encoding="utf-8")
    (tmp_path / "manual.pdf").write_bytes(b"%PDF-1.4 manual")
    config = load_config(str(config_file))
    for customer in CUSTOMERS:
        directory.add_customer(customer, customer.split("@")[0].title())
    for agent in AGENTS:
        directory.add_agent(agent, agent.split("@")[0].title())
    yield config_file, config


def run_month(shop: Shop, steps: int) -> None:
    names = [name for name, weight in STEP_WEIGHTS for _ in range(weight)]
    for _ in range(steps):
        getattr(shop, shop.rng.choice(names))()
        shop.check()


# one run on each engine: SQLite in the listener's process, PostgreSQL with store processes
RUNS = [("sqlite", 7), pytest.param("postgres", 8, marks=pytest.mark.postgres)] if SEEDS == [0] else [
    engine for seed in SEEDS for engine in (("sqlite", seed), pytest.param("postgres", seed, marks=pytest.mark.postgres))]


@pytest.mark.parametrize(("db_url", "seed"), RUNS, indirect=["db_url"])
def test_a_shops_month(shop_site: tuple[Path, Config], database: pw.Database, seed: int,
                       caplog: pytest.LogCaptureFixture) -> None:
    config_file, config = shop_site
    caplog.set_level(logging.INFO)
    # an even seed stores mail in store processes, as `serve` does; an odd one in the listener's
    # process, where the test reads every log line
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink),
                                       store_process=seed % 2 == 0) as daemon:
        shop = Shop(daemon, sink, config_file, random.Random(seed), caplog)
        try:
            run_month(shop, STEPS)
            print(sorted(shop.replies.items()))
            # (the checks ran after every step: here, that the month did happen)
            assert len(shop.trail) >= STEPS // 2 and sum(shop.replies.values()) >= STEPS // 2, (len(shop.trail), shop.replies)
            assert Ticket.select().count() > 0 and len(sink.received) > 0
        except AssertionError as exc:
            steps = "\n  ".join(shop.trail[-12:])
            raise AssertionError(f"seed {seed}, step {len(shop.trail)}:\n  {steps}\n{exc}") from exc


# -- what the randomized runs found, each as a plain story ------------------------------------


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def test_the_team_is_told_that_a_resent_request_came_again(desk: Desk) -> None:
    """Outlook's "Resend" adds the same words to the open request; the team's notice said
    "The customer added information", and an agent looked for what was new."""
    ticket, _ = desk.open("The lid of the box is cracked.", "Cracked lid")
    again = make_mail(subject="Cracked lid", body="The lid of the box is cracked.", Message_ID="<again-1@example.org>")
    code, text, before = desk.send(again, "ann@example.org", SUPPORT)
    assert (code, text) == (250, f"2.0.0 Thank you: added to support request {ticket}.")
    notice = desk.mail_to("team@shop.test", after=before)
    assert text_of(notice).startswith(f"The customer sent request #{ticket} again, word for word")
    assert "sent request" in text_of(notice, "html")
    more = make_mail(to=addr(ticket, "c"), subject=f"Re: [Ticket #{ticket}] Cracked lid", body="And the hinge too.")
    code, text, before = desk.send(more, "ann@example.org", addr(ticket, "c"))
    assert (code, text) == (250, f"2.0.0 Thank you: added to support request {ticket}.")
    assert text_of(desk.mail_to("team@shop.test", after=before)).startswith(
        f"The customer added information to request #{ticket}.")




@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_shop_in_another_schema_holds_back_none_of_our_mail(desk: Desk, db_url: str) -> None:
    """Two shops in two schemas of one PostgreSQL database (each test runs in one). While the
    other shop's worker counted its mail to ann@example.org, the list she asked us for stayed
    queued: a month's run waited 20 s for it, while other tests ran."""
    with psycopg.connect(db_url.split("?")[0]) as other:  # (its own schema: not ours)
        other.execute("SELECT pg_advisory_xact_lock(%s)", (address_lock_key("ann@example.org"),))
        msg = make_mail(to="status@shop.test", subject="mine", body="Which are open?")
        code, text, before = desk.send(msg, "ann@example.org", "status@shop.test")
        assert (code, text) == (250, "2.0.0 The list of your requests is on its way.")
        desk.sink.wait_for(before + 1, timeout=10)


def test_an_agent_given_a_request_with_an_answer_may_answer_from_that_mail(desk: Desk) -> None:
    """Carol answers and gives the request to Bob with it; Bob's mail shows her answer ("their
    answer to the customer, sent with it"), and his answer to that mail is sent."""
    ticket, notice = desk.open("The lid of the box is cracked.", "Cracked lid")
    carol = make_mail(sender="carol@shop.test", to=addr(ticket), subject=f"Re: {notice['Subject']}",
                      body="#assign bob@shop.test\n#status in-progress\nWe sent a new lid today.\n",
                      In_Reply_To=str(notice["Message-ID"]))
    code, text, before = desk.send(carol, "carol@shop.test", addr(ticket))
    assert code == 250, text
    given = desk.mail_to("bob@shop.test", after=before)
    assert "We sent a new lid today." in text_of(given)
    bob = make_mail(sender="bob@shop.test", to=addr(ticket), subject=f"Re: {given['Subject']}",
                    body="It ships with tracking number 123.\n", In_Reply_To=str(given["Message-ID"]))
    code, text, _ = desk.send(bob, "bob@shop.test", addr(ticket))
    assert code == 250, text
