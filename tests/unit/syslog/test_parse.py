"""The syslog parser and mapping on what real devices send: a table of vendor samples, the hostile
inputs, and Hypothesis: any bytes are an event that keeps the event limits or a ParseError."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.syslog.mapping import Mapper
from collectors.syslog.parse import ParseError, parse
from correlator.event import MAX_MESSAGE_LEN, MAX_NAME_LEN

NOW = datetime(2026, 12, 6, 20, 0, 30, tzinfo=UTC).timestamp()
MAPPER = Mapper({"10.0.0.9": "edge-rtr9"}, max_clock_skew=3600)

# frame, host, type, severity, resource, message start
VENDOR_SAMPLES = [
    # Cisco IOS: sequence number, unsynchronised clock ('*'), no host in the header
    (
        b"<189>49: *Mar  1 00:06:50.019: %SYS-5-CONFIG_I: Configured from console by console",
        "edge-rtr9", "syslog:SYS-5-CONFIG_I", "info", "", "Configured from console",
    ),
    # Cisco IOS with 'logging origin-id hostname' and a synchronised clock
    (
        b"<187>123: core-rtr2: Dec  6 20:00:01.456: %LINEPROTO-5-UPDOWN: Line protocol on Interface "
        b"GigabitEthernet0/2, changed state to up",
        "core-rtr2", "syslog:LINEPROTO-5-UPDOWN", "minor", "GigabitEthernet0/2", "Line protocol on",
    ),
    # Cisco IOS relayed with an RFC 3164 header in front of the sequence number
    (
        b"<187>Dec  6 20:00:00 core-sw1 1234: Dec  6 20:00:00.123 UTC: %LINK-3-UPDOWN: Interface "
        b"GigabitEthernet0/1, changed state to down",
        "core-sw1", "syslog:LINK-3-UPDOWN", "minor", "GigabitEthernet0/1", "Interface Gigabit",
    ),
    # Cisco NX-OS: year first
    (
        b"<189>2026 Dec  6 20:00:00 nx1 %ETHPORT-5-IF_DOWN_LINK_FAILURE: Interface Ethernet1/1 is down",
        "nx1", "syslog:ETHPORT-5-IF_DOWN_LINK_FAILURE", "info", "Ethernet1/1", "Interface Ethernet1/1",
    ),
    # Cisco IOS-XR: node prefix, program tag, space before the colon of the mnemonic
    (
        b"<187>3: rtr-xr RP/0/RSP0/CPU0:Dec  6 20:00:00.123 UTC: ifmgr[227]: %PKT_INFRA-LINK-3-UPDOWN : "
        b"Interface GigabitEthernet0/0/0/0, changed state to Down",
        "rtr-xr", "syslog:PKT_INFRA-LINK-3-UPDOWN", "minor", "GigabitEthernet0/0/0/0", "Interface",
    ),
    # Juniper Junos, BSD format: TAG_NAME after the program
    (
        b"<28>Dec  6 20:00:00 mx1 mib2d[1415]: SNMP_TRAP_LINK_DOWN: ifIndex 545, ifAdminStatus up(1), "
        b"ifOperStatus down(2), ifName ge-0/0/1",
        "mx1", "syslog:SNMP_TRAP_LINK_DOWN", "warning", "", "ifIndex 545",
    ),
    # Juniper Junos, structured-data format (RFC 5424)
    (
        b'<28>1 2026-12-06T20:00:00.123Z mx1 mib2d 1415 SNMP_TRAP_LINK_DOWN [junos@2636.1.1.1.2.18 '
        b'snmp-interface-index="545" operational-status="down(2)" interface-name="ge-0/0/1"] ifIndex 545',
        "mx1", "syslog:SNMP_TRAP_LINK_DOWN", "warning", "ge-0/0/1", "ifIndex 545",
    ),
    # Linux: rsyslog/journald forwarding, program[pid]
    (
        b"<38>Dec  6 20:00:00 web1 sshd[4242]: Failed password for root from 10.9.9.9 port 22 ssh2",
        "web1", "syslog:sshd", "info", "", "Failed password",
    ),
    (b"<4>Dec  6 20:00:00 web1 kernel: e1000e: eth0 NIC Link is Down", "web1", "syslog:kernel", "warning", "", "e1000e"),
    # Linux: rsyslog's RFC 3339 timestamp in a BSD header
    (
        b"<11>2026-12-06T20:00:00.5+00:00 db1 postgres[77]: FATAL: the database system is shutting down",
        "db1", "syslog:postgres", "minor", "", "FATAL",
    ),
    # util-linux logger --rfc5424
    (
        b'<13>1 2026-12-06T20:00:00.000000+00:00 web1 ops - - [timeQuality tzKnown="1" isSynced="1"] hello',
        "web1", "syslog:ops", "info", "", "hello",
    ),
    # no PRI (RFC 3164: user.notice), no header: host from the sender
    (b"plain text from a printer", "edge-rtr9", "syslog:user", "info", "", "plain text"),
]  # fmt: skip


@pytest.mark.parametrize(("frame", "host", "type_", "severity", "resource", "message"), VENDOR_SAMPLES)
def test_vendor_samples(frame, host, type_, severity, resource, message):
    ev = MAPPER.to_event(parse(frame, NOW), "10.0.0.9", NOW)
    assert (ev.host, ev.type, ev.severity.value, ev.resource) == (host, type_, severity, resource)
    assert ev.message.startswith(message)
    assert ev.source == "syslog"
    assert ev.attributes["sender"] == "10.0.0.9"


def test_header_time_is_event_time_within_the_skew():
    ev = MAPPER.to_event(parse(b"<13>1 2026-12-06T19:59:00.25Z h a - - - x", NOW), "10.0.0.1", NOW)
    assert ev.time == datetime(2026, 12, 6, 19, 59, 0, 250000, tzinfo=UTC).timestamp()
    assert "device_time" not in ev.attributes


def test_bsd_time_is_utc_in_the_nearest_year():
    jan1 = datetime(2027, 1, 1, 0, 0, 10, tzinfo=UTC).timestamp()
    rec = parse(b"<13>Dec 31 23:59:50 h app: x", jan1)
    assert rec.time == datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC).timestamp()


def test_untrusted_device_clock_gives_receive_time_and_keeps_the_header():
    far = MAPPER.to_event(parse(b"<13>1 2020-01-01T00:00:00Z h a - - - x", NOW), "10.0.0.1", NOW)
    assert far.time == NOW and far.attributes["device_time"] == "2020-01-01T00:00:00Z"
    unsynced = MAPPER.to_event(parse(b"<189>1: *Mar  1 00:00:01.000: %SYS-5-X: y", NOW), "10.0.0.1", NOW)
    assert unsynced.time == NOW and unsynced.attributes["clock_synced"] is False
    local = MAPPER.to_event(parse(b"<189>1: Dec  6 21:00:00 CET: %SYS-5-X: y", NOW), "10.0.0.1", NOW)
    assert local.time == NOW and local.attributes["device_time"] == "Dec  6 21:00:00 CET"


def test_structured_data_escapes_and_several_elements():
    rec = parse(b'<13>1 - h a - - [a@1 x="q\\"uote" y="b\\]r"][b@2 z="\\\\"] m', NOW)
    assert rec.sd == {"a@1": {"x": 'q"uote', "y": "b]r"}, "b@2": {"z": "\\"}}
    assert rec.message == "m"


def test_invalid_utf8_is_replaced_and_bom_removed():
    rec = parse(b"<13>1 - h a - - - \xef\xbb\xbfcaf\xe9 ok", NOW)
    assert rec.message == "caf\ufffd ok"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\x00", "empty"),
        (b"<13>Dec  6 20:00:00 h app: a\x00b", "nul"),
        (b"<192>x", "bad_pri"),
        (b"<013>x", "bad_pri"),
        (b"<1a>x", "bad_pri"),
        (b"<13", "bad_pri"),
        (b"<13>1 2026-12-06T20:00:00Z host", "bad_header"),
        (b"<13>1 - h a - - x msg", "bad_structured_data"),
        (b'<13>1 - h a - - [id x="1" msg', "bad_structured_data"),
        (b'<13>1 - h a - - [id x="1"]msg', "bad_structured_data"),
    ],
)
def test_refused_frames_name_their_reason(frame, reason):
    with pytest.raises(ParseError) as e:
        parse(frame, NOW)
    assert e.value.reason == reason


REASONS = {"empty", "nul", "bad_pri", "bad_header", "bad_structured_data"}
_PIECES = st.sampled_from(
    [b"<13>", b"<189>", b"<0>", b"1 ", b"- ", b"[", b"]", b'x="', b'"', b"\\", b"%LINK-3-UPDOWN: ", b"42: ",
     b"*Mar  1 00:00:00.000: ", b"Dec  6 20:00:00 ", b"2026-12-06T20:00:00Z ", b"host ", b"app[1]: ",
     b"RP/0/CPU0:", b"ABC_DEF: ", b"Interface Gi0/1, ", b"\xff", b"\x00", b"\n", b" ", b"\xef\xbb\xbf"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.lists(_PIECES, max_size=20).map(b"".join)))
def test_any_bytes_are_a_valid_event_or_a_parse_error(frame):
    try:
        rec = parse(frame, NOW)
    except ParseError as e:
        assert e.reason in REASONS
        return
    ev = MAPPER.to_event(rec, "10.0.0.1", NOW)
    assert 0 < len(ev.host) <= MAX_NAME_LEN and 0 < len(ev.type) <= MAX_NAME_LEN
    assert len(ev.resource) <= MAX_NAME_LEN and len(ev.message) <= MAX_MESSAGE_LEN
    for text in (ev.host, ev.type, ev.resource, ev.message):
        assert "\x00" not in text
        text.encode()  # valid Unicode: no lone surrogates
    assert abs(ev.time - NOW) <= 3600
