"""Compiling operators' MIB files with pysmi into the collector's cache directory (JSON modules).

`correlator mibs compile DIR` calls compile_dir; oids.load_compiled reads the result at start-up.
Errors name the MIB's file and, for syntax errors, its line.
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
    errors: list[str]  # "FILE:LINE: message"


def compile_dir(source: Path, cache: Path) -> CompileResult:
    """Compile every MIB module found in source (not recursive) into cache/<MODULE>.json."""
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
    results = compiler.compile(*files, rebuild=True, genTexts=False)
    compiled: list[str] = []
    for name, status in results.items():
        if name not in files:
            if status == "missing":
                errors.append(f"{source}: imported MIB module {name} not found; add its file to {source}")
            continue
        if status in ("compiled", "untouched"):
            compiled.append(name)
            continue
        err = getattr(status, "error", None)
        line = getattr(err, "lineno", None)
        where = f"{files[name]}:{line}" if isinstance(line, int) else f"{files[name]}"
        missing_dep = "not compiled: a module it imports is missing or failed"
        msg = getattr(err, "msg", None) or (missing_dep if status == "unprocessed" else str(status))
        errors.append(f"{where}: {msg}")
    return CompileResult(sorted(compiled), errors)
