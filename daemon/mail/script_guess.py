"""Which charset undeclared 8-bit text is in, told by the script it reads as.

Each guess decodes the bytes as the charsets of one script and keeps the reading whose
characters look like that script's text; None when it does not.
:func:`helpdeskd.mail.decode.decode_guess` asks them in turn, after UTF-8 and the
charsets the message declares.
"""

from __future__ import annotations

import re

__all__ = ["arabic", "chinese", "cyrillic", "hebrew", "japanese_or_korean"]

_HIGH_RUN = re.compile(rb"[\x80-\xff]+")
_NOT_C0_DF = bytes(b for b in range(256) if not 0xC0 <= b <= 0xDF)
_NOT_E0_FF = bytes(range(0xE0))
#: Characters Chinese text is made of: ideographs, CJK punctuation, full-width forms.
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
#: syllables of Korean's everyday words and endings; Chinese read as Korean has few of them
_COMMON_HANGUL = frozenset("이다는의에하고을가지기로서한사리자어도를은으나대시수인정해들아있게주국전라적상부제일과"
                           "보그만것니요습세면했었거여소장우원성동구안녕감합문드려할오내무비같까데네께님좀못않없더또잘"
                           "저립번호확배송환불품교결취계밀왔된되던탁")


def japanese_or_korean(data: bytes) -> str | None:
    """Japanese (Shift_JIS, EUC-JP) or Korean (EUC-KR) text without a charset, which the
    Chinese guess would read as Chinese characters of no meaning. Japanese is told by its
    kana (a fifth of its characters and more; Chinese text read so has next to none),
    Korean by its Hangul between spaces (Korean writes words apart, Chinese runs on) of
    which two fifths and more are everyday syllables (short Chinese words between spaces,
    "你好 我的订单", read as Korean are rare syllables: "콱봤 乖돨땐데"); None when it is neither."""
    for codec in ("cp932", "euc_jp"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        wide = sum(not c.isascii() for c in text)
        if wide and len(_KANA.findall(text)) * 5 >= wide:
            return text
    try:
        text = data.decode("cp949")
    except UnicodeDecodeError:
        return None
    wide = sum(not c.isascii() for c in text)
    runs = _HIGH_RUN.findall(data)
    hangul = _HANGUL.findall(text)
    common = sum(c in _COMMON_HANGUL for c in hangul)
    if (wide and len(hangul) * 10 >= wide * 7 and len(b"".join(runs)) <= 12 * len(runs)
            and common * 5 >= len(hangul) * 2):
        return text
    return None


def cyrillic(data: bytes) -> str | None:
    """Russian or Ukrainian text in KOI8 or windows-1251, told apart by where their
    (mostly lower-case) letters lie: KOI8 puts lower case at 0xC0-0xDF, windows-1251 at
    0xE0-0xFF. None unless the 8-bit bytes come in whole words (three in a row on
    average: in French or German text an accented letter stands among plain ones) and
    one of the two ranges clearly leads."""
    runs = _HIGH_RUN.findall(data[:65536])  # (a sample is enough to tell)
    high = b"".join(runs)
    if len(high) < 8 or len(high) < 3 * len(runs):
        return None
    koi = len(high.translate(None, _NOT_C0_DF))
    win = len(high.translate(None, _NOT_E0_FF))
    if koi >= 2 * win and koi * 2 >= len(high):
        return data.decode("koi8_u")
    if win >= 2 * koi and win * 2 >= len(high):
        return data.decode("cp1251", "replace")
    return None


#: 8-bit text next to an ASCII letter: a Western accented letter inside a word ("Grüße");
#: Hebrew and Arabic words stand apart from Latin ones
_IN_LATIN_WORD = re.compile(r"[A-Za-z][^\x00-\x7f]|[^\x00-\x7f][A-Za-z]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_HEBREW_LETTER = re.compile(r"[\u05d0-\u05ea]")
#: a final letter (ך ם ן ף ץ) inside a word: Hebrew writes them only at a word's end, while
#: Russian read as Hebrew has them everywhere (к н п у х in windows-1251)
_FINAL_INSIDE = re.compile(r"[\u05da\u05dd\u05df\u05e3\u05e5][\u0591-\u05c7]*[\u05d0-\u05ea]")
#: how much likelier each Hebrew letter is in Hebrew text than the Russian letter at its
#: byte in windows-1251 (а at א, б at ב, …; natural logarithm of the ratio of their
#: frequencies, in tenths): a Russian word with no final letter inside ("жду ответа",
#: "זהף מעגועא") adds up below zero
_HEBREW_OVER_RUSSIAN = dict(zip(
    "אבגדהוזחטיךכלםמןנסעףפץצקרשת",
    (-2, 11, -12, 4, 13, 2, 0, 4, -18, 22, -20, -5, 8, -10, -9, -9, -5, -16, -7, -26, 16, -16, 7, 3, 21,
     24, 49),
))
_ARABIC_LETTER = re.compile(r"[\u0621-\u063a\u0641-\u064a\u0671-\u06d3]")
#: alef, lam, yeh (Arabic and Persian), meem, waw, noon: nearly half the letters of
#: Arabic text, at 0xC7 and 0xE1-0xED in windows-1256 (where KOI8 puts rare capitals)
_TOP_ARABIC = frozenset("الیيمون")
_ARTICLE = re.compile(r"(?<![\u0621-\u064a])ال")
#: teh marbuta and alef maksura inside a word: they only end one
_END_ONLY_INSIDE = re.compile(r"[\u0629\u0649][\u064b-\u0652]*[\u0621-\u063a\u0641-\u064a]")


def _script_words(text: str, letter: re.Pattern[str]) -> bool:
    """Whether the non-ASCII characters of ``text`` are (nearly) all letters of one script
    (``letter``), in words of their own rather than inside Latin ones."""
    runs = _NON_ASCII_RUN.findall(text)
    chars = sum(map(len, runs))
    letters = len(letter.findall(text))
    return (letters >= 3 and letters * 10 >= chars * 9 and any(len(r) >= 2 for r in runs)
            and len(_IN_LATIN_WORD.findall(text)) * 10 <= len(runs))


def hebrew(data: bytes) -> str | None:
    """Hebrew text in windows-1255 or ISO-8859-8 (the letters lie at the same bytes):
    read as windows-1251 it is Russian-looking nonsense ("дзбймд"). Its letters stand in
    words of their own, the five final letters only at a word's end, and its letters are
    likelier Hebrew than Russian in windows-1251; None otherwise."""
    for codec in ("cp1255", "iso8859_8"):
        try:
            text = data[:65536].decode(codec)
        except UnicodeDecodeError:
            continue
        if (_script_words(text, _HEBREW_LETTER) and not _FINAL_INSIDE.search(text)
                and sum(_HEBREW_OVER_RUSSIAN.get(c, 0) for c in text) > 0):
            return data.decode(codec, "replace")
    return None


def arabic(data: bytes) -> str | None:
    """Arabic (or Persian, Urdu) text in windows-1256 or ISO-8859-6, whichever reads as
    more letters (each reads the other's as accented Latin letters and vowel marks; then
    as more common ones), when its letters stand in words of their own and a quarter of
    them and more are its six commonest (Russian in KOI8 reads as Arabic letters, but
    hardly ever as these); None otherwise."""
    best: tuple[tuple[float, int], str] | None = None
    for codec in ("cp1256", "iso8859_6"):
        try:
            text = data[:65536].decode(codec)
        except UnicodeDecodeError:
            continue
        letters = _ARABIC_LETTER.findall(text)
        if (not _script_words(text, _ARABIC_LETTER) or _END_ONLY_INSIDE.search(text)
                or sum(c in _TOP_ARABIC for c in letters) * 4 < len(letters)):
            continue
        # (short text may read as letters both ways: then the commonest letters decide, and
        # "ال", the article, most: each reading makes it "ان" or "اف" of the other's)
        score = (len(letters) / max(1, sum(not c.isascii() for c in text)),
                 sum(c in _TOP_ARABIC for c in letters) + 3 * len(_ARTICLE.findall(text)))
        if best is None or score > best[0]:
            best = (score, codec)
    return None if best is None else data.decode(best[1], "replace")


def chinese(data: bytes) -> str | None:
    """Chinese text in GB 18030, then Big5 (simplified, then traditional): the reading
    made only of ASCII and the characters Chinese text is made of."""
    for codec in ("gb18030", "big5"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if all(c.isascii() or _CJK.match(c) for c in text):
            return text
    return None
