"""Reading the configuration file: TOML into :mod:`helpdeskd.config` values, validated.

The file is found by ``--config``, then ``$HELPDESKD_CONFIG``, then ``./helpdeskd.toml``;
with none, the built-in defaults apply. Relative paths in a file are relative to the
file's folder. Every error names the file and the key, and says what is allowed.
"""

from __future__ import annotations

import codecs
import os
import re
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
from helpdeskd.domain import Category, Status, ascii_address, ascii_domain, parse_category
from helpdeskd.errors import ConfigError, InvalidRequest

#: the shortest mail.secret accepted (it signs every reply address)
SECRET_MIN = 16
#: secrets printed in examples (an earlier config.example.toml's among them): refused
KNOWN_SECRETS = frozenset({"change-me-to-a-long-random-string"})

CONFIG_ENV = "HELPDESKD_CONFIG"
DEFAULT_FILE = "helpdeskd.toml"


def find_config_file(explicit: str | None) -> Path | None:
    """The config file to read: ``explicit``, then $HELPDESKD_CONFIG, then ./helpdeskd.toml."""
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


class _Section:
    """Reads one table of the file, remembering which keys were used."""

    def __init__(self, data: Mapping[str, Any], name: str, path: Path) -> None:
        raw = data.get(name, {})
        self.name, self.path = name, path
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        self.raw: dict[str, Any] = raw
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}: {self.name}.{key}"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.raw:
            return default
        value = self.raw[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = {int: "an integer", str: "a string", bool: "true or false", list: "a list", dict: "a table"}
            name = names.get(kind, "a number") if isinstance(kind, type) else "a number"
            raise ConfigError(f"{self.where(key)} must be {name}, not {value!r}")
        return value

    def table(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, {})
        for k, v in value.items():
            if not isinstance(v, str):
                raise ConfigError(f"{self.where(key)}.{k} must be a string, not {v!r}")
        return value

    def category(self, key: str, value: str) -> Category:
        try:
            return parse_category(value)
        except InvalidRequest as exc:
            raise ConfigError(f"{self.where(key)}: {exc}") from None

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise ConfigError(
                f"{self.path}: unknown key {self.name}.{unknown[0]}; allowed in [{self.name}]: {allowed}"
            )


def _address(section: _Section, key: str, default: str) -> str:
    value = ascii_address(section.get(key, str, default))  # (münchen.de as xn--mnchen-3ya.de)
    if not _is_address(value):
        raise ConfigError(f"{section.where(key)} must be an email address, not {value!r}")
    return value


def _is_address(value: str) -> bool:
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain and domain.isascii() and not any(c.isspace() for c in value))


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    """Validate a parsed TOML document; every error names ``path`` and the key."""
    known = {"database", "mail", "policy", "server", "shop", "outbound", "agents"}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown section or key {key!r}; allowed: {', '.join(sorted(known))}"
            )
    defaults_mail = MailConfig()

    db = _Section(data, "database", path)
    url = db.get("url", str, DatabaseConfig.url)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            f"{db.where('url')} must start with sqlite:/// or postgresql://, not {url!r}"
        )
    if url.startswith("sqlite:///") and not url[len("sqlite:///"):].partition("?")[0]:
        # else it would silently be a database in memory, gone when the command ends
        raise ConfigError(f"{db.where('url')}: {url} names no file (e.g. sqlite:///var/helpdeskd.db)")
    db.finish()

    mail = _Section(data, "mail", path)
    # in A-labels, as DNS and MTAs write it: our addresses, ticket addresses and Message-IDs
    # in the form every mail program and server takes, without SMTPUTF8
    domain = ascii_domain(mail.get("domain", str, defaults_mail.domain).strip().lower())
    if "." not in domain or "@" in domain or not domain.isascii():
        raise ConfigError(f"{mail.where('domain')} must be a domain name, not {domain!r}")
    support = _address(mail, "support_address", f"support@{domain}")
    team = _address(mail, "team_address", f"team@{domain}")
    status = _address(mail, "status_address", f"status@{domain}")
    secret = mail.get("secret", str, "")
    if secret and len(secret) < SECRET_MIN:
        raise ConfigError(f"{mail.where('secret')} must be at least {SECRET_MIN} characters")
    if secret in KNOWN_SECRETS:
        raise ConfigError(f"{mail.where('secret')} is a published example, which anyone could sign reply "
                          "addresses with; empty it and run: helpdeskd init --add-secret")
    category_addresses = {
        ascii_address(k): mail.category(f"category_addresses.{k}", v)
        for k, v in mail.table("category_addresses").items()
    }
    aliases = {
        k: mail.category(f"category_aliases.{k}", v)
        for k, v in mail.table("category_aliases").items()
    }
    teams = {mail.category("teams", k): ascii_address(v) for k, v in mail.table("teams").items()}
    for category, address in teams.items():
        if not _is_address(address):
            raise ConfigError(f"{mail.where(f'teams.{category}')} must be an email address, not {address!r}")
    forms = mail.get("form_senders", list, [])
    if not all(isinstance(f, str) and _is_address(ascii_address(f)) for f in forms):
        raise ConfigError(f"{mail.where('form_senders')} must be a list of email addresses")
    ours = [("support_address", support), ("status_address", status)]
    ours += [(f"category_addresses.{a}", a) for a in category_addresses]
    for i, (key, address) in enumerate(ours):  # one address, one meaning: mail to it must not be lost
        taken = next((k for k, a in ours[:i] if a == address), None)
        if taken is not None:
            raise ConfigError(f"{mail.where(key)} is {address}, which is {taken} already")
    mail.finish()

    server = _parse_server(_Section(data, "server", path))
    shop = _parse_shop(_Section(data, "shop", path))
    outbound = _parse_outbound(_Section(data, "outbound", path))
    agents = _parse_agents(_Section(data, "agents", path))
    policy = _parse_policy(_Section(data, "policy", path), agents)

    return Config(
        database=DatabaseConfig(url=url),
        mail=MailConfig(
            domain=domain,
            support_address=support,
            team_address=team,
            status_address=status,
            secret=secret,
            category_addresses=category_addresses,
            category_aliases=aliases,
            teams=teams,
            form_senders=frozenset(ascii_address(f) for f in forms),
        ),
        policy=policy,
        server=server,
        shop=shop,
        outbound=outbound,
        agents=agents,
        source=path,
        base_dir=path.resolve().parent,
    )


def _nonempty(section: _Section, key: str, default: str) -> str:
    value = section.get(key, str, default)
    if not value.strip():
        raise ConfigError(f"{section.where(key)} must not be empty")
    return value


def _positive(section: _Section, key: str, default: int) -> int:
    value = section.get(key, int, default)
    if value <= 0:
        raise ConfigError(f"{section.where(key)} must be more than 0, not {value}")
    return value


def _port(section: _Section, key: str, default: int) -> int:
    value = _positive(section, key, default)
    if value > 65535:
        raise ConfigError(f"{section.where(key)} must be a port number (1-65535), not {value}")
    return value


def _positive_number(section: _Section, key: str, default: float) -> float:
    value = section.get(key, (int, float), default)
    if isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{section.where(key)} must be a number more than 0, not {value!r}")
    return float(value)


def _time_of_day(section: _Section, key: str, default: str) -> str:
    """A time of day as ``HH:MM`` (24-hour), or "" for none."""
    value = section.get(key, str, default)
    if value and not re.fullmatch(r"([01]?[0-9]|2[0-3]):[0-5][0-9]", value):
        raise ConfigError(f'{section.where(key)} must be a time of day as HH:MM (24-hour, e.g. "08:00"), '
                          f'or "" for none, not {value!r}')
    return value


def _either(section: _Section, key: str, default: str, one: str, other: str) -> str:
    """A string setting that is ``one`` or ``other``."""
    value = section.get(key, str, default)
    if value not in (one, other):
        raise ConfigError(f"{section.where(key)} must be {one} or {other}, not {value!r}")
    return value


def _hostname(section: _Section) -> str:
    """The name the greeting and EHLO give: one word, nothing that could break a line."""
    value = section.get("hostname", str, "")
    if value and not re.fullmatch(r"[A-Za-z0-9.-]+", value):
        raise ConfigError(f"{section.where('hostname')} must be a host name (letters, digits, dots, hyphens), "
                          f"not {value!r}")
    return value


def _parse_server(section: _Section) -> ServerConfig:
    d = ServerConfig()
    mode = _either(section, "mode", d.mode, "smtp", "lmtp")
    port = section.get("port", int, d.port)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{section.where('port')} must be a port number (0-65535), not {port}")
    cert = section.get("tls_cert", str, "")
    key = section.get("tls_key", str, "")
    if bool(cert) != bool(key):
        raise ConfigError(f"{section.where('tls_cert')}: tls_cert and tls_key go together")
    result = ServerConfig(
        host=section.get("host", str, d.host),
        port=port,
        mode=mode,
        hostname=_hostname(section),
        max_message_size=_positive(section, "max_message_size", d.max_message_size),
        max_recipients=_positive(section, "max_recipients", d.max_recipients),
        max_attachment_size=_positive(section, "max_attachment_size", d.max_attachment_size),
        tls_cert=str(section.path.resolve().parent / cert) if cert else "",
        tls_key=str(section.path.resolve().parent / key) if key else "",
    )
    section.finish()
    return result


def _relative(section: _Section, value: str) -> str:
    return str(section.path.resolve().parent / value) if value else ""


def _parse_shop(section: _Section) -> ShopConfig:
    d = ShopConfig()
    templates_dir = _relative(section, section.get("templates_dir", str, ""))
    if templates_dir and not Path(templates_dir).is_dir():
        # else every mail would silently go out with the packaged templates
        raise ConfigError(f"{section.where('templates_dir')}: {templates_dir} is not a directory")
    result = ShopConfig(
        name=section.get("name", str, d.name),
        signature=section.get("signature", str, d.signature),
        reply_time=section.get("reply_time", str, d.reply_time),
        templates_dir=templates_dir,
    )
    section.finish()
    return result


def _parse_outbound(section: _Section) -> OutboundConfig:
    d = OutboundConfig()
    transport = _either(section, "transport", d.transport, "maildir", "smtp")
    starttls = _either(section, "starttls", d.starttls, "required", "no")
    result = OutboundConfig(
        transport=transport,
        maildir=_nonempty(section, "maildir", d.maildir),
        smtp_host=section.get("smtp_host", str, d.smtp_host),
        smtp_port=_port(section, "smtp_port", d.smtp_port),
        starttls=starttls,
        implicit_tls=section.get("implicit_tls", bool, d.implicit_tls),
        username=section.get("username", str, ""),
        password_env=section.get("password_env", str, ""),
        password_file=_relative(section, section.get("password_file", str, "")),
        timeout_seconds=_positive(section, "timeout_seconds", d.timeout_seconds),
        max_age_hours=_positive(section, "max_age_hours", d.max_age_hours),
        rate_limit_per_hour=_positive(section, "rate_limit_per_hour", d.rate_limit_per_hour),
        retry_base_seconds=float(_positive_number(section, "retry_base_seconds", d.retry_base_seconds)),
        connections=_positive(section, "connections", d.connections),
        pending_digest_at=_time_of_day(section, "pending_digest_at", d.pending_digest_at),
    )
    section.finish()
    return result


def _parse_policy(policy: _Section, agents: AgentsConfig) -> PolicyConfig:
    customers = policy.get("customers", str, PolicyConfig.customers)
    if customers not in POLICIES:
        raise ConfigError(f"{policy.where('customers')} must be one of {', '.join(POLICIES)}, not {customers!r}")
    grace = policy.get("reopen_grace_days", int, PolicyConfig.reopen_grace_days)
    if grace < 0:
        raise ConfigError(f"{policy.where('reopen_grace_days')} must be 0 or more, not {grace}")
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
    policy.finish()
    return PolicyConfig(customers=customers, reopen_grace_days=grace,
                        default_agent_reply_status=allowed_reply[reply_status], authenticate_customers=authenticate)


def _parse_agents(section: _Section) -> AgentsConfig:
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
