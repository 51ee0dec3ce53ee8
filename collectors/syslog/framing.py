"""RFC 6587 framing of a syslog byte stream (TCP, and TLS per RFC 5425): octet counting or newlines.

Each frame is detected on its own, as rsyslog and syslog-ng do: one that starts with `LEN SP` (a
non-zero number) is octet-counted, any other ends at LF. A frame larger than the limit is skipped
to its end and reported, so one oversized message costs that message, not the connection.
"""

from __future__ import annotations

from collections.abc import Callable

_MAX_LEN_DIGITS = 7


class Deframer:
    """Feed it what the socket read; it calls `frame(bytes)` per message and `oversize(n)` per skip."""

    def __init__(
        self, max_bytes: int, frame: Callable[[bytes], None], oversize: Callable[[int], None]
    ) -> None:
        self._max = max_bytes
        self._frame = frame
        self._oversize = oversize
        self._buf = b""
        self._skip = 0  # bytes of an oversized octet-counted frame still to discard
        self._skip_line = False  # discarding an oversized newline-framed frame up to its LF

    def feed(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        n = len(buf)
        while pos < n:
            if self._skip:
                take = min(self._skip, n - pos)
                self._skip -= take
                pos += take
                continue
            if self._skip_line:
                lf = buf.find(b"\n", pos)
                if lf < 0:
                    pos = n
                    break
                self._skip_line = False
                pos = lf + 1
                continue
            c = buf[pos]
            if 0x31 <= c <= 0x39:  # '1'..'9': octet counting, "LEN SP MSG"
                sp = buf.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
                if sp < 0:
                    if n - pos <= _MAX_LEN_DIGITS:
                        break  # the length may still be arriving
                    sp = -1
                digits = buf[pos:sp] if sp > 0 else b""
                if sp > 0 and digits.isdigit():
                    length = int(digits)
                    start = sp + 1
                    if length > self._max:
                        self._oversize(length)
                        self._skip = length
                        pos = start
                        continue
                    if n - start < length:
                        break  # wait for the rest of the frame
                    self._frame(buf[start : start + length])
                    pos = start + length
                    continue
                # not "LEN SP": a newline-framed message that starts with a digit
            lf = buf.find(b"\n", pos)
            if lf < 0:
                if n - pos > self._max:
                    self._oversize(n - pos)
                    self._skip_line = True
                    pos = n
                break
            if lf - pos > self._max:
                self._oversize(lf - pos)
            elif lf > pos:
                self._frame(buf[pos:lf])
            pos = lf + 1
        self._buf = buf[pos:]

    def pending(self) -> int:
        """Bytes of an incomplete frame held back (sent at EOF by `finish`)."""
        return len(self._buf)

    def finish(self) -> None:
        """At EOF: a newline-framed last message without its LF is still a message."""
        buf, self._buf = self._buf, b""
        if (
            buf
            and len(buf) <= self._max
            and not self._skip
            and not self._skip_line
            and not (0x31 <= buf[0] <= 0x39 and b" " in buf[:8])
        ):
            self._frame(buf)
