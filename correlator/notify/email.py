"""The email notifier: one plain-text message per notice over SMTP, with STARTTLS (aiosmtplib).

The subject and the text are rendered when the change is saved and kept in outbox.db; the message
itself (From, To, Message-ID from the notice id, so a re-sent copy is recognisable) is built when
sending. The SMTP password is read from a file and never stored or logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import aiosmtplib
import orjson

from correlator.notify import targets as t
from correlator.notify.notice import Notice
from correlator.notify.outbox import Attempt, Endpoint
from correlator.notify.templates import Template, optional
from correlator.secretfile import read_secret

if TYPE_CHECKING:
    import aiohttp

KEYS = frozenset({"host", "port", "starttls", "username", "password_file", "ca_file", "from", "to",
                  "subject", "body"})  # fmt: skip
DEFAULT_ON = ("open", "resolve", "major", "escalate")
SUBJECT_MAX = 200


@dataclass(frozen=True)
class Email:
    host: str
    port: int
    starttls: bool
    sender: str
    to: tuple[str, ...]
    username: str | None
    password: str | None = field(repr=False)
    ca_file: str | None  # trust this CA instead of the system's (a private relay)
    subject: Template | None
    body: Template | None

    def render(self, kind: str, doc: dict[str, Any]) -> bytes:
        if self.subject is not None:
            subject = self.subject.render(kind, doc)
        else:
            subject = f"[{doc.get('priority', '')}] {doc.get('id', '')} {kind}: {doc.get('title', '')}"
        text = self.body.render(kind, doc) if self.body is not None else default_text(kind, doc)
        # One line: a newline in a title must not start a new header.
        subject = " ".join(subject.split())[:SUBJECT_MAX]
        return orjson.dumps({"subject": subject, "text": text})

    def endpoint(self, target: t.NotifyTarget) -> Endpoint:
        return t.endpoint(target, transport=self, headers={})

    async def attempt(self, endpoint: Endpoint, notice: Notice, session: aiohttp.ClientSession) -> Attempt:
        doc = orjson.loads(notice.body)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = doc["subject"]
        msg["Date"] = formatdate(notice.created, usegmt=True)
        msg["Message-ID"] = f"<{notice.id}@correlator>"
        msg.set_content(doc["text"])
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,  # True: required, the message is never sent in clear
                cert_bundle=self.ca_file,
                timeout=endpoint.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = sorted({r.code for r in e.recipients})
            return Attempt(
                "final" if all(c >= 500 for c in codes) else "retry", f"recipients refused {codes}"
            )
        except aiosmtplib.SMTPResponseException as e:
            # 5xx is permanent (bad sender, bad login, message refused); 4xx asks to try later.
            return Attempt("final" if e.code >= 500 else "retry", f"SMTP {e.code}")
        except (aiosmtplib.SMTPException, OSError) as e:  # connection, timeout, no STARTTLS offered
            return Attempt("retry", type(e).__name__)
        return Attempt("sent")


def build(spec: Mapping[str, Any], where: str) -> tuple[str, Email]:
    host = spec.get("host")
    if not isinstance(host, str) or not host:
        t.fail(spec, "type", f"{where}.host", "required: the SMTP server's name or address")
    starttls = spec.get("starttls", True)
    port = spec.get("port", 587 if starttls else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        t.fail(spec, "port", f"{where}.port", "expected a port number")
    if not isinstance(starttls, bool):
        t.fail(spec, "starttls", f"{where}.starttls", "expected true or false")
    sender = spec.get("from")
    if not isinstance(sender, str) or "@" not in sender:
        t.fail(spec, "type", f"{where}.from", "required: the sender address, like noc@example.net")
    if "\n" in sender or "\r" in sender:  # a header of its own
        t.fail(spec, "from", f"{where}.from", "expected one address on one line")
    to = spec.get("to")
    to = [to] if isinstance(to, str) else to
    if (
        not isinstance(to, list)
        or not to
        or not all(isinstance(a, str) and "@" in a and a.isprintable() for a in to)
    ):
        t.fail(spec, "type", f"{where}.to", "required: a recipient address or a list of them")
    username = spec.get("username")
    if username is not None and not isinstance(username, str):
        t.fail(spec, "username", f"{where}.username", "expected a string")
    password = None
    if "password_file" in spec:
        try:
            password = read_secret(spec["password_file"])
        except ValueError as e:
            t.fail(spec, "password_file", f"{where}.password_file", str(e))
        if not starttls:
            t.fail(spec, "starttls", f"{where}.starttls", "a password is only sent over STARTTLS")
        if username is None:
            t.fail(spec, "password_file", f"{where}.username", "required with password_file")
    ca_file = spec.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, str):
        t.fail(spec, "ca_file", f"{where}.ca_file", "expected the path of a PEM file")
    email = Email(host, port, starttls, sender, tuple(to), username, password, ca_file,
                  optional(spec, "subject", where), optional(spec, "body", where))  # fmt: skip
    return f"smtp://{host}:{port}", email


def default_text(kind: str, doc: dict[str, Any]) -> str:
    lines = [f"{doc.get('id', '')} {kind}: {doc.get('title', '')}", ""]
    for name in ("status", "priority", "severity", "host", "service", "assignment_group", "assignee",
                 "event_count", "opened_at", "description"):  # fmt: skip
        if doc.get(name) not in (None, ""):
            lines.append(f"{name}: {doc[name]}")
    return "\n".join(lines) + "\n"
