"""JSON Schema of rule files, generated from the same model specs that parse them.

`correlator rules schema` prints it so editors (YAML language server) validate rule files as they are typed.
"""

from __future__ import annotations

from typing import Any

from correlator.rules.model import match_schema
from correlator.rules.registry import DEFAULT_KIND, kinds


def rules_schema() -> dict[str, Any]:
    registry = kinds()
    defs: dict[str, Any] = {"match": match_schema()}
    branches: list[dict[str, Any]] = []
    for name, kind in sorted(registry.items()):
        defs[f"rule_{name}"] = kind.full_model().schema()
        cond: dict[str, Any] = {"properties": {"kind": {"const": name}}}
        if name != DEFAULT_KIND:
            cond["required"] = ["kind"]
        branches.append({"if": cond, "then": {"$ref": f"#/$defs/rule_{name}"}})
    rule = {
        "type": "object",
        "required": ["name"],
        "properties": {"kind": {"enum": sorted(registry)}},
        "allOf": branches,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://correlator.invalid/schemas/rules.json",
        "title": "correlator rule file",
        "type": "object",
        "properties": {"rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}}},
        "additionalProperties": False,
        "$defs": {**defs, "rule": rule},
    }
