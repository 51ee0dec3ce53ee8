"""Syslog from real senders into the real daemon: util-linux `logger` over UDP and TCP (both
framings), TLS with a certificate from files, hostile frames counted, TCP backpressure without loss."""

from __future__ import annotations

import socket
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.daemon import free_port, need_tool

pytestmark = pytest.mark.integration


def start(make_daemon, queue=None, rules_dir=None, **syslog):
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port()
    settings = {"udp": f"127.0.0.1:{udp}", "tcp": f"127.0.0.1:{tcp}", **syslog}
    extra: dict[str, object] = {"queue": queue} if queue else {}
    if rules_dir:
        extra["rules_dir"] = rules_dir
    return make_daemon(collectors={"syslog": settings}, **extra), udp, tcp


def logger(port: int, *args: str) -> None:
    exe = need_tool("logger", "bsdutils")
    r = subprocess.run([exe, "-n", "127.0.0.1", "-P", str(port), *args], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr


def wait_events(d, n, timeout=20.0):
    def enough():
        events = d.events("source=syslog")
        return events if len(events) >= n else None

    return d.wait_for(enough, timeout=timeout, what=f"{n} syslog events")


def test_logger_over_udp_and_tcp_in_both_formats_and_framings(make_daemon):
    d, udp, tcp = start(make_daemon)
    logger(udp, "-d", "--rfc5424", "-t", "ops", "-p", "local0.err", "--msgid", "DISK_FULL",
           "--sd-id", "disk@32473", "--sd-param", 'mount="/var"', "disk /var full")  # fmt: skip
    logger(udp, "-d", "--rfc3164", "-t", "sshd", "-p", "auth.warning", "Failed password for root")
    logger(tcp, "-T", "--rfc5424", "-t", "app", "-p", "daemon.crit", "over tcp, newline framing")
    logger(
        tcp, "-T", "--octet-count", "--rfc3164", "-t", "app", "-p", "user.info", "over tcp, octet counting"
    )
    events = {e["message"]: e for e in wait_events(d, 4)}
    disk = events["disk /var full"]
    assert disk["type"] == "syslog:DISK_FULL" and disk["severity"] == "minor"
    assert disk["attributes"]["sd"]["disk@32473"] == {"mount": "/var"}
    assert disk["attributes"]["facility"] == "local0" and disk["attributes"]["syslog_format"] == "rfc5424"
    assert disk["host"] == socket.gethostname() and disk["time"].endswith("Z")
    ssh = events["Failed password for root"]
    assert ssh["type"] == "syslog:sshd" and ssh["severity"] == "warning"
    assert ssh["attributes"]["syslog_format"] == "rfc3164"
    assert events["over tcp, newline framing"]["severity"] == "major"
    assert events["over tcp, octet counting"]["type"] == "syslog:app"
    assert d.metric("correlator_syslog_messages_total", {"transport": "udp"}) == 2
    assert d.metric("correlator_syslog_messages_total", {"transport": "tcp"}) == 2


def test_hostile_frames_are_counted_and_the_listener_carries_on(make_daemon):
    d, udp, tcp = start(make_daemon, max_message_bytes=512)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for frame in (b"<13>a\x00b", b"<999>x", b"<13>" + b"x" * 600, b"<13>1 - h a - - bad-sd m", b"\n"):
            s.sendto(frame, ("127.0.0.1", udp))
        s.sendto(b"<13>Dec  6 20:00:00 good-host app: still listening", ("127.0.0.1", udp))
    with socket.create_connection(("127.0.0.1", tcp)) as c:
        c.sendall(b"<13>" + b"y" * 700 + b"\n" + b"600 " + b"z" * 600 + b"<13>a\x00b\n<13>app: after\n")
    assert {e["message"] for e in wait_events(d, 2)} == {"still listening", "after"}
    dropped = {
        (t, r): d.metric("correlator_syslog_dropped_total", {"transport": t, "reason": r})
        for t, r in [("udp", "nul"), ("udp", "bad_pri"), ("udp", "too_large"), ("udp", "bad_structured_data"),
                     ("udp", "empty"), ("tcp", "too_large"), ("tcp", "nul")]
    }  # fmt: skip
    assert dropped == {
        ("udp", "nul"): 1, ("udp", "bad_pri"): 1, ("udp", "too_large"): 1, ("udp", "bad_structured_data"): 1,
        ("udp", "empty"): 1, ("tcp", "too_large"): 2, ("tcp", "nul"): 1,
    }  # fmt: skip
    assert d.get("/healthz")[0] == 200


def test_senders_outside_allowed_senders_are_refused(make_daemon):
    d, udp, _ = start(make_daemon, allowed_senders=["10.0.0.0/8"])
    logger(udp, "-d", "--rfc3164", "dropped")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"<13>x", ("127.0.0.1", udp))
    d.wait_for(
        lambda: (
            d.metric("correlator_syslog_dropped_total", {"transport": "udp", "reason": "sender_not_allowed"})
            == 2
        ),
        what="two refused datagrams",
    )
    assert d.events("source=syslog") == []


def test_tcp_backpressure_loses_nothing_when_the_queue_is_full(make_daemon):
    d, _, tcp = start(make_daemon, queue={"max_events": 5, "retry_after": "50ms"}, max_batch_events=20)
    n = 3000
    with socket.create_connection(("127.0.0.1", tcp)) as c:
        c.sendall(b"".join(b"<13>1 - h app - - - message %d\n" % i for i in range(n)))
    events = wait_events(d, n, timeout=60)
    assert sorted(int(e["message"].split()[1]) for e in events) == list(range(n))
    assert d.metric("correlator_syslog_backpressure_total", {"transport": "tcp"}) > 0
    assert d.metric("correlator_syslog_dropped_total") == 0


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "syslog.crt", tmp_path / "syslog.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_tls_octet_counted_messages_with_certificate_from_files(make_daemon, tmp_path):
    cert, key = _self_signed(tmp_path)
    port = free_port()
    d, _, _ = start(
        make_daemon, tls={"listen": f"127.0.0.1:{port}", "cert_file": str(cert), "key_file": str(key)}
    )
    msg = b"<34>1 2026-12-06T20:00:00Z tls-host su - ID47 - 'su root' failed for lonvick on /dev/pts/8"
    # openssl s_client: an independent TLS sender (RFC 5425 frames are octet-counted)
    openssl = need_tool("openssl", "openssl")
    r = subprocess.run(
        [openssl, "s_client", "-quiet", "-no_ign_eof", "-connect", f"127.0.0.1:{port}", "-CAfile", str(cert),
         "-verify_return_error", "-servername", "localhost"],
        input=b"%d %s" % (len(msg), msg), capture_output=True, timeout=20,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    ctx = ssl.create_default_context(cafile=str(cert))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        second = b"<34>1 - tls-host su - ID48 - second"
        s.sendall(b"%d %s" % (len(second), second))
    events = {e["attributes"]["msgid"]: e for e in wait_events(d, 2)}
    assert events["ID47"]["host"] == "tls-host" and events["ID47"]["severity"] == "major"
    assert d.metric("correlator_syslog_messages_total", {"transport": "tls"}) == 2
    # a client that does not speak TLS is refused by the handshake, not parsed
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"<13>plain text on the TLS port\n")
    d.wait_for(
        lambda: (
            d.metric("correlator_syslog_dropped_total", {"transport": "tls", "reason": "tls_handshake"}) == 1
        ),
        what="the refused handshake counted",
    )
    assert len(d.events("source=syslog")) == 2


def test_non_loopback_listener_without_allowed_senders_refuses_to_start(make_daemon):
    d = make_daemon(
        start=False, collectors={"syslog": {"udp": f"0.0.0.0:{free_port(socket.SOCK_DGRAM)}", "tcp": None}}
    )
    with pytest.raises(RuntimeError, match=r"exited with 2:(.|\n)*allowed_senders"):
        d.start()


def _ca_and_leaves(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, all as PEM files."""
    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (tmp_path / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("syslog test CA"))
        .issuer_name(name("syslog test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, ca_key)
    for stem, cn in (("server", "localhost"), ("client", "core-sw1")):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write(stem, cert, key)
    return {p.name: p for p in tmp_path.glob("*.crt")} | {p.name: p for p in tmp_path.glob("*.key")}


def _mutual_tls(f: dict[str, Path], port: int) -> dict[str, str]:
    """The daemon's TLS listener settings with client certificates required."""
    return {
        "listen": f"127.0.0.1:{port}",
        "cert_file": str(f["server.crt"]),
        "key_file": str(f["server.key"]),
        "client_ca_file": str(f["ca.crt"]),
    }


def test_tls_with_client_certificates_refuses_a_sender_without_one(make_daemon, tmp_path):
    f = _ca_and_leaves(tmp_path)
    port = free_port()
    tls = _mutual_tls(f, port)
    d, _, _ = start(make_daemon, tls=tls)
    frame = b"<11>1 - core-sw1 app - M1 - with a certificate"
    ctx = ssl.create_default_context(cafile=str(f["ca.crt"]))
    ctx.load_cert_chain(f["client.crt"], f["client.key"])
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        s.sendall(b"%d %s" % (len(frame), frame))
    anonymous = ssl.create_default_context(cafile=str(f["ca.crt"]))
    answer = b"?"
    try:  # TLS 1.3: the server's refusal arrives after the client's handshake, on the first read
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            anonymous.wrap_socket(raw, server_hostname="localhost") as s,
        ):
            s.sendall(b"<11>1 - intruder app - M2 - without one\n")
            answer = s.recv(1)
    except (ssl.SSLError, ConnectionError):
        answer = b""
    assert answer == b""
    (event,) = wait_events(d, 1)
    assert event["attributes"]["msgid"] == "M1" and event["host"] == "core-sw1"
    assert d.events("source=syslog") == [event]
    assert d.metric("correlator_syslog_dropped_total", {"transport": "tls", "reason": "tls_handshake"}) == 1


def _bound_udp(port: int) -> bool:
    """True once another process has bound 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_rsyslog_relays_over_tcp_and_mutual_tls(make_daemon, tmp_path):
    """rsyslog, as Linux servers and log relays run it: messages from `logger` forwarded in RFC 5424
    over TCP with octet counting and over TLS (gtls, client certificate, server name checked)."""
    rsyslogd = need_tool("rsyslogd", "rsyslog rsyslog-gnutls")
    if not list(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so")):
        pytest.skip("rsyslog's TLS driver not installed: apt-get install -y rsyslog-gnutls")
    f = _ca_and_leaves(tmp_path)
    tls_port = free_port()
    tls = _mutual_tls(f, tls_port)
    d, _, tcp = start(make_daemon, tls=tls)
    inbound = free_port(socket.SOCK_DGRAM)
    work = tmp_path / "rsyslog"
    work.mkdir()
    conf = work / "rsyslog.conf"
    conf.write_text(
        f"""
global(workDirectory="{work}"
       DefaultNetstreamDriverCAFile="{f["ca.crt"]}"
       DefaultNetstreamDriverCertFile="{f["client.crt"]}"
       DefaultNetstreamDriverKeyFile="{f["client.key"]}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{inbound}")
action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" TCP_Framing="octet-counted"
       template="RSYSLOG_SyslogProtocol23Format")
action(type="omfwd" target="127.0.0.1" port="{tls_port}" protocol="tcp" StreamDriver="gtls"
       StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"
       template="RSYSLOG_SyslogProtocol23Format")
"""
    )
    proc = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(conf), "-i", str(work / "rsyslogd.pid")],
        stdout=subprocess.DEVNULL,
        stderr=(work / "rsyslogd.log").open("wb"),
    )
    try:
        d.wait_for(lambda: _bound_udp(inbound), what="rsyslog listening")
        logger(inbound, "-d", "--rfc3164", "-t", "kernel", "-p", "kern.err", "e1000e: eth0 NIC Link is Down")
        events = wait_events(d, 2, timeout=30)
    finally:
        proc.terminate()
        proc.wait(10)
    assert {e["type"] for e in events} == {"syslog:kernel"}
    assert {e["resource"] for e in events} == {""}
    assert {(e["severity"], e["attributes"]["syslog_format"]) for e in events} == {("minor", "rfc5424")}
    assert {e["message"] for e in events} == {"e1000e: eth0 NIC Link is Down"}
    assert d.metric("correlator_syslog_messages_total", {"transport": "tcp"}) == 1
    assert d.metric("correlator_syslog_messages_total", {"transport": "tls"}) == 1


def test_shipped_rules_make_a_cisco_down_major_and_its_up_a_clear(make_daemon):
    from tests.support.daemon import REPO

    d, udp, _ = start(make_daemon, rules_dir=str(REPO / "rules"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for state in ("down", "up"):
            line = f"<187>42: core-sw1: *Mar  1 00:00:01.000: %LINK-3-UPDOWN: Interface Gi0/1, changed state to {state}"
            s.sendto(line.encode(), ("127.0.0.1", udp))
    events = wait_events(d, 2)
    by_state = {e["message"].rsplit(" ", 1)[1]: (e["severity"], e["resource"]) for e in events}
    assert by_state == {"down": ("major", "Gi0/1"), "up": ("clear", "Gi0/1")}
    assert len({e["fingerprint"] for e in events}) == 1


def test_header_times_years_ahead_meet_the_daemons_ingest_max_future(make_daemon):
    # A skew wider than ingest.max_future trusts device clocks further than the door does: the door
    # wins, as for every source. (Within the default skew a time years ahead is not used at all.)
    tcp = free_port()
    d = make_daemon(
        ingest={"max_future": "1h"},
        collectors={"syslog": {"udp": None, "tcp": f"127.0.0.1:{tcp}", "max_clock_skew": "3650d"}},
    )
    now = datetime.now(UTC)
    ahead = now.replace(year=now.year + 3, month=6, day=1)
    with socket.create_connection(("127.0.0.1", tcp)) as c:
        c.sendall(
            f"<11>1 {ahead:%Y-%m-%dT%H:%M:%SZ} sw1 app - - - rfc5424 years ahead\n"
            f"<187>{ahead:%Y %b} 1 00:00:00 nx1 %LINK-3-UPDOWN: Interface Gi0/1, changed state to down\n"
            f"<11>1 {now + timedelta(hours=2):%Y-%m-%dT%H:%M:%SZ} sw1 app - - - two hours ahead\n"
            f"<11>1 {now + timedelta(minutes=30):%Y-%m-%dT%H:%M:%SZ} sw1 app - - - half an hour ahead\n".encode()
        )
    events = wait_events(d, 1)
    labels = {"transport": "tcp", "reason": "time_out_of_range"}
    d.wait_for(lambda: d.metric("correlator_syslog_dropped_total", labels) == 3, what="three refused")
    rejected = {"source": "syslog", "reason": "time_out_of_range"}
    assert d.metric("correlator_events_rejected_total", rejected) == 3
    assert [e["message"] for e in d.events("source=syslog")] == ["half an hour ahead"]
    assert events[0]["time"].startswith(f"{now + timedelta(minutes=30):%Y-%m-%dT%H:%M}")


def test_an_idle_tcp_connection_is_closed_after_idle_timeout_and_counted(make_daemon):
    d, _, tcp = start(make_daemon, idle_timeout="400ms")
    with socket.create_connection(("127.0.0.1", tcp)) as c:
        c.sendall(b"<13>1 - h app - - - then nothing\n")
        wait_events(d, 1)
        c.settimeout(20)  # the deadline; the daemon closes it after 0.4-0.5 s of silence
        assert c.recv(1) == b""
    labels = {"transport": "tcp", "reason": "idle_timeout"}
    d.wait_for(lambda: d.metric("correlator_syslog_connections_closed_total", labels) == 1, what="counted")
    assert d.metric("correlator_syslog_connections", {"transport": "tcp"}) == 0


def _closed_by_peer(c: socket.socket) -> bool:
    c.settimeout(20)  # the deadline; a refused connection is closed at once
    try:
        return c.recv(1) == b""
    except ConnectionResetError:
        return True


def _still_open(c: socket.socket) -> bool:
    c.setblocking(False)
    try:
        return c.recv(1) != b""  # the daemon never writes first: any answer is unexpected
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False


def test_tls_connections_still_handshaking_hold_places_under_max_connections(make_daemon, tmp_path):
    """Connections that never start TLS count against max_connections from their accept: the ones
    beyond it are refused and counted, and a sender with a certificate gets in once places free up."""
    f = _ca_and_leaves(tmp_path)
    port = free_port()
    d, _, _ = start(make_daemon, tls=_mutual_tls(f, port), max_connections=4)
    open_tls = {"transport": "tls"}
    refused = {"transport": "tls", "reason": "too_many_connections"}
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        d.wait_for(
            lambda: d.metric("correlator_syslog_connections", open_tls) == 4, what="4 handshaking counted"
        )
        extra = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        d.wait_for(lambda: d.metric("correlator_syslog_dropped_total", refused) == 3, what="3 refused")
        assert all(_closed_by_peer(c) for c in extra)
        for c in extra:
            c.close()
        ctx = ssl.create_default_context(cafile=str(f["ca.crt"]))
        ctx.load_cert_chain(f["client.crt"], f["client.key"])
        with (
            pytest.raises((ssl.SSLError, ConnectionError)),
            socket.create_connection(("127.0.0.1", port)) as raw,
        ):
            raw.settimeout(20)
            ctx.wrap_socket(raw, server_hostname="localhost")
        assert d.metric("correlator_syslog_dropped_total", refused) == 4
        assert all(_still_open(c) for c in silent)
        # Every way out of a handshake gives its place back: a close, and bytes that are not TLS.
        silent[0].close()
        silent[1].sendall(b"<13>plain text on the TLS port\n")
        d.wait_for(
            lambda: d.metric("correlator_syslog_connections", open_tls) == 2, what="2 places given back"
        )
        frame = b"<11>1 - core-sw1 app - M1 - once a place is free"
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as s,
        ):
            s.sendall(b"%d %s" % (len(frame), frame))
        (event,) = wait_events(d, 1)
        assert event["attributes"]["msgid"] == "M1"
        assert d.metric("correlator_syslog_dropped_total", refused) == 4
    finally:
        for c in silent:
            c.close()
    d.wait_for(
        lambda: d.metric("correlator_syslog_connections", open_tls) == 0, what="every place given back"
    )
    assert d.get("/healthz")[0] == 200
