"""The file name of a MIME part, as the sender meant it, safe to store and to show.

A name may be RFC 2231 (``filename*=utf-8''…``), RFC 2047 (``=?utf-8?q?…?=``), or raw
8-bit bytes (a raw UTF-8 name, which many mail programs send); path parts, control
characters and bidirectional overrides are dropped, a run of three spaces or more (which
pushes a ``.exe`` out of sight behind ``invoice.pdf``) becomes one, a name of dots only (``..``)
is none, a long name is cut before its extension, and a part without a name gets one
from its type.
"""

from __future__ import annotations

import email.message
import io
import mimetypes
import re
import zipfile

from helpdeskd.mail.decode import decode_header_text, desurrogate

#: path separators, control characters, and the bidirectional overrides that make
#: "photo\u202egpj.exe" show as "photoexe.jpg" (a classic trick on whoever opens the file)
_JUNK = re.compile(r"[\x00-\x1f\x7f/\\\u202a-\u202e\u2066-\u2069]+")
#: a run of spaces long enough to push an extension out of sight (two, as typed, stay)
_SPACES = re.compile(r"\s{3,}")
_MAX = 200
_MAX_EXTENSION = 16
#: programs and scripts, one double click from running: Gmail refuses a mail carrying one
#: (in a .zip too: it bounces or silently drops it), and Outlook blocks them
PROGRAM_EXTENSIONS = frozenset(
    "ade adp apk appx appxbundle bat cab chm cmd com cpl diagcab diagcfg diagpkg dll dmg ex ex_ exe "
    "hta img ins iso isp jar jnlp js jse lib lnk mde mjs msc msi msix msixbundle msp mst nsh pif ps1 "
    "scr sct shb sys vb vbe vbs vhd vxd wsc wsf wsh xll".split()
)
_ARCHIVE_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/x-zip"})


def part_filename(part: email.message.Message, charset: tuple[str, ...]) -> str:
    """The part's file name (``""`` when it has none); ``charset``: the charsets the
    message declares, hints for raw 8-bit bytes."""
    try:
        name = _named_part(part, charset).get_filename()
    except Exception:  # noqa: BLE001 - a name the library cannot read is no name
        name = None
    if not name:
        return ""
    return clean_filename(decode_header_text(str(name), charset))


def clean_filename(text: str) -> str:
    """A decoded file name as it is stored and shown (see the module's docstring); ``""``
    when nothing of it is a name."""
    name = _SPACES.sub(" ", _JUNK.sub("_", text.strip().rsplit("/", 1)[-1].rsplit("\\", 1)[-1]))
    if not name.strip("."):
        return ""
    if len(name) <= _MAX:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION or " " in extension:
        return name[:_MAX].rstrip()
    return f"{stem[: _MAX - len(extension) - 1].rstrip()}.{extension}"


def _named_part(part: email.message.Message, charset: tuple[str, ...]) -> email.message.Message:
    """``part``, or when its Content-Type or Content-Disposition holds raw 8-bit bytes,
    a stand-in with those two decoded: the parser turns such bytes into U+FFFD for every
    reader but ``raw_items``."""
    naming = [(k, str(v)) for k, v in part.raw_items() if k.lower() in ("content-type", "content-disposition")]
    if all(value.isascii() for _, value in naming):
        return part
    stand_in = email.message.Message()
    for key, value in naming:
        stand_in[key] = desurrogate(value, charset)
    return stand_in


def default_filename(ctype: str, count: int) -> str:
    """A name for the ``count``-th attachment, which came without one."""
    if ctype == "message/rfc822":
        return f"message-{count}.eml"
    extension = mimetypes.guess_extension(ctype) or ".bin"
    return f"attachment-{count}{extension}"


def is_program(name: str) -> bool:
    """Whether ``name`` is that of a program or script (:data:`PROGRAM_EXTENSIONS`; Windows
    ignores dots and spaces at the end: ``setup.exe.`` runs)."""
    stem, dot, extension = name.rstrip(". ").rpartition(".")
    return bool(dot) and extension.lower() in PROGRAM_EXTENSIONS


def is_archive(name: str, content_type: str) -> bool:
    """Whether a file is a .zip archive, by its name or its type."""
    return name.lower().endswith(".zip") or content_type.lower() in _ARCHIVE_TYPES


def holds_program(name: str, content_type: str, data: bytes) -> bool:
    """Whether a file is a program or script, or a .zip archive that holds one: Gmail
    refuses a mail carrying one, and Outlook blocks the file."""
    return is_program(name) or (is_archive(name, content_type) and archive_holds_program(data))


def archive_holds_program(data: bytes) -> bool:
    """Whether the .zip archive ``data`` holds a program (by its members' names, read from
    its directory: nothing is unpacked); False for what is not such an archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(is_program(member.rsplit("/", 1)[-1]) for member in archive.namelist())
    # what zipfile raises for a damaged or cut-off directory (NotImplementedError: a
    # "version" byte it does not know): what the archive holds cannot be read, so it goes
    # with the notice as any other file
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return False
