"""TNEF (winmail.dat) streams that are not TNEF, truncated, garbage or mutated, or declare
huge lengths: never an exception, never a huge allocation, and the result says it is
incomplete.
"""

from __future__ import annotations

import random
import struct
import tracemalloc
from dataclasses import dataclass

import pytest
from helpdeskd.mail.tnef import TnefContents, TnefFile, unpack_tnef

from tests.tnef_streams import (ATTACHMENT, ATT_ATTACHMENT, ATT_ATTACH_DATA, EXPECTED_PDF, EXPECTED_PNG,
                                MESSAGE_ATTRS, PR_ATTACH_DATA, PR_ATTACH_LONG_FILENAME, PR_ATTACH_METHOD,
                                attr, embedded_message, logo_png, long_prop, props, rend_data, report_pdf,
                                stream, tag, title, u32)


# --- not TNEF, truncated, garbage ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"x", b"\x78\x9f\x3e", b"\x78\x9f\x3e\x22\x01", b"PK\x03\x04" + b"\x00" * 40,
     b"Content-Type: text/plain\r\n\r\nhello"],
)  # fmt: skip
def test_not_tnef(data: bytes) -> None:
    assert unpack_tnef(data) is None


def test_header_only_is_an_empty_complete_stream() -> None:
    assert unpack_tnef(stream()) == TnefContents(files=(), complete=True)


def test_garbage_right_after_the_signature_is_unreadable() -> None:
    assert unpack_tnef(stream(b"\x07" + b"\xee" * 30)) is None


@dataclass(frozen=True)
class Layout:
    data: bytes
    boundaries: frozenset[int]  # offsets where an attribute ends
    first_attachment: int  # offset of the first attachment-level attribute


def layout(*attributes: bytes) -> Layout:
    data = stream(*attributes)
    ends, offset = [], 6
    for attribute in attributes:
        offset += len(attribute)
        ends.append(offset)
    first = 6 + sum(len(a) for a in attributes[: len(MESSAGE_ATTRS)])
    return Layout(data, frozenset(ends), first)


def test_every_truncation_is_safe_and_reported() -> None:
    full = layout(*MESSAGE_ATTRS, *report_pdf(), *logo_png())
    whole = {EXPECTED_PDF.data, EXPECTED_PNG.data}
    cut_inside = 0
    for size in range(len(full.data)):
        contents = unpack_tnef(full.data[:size])
        if size < 6:
            assert contents is None
            continue
        if size >= full.first_attachment:
            assert contents is not None, size
        if contents is None:
            continue
        assert all(f.data in whole for f in contents.files), size  # never a partial file
        if size > full.first_attachment and size not in full.boundaries:
            cut_inside += 1
            assert not contents.complete, size
    assert cut_inside > 100
    # cut at a clean attribute boundary after the first attachment: it alone is there
    first_done = full.first_attachment + sum(len(a) for a in report_pdf())
    assert unpack_tnef(full.data[:first_done]) == TnefContents((EXPECTED_PDF,), True)


def _check_shape(contents: TnefContents | None) -> None:
    if contents is None:
        return
    assert isinstance(contents.complete, bool)
    for f in contents.files:
        assert isinstance(f.filename, str) and len(f.filename) <= 200
        assert isinstance(f.content_type, str) and isinstance(f.data, bytes)
        assert f.content_id is None or isinstance(f.content_id, str)


def test_random_bytes_after_the_signature_never_raise() -> None:
    rng = random.Random(20260301)
    results = set()
    for _ in range(3000):
        tail = rng.randbytes(rng.randrange(0, 200))
        if rng.random() < 0.5:  # a plausible attribute header in front of the noise
            header = (rng.choice((1, 2)), ATT_ATTACHMENT, rng.randrange(0, 64))
            tail = struct.pack("<BII", *header) + tail
        contents = unpack_tnef(stream(tail))
        _check_shape(contents)
        results.add(contents is None)
    assert results == {True, False}


def test_mutated_streams_never_raise() -> None:
    valid = stream(*MESSAGE_ATTRS, *report_pdf(), *embedded_message(False), *logo_png())
    rng = random.Random(1601)
    incomplete = 0
    for _ in range(3000):
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(6, len(data))] = rng.randrange(256)
        contents = unpack_tnef(bytes(data))
        _check_shape(contents)
        incomplete += contents is not None and not contents.complete
    assert incomplete > 0


@pytest.mark.parametrize(
    "huge",
    [
        # an attribute claiming 4 GB
        struct.pack("<BII", ATTACHMENT, ATT_ATTACH_DATA, 0xFFFFFFFF) + b"\x00" * 64,
        # a property list claiming 4 billion properties
        attr(ATTACHMENT, ATT_ATTACHMENT, u32(0xFFFFFFFF) + long_prop(PR_ATTACH_METHOD, 1)),
        # a string value claiming 4 GB
        attr(ATTACHMENT, ATT_ATTACHMENT, props(tag(0x001F, PR_ATTACH_LONG_FILENAME)
                                               + u32(1) + u32(0xFFFFFFFF) + b"ab")),
        # a value count claiming 4 billion values, fixed and variable sized
        attr(ATTACHMENT, ATT_ATTACHMENT,
             props(tag(0x1048, 0x6803) + u32(0xFFFFFFFF) + b"\x00" * 32)),
        attr(ATTACHMENT, ATT_ATTACHMENT,
             props(tag(0x0102, PR_ATTACH_DATA) + u32(0xFFFFFFFF) + u32(2))),
    ],
)  # fmt: skip
def test_huge_lengths_neither_allocate_nor_raise(huge: bytes) -> None:
    small = (rend_data(), title("A.TXT"), attr(ATTACHMENT, ATT_ATTACH_DATA, b"abc"))
    data = stream(*MESSAGE_ATTRS, *small, huge)
    tracemalloc.start()
    try:
        contents = unpack_tnef(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert contents == TnefContents(files=(TnefFile("A.TXT", "", None, b"abc"),), complete=False)
