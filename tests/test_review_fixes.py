"""Faults found in review: each test failed before its fix."""

from __future__ import annotations

import binascii

import pytest

from helpdeskd.mail import mimeparse
from helpdeskd.mail.decode import decode_bytes, decode_guess

#: short Chinese written with spaces between its words, as subjects and short mails are
SPACED_CHINESE = ["你好", "你好 我的订单", "订单 12345 没有到", "请问 发票 开了吗", "发货了吗",
                  "请 尽快 处理", "密码 忘记 了", "付款 失败"]
KOREAN = ["안녕하세요 주문 문의드립니다", "배송이 아직 안 왔어요", "환불 부탁드립니다", "감사합니다",
          "주문번호 12345 확인해 주세요", "소포가 아직 도착하지 않았습니다. 확인 부탁드립니다."]


@pytest.mark.parametrize("text", SPACED_CHINESE)
def test_short_chinese_without_a_charset_is_not_read_as_korean(text: str) -> None:
    """GB 2312 bytes are valid EUC-KR too: "你好" was read as "콱봤" (a customer's
    subject and words turned into Hangul nobody can read)."""
    data = text.encode("gb2312")
    assert decode_guess(data) == text
    assert decode_bytes(data, None)[0] == text


def test_short_big5_without_a_charset_is_not_read_as_korean() -> None:
    assert decode_guess("你好".encode("big5")) == "你好"


@pytest.mark.parametrize("text", KOREAN)
def test_korean_without_a_charset_is_still_read_as_korean(text: str) -> None:
    assert decode_guess(text.encode("euc_kr")) == text


def test_base64_in_tiny_pieces_is_not_decoded_piece_by_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """A part of "QQ==QQ==…" made the parser decode every four characters on their own:
    a 24 MB mail held a core for seconds and ~1 GB of memory before it was stored."""
    calls = 0
    real = binascii.a2b_base64

    def counting(data: bytes, *args: object, **kwargs: object) -> bytes:
        nonlocal calls
        calls += 1
        return real(data)

    monkeypatch.setattr(mimeparse.binascii, "a2b_base64", counting)
    monkeypatch.setattr(mimeparse, "decode_base64", lambda d: (counting(d), d)[1])
    mimeparse.base64_in_pieces("QQ==" * 100_000)
    assert calls <= 100_000 * 4 // 64 + 10


def test_base64_in_pieces_of_a_file_is_still_decoded_whole() -> None:
    data = bytes(range(256)) * 20
    import base64

    pieces = b"\r\n".join(base64.b64encode(data[i:i + 700]) for i in range(0, len(data), 700))
    assert mimeparse.base64_in_pieces(pieces.decode()) == data
