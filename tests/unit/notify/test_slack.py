"""The Slack notifier against a local incoming-webhook receiver: Block Kit blocks within Slack's
limits, mrkdwn escaped, the text template as message and fallback."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from correlator.event import Severity
from tests.unit.incidents.conftest import request
from tests.unit.notify.conftest import T0


def block_kit(body: dict[str, Any]) -> str | None:
    """What Slack's chat.postMessage and incoming webhooks refuse (api.slack.com/reference/block-kit)."""
    if not isinstance(body.get("text"), str) or not isinstance(body.get("blocks"), list):
        return "text and blocks are required"
    for b in body["blocks"]:
        if b["type"] == "header" and (b["text"]["type"] != "plain_text" or len(b["text"]["text"]) > 150):
            return "header text must be plain_text of at most 150 characters"
        if b["type"] == "section" and len(b.get("fields", [])) > 10:
            return "a section holds at most 10 fields"
        if b["type"] == "section" and "text" in b and len(b["text"]["text"]) > 3000:
            return "section text is at most 3000 characters"
    return None


async def test_slack_message_with_blocks_routed_by_priority(service, receiver):
    rec, base = receiver
    rec.check, rec.status = block_kit, 200
    svc = await service(
        {
            "notify": {
                "noc-chat": {
                    "type": "slack",
                    "url": f"{base}/services/T/B/x",
                    "send_on": ["open", "resolve"],
                },
                "major-chat": {
                    "type": "slack",
                    "url": f"{base}/major",
                    "match": {"priority": ["P1"]},
                    "text": "{% if major %}<!here> {% endif %}{{ id }} {{ title }}",
                },
            }
        }
    )
    [inc] = await svc.apply(
        [request("open", T0, title="Core <down> & " + "x" * 200, severity=Severity.MINOR)]
    )
    await svc.settled()  # the notices go out once stored
    await svc.act(inc.id, "resolve", "alice", {})
    await svc.notifier.drain(10)
    noc = rec.bodies("/services/T/B/x")
    assert len(noc) == 2 and rec.bodies("/major") == []  # a minor incident is not P1: not routed there
    header, section = noc[0]["blocks"][:2]
    assert header["type"] == "header" and header["text"]["text"].startswith("INC-000001 [")
    assert "Core &lt;down&gt; &amp; " in section["text"]["text"]  # a title cannot @-mention a channel
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in noc[0]["blocks"][2]["fields"]}
    assert fields["*Host*"] == "core-sw1" and fields["*Status*"] == "new"
    assert "resolve" in noc[1]["text"] and ":white_check_mark:" in noc[1]["text"]
    assert REGISTRY.get_sample_value("correlator_incident_notify_targets", {"type": "slack"}) == 2
    assert REGISTRY.get_sample_value(
        "correlator_incident_notifications_total", {"target": "noc-chat", "outcome": "sent"}
    )


async def test_slack_text_template_with_a_condition(service, receiver):
    rec, base = receiver
    rec.check = block_kit
    svc = await service(
        {
            "notify": {
                "major-chat": {
                    "type": "slack",
                    "url": f"{base}/major",
                    "match": {"priority": "P1"},
                    "text": "{% if major %}<!here> {% endif %}{{ id }} {{ title }}",
                }
            }
        }
    )
    await svc.apply(
        [request("open", T0, title="Fibre cut <!channel>", severity=Severity.CRITICAL, major=True)]
    )
    await svc.settled()  # the notices go out once stored
    await svc.notifier.drain(10)
    [first, *_] = rec.bodies("/major")
    # The template's mention is kept; the one in the incident's title is only text.
    assert first["text"] == "<!here> INC-000001 Fibre cut &lt;!channel&gt;"
    assert first["blocks"][1]["text"]["text"] == first["text"]
