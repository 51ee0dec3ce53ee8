"""A change on a service covers the service's CIs as the service catalogue (availability.services_file)
defines them, beside the events labelled with the service; without a catalogue, only the labels.

Every test runs on SQLite and on PostgreSQL (skipped with a message where none answers).
"""

from __future__ import annotations

from correlator.availability import parse_services
from correlator.catalogue import Catalogue
from correlator.yamlfile import loads
from tests.unit.itsm.conftest import HOUR, MIN, T0, event

SERVICES = """\
services:
  billing:
    all_of:
      - db1
      - any_of: [{ci: app1, resource: eth0}, app2]
  web:
    any_of: [web1, web2]
"""
CALENDAR = """\
dependencies:
  db1: [report1]
  app1: [batch1]
windows: []
"""


def catalogue() -> Catalogue:
    return Catalogue.of(parse_services(loads(SERVICES, "services.yaml"), "services.yaml"), "services.yaml")


async def billing_change(w, **fields):
    c = await w.changes.create(
        "alice",
        {"title": "billing release", "start": T0, "end": T0 + HOUR, "services": ["billing"], **fields},
    )
    return await w.changes.act(c.id, "approve", "bob")


async def test_the_members_of_a_changed_service_are_covered_as_its_own_cis(make_world):
    w = await make_world(CALENDAR, catalogue=catalogue())
    c = await billing_change(w)
    member, nested = event(T0 + MIN, host="db1"), event(T0 + MIN, host="app2")
    labelled = event(T0 + MIN, host="lb7", attributes={"service": "billing"})  # as before: the label
    other = event(T0 + MIN, host="web1")
    dependent = event(T0 + MIN, host="report1")  # depends on db1
    await w.feed(T0 + MIN, member, nested, labelled, other, dependent)
    assert [e.attributes.get("maintenance") for e in (member, nested, labelled)] == ["suppress"] * 3
    assert member.attributes["change_id"] == c.human_id
    # A service's members are often shared gear: their dependents are not covered through it.
    assert other.attributes == {} and dependent.attributes == {}
    assert {e.host for e in w.correlation.seen} == {"web1", "report1"}


async def test_without_a_catalogue_a_service_change_covers_only_labelled_events(make_world):
    w = await make_world(CALENDAR)
    await billing_change(w)
    member = event(T0 + MIN, host="db1")
    labelled = event(T0 + MIN, host="lb7", attributes={"service": "billing"})
    await w.feed(T0 + MIN, member, labelled)
    assert member.attributes == {} and labelled.attributes["maintenance"] == "suppress"


async def test_an_incident_on_a_member_of_a_changed_service_is_linked_to_the_change(make_world):
    w = await make_world(CALENDAR, catalogue=catalogue(), changes={"suspect_window": 2 * HOUR})
    c = await billing_change(w, policy="tag")
    await w.changes.act(c.id, "start", "bob")
    await w.feed(T0 + 2 * MIN, event(T0 + 2 * MIN, host="app1"), event(T0 + 2 * MIN, host="batch1"))
    linked = w.incidents.active_for("app1/linkDown")
    unlinked = w.incidents.active_for("batch1/linkDown")  # depends on app1: not through the service
    assert linked.change_id == c.human_id and unlinked.change_id is None
    c, _ = await w.changes.get(c.id)
    assert c.incidents == [linked.id]
