"""One syslog message (bytes of one frame) -> a `Record`: RFC 5424, RFC 3164 and its vendor dialects.

Pure and allocation-light: the frame is decoded once, the header is split by hand and a few regexes
compiled at import time match the optional parts (Cisco sequence numbers and `%FAC-SEV-MNEMONIC`,
Juniper `TAG_NAME:` and structured data, ISO or BSD timestamps). Anything that cannot be read as
syslog raises `ParseError` with a short bounded `reason`; nothing else is raised (fuzzed in the tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_SD_ELEMENTS = 32

# ParseError reasons: the label values of correlator_syslog_dropped_total that parsing adds.
EMPTY = "empty"
BAD_PRI = "bad_pri"
BAD_HEADER = "bad_header"
BAD_SD = "bad_structured_data"
NUL = "nul"

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class ParseError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Record:
    """What a syslog message says, before it becomes an Event (collectors/syslog/mapping.py)."""

    facility: int
    severity: int
    format: str  # "rfc5424" | "rfc3164"
    time: float | None = None  # None: no usable timestamp in the header
    device_time: str = ""  # the header's timestamp as sent, when it could not be trusted
    clock_synced: bool = True  # Cisco marks an unsynchronised clock with '*' or '.'
    host: str = ""
    app: str = ""
    procid: str = ""
    msgid: str = ""
    mnemonic: str = ""  # Cisco FACILITY-SEVERITY-MNEMONIC, without the '%'
    seq: str = ""  # Cisco sequence number
    sd: dict[str, dict[str, str]] = field(default_factory=dict)
    message: str = ""


def parse(data: bytes, received: float) -> Record:
    """Parse one frame. `received` (epoch seconds) places a BSD timestamp, which has no year."""
    data = data.rstrip(b"\r\n\x00")  # some senders terminate with NUL or CRLF
    if not data:
        raise ParseError(EMPTY, "empty message")
    # .find, not `in`: on 3.11 `bytes in bytes` first tries the needle as an int and builds and
    # discards a TypeError on every call.
    if data.find(b"\x00") >= 0:
        raise ParseError(NUL, "NUL byte inside the message")
    # Invalid UTF-8 (BSD senders often use a legacy code page) becomes U+FFFD: the rest is kept.
    text = data.decode("utf-8", "replace")
    facility, severity, pos = _pri(text)
    if text.startswith("1 ", pos):
        return _rfc5424(text, pos + 2, facility, severity)
    return _rfc3164(text[pos:], facility, severity, received)


def _pri(text: str) -> tuple[int, int, int]:
    if text[0] != "<":
        # RFC 3164 4.3.3: a message without PRI is treated as user.notice
        return 1, 5, 0
    end = text.find(">", 1, 6)
    digits = text[1:end]
    if end < 0 or not digits.isdigit() or not digits.isascii() or (len(digits) > 1 and digits[0] == "0"):
        raise ParseError(BAD_PRI, "invalid PRI (expected <0> to <191>)")
    pri = int(digits)
    if pri > 191:
        raise ParseError(BAD_PRI, f"PRI {pri} out of range (0-191)")
    return pri >> 3, pri & 7, end + 1


# -- RFC 5424 --


def _rfc5424(text: str, pos: int, facility: int, severity: int) -> Record:
    parts = text[pos:].split(" ", 5)
    if len(parts) < 6:
        raise ParseError(
            BAD_HEADER, "RFC 5424 header incomplete (TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD)"
        )
    ts, host, app, procid, msgid, rest = parts
    rec = Record(facility, severity, "rfc5424")
    if ts != "-":
        t = _iso_time(ts)
        if t is None:
            rec.device_time = ts[:64]
        else:
            rec.time = t
    if host != "-":
        rec.host = host[:255]
    if app != "-":
        rec.app = app[:48]
    if procid != "-":
        rec.procid = procid[:128]
    if msgid != "-":
        rec.msgid = msgid[:32]
    if rest.startswith("-"):
        msg = rest[2:] if rest.startswith("- ") else rest[1:]
        if rest[1:2] not in ("", " "):
            raise ParseError(BAD_SD, "STRUCTURED-DATA must be '-' or start with '['")
    elif rest.startswith("["):
        end = _structured_data(rest, rec.sd)
        msg = rest[end + 1 :] if rest.startswith(" ", end) else rest[end:]
        if msg and end < len(rest) and rest[end] != " ":
            raise ParseError(BAD_SD, "no space after STRUCTURED-DATA")
    else:
        raise ParseError(BAD_SD, "STRUCTURED-DATA must be '-' or start with '['")
    rec.message = msg[1:] if msg.startswith("\ufeff") else msg  # the BOM marks UTF-8 text
    return rec


_SD_ID = re.compile(r"\[([^\s=\]\"]{1,64})")
_SD_PARAM = re.compile(r" ([^\s=\]\"]{1,64})=\"((?:[^\"\\]|\\.)*)\"", re.DOTALL)
_SD_UNESCAPE = re.compile(r"\\([\"\\\]])")


def _structured_data(s: str, out: dict[str, dict[str, str]]) -> int:
    """Parse SD-ELEMENTs from s[0] ('['); returns the index just after the last ']'."""
    pos = 0
    while pos < len(s) and s[pos] == "[":
        m = _SD_ID.match(s, pos)
        if m is None:
            raise ParseError(BAD_SD, "SD-ID missing or invalid")
        if len(out) >= MAX_SD_ELEMENTS:
            raise ParseError(BAD_SD, f"more than {MAX_SD_ELEMENTS} SD-ELEMENTs")
        params = out.setdefault(m.group(1), {})
        pos = m.end()
        while True:
            p = _SD_PARAM.match(s, pos)
            if p is None:
                break
            value = p.group(2)
            params[p.group(1)] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
            pos = p.end()
        if not s.startswith("]", pos):
            raise ParseError(BAD_SD, f"SD-ELEMENT {m.group(1)[:32]!r} not closed by ']'")
        pos += 1
    return pos


def _iso_time(ts: str) -> float | None:
    if len(ts) > 40:
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):
        return None


# -- RFC 3164 and the vendor dialects --

_SEQ = re.compile(r"(\d{1,10}): ")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# [node:] [*|.] [YYYY ] Mmm dd [YYYY] hh:mm:ss[.fff] [ZONE][:]  (IOS, IOS-XR, NX-OS, Linux, Junos)
_BSD_TS = re.compile(
    r"(?:[A-Z]{1,4}/[\w/]{1,32}:)?([*.]?)(?:(\d{4}) )?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (?:(\d{4}) )?"
    r"(\d{1,2}):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?: ([A-Z]{3,5}))?(:?)(?: |$)"
)
_ISO_TS = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)(:?)(?: |$)")
_HOST = re.compile(r"([\w.:-]{1,255}) ")
_HOST_BEFORE_TS = re.compile(r"([\w.-]{1,255}):? ")
_TAG = re.compile(r"([\w./@-]{1,48})(?:\[([^\]\s]{0,64})\])?: ?")
_CISCO = re.compile(r"%([A-Z][A-Z0-9_]*(?:-[A-Z0-9_]+)*)-([0-7])-([A-Z0-9_]+) ?: ?")
_JUNOS = re.compile(r"([A-Z][A-Z0-9]*_[A-Z0-9_]{2,63}): ")
_UTC_ZONES = ("UTC", "GMT", "")
_CACHE_SIZE = 4096
_bsd_cache: dict[tuple[str, int], float | None] = {}


def _rfc3164(s: str, facility: int, severity: int, received: float) -> Record:
    rec = Record(facility, severity, "rfc3164")
    m = _SEQ.match(s)
    if m is not None:  # Cisco: "<189>42: *Mar  1 00:00:01.123: %SYS-5-CONFIG_I: ..."
        rec.seq = m.group(1)
        s = s[m.end() :]
    ended_by_colon = _timestamp(s, rec, received)
    if ended_by_colon is None and rec.seq:
        # Cisco with an origin id: "42: rtr1: *Mar  1 ...", IOS-XR: "3: rtr1 RP/0/RSP0/CPU0:Mar  1 ..."
        h = _HOST_BEFORE_TS.match(s)
        if h is not None:
            ended_by_colon = _timestamp(s[h.end() :], rec, received)
            if ended_by_colon is not None:
                rec.host = h.group(1)
                ended_by_colon = (True, h.end() + ended_by_colon[1])
    if ended_by_colon is not None:
        s = s[ended_by_colon[1] :]
        if not ended_by_colon[0]:  # "Mmm dd hh:mm:ss HOST ..."; a timestamp ending in ':' has no host
            h = _HOST.match(s)
            if h is not None and not s.startswith("%") and _is_host(h.group(1)):
                rec.host = h.group(1)
                s = s[h.end() :]
        # A relayed Cisco message: "<189>Dec  6 20:00:00 rtr1 42: *Dec  6 20:00:00.123: %LINK-..."
        m = _SEQ.match(s)
        if m is not None:
            rec.seq = m.group(1)
            s = s[m.end() :]
            device = _timestamp(s, Record(facility, severity, ""), received)
            if device is not None:
                s = s[device[1] :]
    if not s.startswith("%"):
        t = _TAG.match(s)
        if t is not None and not t.group(1).isdigit():
            rec.app = t.group(1)
            rec.procid = t.group(2) or ""
            s = s[t.end() :]
    c = _CISCO.match(s)
    if c is not None:
        rec.mnemonic = f"{c.group(1)}-{c.group(2)}-{c.group(3)}"
        s = s[c.end() :]
    else:
        j = _JUNOS.match(s)
        if j is not None:
            rec.msgid = j.group(1)
            s = s[j.end() :]
    rec.message = s
    return rec


def _is_host(token: str) -> bool:
    # a tag ("sshd:"), a Cisco sequence ("42:") or a mnemonic is not a host name
    return not token.endswith(":") and not token.isdigit()


def _timestamp(s: str, rec: Record, received: float) -> tuple[bool, int] | None:
    """Match a leading timestamp into rec; returns (ended with ':', end index) or None."""
    m = _BSD_TS.match(s)
    if m is not None:
        mark, year1, mon, day, year2, hh, mi, ss, frac, zone, colon = m.groups()
        month = _MONTHS.get(mon)
        if month is not None:
            # Devices send many messages per second: the same header text needs converting once.
            key = (m.group(0), int(received) // 86400)
            t = _bsd_cache.get(key, -1.0)
            if t == -1.0:
                year = year1 or year2
                t = _bsd_time(
                    int(year) if year else None, month, int(day), int(hh), int(mi), int(ss), frac, received
                )
                if len(_bsd_cache) >= _CACHE_SIZE:
                    _bsd_cache.clear()
                _bsd_cache[key] = t
            if mark or (zone or "") not in _UTC_ZONES or t is None:
                rec.device_time = m.group(0).rstrip(": ")
                rec.clock_synced = not mark
            else:
                rec.time = t
            return bool(colon), m.end()
    m = _ISO_TS.match(s)
    if m is not None:
        t = _iso_time(m.group(1))
        if t is None:
            rec.device_time = m.group(1)
        else:
            rec.time = t
        return bool(m.group(2)), m.end()
    return None


def _bsd_time(
    year: int | None, month: int, day: int, hh: int, mi: int, ss: int, frac: str | None, received: float
) -> float | None:
    """A BSD timestamp in UTC; without a year, the year that puts it nearest to the receive time."""
    try:
        if year is not None:
            return _epoch(year, month, day, hh, mi, ss, frac)
        now_year = datetime.fromtimestamp(received, UTC).year
        t = _epoch(now_year, month, day, hh, mi, ss, frac)
        if t - received > 183 * 86400:  # "Dec 31" received on Jan 1
            return _epoch(now_year - 1, month, day, hh, mi, ss, frac)
        if received - t > 183 * 86400:  # "Jan 1" received on Dec 31 by a late clock
            return _epoch(now_year + 1, month, day, hh, mi, ss, frac)
        return t
    except (ValueError, OverflowError):  # Feb 30, 25:00, year 0
        return None


def _epoch(year: int, month: int, day: int, hh: int, mi: int, ss: int, frac: str | None) -> float:
    t = datetime(year, month, day, hh, mi, ss, tzinfo=UTC).timestamp()
    return t + float(f"0.{frac}") if frac else t


def as_attributes(rec: Record) -> dict[str, Any]:
    """The record's syslog fields as event attributes; empty ones are left out."""
    attrs: dict[str, Any] = {
        "facility": FACILITIES[rec.facility],
        "syslog_severity": SEVERITIES[rec.severity],
        "syslog_format": rec.format,
    }
    if rec.app:
        attrs["app_name"] = rec.app
    if rec.procid:
        attrs["procid"] = rec.procid
    if rec.msgid:
        attrs["msgid"] = rec.msgid
    if rec.mnemonic:
        attrs["mnemonic"] = rec.mnemonic
    if rec.seq:
        attrs["sequence"] = int(rec.seq)
    if rec.sd:
        attrs["sd"] = rec.sd
    if rec.device_time:
        attrs["device_time"] = rec.device_time
    if not rec.clock_synced:
        attrs["clock_synced"] = False
    return attrs
