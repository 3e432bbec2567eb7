"""Reading the configuration file: TOML into :mod:`helpdeskd.config` values, validated.

The file is found by ``--config``, then ``$HELPDESKD_CONFIG``, then ``./helpdeskd.toml``;
with none, the built-in defaults apply. Relative paths in a file are relative to the
file's folder. Every error names the file and the key, and says what is allowed.
"""

from __future__ import annotations

import codecs
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpdeskd.config import (
    POLICIES,
    AgentsConfig,
    Config,
    DatabaseConfig,
    MailConfig,
    OutboundConfig,
    PolicyConfig,
    ServerConfig,
    ShopConfig,
)
from helpdeskd import config_values as values
from helpdeskd.config_values import Section
from helpdeskd.domain import Category, Status, ascii_address, ascii_domain
from helpdeskd.errors import ConfigError
from helpdeskd.mail.ticket_addresses import RecipientKind, parse_recipient

#: the shortest mail.secret accepted (it signs every reply address)
SECRET_MIN = 16
#: secrets printed in examples (an earlier config.example.toml's among them): refused
KNOWN_SECRETS = frozenset({"change-me-to-a-long-random-string"})
#: the most an hourly count (outbound.rate_limit_per_hour, new_customer_confirmations_per_hour)
#: may be: beyond any mail flow, and a number every database takes
PER_HOUR_MOST = 1_000_000

CONFIG_ENV = "HELPDESKD_CONFIG"
DEFAULT_FILE = "helpdeskd.toml"


def named_file(explicit: str) -> Path:
    """The file ``--config`` names. An empty one (a script's ``--config "$CONF"`` with the
    variable unset) is refused, not taken for no ``--config``: that would be another
    configuration (``$HELPDESKD_CONFIG``, ``./helpdeskd.toml``, the defaults), another
    database."""
    if not explicit.strip():
        raise ConfigError(f"--config: {explicit!r} names no file")
    return Path(explicit)


def find_config_file(explicit: str | None) -> Path | None:
    """The config file to read: ``explicit``, then $HELPDESKD_CONFIG, then ./helpdeskd.toml."""
    if explicit is not None:
        named_file(explicit)
    for given, source in ((explicit, ""), (os.environ.get(CONFIG_ENV), f" (from ${CONFIG_ENV})")):
        if given:
            path = Path(given)
            if path.is_dir():
                raise ConfigError(f"{path}: a folder, not a configuration file{source}")
            if not path.is_file():
                raise ConfigError(f"{path}: configuration file not found{source}")
            return path
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else None


def load_config(explicit: str | None = None) -> Config:
    path = find_config_file(explicit)
    if path is None:
        return Config()
    try:
        data = tomllib.loads(read_config_text(path).removeprefix(BOM))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, path)


#: a UTF-8 byte order mark, as some Windows editors begin a file with: ignored
BOM = "\ufeff"


def read_config_text(path: Path) -> str:
    """The text of the configuration file at ``path``, exactly (line ends, a BOM).

    ConfigError names the file when it cannot be read, and the line and byte when it is
    not UTF-8 (a file saved as Latin-1 or UTF-16): TOML is UTF-8.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        utf16 = "; UTF-16, by its first bytes" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else ""
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte {exc.start + 1} is {data[exc.start]:#04x}{utf16}); save the file as UTF-8"
        ) from None


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    """Validate a parsed TOML document; every error names ``path`` and the key."""
    known = {"database", "mail", "policy", "server", "shop", "outbound", "agents"}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown section or key {key!r}; allowed: {', '.join(sorted(known))}"
            )
    db = Section(data, "database", path)
    url = db.get("url", str, DatabaseConfig.url)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            f"{db.where('url')} must start with sqlite:/// or postgresql://, not {url!r}"
        )
    if url.startswith("sqlite:///") and not url[len("sqlite:///"):].partition("?")[0]:
        # else it would silently be a database in memory, gone when the command ends
        raise ConfigError(f"{db.where('url')}: {url} names no file (e.g. sqlite:///var/helpdeskd.db)")
    db.finish()

    mail = _parse_mail(Section(data, "mail", path))

    server = _parse_server(Section(data, "server", path))
    shop = _parse_shop(Section(data, "shop", path))
    outbound = _parse_outbound(Section(data, "outbound", path))
    agents = _parse_agents(Section(data, "agents", path))
    policy = _parse_policy(Section(data, "policy", path), agents)

    return Config(
        database=DatabaseConfig(url=url),
        mail=mail,
        policy=policy,
        server=server,
        shop=shop,
        outbound=outbound,
        agents=agents,
        source=path,
        base_dir=path.resolve().parent,
    )


def _parse_mail(mail: Section) -> MailConfig:
    # in A-labels, as DNS and MTAs write it: our addresses, ticket addresses and Message-IDs
    # in the form every mail program and server takes, without SMTPUTF8 ("example.com.",
    # as a zone file writes it, is example.com)
    given = mail.get("domain", str, MailConfig.domain).strip().lower()
    domain = ascii_domain(given.removesuffix("."))
    if not values.is_domain(domain):
        raise ConfigError(f"{mail.where('domain')} must be a domain name like shop.example, not {given!r}")
    support = values.address(mail, "support_address", f"support@{domain}")
    team = values.address(mail, "team_address", f"team@{domain}")
    status = values.address(mail, "status_address", f"status@{domain}")
    secret = _secret(mail, "secret", mail.get("secret", str, ""))
    previous = mail.get("previous_secrets", list, [])
    for i, old in enumerate(previous):
        if not isinstance(old, str) or not old:
            raise ConfigError(f"{mail.where(f'previous_secrets[{i}]')} must be a secret (a string), not {old!r}")
        _secret(mail, f"previous_secrets[{i}]", old)
    if previous and not secret:
        raise ConfigError(f"{mail.where('previous_secrets')} needs a mail.secret to sign new mail with")
    category_addresses: dict[str, Category] = {}
    for key, value in mail.table("category_addresses").items():
        where = f"category_addresses.{key}"
        if not values.is_address(ascii_address(key)):
            raise ConfigError(f"{mail.where(where)}: {key!r} is not an email address (write refunds@{domain})")
        if ascii_address(key) in category_addresses:  # (addresses are compared without case)
            raise ConfigError(f"{mail.where(where)}: {ascii_address(key)} is named twice")
        category_addresses[ascii_address(key)] = mail.category(where, value)
    aliases = {k: mail.category(f"category_aliases.{k}", v) for k, v in mail.table("category_aliases").items()}
    teams = {mail.category("teams", k): ascii_address(v) for k, v in mail.table("teams").items()}
    for category, address in teams.items():
        if not values.is_address(address):
            raise ConfigError(f"{mail.where(f'teams.{category}')} must be a plain email address, not {address!r}")
    forms = mail.get("form_senders", list, [])
    if not all(isinstance(f, str) and values.is_address(ascii_address(f)) for f in forms):
        raise ConfigError(f"{mail.where('form_senders')} must be a list of email addresses")
    ours = [("support_address", support), ("status_address", status)]
    ours += [(f"category_addresses.{a}", a) for a in category_addresses]
    for i, (key, address) in enumerate(ours):  # one address, one meaning: mail to it must not be lost
        taken = next((k for k, a in ours[:i] if a == address), None)
        if taken is not None:
            raise ConfigError(f"{mail.where(key)} is {address}, which is {taken} already")
    people = [("team_address", team), *((f"teams.{c}", a) for c, a in teams.items())]
    for key, address in people:  # (mail to it would come back to helpdeskd, kept as our own)
        match = parse_recipient(address, support.rpartition("@")[0], domain, b"")
        tickets = match.kind in (RecipientKind.TICKET, RecipientKind.BAD_TOKEN)  # (as the listener reads it)
        taken = "its ticket addresses, support+…" if tickets else next((k for k, a in ours if a == address), None)
        if taken is not None:
            raise ConfigError(f"{mail.where(key)} is {address}, which helpdeskd itself receives ({taken}): "
                              "the team's notices must go to people; give the team's own mailbox or list")
    mail.finish()
    return MailConfig(
        domain=domain, support_address=support, team_address=team, status_address=status, secret=secret,
        previous_secrets=tuple(old for old in previous if old != secret),
        category_addresses=category_addresses, category_aliases=aliases, teams=teams,
        form_senders=frozenset(ascii_address(f) for f in forms),
    )


def _secret(mail: Section, key: str, value: str) -> str:
    """``value`` of ``mail.<key>``, checked: long enough, and no published example."""
    if value and len(value) < SECRET_MIN:
        raise ConfigError(f"{mail.where(key)} must be at least {SECRET_MIN} characters")
    if value in KNOWN_SECRETS:
        raise ConfigError(f"{mail.where(key)} is a published example, which anyone could sign reply "
                          "addresses with; empty it and run: helpdeskd init --add-secret")
    return value


def _parse_server(section: Section) -> ServerConfig:
    d = ServerConfig()
    mode = values.either(section, "mode", d.mode, "smtp", "lmtp")
    port = section.get("port", int, d.port)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{section.where('port')} must be a port number (0-65535), not {port}")
    cert = section.get("tls_cert", str, "")
    key = section.get("tls_key", str, "")
    if bool(cert) != bool(key):
        raise ConfigError(f"{section.where('tls_cert')}: tls_cert and tls_key go together")
    size = values.positive(section, "max_message_size", d.max_message_size)
    # (by default at least one message of the largest size, however large that is)
    in_flight = values.positive(section, "max_bytes_in_flight", max(d.max_bytes_in_flight, size))
    if in_flight < size:
        raise ConfigError(f"{section.where('max_bytes_in_flight')} must be at least max_message_size "
                          f"({size}), so that a message of the largest size fits, not {in_flight}")
    result = ServerConfig(
        host=_listen_host(section, d.host),
        port=port,
        mode=mode,
        hostname=values.hostname(section),
        max_message_size=size,
        max_bytes_in_flight=in_flight,
        max_recipients=values.positive(section, "max_recipients", d.max_recipients),
        max_attachment_size=values.positive(section, "max_attachment_size", d.max_attachment_size),
        tls_cert=str(section.path.resolve().parent / cert) if cert else "",
        tls_key=str(section.path.resolve().parent / key) if key else "",
    )
    section.finish()
    return result


def _listen_host(section: Section, default: str) -> str:
    """Where to listen: an address or name; "" would be every interface, unasked."""
    value = section.get("host", str, default).strip()
    if not value:
        raise ConfigError(f'{section.where("host")} must not be empty (127.0.0.1 listens on this machine only; '
                          '"0.0.0.0" on every interface)')
    return value


def _parse_shop(section: Section) -> ShopConfig:
    d = ShopConfig()
    templates_dir = values.relative(section, section.get("templates_dir", str, ""))
    if templates_dir and not Path(templates_dir).is_dir():
        # else every mail would silently go out with the packaged templates
        raise ConfigError(f"{section.where('templates_dir')}: {templates_dir} is not a directory")
    result = ShopConfig(
        name=section.get("name", str, d.name),
        signature=section.get("signature", str, d.signature),
        reply_time=section.get("reply_time", str, d.reply_time),
        templates_dir=templates_dir,
        timezone=values.time_zone(section, "timezone"),
    )
    section.finish()
    return result


def _parse_outbound(section: Section) -> OutboundConfig:
    d = OutboundConfig()
    transport = values.either(section, "transport", d.transport, "maildir", "smtp")
    starttls = values.either(section, "starttls", d.starttls, "required", "no")
    result = OutboundConfig(
        transport=transport,
        maildir=values.nonempty(section, "maildir", d.maildir),
        smtp_host=values.nonempty(section, "smtp_host", d.smtp_host),
        smtp_port=values.port(section, "smtp_port", d.smtp_port),
        starttls=starttls,
        implicit_tls=section.get("implicit_tls", bool, d.implicit_tls),
        username=section.get("username", str, ""),
        password_env=section.get("password_env", str, ""),
        password_file=values.relative(section, section.get("password_file", str, "")),
        timeout_seconds=values.positive(section, "timeout_seconds", d.timeout_seconds, 3600, "an hour"),
        max_age_hours=values.positive(section, "max_age_hours", d.max_age_hours, 8760, "a year"),
        rate_limit_per_hour=values.positive(section, "rate_limit_per_hour", d.rate_limit_per_hour, PER_HOUR_MOST),
        new_customer_confirmations_per_hour=_at_least_0(
            section, "new_customer_confirmations_per_hour", d.new_customer_confirmations_per_hour),
        retry_base_seconds=values.positive_number(section, "retry_base_seconds", d.retry_base_seconds, 3600,
                                                  "an hour, the longest wait between two tries"),
        connections=values.positive(section, "connections", d.connections),
        pending_digest_at=values.time_of_day(section, "pending_digest_at", d.pending_digest_at),
    )
    section.finish()
    return result


def _at_least_0(section: Section, key: str, default: int) -> int:
    """A count where 0 means none (no limit)."""
    value = section.get(key, int, default)
    if value < 0:
        raise ConfigError(f"{section.where(key)} must be 0 (no limit) or more, not {value}")
    values.at_most(section, key, value, PER_HOUR_MOST)
    return value


def _parse_policy(policy: Section, agents: AgentsConfig) -> PolicyConfig:
    customers = policy.get("customers", str, PolicyConfig.customers)
    if customers not in POLICIES:
        raise ConfigError(f"{policy.where('customers')} must be one of {', '.join(POLICIES)}, not {customers!r}")
    grace = policy.get("reopen_grace_days", int, PolicyConfig.reopen_grace_days)
    if grace < 0:
        raise ConfigError(f"{policy.where('reopen_grace_days')} must be 0 or more, not {grace}")
    values.at_most(policy, "reopen_grace_days", grace, 36500, "100 years")
    reply_status = policy.get("default_agent_reply_status", str, "resolved")
    allowed_reply = {"resolved": Status.RESOLVED, "in-progress": Status.IN_PROGRESS}
    if reply_status not in allowed_reply:
        raise ConfigError(
            f"{policy.where('default_agent_reply_status')} must be resolved or in-progress, not {reply_status!r}"
        )
    authenticate = policy.get("authenticate_customers", bool, False)
    if authenticate and not agents.trusted_authserv_ids:
        raise ConfigError(f"{policy.where('authenticate_customers')}: needs agents.trusted_authserv_ids, "
                          "the names our MTA signs with")
    spam = policy.get("quarantine_spam", bool, PolicyConfig.quarantine_spam)
    policy.finish()
    return PolicyConfig(customers=customers, reopen_grace_days=grace,
                        default_agent_reply_status=allowed_reply[reply_status], authenticate_customers=authenticate,
                        quarantine_spam=spam)


def _parse_agents(section: Section) -> AgentsConfig:
    ids = section.get("trusted_authserv_ids", list, [])
    if not all(isinstance(i, str) and i for i in ids):
        raise ConfigError(f"{section.where('trusted_authserv_ids')} must be a list of host names")
    required = section.get("require_authentication", bool, False)
    if required and not ids:
        raise ConfigError(
            f"{section.where('require_authentication')}: needs trusted_authserv_ids, the names our MTA signs with"
        )
    section.finish()
    return AgentsConfig(require_authentication=required, trusted_authserv_ids=tuple(i.lower() for i in ids))
