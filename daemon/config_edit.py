"""Editing a configuration file in place: ``helpdeskd init --add-secret`` adds a
``mail.secret`` to a file that has none, and changes nothing else in it."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

from helpdeskd.config_file import SECRET_MIN
from helpdeskd.errors import ConfigError

_MAIL_TABLE = re.compile(r"^[ \t]*\[[ \t]*mail[ \t]*\][ \t]*(?:#[^\r\n]*)?(?=\r?$)", re.MULTILINE)
_NEXT_TABLE = re.compile(r"^[ \t]*\[", re.MULTILINE)
_EMPTY_SECRET = re.compile(r"""^([ \t]*secret[ \t]*=[ \t]*)(?:""|'')""", re.MULTILINE)


def with_secret(text: str, secret: str, path: Path) -> str | None:
    """The configuration ``text`` with ``mail.secret`` set to ``secret``; None if it has one.

    One line is added to the ``[mail]`` table (or an empty ``secret = ""`` filled in, or
    a ``[mail]`` table appended); everything else stays as written. The result is read
    back: when anything but the secret would change, ConfigError says what to add by hand.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    mail = data.get("mail")
    if mail is not None and not isinstance(mail, dict):
        raise ConfigError(f"{path}: [mail] must be a table")
    if mail and mail.get("secret"):
        if isinstance(mail["secret"], str) and len(mail["secret"]) < SECRET_MIN:
            raise ConfigError(
                f"{path}: mail.secret is shorter than {SECRET_MIN} characters; replace it in the "
                f'file with a fresh one: secret = "{secret}"'
            )
        return None
    newline = "\r\n" if "\r\n" in text else "\n"
    line = f'secret = "{secret}"'
    table = _MAIL_TABLE.search(text)
    if table is None:
        ending = newline if text and not text.endswith("\n") else ""
        edited = f"{text}{ending}{newline}[mail]{newline}{line}{newline}"
    else:
        following = _NEXT_TABLE.search(text, table.end())
        empty = _EMPTY_SECRET.search(text, table.end(), following.start() if following else len(text))
        if empty is not None:
            edited = f'{text[:empty.start()]}{empty.group(1)}"{secret}"{text[empty.end():]}'
        else:
            edited = f"{text[:table.end()]}{newline}{line}{text[table.end():]}"
    expected = copy.deepcopy(data)
    expected.setdefault("mail", {})["secret"] = secret
    try:
        result = tomllib.loads(edited)
    except tomllib.TOMLDecodeError:
        result = None
    if result != expected:
        raise ConfigError(
            f"{path}: cannot add mail.secret to this file by itself; add to its [mail] table: {line}"
        )
    return edited
