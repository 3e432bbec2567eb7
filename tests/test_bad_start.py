"""``serve`` started while SQLite's disk is full (a reboot, a restart after a crash): it
waits for room, a line each try, instead of exiting 6, which the service unit does not
restart from (the daemon stayed down after room was made, and mail piled up at the MTA)."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tests.sink import Sink
from tests.test_bad_day import Serve, _disk, linux_only
from tests.test_outbound_crash import _until


@linux_only
def test_serve_started_on_a_full_disk_waits_for_room_then_takes_mail(tmp_path: Path) -> None:
    with Sink() as sink:
        daemon = Serve(tmp_path, sink)  # (migrated and stopped cleanly: opening it creates its -shm file)
        daemon.start(wait=False, full_disk=True)
        try:
            _until(lambda: "serve tries again" in daemon.log or daemon.proc.poll() is not None)
            assert daemon.proc.poll() is None, daemon.log
            tries = [line for line in daemon.lines if "serve tries again" in line]
            assert "disk I/O error (is the disk full?); serve tries again in 1 s" in tries[0], tries
            with pytest.raises(OSError):  # (not listening yet: the sender keeps the mail)
                smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)

            _disk(daemon.proc.pid, full=False)  # room again (its processes start after the database opens)
            daemon.started()
            assert daemon.send("Parcel missing") == (250, "2.0.0 Support request 1 opened.")
            assert sorted(r.rcpt_tos[0] for r in sink.wait_for(2)) == ["ann@example.org", "team@shop.test"]
        finally:
            daemon.stop()
        assert daemon.proc.returncode == 0, daemon.log
