"""Mail to a request's agent address from a disabled agent: refused as any non-agent's,
so whoever holds that address (a stranger who forged the From, a person who left the
shop) learns nothing of who was an agent; the admin's log says it was a disabled agent."""

from __future__ import annotations

import logging

import pytest
from helpdeskd.store.models import Outbox

from tests.agent_mail import DAVE, open_ticket, reply, state
from tests.daemon_harness import RunningDaemon

STRANGER = "mallory@elsewhere.test"


def test_a_disabled_agent_is_refused_as_anyone_who_is_no_agent(
    running: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = open_ticket(running)
    before = (state(ticket), Outbox.select().count())
    with caplog.at_level(logging.INFO):
        former = reply(running, ticket, "Refunded.", sender=DAVE)
    stranger = reply(running, ticket, "Refunded.", sender=STRANGER)
    assert former == (550, stranger[1].replace(STRANGER, DAVE))
    assert former == (
        550, f"5.7.1 <{DAVE}> is not a registered agent; only agents may answer through this address, from "
        "the address they are registered with (anyone else writes to support@shop.test).")
    assert "disabled" not in former[1]
    assert (state(ticket), Outbox.select().count()) == before
    assert any(f"<{DAVE}> refused: a disabled agent" in r.getMessage() for r in caplog.records)
