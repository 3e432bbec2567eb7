"""Which charset undeclared 8-bit text is in, told by the script it reads as.

Each guess decodes the bytes as the charsets of one script and keeps the reading whose
characters look like that script's text; None when it does not.
:func:`helpdeskd.mail.decode.decode_guess` asks them in turn, after UTF-8 and the
charsets the message declares.
"""

from __future__ import annotations

import re

__all__ = ["chinese", "cyrillic", "japanese_or_korean"]

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
