"""`correlator mibs compile`: a fixture MIB compiles into names the resolver uses; errors name file:line."""

from __future__ import annotations

from collectors.snmp.ber import oid_bytes
from collectors.snmp.oids import Resolver
from correlator.cli import main
from tests.support.snmp import ACME_MIB


def test_compile_fixture_mib_and_resolve_its_names(tmp_path, capsys):
    src = tmp_path / "mibs"
    src.mkdir()
    (src / "ACME-MIB.txt").write_text(ACME_MIB)
    cache = tmp_path / "cache"
    assert main(["mibs", "compile", str(src), "--cache", str(cache)]) == 0
    assert "ACME-MIB" in capsys.readouterr().out
    r = Resolver.from_cache_dir(cache)
    assert r.lookup(oid_bytes("1.3.6.1.4.1.99999.0.17"))[0] == "ACME-MIB::acmeFanFailed"
    assert r.lookup(oid_bytes("1.3.6.1.4.1.99999.1.2.0")) == ("ACME-MIB::acmeFanName", "acmeFanName", "0")
    # the built-in table is still there, and unknown OIDs stay numeric
    assert r.lookup(oid_bytes("1.3.6.1.6.3.1.1.5.3"))[0] == "IF-MIB::linkDown"
    assert r.lookup(oid_bytes("1.3.6.1.4.1.11.2"))[0] == "1.3.6.1.4.1.11.2"


def test_syntax_error_names_file_and_line(tmp_path, capsys):
    src = tmp_path / "mibs"
    src.mkdir()
    bad = ACME_MIB.replace("ACME-MIB", "BROKEN-MIB")
    bad = bad.replace("SYNTAX Integer32", "SYNTAX Integer32 WHAT IS THIS")  # line 18
    (src / "broken.mib").write_text(bad)
    (src / "README").write_text("not a MIB")
    assert main(["mibs", "compile", str(src), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert f"{src / 'broken.mib'}:18:" in err
    assert f"{src / 'README'}:1: no 'MODULE-NAME DEFINITIONS ::= BEGIN' header" in err


def test_missing_import_is_reported(tmp_path, capsys):
    src = tmp_path / "mibs"
    src.mkdir()
    text = ACME_MIB.replace("DisplayString FROM SNMPv2-TC", "DisplayString FROM ACME-TC-MIB")
    (src / "ACME-MIB").write_text(text)
    assert main(["mibs", "compile", str(src), "--cache", str(tmp_path / "cache")]) == 1
    assert "imported MIB module ACME-TC-MIB not found" in capsys.readouterr().err
