"""A parsed syslog `Record` -> an `Event`: host, type, resource, severity and attributes.

docs/collectors/syslog.md documents each choice (the type from the Cisco mnemonic, the MSGID, the
Juniper tag or the program; the severity scale; when the header's time is not used).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from collectors.syslog.parse import FACILITIES, Record, as_attributes
from correlator.event import MAX_MESSAGE_LEN, MAX_NAME_LEN, Event, Severity, iso, new_id

SOURCE = "syslog"

# emerg, alert -> critical; crit -> major; err -> minor; warning; notice, info, debug -> info
SEVERITY = (
    Severity.CRITICAL,
    Severity.CRITICAL,
    Severity.MAJOR,
    Severity.MINOR,
    Severity.WARNING,
    Severity.INFO,
    Severity.INFO,
    Severity.INFO,
)
# "Interface GigabitEthernet0/1, changed state to down", "interface ge-0/0/1.0", "Interface Ethernet1/1 is down"
_INTERFACE = re.compile(r"[Ii]nterface ([A-Za-z][\w./:-]{0,63}\d)")
_SD_INTERFACE = ("interface-name", "interface_name", "ifName")


class Mapper:
    def __init__(self, hosts: Mapping[str, str], max_clock_skew: float) -> None:
        self._hosts = hosts
        self._skew = max_clock_skew

    def to_event(self, rec: Record, sender: str, received: float) -> Event:
        host = rec.host or sender
        host = self._hosts.get(host, host)
        attrs = as_attributes(rec)
        attrs["sender"] = sender
        t = rec.time
        if t is None or abs(t - received) > self._skew:
            # Correlation windows run on event time: a device clock that is off (or a BSD header in
            # local time, which carries no zone) would put the event hours away from its neighbours.
            if t is not None:
                attrs["device_time"] = _header_time(rec, t)
            t = received
        return Event(
            new_id(),
            t,
            received,
            SOURCE,
            host[:MAX_NAME_LEN],
            _type(rec)[:MAX_NAME_LEN],
            SEVERITY[rec.severity],
            _resource(rec),
            rec.message.strip()[:MAX_MESSAGE_LEN],  # rsyslog relays BSD text with its leading space
            attrs,
        )


def _type(rec: Record) -> str:
    if rec.mnemonic:
        return f"syslog:{rec.mnemonic}"
    if rec.msgid:
        return f"syslog:{rec.msgid}"
    if rec.app:
        return f"syslog:{rec.app}"
    return f"syslog:{FACILITIES[rec.facility]}"


def _resource(rec: Record) -> str:
    for sd in rec.sd.values():
        for key in _SD_INTERFACE:
            name = sd.get(key)
            if name:
                return name[:MAX_NAME_LEN]
    m = _INTERFACE.search(rec.message, 0, 512)
    return m.group(1).rstrip(".,:") if m is not None else ""


def _header_time(rec: Record, t: float) -> str:
    return rec.device_time or iso(t)
