"""Text in any charset — declared, missing, misdeclared or unknown — into ``str``.

Bytes of bodies and header values, RFC 2047 encoded words and raw 8-bit headers; none of
these functions ever raises.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Mapping, Sequence

from helpdeskd.mail.script_guess import arabic, chinese, cyrillic, hebrew, japanese_or_korean

#: Labels seen in real mail that Python does not know, or knows under a narrower
#: charset than the senders meant (the superset decodes the same bytes correctly).
_CHARSET_ALIASES: Mapping[str, str] = {
    "gb2312": "gb18030",
    "iso-gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "unicode-1-1-utf-7": "utf-7",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    # WHATWG: these labels mean windows-1252 in practice
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso_8859-1": "cp1252",
}
_LATIN_FAMILY = frozenset({"cp1252", "iso8859-15"})
#: labels of 7-bit text: on 8-bit text they are wrong, whatever the text is in
_ASCII_LABELS = frozenset({"us-ascii", "ascii"})
#: Single-byte charsets: valid multi-byte UTF-8 in text labelled with one is UTF-8.
_SINGLE_BYTE = ("cp125", "iso8859", "latin", "koi8", "mac-", "cp437", "cp850", "cp874")
#: Codecs whose text is not plain ASCII even when every byte is below 0x80.
_NOT_ASCII_COMPATIBLE = ("utf-16", "utf-32", "utf-7", "iso2022", "hz")
_CODEC_CACHE: dict[str, str | None] = {}


def codec_for(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when unknown."""
    if not label:
        return None
    key = label.strip().strip("\"'").lower()
    if key in _CODEC_CACHE:
        return _CODEC_CACHE[key]
    name: str | None = _CHARSET_ALIASES.get(key, key)
    for candidate in (name, name.removeprefix("x-") if name else None):
        if not candidate:
            continue
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        # (base64, rot13, zlib are codecs too, but not of text; "undefined" fails on any text)
        name = info.name if getattr(info, "_is_text_encoding", True) and info.name != "undefined" else None
        break
    else:
        name = None
    if len(_CODEC_CACHE) < 512:
        _CODEC_CACHE[key] = name
    return name


_JIS_ESCAPE = re.compile(rb"(\x1b(?:\$[@B]|\$\(D|\([BJI]))")


def _iso2022jp_lenient(data: bytes) -> str:
    """ISO-2022-JP as Windows writes it (CP50220: NEC and IBM extension characters)."""
    out: list[str] = []
    mode = b"\x1b(B"
    for chunk in _JIS_ESCAPE.split(data):
        if chunk.startswith(b"\x1b"):
            mode = chunk
        elif mode in (b"\x1b$B", b"\x1b$@"):
            lines = chunk.split(b"\n")
            out.append(
                "\n".join(
                    bytes(b | 0x80 for b in line.rstrip(b"\r")).decode("euc_jis_2004", "replace")
                    for line in lines
                )
            )
        elif mode == b"\x1b(I":
            out.append(
                b"".join(b"\x8e" + bytes([b | 0x80]) for b in chunk).decode("euc_jp", "replace")
            )
        else:
            out.append(chunk.decode("latin-1"))
    return "".join(out)


#: the escape into JIS X 0208 (or 0212) that ISO-2022-JP text cannot do without
_JIS_KANJI_IN = re.compile(rb"\x1b\$(?:[@B]|\(D)")


def _undeclared_jis(data: bytes) -> str | None:
    """7-bit ``data`` that is ISO-2022-JP (old Japanese mail programs and scripts send it
    without a charset, or labelled us-ascii, also in raw headers), else None."""
    if b"\x1b" not in data or not _JIS_KANJI_IN.search(data):
        return None
    try:
        return data.decode("iso2022_jp_ext")
    except UnicodeDecodeError:
        return _iso2022jp_lenient(data)


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode ``data`` declared as ``charset``; never raises.

    Tries the declared charset, then UTF-8, then windows-1252, then latin-1 (Hebrew and
    Arabic text the declared charset cannot decode is recognised first). Returns the text
    and a defect note when the declared charset was missing, unknown or wrong. 8-bit text
    labelled us-ascii, or not labelled, is read as :func:`decode_guess` reads it.
    UTF-16 without a byte order mark, labelled wrongly or not at all, is recognised by
    its NUL bytes.
    """
    codec = codec_for(charset)
    if b"\0" in data and (codec is None or not codec.startswith(_NOT_ASCII_COMPATIBLE)):
        utf16 = _utf16_guess(data)
        if utf16 is not None:
            return utf16, f"charset {charset!r} was utf-16" if charset else "utf-16 text without charset"
    if data.isascii() and (codec is None or not codec.startswith(_NOT_ASCII_COMPATIBLE)):
        jis = _undeclared_jis(data)
        if jis is not None:
            return jis, f"charset {charset!r} was iso-2022-jp" if charset else "iso-2022-jp text without charset"
        return data.decode("ascii"), None
    if codec is None or codec.startswith(_SINGLE_BYTE):
        # 8-bit text labelled latin-1/ascii (or not labelled) is very often UTF-8.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            note = None if codec is None and not charset else f"charset {charset!r} was utf-8"
            return text, note
    if codec is not None and charset and charset.strip().strip("\"'").lower() in _ASCII_LABELS:
        # 8-bit text cannot be US-ASCII: the label says nothing, read the text as unlabelled
        return decode_guess(data), f"charset {charset!r} on 8-bit text"
    if codec is not None:
        try:
            return data.decode(codec), None
        except (UnicodeDecodeError, LookupError, ValueError):
            if codec.startswith("iso2022_jp") and data.isascii():
                return _iso2022jp_lenient(data), f"charset {charset!r} with extension characters"
    note = (
        f"charset {charset!r} could not decode the text"
        if charset
        else "8-bit text without charset"
    )
    if codec is None:  # none declared (or one nobody knows): as undeclared header bytes
        return decode_guess(data), note
    right_to_left = hebrew(data) or arabic(data)  # (Hebrew or Arabic text labelled utf-8)
    if right_to_left is not None:
        return right_to_left, note
    for fallback in ("utf-8", "cp1252"):
        try:
            return data.decode(fallback), note
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), note


def _utf16_guess(data: bytes) -> str | None:
    """``data`` as UTF-16 when (nearly) every other byte is NUL, as in Latin text in UTF-16."""
    if len(data) < 4 or len(data) % 2:
        return None
    for zeros, codec in ((data[0::2], "utf-16-be"), (data[1::2], "utf-16-le")):
        if zeros.count(0) * 10 >= len(zeros) * 9:
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                return None
    return None


#: Undeclared 8-bit text in a message whose parts declare these is most likely in...
_RAW_TEXT_CODECS: Mapping[str, tuple[str, ...]] = {
    "iso2022_jp_ext": ("cp932", "euc_jp"),
    "utf-7": (),
    "utf-16": (),
}
_HIGH_BYTES = bytes(range(128))


def decode_guess(data: bytes, hints: Sequence[str] = ()) -> str:
    """Decode undeclared 8-bit text (raw header bytes); never raises.

    UTF-8 first (also when one character of it is cut short), then the charsets the
    message declares elsewhere (``hints``, Latin ones last), a Hebrew guess (windows-1255,
    ISO-8859-8) and an Arabic one (windows-1256, ISO-8859-6), for text that is mostly 8-bit
    a Japanese or Korean guess, then a Chinese one (GB 18030, Big5), a Cyrillic one (all
    of them: :mod:`helpdeskd.mail.script_guess`), windows-1252, latin-1.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")  # UTF-8 with one character cut short (a mail
        # program that shortened a long name by bytes): no other encoding reads as UTF-8
        if text.count("\ufffd") == 1 and sum(not c.isascii() for c in text) >= 4:
            return text.replace("\ufffd", "")
    latin: list[str] = []
    for hint in hints:
        codec = codec_for(hint)
        if codec is None:
            continue
        if codec in _LATIN_FAMILY:
            latin.append(codec)
            continue
        for candidate in _RAW_TEXT_CODECS.get(codec, (codec,)):
            try:
                return data.decode(candidate)
            except (UnicodeError, LookupError):
                continue
    right_to_left = hebrew(data) or arabic(data)
    if right_to_left is not None:
        return right_to_left
    if len(data.translate(None, _HIGH_BYTES)) * 3 >= len(data):
        east_asian = japanese_or_korean(data) or chinese(data)
        if east_asian is not None:
            return east_asian
    found = cyrillic(data)
    if found is not None:
        return found
    for candidate in (*latin, "cp1252"):
        try:
            return data.decode(candidate)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def desurrogate(value: str, hints: str | Sequence[str] | None = None) -> str:
    """Turn raw 8-bit header bytes (kept as surrogate escapes by the parser) into text;
    and raw ISO-2022-JP (7-bit, not RFC 2047 encoded, as old Japanese mail programs write
    it), whose escapes hold parentheses an address parser would read as a comment."""
    if "\x1b" in value and value.isascii():
        return _undeclared_jis(value.encode("ascii")) or value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        return decode_guess(raw, (hints,) if isinstance(hints, str) else hints or ())
    return value


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _decode_word(encoding: str, text: str) -> bytes:
    raw = text.encode("ascii", "replace")
    if encoding in "bB":
        raw = _B64_JUNK.sub(b"", raw)
        raw = raw[: len(raw) - len(raw) % 4] if len(raw) % 4 == 1 else raw + b"=" * (-len(raw) % 4)
        try:
            return base64.b64decode(raw)
        except (binascii.Error, ValueError):
            return b""
    return _QP_ESCAPE.sub(lambda m: bytes.fromhex(m.group(1).decode()), raw.replace(b"_", b" "))


def decode_header_text(value: str, fallback_charset: str | Sequence[str] | None = None) -> str:
    """Decode a header value: raw 8-bit bytes and RFC 2047 encoded words; never raises.

    Whitespace between adjacent encoded words is dropped (RFC 2047 §6.2); adjacent words
    in the same charset are joined before decoding, so characters split across words
    survive. Folding is undone but other whitespace is kept.
    """
    value = desurrogate(value, fallback_charset)
    if "\n" in value or "\r" in value:
        value = (
            re.sub(r"\r?\n(?=[ \t])|\r(?=[ \t])", "", value).replace("\r", " ").replace("\n", " ")
        )
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    last_end = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset)[0])
        pending, pending_charset = [], None

    for match in _ENCODED_WORD.finditer(value):
        gap = value[last_end : match.start()]
        if gap and (gap.strip() or last_end == 0):
            flush()
            out.append(gap)
        charset = match.group(1).split("*", 1)[0]
        if pending and (pending_charset or "").lower() != charset.lower():
            flush()
        pending_charset = charset
        pending.append(_decode_word(match.group(2), match.group(3)))
        last_end = match.end()
    flush()
    out.append(value[last_end:])
    return "".join(out)


_HEADER_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*[ \t]*:")


def repair_head(data: bytes) -> bytes | None:
    """Headers broken by junk: text before the first header, continuation lines that
    lost their indentation (long tokens such as base64). None when there is no fix."""
    separator = re.search(rb"\r?\n\r?\n", data)
    end = separator.start() if separator else len(data)
    lines = data[:end].splitlines(keepends=True)
    out: list[bytes] = []
    seen_header = changed = False
    i = 0
    while i < len(lines):
        if _HEADER_LINE.match(lines[i]) or (seen_header and lines[i][:1] in b" \t"):
            seen_header = True
            out.append(lines[i])
            i += 1
            continue
        j = i
        while j < len(lines) and not _HEADER_LINE.match(lines[j]):
            j += 1
        if j == len(lines):
            break
        if seen_header:
            out.extend(b" " + line.lstrip() for line in lines[i:j])
        changed = True
        i = j
    if not changed:
        return None
    return b"".join(out) + b"".join(lines[i:]) + data[end:]
