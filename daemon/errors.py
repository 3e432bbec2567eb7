"""The exception tree of helpdeskd, in one place.

::

    HelpdeskError                 base of everything helpdeskd raises on purpose
    ├── ConfigError               a configuration file or value is wrong (names file and key)
    ├── DatabaseNotReady          the database is not migrated (names the command to run)
    ├── DatabaseUnusable          the database cannot be opened or used (names database.url, why)
    ├── CannotListen              the mail listener cannot take its address (port in use ...)
    ├── InvalidRequest            the specification's 400: bad category, empty subject and
    │                             description, a change the request's status forbids ...
    └── NotFound                  the specification's 404: unknown customer, request or agent

Each channel maps them on its own: the CLI prints one line on stderr and exits with a
distinct status (see ``helpdeskd.cli.EXIT_CODES``); the SMTP intake answers ``550``/``553``
with an enhanced status code. Anything else escaping the service layer is our own fault:
the CLI exits 1, SMTP answers ``451 4.3.0`` so the sender retries.
"""

from __future__ import annotations


class HelpdeskError(Exception):
    """Base class of every error helpdeskd raises deliberately."""


class ConfigError(HelpdeskError):
    """The configuration cannot be used; the message names the file and the key."""


class DatabaseNotReady(HelpdeskError):
    """The database schema is missing or behind (the message says which command to run), or a
    newer helpdeskd migrated it (the message says what to install)."""


class DatabaseUnusable(HelpdeskError):
    """The database cannot be created, opened or read: a missing folder that cannot be
    made, a file that is not a database, a server that does not answer ... The message
    names ``database.url`` (without its password) and why."""


class CannotListen(HelpdeskError):
    """``serve`` cannot listen where it is configured to (the port is taken, ...)."""


class InvalidRequest(HelpdeskError):
    """The request is invalid (the specification's 400)."""


class BadAddress(InvalidRequest):
    """A value that is no address helpdeskd can write to; ``problem`` says why ("has a
    space in its local part, ..."), the message names the field and the value too."""

    def __init__(self, field: str, value: str, problem: str) -> None:
        super().__init__(f"{field}: {value!r} {problem}")
        self.problem = problem


class NotFound(HelpdeskError):
    """A customer, support request or agent does not exist (the specification's 404)."""


class UnknownCustomer(NotFound):
    """A new request from an address that is not a registered customer's (``policy.customers
    = "registered"``); ``email`` is that address."""

    def __init__(self, email: str) -> None:
        super().__init__(f"customer {email} not found (not a registered customer)")
        self.email = email