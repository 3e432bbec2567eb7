"""A spam filter's verdict, read from the headers it adds (helpdeskd.mail.spam)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.intake.process import Intake
from helpdeskd.intake.quarantine import list_quarantined, reprocess
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.mail.parse import parse_message
from helpdeskd.mail.spam import spam_verdict
from helpdeskd.store.models import Outbox, Ticket

from tests.corpus import corpus_dir, corpus_entries
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        ({"x-spam-flag": "YES"}, "X-Spam-Flag: YES"),
        ({"x-spam-flag": " yes "}, "X-Spam-Flag: yes"),
        ({"x-spam-flag": "NO"}, None),
        ({"x-spam-status": "Yes, score=9.4 required=5.0 tests=HELO_DYNAMIC_IPADDR,\n\tRDNS_NONE"},
         "X-Spam-Status: Yes, score=9.4 required=5.0 tests=HELO_DYNAMIC_IPADDR, RDNS_NONE"),
        ({"x-spam-status": "Yes"}, "X-Spam-Status: Yes"),
        ({"x-spam-status": "No, score=-0.5 required=5.0"}, None),
        ({"x-spam-status": "Yesterday's news"}, None),  # a word, not the verdict
        ({"x-spam": "Yes"}, "X-Spam: Yes"),  # rspamd
        ({"x-spam": "No"}, None),
        ({"x-spam-level": "*********"}, None),  # a score bar alone says nothing
        ({"x-spam-score": "20"}, None),
        ({"x-spam-flag": ""}, None),
        ({}, None),
        ({"subject": "X-Spam-Flag: YES"}, None),
        ({"x-spam-status": "Yes, " + "t" * 500}, "X-Spam-Status: Yes, " + "t" * 180),  # cut at 200
    ],
)
def test_spam_verdict(headers: dict[str, str], verdict: str | None) -> None:
    assert spam_verdict(headers) == verdict


#: corpus mails a spam filter marked as spam (SpamAssassin's headers)
#: (spamassassin/nice/005 has X-Spam-Flag: YES too, below a blank line that ends its header
#: block early: it is body text there, for mail programs as for us)
MARKED = {
    "zammad/mail/mail046.box",
    "zammad/mail/mail069.box",
    "zammad/mail/mail071.box",
    "thunderbird_comm_central/mailnews/test/data/SpamAssassinYes",
    "mikel_mail/error_emails/empty_group_lists.eml",
    "mikel_mail/plain_emails/raw_email_bad_time.eml",
}


def test_the_corpus_mails_a_filter_marked_are_read_as_spam_and_no_other() -> None:
    corpus_dir()
    found = {e.file for e in corpus_entries() if "body_only" not in e.tags
             and spam_verdict(parse_message(e.read()).headers) is not None}
    assert found == MARKED


# ------------------------------------------------------------------ through the intake


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    directory.add_customer("ann@example.org", "Ann")
    with RunningDaemon(config, database) as daemon:
        yield daemon


def test_spam_a_filter_marked_is_kept_in_quarantine_and_answered_by_nobody(running: RunningDaemon) -> None:
    """Its From may be anyone's: a request would confirm to them (backscatter)."""
    code, text = running.send(make_mail(X_Spam_Flag="YES", X_Spam_Status="Yes, score=9.4 required=5.0"),
                              "ann@example.org", ["support@shop.test"])
    assert code == 250 and "kept for review" in text
    (held,) = list_quarantined()
    assert held.error == "marked as spam by the spam filter (X-Spam-Flag: YES)"
    assert (Ticket.select().count(), Outbox.select().count()) == (0, 0)
    outcome = reprocess(Intake(running.config), held.id)  # an admin's "not spam"
    assert outcome.accepted and Ticket.select().count() == 1 and not list_quarantined()
    assert Outbox.select().where(Outbox.event == "confirmation").count() == 1


def test_a_reply_to_a_request_s_signed_address_is_taken_whatever_the_filter_said(running: RunningDaemon) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    to = ticket_address("support", "shop.test", tid, "c", running.config.mail.secret.encode())
    code, text = running.send(make_mail(to=to, body="Any news?", X_Spam="Yes"), "ann@example.org", [to])
    assert code == 250 and "added to support request" in text
    assert not list_quarantined()


def test_with_quarantine_spam_off_the_filter_s_verdict_is_not_read(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org", "Ann")
    off = dataclasses.replace(config, policy=dataclasses.replace(config.policy, quarantine_spam=False))
    with RunningDaemon(off, database) as daemon:
        code, text = daemon.send(make_mail(X_Spam_Flag="YES"), "ann@example.org", ["support@shop.test"])
    assert code == 250 and "opened" in text and not list_quarantined()


def test_quarantine_list_shows_each_message_s_subject(database: pw.Database, db_url: str, tmp_path: Path) -> None:
    """Spam lands in quarantine beside mail we could not handle: the admin tells them apart
    by the subject, without opening each."""
    from tests.test_cli import admin_with_people

    admin = admin_with_people(tmp_path, db_url)
    config = load_config(str(admin.config))
    with RunningDaemon(config, database) as daemon:
        daemon.send(make_mail(subject="Größe 42 günstig!!! =?", X_Spam_Flag="YES"), "ann@example.org",
                    ["support@shop.test"])
        latin1 = wire_bytes(make_mail(subject="Parcel order", X_Spam="Yes")).replace(b"Parcel", b"Caf\xe9", 1)
        assert daemon.send(latin1, "ann@example.org", ["support@shop.test"])[0] == 250  # (raw 8-bit subject)
    listed = admin("quarantine", "list").output
    assert "SUBJECT" in listed.splitlines()[0]
    assert "Größe 42 günstig!!! =?" in listed and "Café order" in listed
    rows = json.loads(admin("quarantine", "list", "--json").output)
    assert [r["subject"] for r in rows] == ["Größe 42 günstig!!! =?", "Café order"]
