"""Every configuration example of docs/notifications.md parses, and its templates render."""

from __future__ import annotations

import re

import orjson
import yaml

from correlator.incidents.settings import parse_settings
from correlator.notify.incidents import render
from correlator.notify.templates import SAMPLE
from tests.support.daemon import REPO

DOC = REPO / "docs" / "notifications.md"


def examples() -> list[str]:
    return [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S) if b.startswith("incidents:")]


def test_every_example_parses_and_renders(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("pagerduty-routing-key", "smtp-password"):
        (secrets / name).write_text("not-a-real-secret\n")
    found = examples()
    assert len(found) >= 7
    for block in found:
        raw = yaml.safe_load(block.replace("/run/secrets/", f"{secrets}/"))
        settings = parse_settings(raw["incidents"])
        for target in settings.notify.values():
            for kind in ("open", "resolve", "escalate"):
                body = render(target, kind, dict(SAMPLE))
                if body is not None and target.content_type == "application/json" and target.type != "email":
                    orjson.loads(body)  # a JSON body stays JSON, whatever the template's conditions
