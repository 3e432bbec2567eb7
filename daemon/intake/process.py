"""The one intake code path of SMTP, LMTP and ``helpdeskd deliver``.

:meth:`Intake.prepare` parses and routes (pure, cheap, on the caller's thread);
:meth:`Intake.apply` turns the route into changes inside one transaction — the raw
bytes, the request or conversation changes and the outbox rows — and returns the SMTP
reply. A duplicate changes nothing; a message that breaks our own code is kept in
quarantine (and answered 250: its bytes are safe with us); a database error propagates,
and the listener answers ``451 4.3.0`` so that the sender retries.

A duplicate is the same bytes, or the same Message-ID on a copy of the same message
(another route, other trace headers: same sender, subject, text and attachments). A
different message that reuses an earlier message's Message-ID — broken mail programs
and web forms send constant ids — is handled as the new message it is; its raw bytes
are kept without the Message-ID, which belongs to the earlier one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.directory import OwnAddresses
from helpdeskd.domain import ascii_address, ascii_domain
from helpdeskd.errors import InvalidRequest, NotFound, UnknownCustomer
from helpdeskd.intake.apply import Applier
from helpdeskd.intake.copies import content_digest, same_message
from helpdeskd.intake.forms import written_by_reply_to
from helpdeskd.intake.own_mail import came_back
from helpdeskd.intake.route import Automatic, NewRequest, Reject, Route, pick_target, route, unregistered
from helpdeskd.mail.ticket_addresses import RecipientKind, RecipientMatch, parse_recipient
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.parse import parse_message
from helpdeskd.mail.spam import spam_verdict
from helpdeskd.service import Helpdesk
from helpdeskd.store import statements
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import RawMessage, database
from helpdeskd.store.writer import NeedsSavepoint, optimistic

log = logging.getLogger("helpdeskd.intake")

REPLY_TEMPFAIL = "451 4.3.0 Temporary problem storing the message; please try again later."
REPLY_KEPT = "250 2.0.0 Message kept for review by the support team."


@dataclass(frozen=True)
class Prepared:
    raw: bytes
    sha256: str
    mail_from: str
    rcpts: tuple[str, ...]
    mail: InboundMail
    route: Route | None  # None: routing itself failed (quarantine)
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    reply: str  # the SMTP reply line
    route: str  # what became of the message, for the log
    ticket_id: int | None = None
    message_id: str | None = None  # the message's own Message-ID, for the log
    #: its Message-ID is an earlier, different message's (said in the log once it is stored)
    id_reused: bool = False
    #: a warning for the admin (our own mail come back), said in the log once it is stored
    warning: str = ""

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")

    def with_message_id(self, message_id: str | None) -> Outcome:
        """``dataclasses.replace(self, message_id=message_id)`` at a fifth of its cost (once a message)."""
        copy = object.__new__(Outcome)
        copy.__dict__.update(self.__dict__, message_id=message_id)
        return copy

    def log_after_commit(self) -> None:
        """The log lines about the message beside its own line (a Message-ID another message
        had, a warning): written by whoever logs the outcome, after the commit (a group run
        again would write them twice)."""
        if self.id_reused:
            log.info("Message-ID %s reused by a different message: handled on its own", self.message_id)
        if self.warning:
            log.warning("%s", self.warning)


class _Refused(Exception):
    """Rolls back what a rejected message had written."""

    def __init__(self, reject: Reject) -> None:
        super().__init__(reject.reply)
        self.reject = reject


class Intake:
    def __init__(self, config: Config, helpdesk: Helpdesk | None = None) -> None:
        self.config = config
        self.helpdesk = helpdesk or Helpdesk(config)
        mail = config.mail
        self._secret = mail.secret.encode("utf-8")
        self._previous = tuple(old.encode("utf-8") for old in mail.previous_secrets)
        self._fixed: dict[str, RecipientMatch] = {
            ascii_address(mail.support_address): RecipientMatch(RecipientKind.SUPPORT),
            ascii_address(mail.status_address): RecipientMatch(RecipientKind.STATUS),
        }
        for address, category in mail.category_addresses.items():
            self._fixed[ascii_address(address)] = RecipientMatch(RecipientKind.CATEGORY, category=category)
        self._domain = ascii_domain(mail.domain.lower())
        self._applier = Applier(config, self.helpdesk)
        self._own = OwnAddresses(config.mail)

    # -- at RCPT --------------------------------------------------------------

    def classify(self, address: str) -> RecipientMatch:
        """Which of our addresses this is, if any (no database needed)."""
        clean = ascii_address(address.strip().strip("<>"))  # (an IDN domain in either form)
        fixed = self._fixed.get(clean)
        if fixed is not None:
            return fixed
        return parse_recipient(clean, self.config.mail.support_local, self._domain, self._secret,
                               previous=self._previous)

    def _spam(self, mail: InboundMail, target: RecipientMatch) -> str | None:
        """The spam filter's verdict on mail that would open a request or ask for a list;
        mail to a request's signed address answers our mail, and is taken as it is."""
        if not self.config.policy.quarantine_spam or target.kind == RecipientKind.TICKET:
            return None
        return spam_verdict(mail.headers)

    @staticmethod
    def rcpt_reply(match: RecipientMatch, address: str) -> str | None:
        """The refusal for a recipient, or None when it is accepted."""
        if match.kind == RecipientKind.NOT_OURS:
            return f"550 5.1.1 <{address}>: no such mailbox here; this server relays nothing"
        if match.kind == RecipientKind.BAD_TOKEN:
            return f"550 5.7.1 <{address}>: this reply address is not valid; write to the support address instead"
        return None

    # -- after DATA -------------------------------------------------------------

    def prepare(self, raw: bytes, mail_from: str, rcpts: list[str], *, reviewed: bool = False) -> Prepared:
        """Parse and route a message (no database needed); ``reviewed``: an admin
        reprocesses it from quarantine, and a spam filter's verdict no longer holds it."""
        sha = hashlib.sha256(raw).hexdigest()
        mail = parse_message(raw, mail_from=mail_from, own_domain=self.config.mail.domain)
        if mail.from_addr in self.config.mail.form_senders:  # (a contact form: the customer is its Reply-To)
            mail = written_by_reply_to(mail)
        elif mail.list_sender in self.config.mail.form_senders:  # ("Ann via Contact form": still the form's)
            mail = written_by_reply_to(replace(mail, from_addr=mail.list_sender, list_sender=None))
        try:
            written_to = [self.classify(a) for a in (*mail.to, *mail.cc)]
            target = pick_target([self.classify(r) for r in rcpts], written_to)
            if target is None:
                decided: Route | None = Reject(550, "5.1.1", "None of the recipients is a mailbox here.")
            else:
                decided = route(mail, target, self.config.mail.category_aliases)
            if isinstance(decided, NewRequest) and self._own(mail.from_addr or ""):
                decided = Automatic(f"our own mail came back (From: {mail.from_addr})")  # (a forwarder's new id on it)
            error = ""
            if target is not None and not reviewed and (verdict := self._spam(mail, target)) is not None:
                decided, error = None, f"marked as spam by the spam filter ({verdict})"
        except Exception as exc:  # our own bug on odd input: keep the message for review
            log.exception("routing failed for Message-ID %s", mail.message_id)
            decided, error = None, f"routing failed: {type(exc).__name__}: {exc}"
        return Prepared(raw, sha, mail_from, tuple(rcpts), mail, decided, error)

    def apply(self, p: Prepared) -> Outcome:
        """Store and act on a prepared message; call inside a write transaction."""
        return self._apply(p).with_message_id(p.mail.message_id)

    def _apply(self, p: Prepared) -> Outcome:
        if optimistic():  # its group is run again, with savepoints, should anything go wrong
            try:
                return self._checked(p)
            except Exception as exc:
                raise NeedsSavepoint from exc
        try:  # a savepoint: a refusal, a failed statement or a bug leaves nothing behind
            with database.obj.atomic():
                return self._checked(p)
        except _Refused as refused:  # (the log names the request written to, if any)
            return Outcome(refused.reject.reply, "rejected", getattr(p.route, "ticket_id", None))
        except pw.IntegrityError:
            # a concurrent delivery of the same message won the race
            duplicate, _ = self._duplicate(p)
            if duplicate is not None:
                return duplicate
            raise
        except pw.DatabaseError:
            raise
        except Exception as exc:  # our own bug: keep the bytes, answer for them
            log.exception("processing failed for Message-ID %s", p.mail.message_id)
            why = f"processing failed: {type(exc).__name__}: {exc}"
            _, id_taken = self._duplicate(p)
            self._store_raw(p, "quarantined", why, id_taken=id_taken)
            return Outcome(REPLY_KEPT, "quarantined")

    def _checked(self, p: Prepared) -> Outcome:
        """A copy's or a refused message's outcome, else what storing and acting on it gives.
        A message whose bytes and Message-ID are both new is stored by the statement that
        finds that out (the usual case: one statement instead of the look and the insert)."""
        if not isinstance(p.route, Reject):
            raw = self._store_raw(p, *self._kept_as(p), new_only=True)
            if raw is not None:
                return self._act(p, False, raw)
        duplicate, id_taken = self._duplicate(p)
        if duplicate is not None:
            return duplicate
        if isinstance(p.route, Reject):
            return Outcome(p.route.reply, "rejected")
        outcome = self._act(p, id_taken)
        return replace(outcome, id_reused=True) if id_taken else outcome

    def ingest(self, raw: bytes, mail_from: str, rcpts: list[str], *, keep_refused: bool = False) -> Outcome:
        """prepare + apply in one transaction (for ``deliver`` and reprocessing); with
        ``keep_refused`` a refused message is kept in quarantine, its refusal the error
        (``deliver --keep-refused``: fetchmail and getmail cannot bounce it, and would
        fetch it again at every poll), and ``quarantine reprocess`` takes it later."""
        prepared = self.prepare(raw, mail_from, rcpts)
        with write_transaction():
            outcome = self.apply(prepared)
            if not keep_refused or outcome.accepted:
                return outcome
            _, id_taken = self._duplicate(prepared)
            self._store_raw(prepared, "quarantined", f"refused: {outcome.reply}", id_taken=id_taken)
            return replace(outcome, reply=REPLY_KEPT, route=f"quarantined (refused: {outcome.reply})")

    # -- helpers ---------------------------------------------------------------

    def _duplicate(self, p: Prepared) -> tuple[Outcome | None, bool]:
        """The outcome when this message was stored before (the same bytes, or a copy with
        the same Message-ID), and whether its Message-ID is taken by a different message."""
        mid = p.mail.message_id[:998] if p.mail.message_id else None
        found = statements.lookup(
            RawMessage, ("ticket_id", "sha256"), ("message_id", "sha256"), (mid, p.sha256), any_of=True
        )
        if found is None:
            return None, False
        if found[1] != p.sha256:  # only the Message-ID matched: a copy, or another message?
            same_bytes = statements.lookup(RawMessage, ("ticket_id",), ("sha256",), (p.sha256,))
            if same_bytes is not None:
                found = (same_bytes[0], p.sha256)
            else:
                earlier = statements.lookup(RawMessage, ("data", "content_sha256"), ("message_id",), (mid,))
                if earlier is None:
                    return None, True
                if earlier[1] is not None:  # (pruned: its bytes are gone, the digest of its content kept)
                    if earlier[1] != content_digest(p.mail):
                        return None, True
                elif not same_message(parse_message(bytes(earlier[0]), own_domain=self.config.mail.domain), p.mail):
                    return None, True
        return Outcome("250 2.0.0 Already received; nothing changed.", "duplicate", found[0]), False

    def _store_raw(
        self, p: Prepared, state: str, error: str = "", route: str = "", *, id_taken: bool = False,
        new_only: bool = False,
    ) -> RawMessage | None:
        """The raw message's row; with ``new_only``, only when no row holds its bytes or its
        Message-ID (None when one does)."""
        values = dict(
            message_id=p.mail.message_id[:998] if p.mail.message_id and not id_taken else None,
            sha256=p.sha256,
            mail_from=p.mail_from[:320],
            rcpt_to=",".join(p.rcpts),
            data=p.raw,
            state=state,
            route=route,
            error=error,
        )
        if new_only:
            raw_id = statements.insert_unless(RawMessage, ("message_id", "sha256"), **values)
            if raw_id is None:
                return None
        else:
            raw_id = statements.insert(RawMessage, **values)
        return RawMessage(__no_default__=True, id=raw_id)  # (what follows needs its id only)

    @staticmethod
    def _kept_as(p: Prepared) -> tuple[str, str, str]:
        """The raw message's state, error and route."""
        if p.route is None:
            return "quarantined", p.error, ""
        return "automatic" if isinstance(p.route, Automatic) else "processed", "", type(p.route).__name__

    def _act(self, p: Prepared, id_taken: bool, raw: RawMessage | None = None) -> Outcome:
        """What acting on a new message gives; its raw message ``raw`` when stored already."""
        if raw is None:
            raw = self._store_raw(p, *self._kept_as(p), id_taken=id_taken)
            assert raw is not None  # (stored whatever else is)
        if p.route is None:
            return Outcome(REPLY_KEPT, "quarantined")
        decided = p.route
        try:
            outcome = self._applier.apply(decided, p.mail, raw)
        except UnknownCustomer as exc:
            hint = decided.ticket_hint if isinstance(decided, NewRequest) else None
            raise _Refused(unregistered(exc.email, self.config.shop.name, hint)) from None
        except NotFound as exc:
            raise _Refused(Reject(550, "5.7.1", f"{exc}.")) from None
        except InvalidRequest as exc:  # (without the name of the CLI's option: "message: ...")
            words = str(exc).removeprefix("message: ")
            raise _Refused(Reject(550, "5.6.0", f"{words[:1].upper()}{words[1:]}.")) from None
        if isinstance(outcome, Reject):
            raise _Refused(outcome)
        reply, what, ticket_id = outcome
        if ticket_id is not None and raw.ticket_id != ticket_id:  # (a new request's rows link it)
            statements.update_by_id(RawMessage, raw.id, ticket_id=ticket_id)
        warning = came_back(p.mail, decided.reason, self.config.mail.support_address) if isinstance(
            decided, Automatic) and what.startswith("automatic") else ""
        return Outcome(reply, what, ticket_id, warning=warning)
