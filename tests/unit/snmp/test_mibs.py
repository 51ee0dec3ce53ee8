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
    assert "ACME-MIB: imports MIB module ACME-TC-MIB, not found; add its file to" in capsys.readouterr().err


def test_one_broken_module_does_not_stop_the_others(tmp_path, capsys):
    """Good modules are compiled and usable; each failure names its file and why, including the
    module that failed only because it imports the broken one."""
    src = tmp_path / "mibs"
    src.mkdir()
    (src / "ACME-MIB.txt").write_text(ACME_MIB)
    broken = ACME_MIB.replace("ACME-MIB", "BROKEN-MIB").replace("99999", "99998")
    (src / "broken.mib").write_text(broken.replace("SYNTAX Integer32", "SYNTAX Integer32 WHAT IS THIS"))
    user = ACME_MIB.replace("ACME-MIB", "USER-MIB").replace("99999", "99997")
    (src / "USER-MIB.my").write_text(
        user.replace("FROM SNMPv2-TC", "FROM SNMPv2-TC\n    acmeFanSpeed FROM BROKEN-MIB")
    )
    cache = tmp_path / "cache"
    assert main(["mibs", "compile", str(src), "--cache", str(cache)]) == 1
    out, err = capsys.readouterr()
    assert "compiled 1 of 3 MIB module(s)" in out and "ACME-MIB" in out
    assert f"{src / 'broken.mib'}:18: Bad grammar" in err
    assert f"{src / 'USER-MIB.my'}: imports MIB module BROKEN-MIB (broken.mib), which did not compile" in err
    assert sorted(p.name for p in cache.iterdir()) == ["ACME-MIB.json"]
    r = Resolver.from_cache_dir(cache)
    assert r.lookup(oid_bytes("1.3.6.1.4.1.99999.0.17"))[0] == "ACME-MIB::acmeFanFailed"
