"""Configuration values: frozen dataclasses with the built-in defaults.

The defaults work on a fresh machine (SQLite and a Maildir under ``./var/``). Reading
and validating a TOML file into these values is :mod:`helpdeskd.config_file`;
``config.example.toml`` documents every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from helpdeskd.domain import Category, Status

POLICIES = ("registered", "open")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///var/helpdeskd.db"


@dataclass(frozen=True)
class MailConfig:
    domain: str = "example.com"
    support_address: str = "support@example.com"
    team_address: str = "team@example.com"
    status_address: str = "status@example.com"
    secret: str = ""
    #: earlier secrets whose reply addresses are still accepted (mail is signed with ``secret``)
    previous_secrets: tuple[str, ...] = ()
    #: extra addresses that open requests of one category: {"billing@example.com": Payment}
    category_addresses: Mapping[str, Category] = field(default_factory=dict)
    #: subject tag aliases: {"Billing": Payment}
    category_aliases: Mapping[str, Category] = field(default_factory=dict)
    #: team address per category; categories not listed go to team_address
    teams: Mapping[Category, str] = field(default_factory=dict)
    #: senders of the shop's contact forms, whose mail is written by its Reply-To
    form_senders: frozenset[str] = frozenset()

    @property
    def support_local(self) -> str:
        return self.support_address.split("@", 1)[0]

    def team_for(self, category: Category) -> str:
        return self.teams.get(category, self.team_address)


@dataclass(frozen=True)
class PolicyConfig:
    customers: str = "registered"
    reopen_grace_days: int = 14
    default_agent_reply_status: Status = Status.RESOLVED
    #: a customer's mail counts only when our MTA vouches for its From (as
    #: ``agents.require_authentication``), unless it answers our mail (see intake/apply.py)
    authenticate_customers: bool = False
    #: mail a spam filter in front marked as spam (X-Spam-Flag: YES …) is kept in
    #: quarantine instead of opening a request (helpdeskd.mail.spam)
    quarantine_spam: bool = True


@dataclass(frozen=True)
class ServerConfig:
    """The mail listener."""

    host: str = "127.0.0.1"
    port: int = 2525
    #: smtp, or lmtp for Postfix/Dovecot ``lmtp:`` transports
    mode: str = "smtp"
    #: the name in the greeting and EHLO reply (default: the mail domain)
    hostname: str = ""
    max_message_size: int = 25 * 1024 * 1024
    #: the bytes the messages in flight (being read, parsed, stored) may hold together;
    #: beyond, a message is answered 452 4.3.1 and sent again later (helpdeskd.intake.budget).
    #: Each holds some 3 to 4 times its size in the listener meanwhile (the one being parsed
    #: more): the default, four messages of the largest size, keeps the listener within
    #: about 700 MB (measured: 410-670 MB with 20 to 100 messages of 20-26 MB at once)
    max_bytes_in_flight: int = 100 * 1024 * 1024
    max_recipients: int = 20
    max_attachment_size: int = 15 * 1024 * 1024
    #: STARTTLS is offered when both are set
    tls_cert: str = ""
    tls_key: str = ""


@dataclass(frozen=True)
class ShopConfig:
    """What customers read in every mail."""

    name: str = "Example Shop"
    signature: str = "The Example Shop support team"
    #: the promise in words, e.g. "within 24 hours"
    reply_time: str = "within 24 hours"
    #: an operator's copies of the templates, tried before the shipped ones
    templates_dir: str = ""
    #: the IANA time zone ("Europe/Berlin") every time shown to a person is in: in mail,
    #: in the CLI's tables, in the listener's replies; and the zone of
    #: ``outbound.pending_digest_at``. "": the server's local time zone (TZ, /etc/localtime)
    timezone: str = ""

    @property
    def zone(self) -> tzinfo | None:
        """The shop's time zone; None: the server's local one (what ``astimezone()`` takes)."""
        return ZoneInfo(self.timezone) if self.timezone else None


@dataclass(frozen=True)
class OutboundConfig:
    """Delivery of outgoing mail."""

    #: maildir (the embedded default: files in a folder) or smtp (a smarthost)
    transport: str = "maildir"
    maildir: str = "var/outbox-maildir"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    #: required (refuse to send without it) or no
    starttls: str = "no"
    implicit_tls: bool = False
    username: str = ""
    #: the password is read from this environment variable, or from this file
    password_env: str = ""
    password_file: str = ""
    timeout_seconds: int = 30
    #: temporary failures are retried with backoff until the mail is this old
    max_age_hours: int = 48
    #: automatic mails to one address per hour; beyond, the event is recorded, not sent
    rate_limit_per_hour: int = 10
    #: confirmations per hour, all addresses together, to customers a mail has just made
    #: (``policy.customers = "open"``); beyond, the request is opened and the team told,
    #: the confirmation recorded, not sent; 0: no limit
    new_customer_confirmations_per_hour: int = 30
    #: the first retry waits this long, each next one twice as long (at most an hour)
    retry_base_seconds: float = 60.0
    #: parallel connections to the smarthost
    connections: int = 4
    #: when the team gets the day's digest of pending requests: HH:MM, 24-hour, in
    #: ``shop.timezone`` (by default the server's local time); "" sends none
    pending_digest_at: str = "08:00"


@dataclass(frozen=True)
class AgentsConfig:
    """Who may answer by mail."""

    #: also demand an Authentication-Results header from our own MTA with an aligned pass
    require_authentication: bool = False
    #: the authserv-ids of our own MTAs (others' Authentication-Results are ignored)
    trusted_authserv_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    shop: ShopConfig = field(default_factory=ShopConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    #: the file this came from (None: built-in defaults)
    source: Path | None = None
    #: folder that relative paths are resolved against
    base_dir: Path = field(default_factory=Path.cwd)

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix):
            rest = url[len(prefix):]
            if rest and rest != ":memory:" and not rest.startswith("/"):
                return prefix + str(self.resolve(rest))
        return url
