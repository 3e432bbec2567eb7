"""Configuration: defaults, discovery order, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpdeskd.config_edit import with_secret
from helpdeskd.config_file import load_config
from helpdeskd.domain import Category, Status
from helpdeskd.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "helpdeskd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file_work_on_a_fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESKD_CONFIG", raising=False)
    config = load_config()
    assert config.source is None
    assert config.database_url == f"sqlite:///{tmp_path}/var/helpdeskd.db"
    assert config.policy.customers == "registered"


def test_discovery_order_flag_then_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, '[mail]\ndomain = "cwd.test"\n')
    env = write(tmp_path, '[mail]\ndomain = "env.test"\n', "env.toml")
    flag = write(tmp_path, '[mail]\ndomain = "flag.test"\n', "flag.toml")
    monkeypatch.delenv("HELPDESKD_CONFIG", raising=False)
    assert load_config().mail.domain == "cwd.test"
    monkeypatch.setenv("HELPDESKD_CONFIG", str(env))
    assert load_config().mail.domain == "env.test"
    assert load_config(str(flag)).mail.domain == "flag.test"


def test_full_file_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[database]
url = "sqlite:///data/hd.db"
[mail]
domain = "Shop.Example"
secret = "0123456789abcdef0123"
category_addresses = { "billing@shop.example" = "payment" }
category_aliases = { Billing = "Payment", Delivery = "order" }
teams = { Payment = "money@shop.example" }
form_senders = ["Forms@Shopify.Example"]
[policy]
customers = "open"
reopen_grace_days = 3
default_agent_reply_status = "in-progress"
""",
    )
    config = load_config(str(path))
    assert config.database_url == f"sqlite:///{tmp_path}/data/hd.db"
    assert config.mail.support_address == "support@shop.example"
    assert config.mail.category_addresses == {"billing@shop.example": Category.PAYMENT}
    assert config.mail.category_aliases["Delivery"] is Category.ORDER
    assert config.mail.team_for(Category.PAYMENT) == "money@shop.example"
    assert config.mail.team_for(Category.ORDER) == "team@shop.example"
    assert config.mail.form_senders == frozenset({"forms@shopify.example"})
    assert (config.policy.customers, config.policy.reopen_grace_days) == ("open", 3)
    assert config.policy.default_agent_reply_status is Status.IN_PROGRESS


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[database]\nurl = 'mysql://x'\n", "database.url must start with sqlite:/// or postgresql://"),
        ("[database]\nurll = 'sqlite:///x'\n", "unknown key database.urll"),
        ("[mial]\n", "unknown section or key 'mial'"),
        ("[mail]\ndomain = 5\n", "mail.domain must be a string"),
        ("[mail]\nsupport_address = 'nobody'\n", "mail.support_address must be a plain email address"),
        ("[mail]\nsecret = 'short'\n", "mail.secret must be at least 16"),
        ("[mail]\nsecret = 'a-new-secret-of-32-characters-xx'\nprevious_secrets = ['short']\n",
         "mail.previous_secrets[0] must be at least 16"),
        ("[mail]\nsecret = 'a-new-secret-of-32-characters-xx'\nprevious_secrets = [5]\n",
         "mail.previous_secrets[0] must be a secret (a string)"),
        ("[mail]\nsecret = 'a-new-secret-of-32-characters-xx'\nprevious_secrets = 'old-secret-of-32-characters-xxxx'\n",
         "mail.previous_secrets must be a list"),
        ("[mail]\nprevious_secrets = ['old-secret-of-32-characters-xxxx']\n",
         "mail.previous_secrets needs a mail.secret"),
        ("[mail]\nsecret = 'a-new-secret-of-32-characters-xx'\nprevious_secrets = ['change-me-to-a-long-random-string']\n",
         "mail.previous_secrets[0] is a published example"),
        ("[mail]\nstatus_address = 'support@example.com'\n",
         "mail.status_address is support@example.com, which is support_address already"),
        ("[mail.category_addresses]\n'status@example.com' = 'Order'\n",
         "is status@example.com, which is status_address already"),
        ("[mail]\ncategory_aliases = { X = 'Shoes' }\n", "mail.category_aliases.X: unknown category 'Shoes'"),
        ("[policy]\ncustomers = 'everyone'\n", "policy.customers must be one of registered, open"),
        ("[policy]\nreopen_grace_days = true\n", "policy.reopen_grace_days must be an integer"),
        ("[policy]\ndefault_agent_reply_status = 'pending'\n", "default_agent_reply_status must be resolved or in-progress"),
        ("[mail\n", "not valid TOML"),
        ("[outbound]\ntransport = 'pigeon'\n", "outbound.transport must be maildir or smtp"),
        ("[outbound]\nstarttls = 'maybe'\n", "outbound.starttls must be required or no"),
        ("[outbound]\nsmtp_port = 0\n", "outbound.smtp_port must be more than 0"),
        ("[agents]\nrequire_authentication = true\n", "agents.require_authentication: needs trusted_authserv_ids"),
        ("[policy]\nauthenticate_customers = true\n",
         "policy.authenticate_customers: needs agents.trusted_authserv_ids"),
        ("[policy]\nauthenticate_customers = 'yes'\n", "policy.authenticate_customers must be"),
        ("[policy]\nquarantine_spam = 'yes'\n", "policy.quarantine_spam must be true or false"),
        ("[server]\nmode = 'pop3'\n", "server.mode must be smtp or lmtp"),
        ("[server]\nmax_message_size = 2000\nmax_bytes_in_flight = 1999\n",
         "server.max_bytes_in_flight must be at least max_message_size (2000)"),
        ("[shop]\ntemplates_dir = 'mine'\n", "shop.templates_dir: "),
        ("[mail]\nsecret = 'change-me-to-a-long-random-string'\n", "mail.secret is a published example"),
        ("[mail.teams]\nPayment = 'not an address'\n", "mail.teams.Payment must be a plain email address"),
        ("[mail]\nform_senders = ['forms']\n", "mail.form_senders must be a list of email addresses"),
        ("[mail]\nform_senders = 'forms@shopify.example'\n", "mail.form_senders must be a list"),
        ("[outbound]\nsmtp_port = 70000\n", "outbound.smtp_port must be a port number (1-65535)"),
        ("[outbound]\nmaildir = ' '\n", "outbound.maildir must not be empty"),
        ("[server]\nhostname = 'bad host\\r\\nX: y'\n", "server.hostname must be a host name"),
        ("[mail]\ndomain = 'https://example.com'\n", "mail.domain must be a domain name like shop.example"),
        ("[mail]\ndomain = 'example'\n", "mail.domain must be a domain name like shop.example"),
        ("[mail]\nteam_address = '<team@example.com>'\n", "mail.team_address must be a plain email address"),
        ("[mail]\nsupport_address = 'support@@example.com'\n", "mail.support_address must be a plain email"),
        ("[mail]\nsupport_address = 'support@example.com.'\n", "mail.support_address must be a plain email"),
        ("[mail]\nteams = { Payment = 'Billing <billing@example.com>' }\n", "mail.teams.Payment must be a plain"),
        ("[mail.category_addresses]\nrefunds = 'Payment'\n",
         "mail.category_addresses.refunds: 'refunds' is not an email address (write refunds@example.com)"),
        ("[mail]\nteam_address = 'support@example.com'\n",
         "mail.team_address is support@example.com, which helpdeskd itself receives (support_address)"),
        ("[mail]\nteams = { Payment = 'billing@example.com' }\n[mail.category_addresses]\n'billing@example.com' = 'Payment'\n",
         "mail.teams.Payment is billing@example.com, which helpdeskd itself receives "
         "(category_addresses.billing@example.com)"),
        ("[server]\nhost = ''\n", "server.host must not be empty"),
        ("[mail]\ndomain = '192.168.1.10'\n", "mail.domain must be a domain name like shop.example"),
        ("[mail]\nteam_address = 'support+team@example.com'\n",
         "mail.team_address is support+team@example.com, which helpdeskd itself receives (its ticket addresses"),
        ("[mail.category_addresses]\n'Billing@example.com' = 'Payment'\n'billing@example.com' = 'Order'\n",
         "mail.category_addresses.billing@example.com: billing@example.com is named twice"),
        ("[outbound]\nsmtp_host = ' '\n", "outbound.smtp_host must not be empty"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.toml"))


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    config = load_config(str(example))
    assert config.source == example
    text = example.read_text(encoding="utf-8")
    for key in ("url", "domain", "support_address", "team_address", "status_address", "secret",
                "category_addresses", "category_aliases", "teams", "customers",
                "reopen_grace_days", "default_agent_reply_status", "host", "port", "mode",
                "hostname", "max_message_size", "max_recipients", "max_attachment_size",
                "tls_cert", "tls_key", "name", "signature", "reply_time", "templates_dir",
                "transport", "maildir", "smtp_host", "smtp_port", "starttls", "implicit_tls",
                "username", "password_env", "password_file", "timeout_seconds", "max_age_hours",
                "rate_limit_per_hour", "new_customer_confirmations_per_hour", "retry_base_seconds", "connections",
                "pending_digest_at",
                "require_authentication", "trusted_authserv_ids", "authenticate_customers"):
        assert f"\n{key} =" in text or f"\n# {key} =" in text, key


SECRET = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[mail]\ndomain = "a.test"\n', f'[mail]\nsecret = "{SECRET}"\ndomain = "a.test"\n'),
        ('[mail] # ours\nsecret = ""  # to do\n[policy]\n',
         f'[mail] # ours\nsecret = "{SECRET}"  # to do\n[policy]\n'),
        ('[policy]\ncustomers = "open"', f'[policy]\ncustomers = "open"\n\n[mail]\nsecret = "{SECRET}"\n'),
        ('[mail.teams]\nOrder = "o@a.test"\n', f'[mail.teams]\nOrder = "o@a.test"\n\n[mail]\nsecret = "{SECRET}"\n'),
        ("", f'\n[mail]\nsecret = "{SECRET}"\n'),
    ],
    ids=["into-mail", "fills-empty", "appends-mail", "after-subtable", "empty-file"],
)
def test_with_secret_adds_one_line_and_keeps_the_rest(tmp_path: Path, text: str, expected: str) -> None:
    edited = with_secret(text, SECRET, tmp_path / "h.toml")
    assert edited == expected
    assert load_config(str(write(tmp_path, edited))).mail.secret == SECRET


def test_with_secret_leaves_a_secret_alone_and_refuses_what_it_cannot_edit(tmp_path: Path) -> None:
    assert with_secret(f'[mail]\nsecret = "{SECRET}"\n', "x" * 32, tmp_path / "h.toml") is None
    with pytest.raises(ConfigError, match=f'add to its \\[mail\\] table: secret = "{SECRET}"'):
        with_secret('mail.domain = "a.test"\n', SECRET, tmp_path / "h.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        with_secret("[mail\n", SECRET, tmp_path / "h.toml")
    # a secret too short to use is not "a secret already": say what to put instead
    with pytest.raises(ConfigError, match=f'shorter than 16 characters; replace it .*secret = "{SECRET}"'):
        with_secret('[mail]\nsecret = "short"\n', SECRET, tmp_path / "h.toml")


def test_an_internationalised_domain_is_kept_in_a_labels(tmp_path: Path) -> None:
    """As DNS and MTAs write it: our addresses and Message-IDs need no SMTPUTF8."""
    path = tmp_path / "idn.toml"
    path.write_text('[mail]\ndomain = "München.de"\nteam_address = "Team@Bücher.example"\n'
                    '[mail.category_addresses]\n"rechnung@münchen.de" = "Payment"\n', encoding="utf-8")
    mail = load_config(str(path)).mail
    assert (mail.domain, mail.support_address, mail.status_address) == (
        "xn--mnchen-3ya.de", "support@xn--mnchen-3ya.de", "status@xn--mnchen-3ya.de")
    assert mail.team_address == "team@xn--bcher-kva.example"
    assert dict(mail.category_addresses) == {"rechnung@xn--mnchen-3ya.de": Category.PAYMENT}


def test_a_domain_written_as_a_zone_file_writes_it_is_the_domain(tmp_path: Path) -> None:
    mail = load_config(str(write(tmp_path, "[mail]\ndomain = 'Shop.Example.'\n"))).mail
    assert (mail.domain, mail.support_address, mail.team_address) == (
        "shop.example", "support@shop.example", "team@shop.example")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[policy]\nreopen_grace_days = 1000000000\n",
         "policy.reopen_grace_days must be at most 36500 (100 years), not 1000000000"),
        ("[policy]\nreopen_grace_days = 9223372036854775807\n", "policy.reopen_grace_days must be at most 36500"),
        ("[outbound]\nmax_age_hours = 100000000000\n", "outbound.max_age_hours must be at most 8760 (a year)"),
        ("[outbound]\ntimeout_seconds = 3601\n", "outbound.timeout_seconds must be at most 3600 (an hour), not 3601"),
        ("[outbound]\nrate_limit_per_hour = 9223372036854775807\n",
         "outbound.rate_limit_per_hour must be at most 1000000, not 9223372036854775807"),
        ("[outbound]\nnew_customer_confirmations_per_hour = 99999999999999999999\n",
         "outbound.new_customer_confirmations_per_hour must be at most 1000000"),
        ("[outbound]\nretry_base_seconds = 1e300\n", "outbound.retry_base_seconds must be at most 3600 (an hour, "),
        ("[outbound]\nretry_base_seconds = inf\n", "outbound.retry_base_seconds must be a number more than 0, not inf"),
        ("[outbound]\nretry_base_seconds = nan\n", "outbound.retry_base_seconds must be a number more than 0, not nan"),
    ],
)
def test_a_number_no_one_means_is_refused_at_start_not_on_each_mail(tmp_path: Path, text: str, words: str) -> None:
    """A grace period of a billion days (for "always reopen") passed the start, then every
    reply to a closed request failed: a timedelta or a database integer cannot hold it."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)


def test_the_largest_numbers_allowed_are_taken(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, (
        "[policy]\nreopen_grace_days = 36500\n[outbound]\nmax_age_hours = 8760\ntimeout_seconds = 3600\n"
        "rate_limit_per_hour = 1000000\nnew_customer_confirmations_per_hour = 1000000\nretry_base_seconds = 3600\n"
    ))))
    out = config.outbound
    assert (config.policy.reopen_grace_days, out.max_age_hours, out.timeout_seconds, out.rate_limit_per_hour,
            out.new_customer_confirmations_per_hour, out.retry_base_seconds) == (36500, 8760, 3600, 10**6, 10**6, 3600.0)
