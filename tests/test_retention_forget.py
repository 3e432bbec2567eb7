"""``helpdeskd customers forget``, on both engines: only what is theirs, all of what is theirs.

A real daemon on 127.0.0.1 takes the customers' and agents' mail by SMTP and sends its own
to a real SMTP sink; the commands run in a process of their own while it runs, as an admin
runs them beside ``serve``. What stays is read from the database (a search of the whole
SQLite file, of every text column on PostgreSQL) and from the daemon's SMTP replies to
mail written afterwards. Shared helpers: tests/retention_desk.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.directory import add_customer
from helpdeskd.store.models import Customer, Message, Outbox, RawMessage, Ticket, utcnow

from tests.agent_mail import BOB, CUSTOMER, addr, people
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.mail_desk import Desk
from tests.retention_desk import (ANNS_WORDS, OTHER, OUTBOUND, SUPPORT, TEAM, desk_with_olga, kept_bytes,
                                  resolved_request, settled, subprocess_forget)
from tests.sink import Sink
from tests.test_cli import Admin, admin_with_people


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_olga(database, config)


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    return Admin(tmp_path, db_url)


# -- forget --------------------------------------------------------------------------------


def the_file(db_url: str) -> bytes:
    """Every byte SQLite keeps of the database: the file and its log."""
    path = Path(db_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def anywhere(database: pw.Database, db_url: str, words: str) -> list[str]:
    """Where ``words`` are kept (case-insensitively): the SQLite file, or every text and
    bytes column of every PostgreSQL table."""
    if db_url.startswith("sqlite"):
        return ["the SQLite file"] if words.lower().encode() in the_file(db_url).lower() else []
    found = []
    columns = database.execute_sql(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'bytea')").fetchall()
    for table, column, kind in columns:
        value = f'"{column}"' if kind != "bytea" else f"encode(\"{column}\", 'escape')"
        sql = f'SELECT count(*) FROM "{table}" WHERE position(%s in lower({value})) > 0'
        if database.execute_sql(sql, (words.lower(),)).fetchone()[0]:
            found.append(f"{table}.{column}")
    return found


def test_forget_erases_a_customer_while_the_daemon_runs_and_mail_afterwards_reaches_no_one(
    database: pw.Database, config: Config, db_url: str, admin: Admin
) -> None:
    people()
    add_customer(OTHER, "Olga")
    outbound = {**OUTBOUND}
    with Sink() as sink, RunningDaemon(config, database, outbound={**outbound, "smtp_port": sink.port}) as daemon:
        desk = Desk(daemon, sink)
        ann, _, resolution = resolved_request(desk, "Broken blender", f"My {ANNS_WORDS} cracked.")
        before = len(sink.received)
        assert daemon.send(make_mail(to="status@shop.test", subject="my requests", body="list"), CUSTOMER,
                           ["status@shop.test"])[0] == 250
        desk.mail_to(CUSTOMER, after=before)
        olga, _, _ = resolved_request(desk, "Scratched pan", "The pan came scratched.", sender=OTHER)
        settled()
        olgas = (Ticket.get_by_id(olga).subject, [m.body for m in Message.select().where(Message.ticket == olga)],
                 kept_bytes(olga))
        assert anywhere(database, db_url, CUSTOMER) and anywhere(database, db_url, ANNS_WORDS)

        refused = admin.outside("customers", "forget", CUSTOMER, code=2)
        assert "--yes: forgetting customer ann@example.org deletes 1 request(s)" in refused.stderr
        assert Ticket.get_or_none(Ticket.id == ann) is not None, "nothing without --yes"
        done = admin.outside("customers", "forget", "Ann@Example.org", "--yes").stdout
        assert done.startswith("customer ann@example.org forgotten: 1 request(s), ")
        assert (Ticket.get_by_id(olga).subject, [m.body for m in Message.select().where(Message.ticket == olga)],
                kept_bytes(olga)) == olgas, "another customer's request is untouched"
        assert Customer.get_or_none(Customer.email == CUSTOMER) is None
    database.close()
    assert anywhere(database, db_url, CUSTOMER) == []
    assert anywhere(database, db_url, ANNS_WORDS) == []

    with Sink() as sink, RunningDaemon(config, database, outbound={**outbound, "smtp_port": sink.port}) as daemon:
        # her request's reply address: a request that does not exist (for her and for an agent)
        to = resolution["Reply-To"].addresses[0].addr_spec
        late = make_mail(to=to, subject=f"Re: {resolution['Subject']}", body="It broke again.",
                         In_Reply_To=resolution["Message-ID"])
        assert daemon.send(late, CUSTOMER, [to]) == (550, f"5.1.1 Support request {ann} does not exist.")
        answer = make_mail(sender=BOB, to=addr(ann), subject="Re: [Ticket #1]", body="Any news?")
        assert daemon.send(answer, BOB, [addr(ann)]) == (550, f"5.1.1 Support request {ann} does not exist.")
        # her mail quoting ours to the support address: a sender we do not know (policy: registered)
        code, text = daemon.send(make_mail(subject=f"Re: {resolution['Subject']}", body="It broke again.",
                                           In_Reply_To=resolution["Message-ID"]), CUSTOMER, [SUPPORT])
        assert code == 550 and "<ann@example.org> is not a registered customer" in text
        assert Ticket.select().where(Ticket.id != olga).count() == 0, "no request of Olga's took it"
        assert Message.select().where(Message.ticket == olga).count() == len(olgas[1])


def test_forget_refuses_an_unknown_customer_an_agent_and_a_run_without_yes(tmp_path: Path, db_url: str) -> None:
    run = admin_with_people(tmp_path, db_url)
    run("create", "--customer", CUSTOMER, "--subject", "Broken blender", "--message", "It cracked.")
    assert run("customers", "forget", "nobody@example.org", "--yes", code=4).stderr == \
        "helpdeskd: error: customer nobody@example.org not found\n"
    failed = run("customers", "forget", BOB, "--yes", code=3)
    assert failed.stderr.startswith(f"helpdeskd: error: EMAIL: {BOB} is an agent's address, not a customer's")
    failed = run("customers", "forget", "not an address", "--yes", code=3)
    assert "EMAIL" in failed.stderr
    failed = run("customers", "forget", CUSTOMER, code=2)
    assert "give --yes to confirm" in failed.stderr
    assert CUSTOMER in run("customers", "list").stdout
    assert "forgotten: 1 request(s), 1 conversation entry" in run("customers", "forget", CUSTOMER, "--yes").stdout
    assert CUSTOMER not in run("customers", "list").stdout
    run("show", "1", code=4)


def test_forget_on_a_terminal_asks_first(tmp_path: Path, db_url: str) -> None:
    """Without --yes, a terminal is asked (the default is no); a "y" goes on."""
    import os
    import pty
    import subprocess
    import sys

    run = admin_with_people(tmp_path, db_url)
    run("create", "--customer", CUSTOMER, "--subject", "Broken blender", "--message", "It cracked.")
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    for answer, code in ((b"\n", 1), (b"n\n", 1), (b"y\n", 0)):
        leader, follower = pty.openpty()
        with os.fdopen(leader, "wb", buffering=0) as typed:
            typed.write(answer)
            done = subprocess.run([str(Path(sys.executable).parent / "helpdeskd"), "--config", str(run.config),
                                   "customers", "forget", CUSTOMER], stdin=follower, capture_output=True,
                                  env=env, timeout=60)
            os.close(follower)
        assert done.returncode == code, done
        if code:
            assert b"nothing was forgotten" in done.stderr
            assert b"Forgetting customer ann@example.org deletes 1 request(s)" in done.stdout
            assert CUSTOMER in run("customers", "list").stdout
    assert CUSTOMER not in run("customers", "list").stdout


def test_forget_takes_the_mail_about_no_request_too(database: pw.Database, config: Config) -> None:
    """Her questions to the status address and the lists sent in answer, her quarantined
    and automatic mail go; the team's digests that named her (in base64 too) keep their
    row without their bytes; a digest naming only others is left as it was."""
    from helpdeskd import erasure

    people()
    add_customer(OTHER, "Olga")

    def digest(*customers: str) -> bytes:
        msg = make_mail(sender=SUPPORT, to=TEAM, subject="Pending requests: 1 waiting")
        msg.set_content("".join(f"  Customer: <{c}>\n" for c in customers), cte="base64")
        return wire_bytes(msg)

    naming = Outbox.create(event="pending_digest", recipients=TEAM, state="sent", data=digest(OTHER, CUSTOMER))
    others = Outbox.create(event="pending_digest", recipients=TEAM, state="sent", data=digest(OTHER))
    listed = Outbox.create(event="status_digest", recipients=CUSTOMER, state="sent", data=b"her list")
    kept_list = Outbox.create(event="status_digest", recipients=OTHER, state="sent", data=b"olga's list")
    for n, state in enumerate(("quarantined", "automatic", "processed")):
        RawMessage.create(sha256=f"{n:064d}", mail_from="Ann@Example.org", data=b"her mail", state=state)
    olgas = RawMessage.create(sha256="o" * 64, mail_from=OTHER, data=b"olga's mail")

    done = erasure.forget(erasure.customer_to_forget(CUSTOMER), config.mail)
    assert (done.received, done.sent, done.digests) == (3, 1, 1)
    assert Outbox.get_by_id(naming.id).data is None and Outbox.get_by_id(naming.id).pruned_at is not None
    assert bytes(Outbox.get_by_id(others.id).data) == digest(OTHER)
    assert Outbox.get_or_none(Outbox.id == listed.id) is None
    assert bytes(Outbox.get_by_id(kept_list.id).data) == b"olga's list"
    assert [r.id for r in RawMessage.select()] == [olgas.id]


# -- forget: only what is theirs, all of what is theirs ---------------------------------------


def test_forgetting_a_customer_who_is_an_agent_too_keeps_the_agents_mail(
    desk: Desk, admin: Admin, tmp_path: Path
) -> None:
    """Bob answers Olga's request as an agent, and is a customer too (he tried the desk
    from his own mailbox); the team's digest goes to his mailbox. Forgetting customer Bob
    keeps Olga's request whole, the mail of his reply its source, and the digest; the
    question and the output say that the agent stays."""
    from helpdeskd.store.models import Agent

    olga, _, _ = resolved_request(desk, "Scratched pan", "The pan came scratched.", sender=OTHER)
    add_customer(BOB, "Bob at home")
    answer = Message.get((Message.ticket == olga) & (Message.author_email == BOB))
    assert answer.raw_id is not None
    digest = Outbox.create(event="pending_digest", recipients=BOB, state="sent",
                           data=b"Subject: Pending requests: 1 waiting\r\n\r\n[Ticket #9] Scratched pan\r\n")

    asked = admin.outside("customers", "forget", BOB, code=2).stderr
    assert f"{BOB} is an agent's address too: the agent stays" in asked
    done = admin.outside("customers", "forget", BOB, "--yes").stdout
    assert f"the agent {BOB} stays" in done
    assert Customer.get_or_none(Customer.email == BOB) is None and Agent.get(Agent.email == BOB).active
    assert Message.get_by_id(answer.id).raw_id == answer.raw_id
    admin.outside("source", str(answer.id), "--output", str(tmp_path / "answer.eml"))
    assert b"A new one is on its way." in (tmp_path / "answer.eml").read_bytes()
    assert bytes(Outbox.get_by_id(digest.id).data).endswith(b"Scratched pan\r\n")


def delivery_report(about: str, to: str) -> bytes:
    """A mail server's report that our mail ``about`` (a Message-ID) did not reach ``to``."""
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {SUPPORT}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\nYour mail could not be delivered.\r\n"
            "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n"
            f"--b1\r\nContent-Type: message/rfc822-headers\r\n\r\nFrom: {SUPPORT}\r\nTo: {to}\r\n"
            f"Subject: Your requests\r\nMessage-ID: {about}\r\n\r\n--b1--\r\n").encode()


def test_forget_takes_her_mail_found_by_the_address_it_was_sent_to_and_its_headers(
    desk: Desk, admin: Admin
) -> None:
    """Her out-of-office reply to her request's reply address (null envelope sender,
    stored about no request), her quarantined mail under a BATV envelope, a contact
    form's mail naming her in Reply-To, a report that her list of requests bounced and a
    pruned mail of hers under an SRS envelope all go; the like of Olga's stay."""
    _, _, resolution = resolved_request(desk, "Broken blender", f"My {ANNS_WORDS} cracked.")
    to = resolution["Reply-To"].addresses[0].addr_spec
    away = make_mail(to=to, subject="Automatic reply: Broken blender", body=f"Away. Re: my {ANNS_WORDS}",
                     Auto_Submitted="auto-replied")
    assert desk.daemon.send(away, "", [to])[0] == 250
    olgas_away = make_mail(sender=OTHER, subject="Automatic reply", body="Olga is away.",
                           Auto_Submitted="auto-replied")
    assert desk.daemon.send(olgas_away, "", [SUPPORT])[0] == 250
    settled()
    nulls = RawMessage.select().where(RawMessage.ticket_id.is_null() & RawMessage.mail_from.in_(("", "<>")))
    assert nulls.count() == 2, "stored about no request, with a null envelope sender"
    Outbox.create(event="status_digest", recipients=CUSTOMER, state="bounced", message_id="<list.1@shop.test>",
                  data=b"Subject: Your requests\r\n\r\nBroken blender\r\n")
    rows = [("prvs=0123abcd=ann@example.org", "quarantined", wire_bytes(make_mail(body=f"My {ANNS_WORDS}!"))),
            ("forms@forms.example", "quarantined",
             wire_bytes(make_mail(sender="forms@forms.example", Reply_To=f"Ann <{CUSTOMER}>",
                                  body=f"Contact form: my {ANNS_WORDS}"))),
            ("", "automatic", delivery_report("<list.1@shop.test>", CUSTOMER)),
            ("forms@forms.example", "quarantined",
             wire_bytes(make_mail(sender="forms@forms.example", Reply_To=OTHER, body="Olga's form")))]
    for n, (sender, state, data) in enumerate(rows):
        RawMessage.create(sha256=f"{n:064d}", mail_from=sender, rcpt_to=SUPPORT, state=state, data=data)
    # an old mail of hers through a forwarder (SRS), its bytes pruned: the envelope is all it has
    RawMessage.create(sha256="p" * 64, mail_from="SRS0=HHH=TT=example.org=ann@fwd.example", rcpt_to=SUPPORT,
                      state="automatic", data=b"", pruned_at=utcnow())

    admin.outside("customers", "forget", CUSTOMER, "--yes")
    left = [bytes(d) for (d,) in RawMessage.select(RawMessage.data).where(RawMessage.ticket_id.is_null()).tuples()]
    assert [d for d in left if CUSTOMER.encode() in d.lower() or ANNS_WORDS.lower().encode() in d.lower()] == []
    assert len(left) == 2 and all(b"Olga" in d for d in left), "Olga's out-of-office reply and form stay"
    assert not RawMessage.select().where(RawMessage.mail_from.contains("ann")).exists()


def team_digest(*customers: str) -> bytes:
    """The team's daily digest naming ``customers`` (in base64, as a long one goes)."""
    msg = make_mail(sender=SUPPORT, to=TEAM, subject="Pending requests: 1 waiting")
    msg.set_content("".join(f"  Customer: <{c}>\n" for c in customers), cte="base64")
    return wire_bytes(msg)


def test_forget_stopped_in_its_last_step_is_finished_by_running_it_again(
    database: pw.Database, db_url: str, admin: Admin
) -> None:
    """The last write transaction fails (a trigger refuses the digest's change, as a full
    disk would): nothing of it stays done, and the next run empties the digest naming
    her and deletes her."""
    people()
    digest = Outbox.create(event="pending_digest", recipients=TEAM, state="sent", data=team_digest(OTHER, CUSTOMER))
    sqlite = db_url.startswith("sqlite")
    if sqlite:
        database.execute_sql("CREATE TRIGGER refuse BEFORE UPDATE OF data ON outbox WHEN NEW.data IS NULL "
                             "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    else:
        database.execute_sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "IF NEW.data IS NULL THEN RAISE EXCEPTION 'refused by a trigger'; END IF; "
                             "RETURN NEW; END $$")
        database.execute_sql("CREATE TRIGGER refuse BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()")
    database.close()
    failed = subprocess_forget(admin)
    assert failed.returncode != 0 and "refused by a trigger" in failed.stderr
    assert Customer.get_or_none(Customer.email == CUSTOMER) is not None
    database.execute_sql("DROP TRIGGER refuse" if sqlite else "DROP TRIGGER refuse ON outbox")
    database.close()
    done = admin.outside("customers", "forget", CUSTOMER, "--yes").stdout
    assert "; 1 team digest(s) naming them emptied" in done
    assert Outbox.get_by_id(digest.id).data is None and Customer.get_or_none(Customer.email == CUSTOMER) is None
