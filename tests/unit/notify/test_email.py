"""The email notifier against a real SMTP server in-process (aiosmtpd) with STARTTLS on a test
certificate: messages, login with a password from a file, permanent and temporary refusals."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from correlator.errors import ConfigError
from correlator.event import Severity
from correlator.incidents.settings import parse_settings
from correlator.notify.incidents import NOTIFICATIONS
from tests.support.smtp import Mailbox, serve_smtp
from tests.unit.incidents.conftest import request
from tests.unit.notify.conftest import T0, secret

PASSWORD = "s3cret-smtp-pa55"


@pytest.fixture
def smtp(tmp_path) -> Iterator[tuple[Mailbox, int, str]]:
    for box, port, ca in serve_smtp(tmp_path, login=("noc", PASSWORD)):
        yield box, port, str(ca)


def mail(port: int, ca: str, tmp_path, **extra):
    target = {"type": "email", "host": "127.0.0.1", "port": port, "ca_file": ca, "from": "noc@example.net",
              "to": ["oncall@example.net", "duty@example.net"], "username": "noc",
              "password_file": secret(tmp_path, "smtp-password", PASSWORD), "retry_delay": "10ms", **extra}  # fmt: skip
    return {"notify": {"mail": target}}


def outcome(name: str) -> float:
    return NOTIFICATIONS.labels("mail", name)._value.get()


async def test_open_and_resolve_mails_over_starttls_with_login(service, smtp, tmp_path, caplog):
    box, port, ca = smtp
    caplog.set_level(logging.DEBUG, logger="correlator")
    svc = await service(
        mail(
            port,
            ca,
            tmp_path,
            subject="{{ priority }} {{ id }} {{ kind }}: {{ title }}",
            body="{{ title }} on {{ host }}{% if kind == 'resolve' %} is resolved{% endif %}\n",
        )
    )
    [inc] = await svc.apply([request("open", T0, title="Fibre\ncut", severity=Severity.MAJOR)])
    await svc.settled()  # the notices go out once stored
    await svc.act(inc.id, "resolve", "alice", {})
    await svc.notifier.drain(20)
    assert [m["Subject"] for _, _, m in box.messages] == [
        f"{inc.priority} INC-000001 open: Fibre cut",  # one line: a newline cannot add a header
        f"{inc.priority} INC-000001 resolve: Fibre cut",
    ]
    sender, rcpts, first = box.messages[0]
    assert sender == "noc@example.net" and rcpts == ["oncall@example.net", "duty@example.net"]
    assert first["To"] == "oncall@example.net, duty@example.net" and first["Message-ID"].endswith(
        "@correlator>"
    )
    assert (
        box.messages[1][2].get_payload().replace("\r\n", "\n").strip() == "Fibre\ncut on core-sw1 is resolved"
    )
    assert box.tls == [True, True] and box.logins[0] == (b"noc", PASSWORD.encode())
    assert PASSWORD not in caplog.text


async def test_a_permanent_refusal_is_not_retried_a_temporary_one_is(service, smtp, tmp_path):
    box, port, ca = smtp
    svc = await service(mail(port, ca, tmp_path, send_on=["open"]))
    failed = outcome("failed")
    box.answers = ["550 5.7.1 message refused"]
    await svc.apply([request("open", T0, key="a", title="first")])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(20)
    assert box.messages == [] and outcome("failed") == failed + 1
    box.answers = ["451 4.3.0 try again later"]
    await svc.apply([request("open", T0, key="b", title="second")])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(20)
    assert [m["Subject"].split(": ")[1] for _, _, m in box.messages] == ["second"]


async def test_a_wrong_password_fails_for_good(service, smtp, tmp_path):
    box, port, ca = smtp
    raw = mail(port, ca, tmp_path, send_on=["open"])
    raw["notify"]["mail"]["password_file"] = secret(tmp_path, "wrong", "not-it")
    svc = await service(raw)
    failed = outcome("failed")
    await svc.apply([request("open", T0, title="x")])
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(20)
    assert box.messages == [] and outcome("failed") == failed + 1


async def test_without_starttls_offered_nothing_is_sent_in_clear(service, tmp_path):
    for box, port, ca in serve_smtp(tmp_path, starttls=False):
        raw = mail(port, str(ca), tmp_path, send_on=["open"], retries=1)
        del raw["notify"]["mail"]["username"], raw["notify"]["mail"]["password_file"]
        svc = await service(raw)
        failed = outcome("failed")
        await svc.apply([request("open", T0, title="x")])
        await svc.settled()  # the notices go out once stored
        await svc.notifier.drain(20)
        assert box.messages == [] and outcome("failed") == failed + 1


def test_email_settings_errors(tmp_path):
    def parse(**spec):
        return parse_settings({"notify": {"mail": {"type": "email", **spec}}})

    base = {"host": "smtp.example.net", "from": "noc@example.net", "to": "oncall@example.net"}
    assert parse(**base).notify["mail"].url == "smtp://smtp.example.net:587"
    with pytest.raises(ConfigError, match=r"'incidents.notify.mail.host': required"):
        parse(**{**base, "host": None})
    with pytest.raises(ConfigError, match=r"'incidents.notify.mail.to': required"):
        parse(**{**base, "to": ["not an address"]})
    with pytest.raises(ConfigError, match=r"'incidents.notify.mail.to': required"):
        parse(**{**base, "to": "oncall@example.net\nBcc: all@example.net"})  # no header of its own
    with pytest.raises(ConfigError, match=r"'incidents.notify.mail.from': expected one address on one line"):
        parse(**{**base, "from": "noc@example.net\r\nBcc: all@example.net"})
    pw = secret(tmp_path, "pw", PASSWORD)
    with pytest.raises(ConfigError, match=r"a password is only sent over STARTTLS"):
        parse(**base, username="noc", password_file=pw, starttls=False)
    with pytest.raises(ConfigError, match=r"'incidents.notify.mail.password': unknown key"):
        parse(**base, username="noc", password=PASSWORD)
    with pytest.raises(ConfigError, match=r"'incidents.notify.mail.subject': template error on line 1"):
        parse(**base, subject="{{ id ")
