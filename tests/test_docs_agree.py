"""What operators read agrees with what the code does: every key of config.example.toml is
one the loader reads, with the value shown as its default, and every key the loader reads
is there; every ``helpdeskd`` command and option the README shows exists; the exit status
table lists the statuses the CLI exits with; the numbers the README states are the code's.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
from helpdeskd import config as cfg, request_search
from helpdeskd.cli import EXIT_CODES, cli
from helpdeskd.cli import health as check_command, mailcmds
from helpdeskd.config_file import parse_config
from helpdeskd.domain import Category
from helpdeskd.errors import ConfigError
from helpdeskd.intake import smtp, store_process
from helpdeskd.mail import html, message
from helpdeskd.outbound import conversation, leases, outbox, process, renderer, smarthost, views, worker
from helpdeskd.request_fields import SUBJECT_MAX
from helpdeskd.store import checkpoint, db, writer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"
README = ROOT / "README.md"

#: each table of the file and the values it is read into
SECTIONS: dict[str, type] = {
    "database": cfg.DatabaseConfig, "mail": cfg.MailConfig, "policy": cfg.PolicyConfig,
    "server": cfg.ServerConfig, "shop": cfg.ShopConfig, "outbound": cfg.OutboundConfig,
    "agents": cfg.AgentsConfig,
}
#: keys the example fills with an example instead of the (empty) default, as its first lines say
EXAMPLES = {("mail", "category_addresses"), ("mail", "category_aliases"), ("mail", "teams")}

_TABLE = re.compile(r"^\[([a-z]+)\]\s*$")
_COMMENTED_KEY = re.compile(r"^# ?([a-z_]+) = (.+)$")


def example_keys() -> dict[str, dict[str, bool]]:
    """Per table, the keys the example sets and those it shows commented out (False)."""
    keys: dict[str, dict[str, bool]] = {}
    table = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if (found := _TABLE.match(line)) is not None:
            table = found.group(1)
            keys.setdefault(table, {})
        elif (commented := _COMMENTED_KEY.match(line)) is not None and table:
            keys[table].setdefault(commented.group(1), False)
        elif (key := re.match(r"^([a-z_]+) = ", line)) is not None:
            keys[table][key.group(1)] = True
    return keys


def example_with_every_key() -> str:
    """The example's text with its commented-out keys (``# support_address = "…"``) set."""
    lines = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        commented = _COMMENTED_KEY.match(line)
        lines.append(f"{commented.group(1)} = {commented.group(2)}" if commented else line)
    return "\n".join(lines) + "\n"


def test_the_example_has_every_table_and_every_key_of_each() -> None:
    keys = example_keys()
    assert sorted(keys) == sorted(SECTIONS)
    for table, values in SECTIONS.items():
        fields = {f.name for f in dataclasses.fields(values)}
        assert set(keys[table]) == fields, f"[{table}] in config.example.toml"


@pytest.mark.parametrize("table", sorted(SECTIONS))
def test_the_loader_reads_exactly_the_keys_the_example_documents(table: str, tmp_path: Path) -> None:
    data = tomllib.loads(example_with_every_key())
    data[table]["no_such_key"] = 1
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path / "helpdeskd.toml")
    said = str(info.value)
    assert f"unknown key {table}.no_such_key; allowed in [{table}]: " in said
    allowed = said.rpartition(": ")[2].split(", ")
    assert sorted(allowed) == sorted(example_keys()[table])


def test_every_value_in_the_example_is_accepted_and_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "helpdeskd.toml"
    path.write_text(example_with_every_key(), encoding="utf-8")
    read = parse_config(tomllib.loads(path.read_text(encoding="utf-8")), path)
    default = cfg.Config()
    for table in SECTIONS:
        for field in dataclasses.fields(SECTIONS[table]):
            if (table, field.name) in EXAMPLES:
                continue
            shown: Any = getattr(getattr(read, table), field.name)
            built_in: Any = getattr(getattr(default, table), field.name)
            assert shown == built_in, f"{table}.{field.name} is {shown!r} in config.example.toml, {built_in!r} built in"
    assert read.database_url == f"sqlite:///{tmp_path}/var/helpdeskd.db"  # (relative to the file)


def test_the_example_as_shipped_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "helpdeskd.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    read = parse_config(tomllib.loads(path.read_text(encoding="utf-8")), path)
    # (its examples taken as written, not only its defaults)
    assert (read.server.host, read.server.port, read.server.mode) == ("127.0.0.1", 2525, "smtp")
    assert read.mail.category_addresses == {"billing@example.com": Category.PAYMENT}


def test_every_setting_the_readme_names_is_a_key_of_the_file() -> None:
    prose = re.sub(r"(?ms)^```.*?^```", "", README.read_text(encoding="utf-8"))
    tables = "|".join(SECTIONS)  # (`mail.secret`, not `team@shop.example` nor `outbound.py`)
    named = {(table, key) for span in re.findall(r"`([^`]+)`", prose)
             for table, key in re.findall(rf"(?<![@\w./-])({tables})\.(?!py\b)([a-z_]+)\b(?![.@\w])", span)}
    assert len(named) > 20
    keys = {(table, field.name) for table, values in SECTIONS.items() for field in dataclasses.fields(values)}
    assert named - keys == set()


# -- the commands the README shows ---------------------------------------------------------

_GLOBAL = {"--config", "--json", "-v", "--verbose", "--version", "--help"}


def readme_command_lines() -> list[str]:
    """Every ``helpdeskd …`` the README writes: in backticks, and on the lines of its code
    blocks (the command summary, the MTA and systemd set-ups)."""
    text = README.read_text(encoding="utf-8")
    found: list[str] = []
    for block in re.findall(r"(?ms)^```[a-z]*\n(.*?)^```", text):
        for line in block.splitlines():
            at = re.search(r"(?:^|[/ \"])helpdeskd (?=-|[a-z])(?!unix )", line)  # (not master.cf's service)
            if at is not None:
                found.append(line[at.end():].rstrip())
    prose = re.sub(r"(?ms)^```.*?^```", "", text)
    found += [" ".join(span.split()) for span in re.findall(r"`helpdeskd ([^`]+)`", prose)]
    # commands named without the program's name: `outbox list --failed`, `migrate --status`
    names = set(cli.commands)
    for span in re.findall(r"`([a-z]+ [^`]+)`", prose):
        first, *rest = span.split()
        command = cli.commands.get(first)
        if first in names and rest and (rest[0].startswith("--") or isinstance(command, click.Group)
                                        and rest[0] in command.commands):
            found.append(" ".join(span.split()))
    return found


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


def _check(line: str) -> list[str]:
    """What in one shown command line names no command or option of helpdeskd."""
    line = re.split(r"\s{2,}", line)[0]  # (the summary's comments, after two spaces or more)
    words = line.split()
    while words and words[0] in _GLOBAL:  # (--config FILE before the command)
        words = words[2:] if words[0] == "--config" else words[1:]
    if not words:
        return []
    command = cli.commands.get(words[0])
    if command is None:
        return [f"no command {words[0]!r}"]
    if not isinstance(command, click.Group):
        return [f"{words[0]} has no option {opt}" for opt in _flags(" ".join(words[1:]))
                if opt not in _options(command)]
    wrong = []
    for alternative in re.split(r"\s*\|\s*(?=[a-z])", " ".join(words[1:])):  # (list | show ID | drop ID)
        names = alternative.split()
        for name in names[0].split("|") if names else []:  # (list|show|reprocess|drop)
            sub = command.commands.get(name)
            if sub is None:
                wrong.append(f"no command {words[0]} {name!r}")
                continue
            wrong += [f"{words[0]} {name} has no option {opt}" for opt in _flags(" ".join(names[1:]))
                      if opt not in _options(sub)]
    return wrong


def _flags(text: str) -> list[str]:
    return [flag.split("=")[0] for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*(?:=\S*)?", text)]


def test_the_command_summary_shows_every_command() -> None:
    summary = re.search(r"(?ms)^## The command line\n\n```\n(.*?)^```", README.read_text(encoding="utf-8"))
    assert summary is not None
    shown = {line.split()[1] for line in summary.group(1).splitlines() if line.startswith("helpdeskd ")}
    assert shown == set(cli.commands)


def test_every_command_and_option_the_readme_shows_exists() -> None:
    wrong = {line: problems for line in readme_command_lines() if (problems := _check(line))}
    assert wrong == {}


def test_the_check_finds_a_wrong_command_or_option() -> None:
    assert _check("quarantine list|show|purge") == ["no command quarantine 'purge'"]
    assert _check("outbox list [--failed] [--status S] | retry ID") == ["outbox list has no option --status"]
    assert _check("--config /srv/helpdeskd.toml deliver --sender=${sender} --to=x") == ["deliver has no option --to"]
    assert _check("export --all") == ["no command 'export'"]
    assert _check("respond ID --agent EMAIL (--message TEXT | --file F) [--attach FILE ...]") == []


# -- the exit status table -----------------------------------------------------------------


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = re.search(r"\n#{1,3} ", text[start + len(title) + 2:])
    return text[start: start + len(title) + 2 + (end.start() if end else len(text))]


def test_the_exit_status_table_lists_the_statuses_the_cli_exits_with() -> None:
    rows = re.findall(r"^\| (\d+) \|", _section("### Exit status"), re.MULTILINE)
    statuses = {0, 1, 2, *EXIT_CODES.values(), check_command.NEEDS_ATTENTION}
    assert sorted(int(status) for status in rows) == sorted(statuses)


def test_deliver_exits_with_the_sysexits_codes_the_readme_names() -> None:
    text = README.read_text(encoding="utf-8")
    said = re.search(r"exits with sysexits\s+codes: (.*?)failure", text, re.DOTALL)
    assert said is not None
    named = {int(code) for code in re.findall(r"`(\d+)`", said.group(1))}
    assert named == {mailcmds.EX_OK, mailcmds.EX_USAGE, mailcmds.EX_DATAERR, mailcmds.EX_NOUSER, mailcmds.EX_TEMPFAIL}


# -- numbers the README states -------------------------------------------------------------


_LEASE = outbox.LEASE.total_seconds()
_SERVER = cfg.ServerConfig()

#: what the README says, with the number in it, and the code's value of that number
NUMBERS: list[tuple[str, float]] = [
    (r"A client that sends nothing for (\d+) minutes is hung up on", smtp.IDLE_SECONDS / 60),
    (r"A message of (\d+) KB or more is parsed and routed in a worker thread", smtp.PREPARE_IN_THREAD / 1024),
    (r"One that gives no answer for (\d+) minutes is taken for hung", store_process.ANSWER_SECONDS / 60),
    (r"the groups of the next (\d+) s are then written with savepoints", writer.CAREFUL_SECONDS),
    (r"The outbox worker is a child too, at nice (\d+)", process.WORKER_NICE),
    (r"\(messages less than (\d+) ms apart\)", worker.QUIET_SECONDS * 1000),
    (r"waits for a quiet moment, at most (\d+) s", worker.BURST_WAIT_SECONDS),
    (r"\(default (\d+) MiB, four messages of the default `max_message_size`", _SERVER.max_bytes_in_flight / 2**20),
    (r"\(default \d+ MiB, (four) messages of the default `max_message_size`",
     _SERVER.max_bytes_in_flight / _SERVER.max_message_size),
    (r"quotes and lists deeper than (\d+) levels", html.MAX_PREFIX_DEPTH),
    (r"longer than a header line \((\d+) characters\) is no id", message.MAX_ID_LENGTH),
    (r"the first id and the latest (\d+) are read", message.MAX_REFERENCES - 1),
    (r"one that prepares no batch in (\d+) s is hung", renderer.ANSWER_SECONDS),
    (r"from a backlog of (\d+) rows in one pass on, a render process", renderer.BACKLOG),
    (r"checked with `NOOP` only after (\d+) s unused", smarthost.IDLE_CHECK_SECONDS),
    (r"up to (\d+) s before it tries again", worker.MAX_PAUSE_SECONDS),
    (r"Rows are claimed under a (\d+)-minute lease", _LEASE / 60),
    (r"it renews their leases every (\d+) s", _LEASE * leases.RENEW_SHARE),
    (r"checks \(in memory\) that its lease lasts (\d+) minutes more", _LEASE * leases.SEND_SHARE / 60),
    (r"each with author and time, cut to (\d+) lines", conversation.ENTRY_LINES),
    (r"customer's files \(up to (\d+) MB a mail", views.NOTICE_FILES_MAX / 1_000_000),
    (r"quote at most ([\d,]+) characters of their text", views.NOTICE_TEXT_MAX),
    (r"Subjects are cut at (\d+) characters", SUBJECT_MAX),
    (r"SQLite runs in WAL mode with a (\d+) s busy timeout", db.SQLITE_BUSY_TIMEOUT_MS / 1000),
    (r"in a thread of the daemon's own, every ([\d.]+) s", checkpoint.INTERVAL_SECONDS),
    (r"Each waits up to (\d+) s for the database's write lock", db.SQLITE_BUSY_TIMEOUT_MS / 1000),
    (r"is over the (\d+) a search may have", request_search.SEARCH_MAX),
]


_WORDS = {"four": 4}


@pytest.mark.parametrize(("pattern", "constant"), NUMBERS, ids=[str(i) for i in range(len(NUMBERS))])
def test_a_number_the_readme_states_is_the_code_s(pattern: str, constant: float) -> None:
    found = re.search(pattern, " ".join(README.read_text(encoding="utf-8").split()))  # (lines joined)
    assert found is not None, f"the README no longer says {pattern!r}: say it again, or change this test"
    said = found.group(1).replace(",", "")
    assert float(_WORDS.get(said, said)) == constant, pattern

