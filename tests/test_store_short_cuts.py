"""Short cuts on the store process's path give exactly what the general code gives: the
log line's time (the local zone asked once a second), the outbox row's time stamp (without
``strftime``), the naive UTC now, and a model's defaults (worked out once per model)."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from helpdeskd import LOG_FORMAT, _Formatter
from helpdeskd.records import _stamp
from helpdeskd.store import statements
from helpdeskd.store.models import ALL_MODELS, Outbox, Ticket, utcnow

#: zones with summer time, offsets of half an hour and of minutes, and none
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/St_Johns", "Pacific/Chatham", "Europe/Dublin")


@pytest.fixture
def zone() -> Iterator[None]:
    before = os.environ.get("TZ")
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def _moments(rng: random.Random) -> list[float]:
    """Times around each change of summer time in 2020-2030 (the seconds before and after,
    with fractions near the next second), runs within one second, and random times."""
    found = []
    for year in range(2020, 2031):
        for month in (3, 4, 9, 10, 11):
            for day in (1, 5, 8, 15, 22, 25, 29):
                start = datetime(year, month, day, tzinfo=UTC).timestamp()
                found += [start + rng.uniform(0, 86400) for _ in range(3)]
        for change in _changes(year):
            for delta in (-3601, -3600, -1801, -1800, -2, -1, 0, 1, 2, 1799, 1800, 3599, 3600):
                for fraction in (0.0, 0.0004, 0.4, 0.9989, 0.999, 0.9994, 0.9995, 0.9996, 0.9999994,
                                 0.9999995, 0.9999996, 0.99999999):
                    found.append(change + delta + fraction)
    second = float(int(time.time()))
    found += sorted(second + rng.random() for _ in range(200))
    return found


def _changes(year: int) -> list[float]:
    """The instants of ``year`` at which the local offset changes (to the second)."""
    found = []
    hour = datetime(year, 1, 1, tzinfo=UTC).timestamp()
    offset = time.localtime(hour).tm_gmtoff
    for _ in range(366 * 24 * 4):
        after = hour + 900
        if time.localtime(after).tm_gmtoff != offset:
            low, high = hour, after  # (the change is in between: to the second)
            while high - low > 1:
                middle = (low + high) // 2
                if time.localtime(middle).tm_gmtoff == offset:
                    low = middle
                else:
                    high = middle
            found.append(float(high))
            offset = time.localtime(after).tm_gmtoff
        hour = after
    return found


@pytest.mark.parametrize("name", ZONES)
def test_log_times_as_the_local_zone_gives_them(name: str, zone: None) -> None:
    os.environ["TZ"] = name
    time.tzset()
    rng = random.Random(name)
    formatter = _Formatter(LOG_FORMAT)
    moments = _moments(rng)
    for order in (moments, sorted(moments)):
        for created in order:
            record = logging.LogRecord("helpdeskd", logging.INFO, __file__, 1, "x", None, None)
            record.created = created
            expected = datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")
            assert formatter.formatTime(record) == expected, (name, repr(created))


def test_outbox_stamps_as_strftime_gives_them() -> None:
    rng = random.Random(3)
    moments = [datetime(1, 1, 1), datetime(999, 12, 31, 23, 59, 59), datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)]
    moments += [datetime(1, 1, 1) + timedelta(seconds=rng.uniform(0, 315_000_000_000)) for _ in range(20000)]
    moments += [utcnow() + timedelta(microseconds=rng.randrange(10**12)) for _ in range(2000)]
    for moment in moments:
        assert _stamp(moment) == f"{moment:%Y%m%d%H%M%S}", moment


def test_utcnow_is_naive_utc_now() -> None:
    for _ in range(1000):
        before = datetime.now(UTC).replace(tzinfo=None)
        now = utcnow()
        after = datetime.now(UTC).replace(tzinfo=None)
        assert now.tzinfo is None and now.fold == 0
        assert before <= now <= after


def _general_defaults(model: type, values: dict[str, object]) -> dict[str, object]:
    """What ``with_defaults`` gave before the defaults were worked out once per model."""
    row = dict(values)
    for name, field in model._meta.fields.items():
        if name in row or field.primary_key or field.default is None:
            continue
        row[name] = field.default() if callable(field.default) else field.default
    return row


def test_defaults_as_the_fields_give_them() -> None:
    rng = random.Random(5)
    for model in ALL_MODELS:
        names = [n for n in model._meta.fields if n != "id"]
        for _ in range(200):
            given = {n: f"value of {n}" for n in rng.sample(names, rng.randint(0, len(names)))}
            fast, general = statements.with_defaults(model, given), _general_defaults(model, given)
            assert list(fast) == list(general)  # (the order of the columns: the SQL cached per names)
            for name, value in general.items():
                if isinstance(value, datetime):  # (each a reading of the clock)
                    assert isinstance(fast[name], datetime) and abs(fast[name] - value) < timedelta(seconds=5)
                else:
                    assert fast[name] == value, (model, name)
    assert statements.with_defaults(Outbox, {})["state"] == "queued"
    assert "created_at" in statements.with_defaults(Ticket, {})


def test_an_outcome_with_its_message_id_is_what_replace_gives() -> None:
    from dataclasses import fields, replace

    from helpdeskd.intake.process import Outcome

    outcomes = [Outcome("250 2.0.0 Support request 5 opened.", "new_request", 5),
                Outcome("550 5.7.1 No.", "rejected", None, "old@x", True, "our own mail came back"),
                Outcome("250 2.0.0 Kept.", "quarantined", 7, None, False, "")]
    for outcome in outcomes:
        for message_id in (None, "", "abc@example.org", "x" * 998):
            fast, general = outcome.with_message_id(message_id), replace(outcome, message_id=message_id)
            assert fast == general and type(fast) is Outcome
            assert [getattr(fast, f.name) for f in fields(Outcome)] == [getattr(general, f.name) for f in fields(Outcome)]
            assert fast.__dict__ == general.__dict__
            with pytest.raises(AttributeError):
                fast.reply = "changed"  # type: ignore[misc]  # (frozen, as the general one)
