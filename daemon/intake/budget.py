"""A bound on the bytes of the messages in flight in the listener (``server.max_bytes_in_flight``).

A message being read, parsed and stored holds several times its size in the listener's
memory: the bytes read, the parsed message, the pickle handed to the store process. With
no bound, a hundred 25 MB messages at once needed some 10 GB, and the kernel killed the
listener, with every message in flight answered by nobody. Here the messages in flight
share a budget of bytes; one that does not fit is answered ``452 4.3.1`` (its sender
keeps it and sends it again later; nothing of it is stored):

- at ``DATA``, when the budget has no room for the size the sender declared (``MAIL FROM
  ... SIZE=``; with none, when it has no room at all): the client sends nothing;
- after the message's end, when its bytes outgrew the room left while they came in (it
  is read to its end, as RFC 5321 §4.2.5 asks, but not kept).

A message claims the size its sender declared from its ``DATA`` on, and more as more of
it comes in; it gives its claim back when it is answered. A message alone is never
refused for the budget: one of up to ``server.max_message_size`` is always taken when
nothing else is in flight, and a small one is taken whenever the room left holds it.
Everything here runs on the listener's event loop: no locks.
"""

from __future__ import annotations

REPLY_BUSY = "452 4.3.1 Too much mail is arriving at once; please send this message again in a few minutes."


def declared_size(mail_options: list[str]) -> int:
    """The size a sender declared with ``MAIL FROM:<…> SIZE=n`` (RFC 1870), 0 for none
    (aiosmtpd refused a SIZE that is not a number, or over the size limit, at MAIL)."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


class Budget:
    """The bytes the messages in flight hold, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: bytes claimed by the messages in flight, and how many messages they are
        self.used = 0
        self.holders = 0

    def claim(self, declared: int) -> Claim | None:
        """A message starts (at ``DATA``) with the size its sender declared (0: none); None
        when another message is in flight and the room left does not hold it (nor, with
        no size declared, a single byte)."""
        if self.holders and self.used + max(declared, 1) > self.limit:
            return None
        self.holders += 1
        self.used += declared
        return Claim(self, declared)


class Claim:
    """One message's part of the :class:`Budget`."""

    def __init__(self, budget: Budget, held: int) -> None:
        self._budget: Budget | None = budget
        self.held = held

    def grow(self, size: int) -> bool:
        """Whether the message may hold ``size`` bytes (its claim grows to that); False
        when others are in flight and the room left does not hold the growth."""
        budget, extra = self._budget, size - self.held
        if budget is None or extra <= 0:
            return True
        if budget.holders > 1 and budget.used + extra > budget.limit:
            return False
        budget.used += extra
        self.held = size
        return True

    def release(self) -> None:
        """The message holds nothing any more (answered, or refused and being drained)."""
        budget, self._budget = self._budget, None
        if budget is not None:
            budget.used -= self.held
            budget.holders -= 1
            self.held = 0
