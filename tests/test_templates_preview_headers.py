"""``templates preview EVENT`` shows the sample mail under the headers its reader sees:
From (with the name ``_sender.txt`` gives), To, Reply-To and Subject, as a real mail of
that event carries them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpdeskd.cli import cli
from helpdeskd.mail.ticket_addresses import ticket_address

from tests.test_preflight import SECRET, config_file

SUBJECT = "[Ticket #1042] Order question: parcel not delivered"


def _preview(path: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(path), "templates", "preview", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _ticket(role: str) -> str:
    return ticket_address("support", "shop.test", 1042, role, SECRET.encode())  # type: ignore[arg-type]


@pytest.mark.parametrize(("event", "headers"), [
    ("confirmation", ["From: Example Shop Support <support@shop.test>", "To: Anna Example <anna@customer.example>",
                      f"Reply-To: {_ticket('c')}", f"Subject: {SUBJECT}"]),
    ("response", ["From: Bob Agent via Example Shop Support <support@shop.test>",
                  "To: Anna Example <anna@customer.example>", f"Reply-To: {_ticket('c')}", f"Subject: Re: {SUBJECT}"]),
    ("new_request", ["From: Anna Example via Example Shop Support <support@shop.test>", "To: orders@shop.test",
                     f"Reply-To: {_ticket('a')}", f"Subject: {SUBJECT}"]),
    ("command_result", ["From: Example Shop Support <support@shop.test>", "To: bob@shop.test",
                        f"Reply-To: {_ticket('a')}", f"Subject: Re: {SUBJECT}"]),
    ("pending_digest", ["From: Example Shop Support <support@shop.test>", "To: orders@shop.test",
                        "Reply-To: orders@shop.test", "Subject: Pending requests: 3 waiting (oldest 3 days)"]),
], ids=lambda value: value if isinstance(value, str) else "")
def test_the_preview_shows_the_headers_the_reader_sees(tmp_path: Path, event: str, headers: list[str]) -> None:
    path = config_file(tmp_path, 'domain = "shop.test"\n[mail.teams]\nOrder = "orders@shop.test"\n')
    out = _preview(path, event)
    assert out.startswith("\n".join(headers) + "\n\n"), out
    assert _preview(path, event, "--html").startswith("\n".join(headers) + "\n\n<")


def test_the_from_name_is_the_shops_own_sender_template(tmp_path: Path) -> None:
    (tmp_path / "vorlagen").mkdir()
    (tmp_path / "vorlagen" / "_sender.txt").write_text(
        "{{ who ~ ' über ' if who else '' }}Kundendienst {{ shop.name }}\n", encoding="utf-8")
    path = config_file(tmp_path, 'domain = "shop.test"\n[shop]\nname = "Beispiel-Laden"\ntemplates_dir = "vorlagen"\n')
    assert _preview(path, "response").startswith(
        "From: Bob Agent über Kundendienst Beispiel-Laden <support@shop.test>\n"
        "To: Anna Example <anna@customer.example>\n")
    assert _preview(path, "confirmation").startswith("From: Kundendienst Beispiel-Laden <support@shop.test>\n")
