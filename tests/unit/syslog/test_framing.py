"""RFC 6587 framing: octet counting and newlines detected per frame, split anywhere by TCP."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.syslog.framing import Deframer


def deframe(chunks: list[bytes], limit: int = 100) -> tuple[list[bytes], list[int]]:
    frames: list[bytes] = []
    skipped: list[int] = []
    d = Deframer(limit, frames.append, skipped.append)
    for c in chunks:
        d.feed(c)
    d.finish()
    return frames, skipped


def test_octet_counted_and_newline_frames_mixed():
    stream = [b"11 <13>1 - a b6 <13>xy\n<14>plain line\n5 hello"]
    assert deframe(stream) == ([b"<13>1 - a b", b"<13>xy", b"<14>plain line", b"hello"], [])


def test_last_newline_frame_without_lf_is_kept_at_eof():
    assert deframe([b"<13>a\n<13>b"]) == ([b"<13>a", b"<13>b"], [])


def test_truncated_octet_frame_at_eof_is_not_a_message():
    assert deframe([b"20 <13>short"]) == ([], [])


def test_oversized_frames_are_skipped_not_the_connection():
    big = b"x" * 150
    frames, skipped = deframe([b"150 " + big + b"<13>after\n" + big + b"\n<13>next\n"])
    assert frames == [b"<13>after", b"<13>next"]
    assert skipped == [150, 150]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b), min_size=1, max_size=10),
    st.lists(st.booleans(), min_size=10, max_size=10),
    st.lists(st.integers(min_value=1, max_value=50), max_size=8),
)
def test_any_split_of_the_stream_gives_the_same_frames(messages, octet, cuts):
    stream = b"".join(
        str(len(m)).encode() + b" " + m if octet[i] else b"<13>" + m + b"\n" for i, m in enumerate(messages)
    )
    expected = [m if octet[i] else b"<13>" + m for i, m in enumerate(messages)]
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(stream[pos : pos + c])
        pos += c
    chunks.append(stream[pos:])
    assert deframe(chunks)[0] == expected
