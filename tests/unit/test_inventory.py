"""The inventory file: YAML and CSV forms, lookups by host and address, errors with positions."""

from __future__ import annotations

import pytest

from correlator.inventory import InventoryError, load_inventory


def test_yaml(tmp_path):
    p = tmp_path / "inv.yaml"
    p.write_text(
        "hosts:\n"
        "  core-sw1: {site: par1, service: core, owner: netops, criticality: critical,"
        " addresses: [10.0.0.1], rack: 12}\n"
        "  bare:\n"
    )
    inv = load_inventory(p)
    a = inv.get("core-sw1")
    assert a is not None and a.site == "par1" and a.criticality == "critical"
    assert a.fields() == {
        "site": "par1",
        "service": "core",
        "owner": "netops",
        "criticality": "critical",
        "rack": "12",
    }
    assert inv.by_address("10.0.0.1") is a
    assert inv.get("bare").fields() == {}
    assert inv.get("nope") is None and len(inv) == 2


def test_csv(tmp_path):
    p = tmp_path / "inv.csv"
    p.write_text(
        "host,site,owner,criticality,addresses,room\nsw1,par1,netops,high,10.0.0.1;10.0.0.2,B2\nsw2,,,,,\n"
    )
    inv = load_inventory(p)
    assert inv.get("sw1").fields() == {"site": "par1", "owner": "netops", "criticality": "high", "room": "B2"}
    assert inv.by_address("10.0.0.2").host == "sw1"
    assert inv.get("sw2").fields() == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "i.yaml",
            "hosts:\n  sw1: {criticality: hgh}\n",
            "i.yaml:2:8: host 'sw1': criticality must be one of critical, high, medium, low,"
            " got 'hgh' (did you mean 'high'?)",
        ),
        ("i.yaml", "hosts: [a, b]\n", "i.yaml:1:8: 'hosts' must map each host name"),
        ("i.yaml", "host: {}\n", "i.yaml:1:1: expected a mapping with one key 'hosts'"),
        ("i.yaml", "hosts:\n  sw1: {addresses: [nope]}\n", "'nope' is not an IP address"),
        ("i.yaml", "hosts: {sw1: [\n", "YAML syntax error"),
        (
            "i.csv",
            "name,site\nsw1,par1\n",
            "i.csv:1:1: the first row must name the columns, including 'host'",
        ),
        ("i.csv", "host,site\n,par1\n", "i.csv:2:1: empty 'host' column"),
    ],
)
def test_errors(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(p)
    assert str(info.value).startswith(str(tmp_path) + "/") and message in str(info.value)


def test_none_and_missing(tmp_path):
    assert len(load_inventory(None)) == 0
    with pytest.raises(InventoryError, match="cannot read the inventory"):
        load_inventory(tmp_path / "missing.yaml")
