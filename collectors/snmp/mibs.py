"""Compiling operators' MIB files with pysmi into the collector's cache directory (JSON modules).

`correlator mibs compile DIR` calls compile_dir; oids.load_compiled reads the result at start-up.
Each module is compiled on its own; errors name the MIB's file, for syntax errors its line, and
for a module that failed because of an import, the imported module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pysmi.codegen import JsonCodeGen
from pysmi.compiler import MibCompiler
from pysmi.parser import SmiStarParser
from pysmi.reader import CallbackReader
from pysmi.searcher import StubSearcher
from pysmi.writer import FileWriter

from collectors.snmp.basemibs import BASE_MIBS

_HEADER = re.compile(rb"^\s*([A-Za-z][\w-]*)\s+DEFINITIONS\s*::=\s*BEGIN", re.MULTILINE)
MIB_SUFFIXES = {"", ".txt", ".mib", ".my", ".smi"}


@dataclass
class CompileResult:
    compiled: list[str]
    errors: list[str]  # "FILE:LINE: message", one per file or module that did not compile
    modules: int = 0  # MIB modules found in the directory


def compile_dir(source: Path, cache: Path) -> CompileResult:
    """Compile every MIB module found in source (not recursive) into cache/<MODULE>.json, each on its
    own: a module that fails (and those importing it) is reported, the others are compiled."""
    files: dict[str, Path] = {}
    errors: list[str] = []
    for path in sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in MIB_SUFFIXES):
        data = path.read_bytes()
        m = _HEADER.search(data)
        if m is None:
            errors.append(f"{path}:1: no 'MODULE-NAME DEFINITIONS ::= BEGIN' header: not a MIB module")
            continue
        files[m.group(1).decode()] = path
    if not files:
        return CompileResult([], errors)
    cache.mkdir(parents=True, exist_ok=True)

    def read(name: str, _ctx: Any) -> str | None:
        path = files.get(name)
        if path is not None:
            return path.read_text(errors="replace")
        return BASE_MIBS.get(name)  # operators' own copies of the base modules take precedence

    compiler = MibCompiler(SmiStarParser(), JsonCodeGen(), FileWriter(str(cache)).set_options(suffix=".json"))
    compiler.add_sources(CallbackReader(read))
    compiler.add_searchers(StubSearcher(*JsonCodeGen.baseMibs))
    # One module at a time: pysmi writes nothing of a batch in which one module fails, and a NOC's
    # MIB directory nearly always holds one module that does not compile.
    compiled: list[str] = []
    for name in sorted(files):
        results = compiler.compile(name, rebuild=True, genTexts=False)
        status = results.get(name)
        if status in ("compiled", "untouched"):
            compiled.append(name)
            continue
        errors.append(_why(name, files, results, source))
    return CompileResult(sorted(compiled), errors, len(files))


def _why(name: str, files: dict[str, Path], results: dict[str, Any], source: Path) -> str:
    """`FILE[:LINE]: why` for a module that did not compile: its own error, else its imports'."""
    status = results.get(name)
    err = getattr(status, "error", None)
    line = getattr(err, "lineno", None)
    where = f"{files[name]}:{line}" if isinstance(line, int) else f"{files[name]}"
    own = getattr(err, "msg", None)
    if own and status not in ("unprocessed", "missing"):
        return f"{where}: {own}"
    missing = sorted(m for m, st in results.items() if m != name and st == "missing")
    if missing:
        return f"{where}: imports MIB module {', '.join(missing)}, not found; add its file to {source}"
    failed = sorted(m for m, st in results.items() if m != name and st not in ("compiled", "untouched"))
    if failed:
        names = ", ".join(f"{m} ({files[m].name})" if m in files else m for m in failed)
        return f"{where}: imports MIB module {names}, which did not compile (see its error)"
    return f"{where}: {own or status}"
