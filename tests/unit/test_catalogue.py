"""The service catalogue: a CI's services and a service's CIs from the services file, and the
warnings for what other files claim against it, each with the claim's file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.availability import parse_services
from correlator.catalogue import Catalogue, Claim, disagreements, load_catalogue
from correlator.config import Config
from correlator.errors import ConfigError
from correlator.yamlfile import Position, loads

SERVICES = """\
cis: [core-sw1]
services:
  web-shop:
    all_of: [fw1, {any_of: [{ci: r1, resource: uplink-a}, {all_of: [r2, lb1]}]}]
  dns:
    any_of: [dns1, dns2, fw1]
"""


def catalogue() -> Catalogue:
    return Catalogue.of(parse_services(loads(SERVICES, "services.yaml"), "services.yaml"), "services.yaml")


def test_a_ci_belongs_to_every_service_that_has_it_as_a_member_at_any_depth() -> None:
    c = catalogue()
    assert c.services_of("fw1") == ("dns", "web-shop")
    assert c.services_of("lb1") == ("web-shop",), "nested all_of inside any_of"
    assert c.services_of("r1") == ("web-shop",), "a resource member makes its CI a member"
    assert c.services_of("core-sw1") == (), "tracked under cis: but in no service"
    assert c.services_of("printer") == ()


def test_a_service_has_its_member_cis() -> None:
    c = catalogue()
    assert c.cis_of("web-shop") == {"fw1", "r1", "r2", "lb1"}
    assert c.cis_of("dns") == {"dns1", "dns2", "fw1"}
    assert c.cis_of("mail") == frozenset()
    assert "dns" in c and "mail" not in c


def test_claims_the_catalogue_backs_give_no_warning() -> None:
    claims = [Claim("fw1", "dns", Position("t.yaml", 3, 9)), Claim("lb1", "web-shop", "t.yaml")]
    assert disagreements(catalogue(), claims, "CI {ci!r} lists service {service!r}", "ignored") == []


def test_each_disagreement_is_one_warning_with_its_position() -> None:
    claims = [
        Claim("dns1", "web-shop", Position("t.yaml", 4, 20)),
        Claim("dns1", "web-shop", Position("t.yaml", 9, 20)),  # the same claim again: said once
        Claim("srv9", "web-shp", Position("t.yaml", 5, 18)),
        Claim("srv9", "mail", Position("t.yaml", 5, 27)),
    ]
    found = disagreements(catalogue(), claims, "CI {ci!r} lists service {service!r}", "ignored")
    assert found == [
        "t.yaml:4:20: CI 'dns1' lists service 'web-shop', but 'web-shop' in services.yaml"
        " (services.yaml:3:3) does not have 'dns1' as a member ('dns1' is in: dns); ignored",
        "t.yaml:5:18: CI 'srv9' lists service 'web-shp', a service services.yaml does not define"
        " (did you mean 'web-shop'?); ignored",
        "t.yaml:5:27: CI 'srv9' lists service 'mail', a service services.yaml does not define; ignored",
    ]


def test_loaded_from_availability_services_file(tmp_path: Path) -> None:
    assert load_catalogue(Config()) is None
    path = tmp_path / "services.yaml"
    path.write_text(SERVICES)
    holder = load_catalogue(Config(availability={"services_file": str(path)}))
    assert holder is not None
    c = holder.current
    assert c.file == str(path) and c.services_of("dns2") == ("dns",)
    with pytest.raises(ConfigError, match="no such services file"):
        load_catalogue(Config(availability={"services_file": str(tmp_path / "missing.yaml")}))
