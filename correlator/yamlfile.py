"""YAML loading that remembers where every mapping and key came from, for `file:line:col` errors.

Used by the configuration loader and the rule compiler; both report errors against the operator's
own file, so they need positions that plain `yaml.safe_load` throws away.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class YamlMap(dict[str, Any]):
    """A dict that knows its own position and the position of each key and value."""

    position: Position
    key_positions: dict[str, Position]
    value_positions: dict[str, Position]

    def where(self, key: str | None = None) -> Position:
        if key is not None and key in self.key_positions:
            return self.key_positions[key]
        return self.position

    def where_value(self, key: str) -> Position:
        return self.value_positions.get(key) or self.where(key)


class YamlList(list[Any]):
    position: Position
    item_positions: list[Position]


class YamlError(Exception):
    def __init__(self, position: Position, message: str) -> None:
        super().__init__(f"{position}: {message}")
        self.position = position
        self.message = message


def _pos(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


# libyaml's parser is ~10x faster than the pure-Python one (a 10,000-rule set parses in about a second
# instead of 15) and reports the same marks; fall back when PyYAML was built without it.
_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _make_loader(file: str) -> type[yaml.SafeLoader]:
    class Loader(_BASE):  # type: ignore[valid-type,misc]
        pass

    def construct_map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> YamlMap:
        m = YamlMap()
        m.position = _pos(file, node)
        m.key_positions = {}
        m.value_positions = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in m:
                raise YamlError(_pos(file, key_node), f"duplicate key {key!r}")
            m[key] = loader.construct_object(value_node, deep=True)
            m.key_positions[key] = _pos(file, key_node)
            m.value_positions[key] = _pos(file, value_node)
        return m

    def construct_seq(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> YamlList:
        seq = YamlList(loader.construct_object(child, deep=True) for child in node.value)
        seq.position = _pos(file, node)
        seq.item_positions = [_pos(file, child) for child in node.value]
        return seq

    def construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
        except ValueError as e:  # 2027-02-30 looks like a date to YAML: say where, not crash the load
            raise YamlError(_pos(file, node), f"invalid date {node.value!r}: {e}") from None

    Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_map)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_seq)
    return Loader


def loads(text: str, file: str = "<string>") -> Any:
    """Parse YAML text; syntax errors become YamlError with the file, line and column."""
    try:
        return yaml.load(text, Loader=_make_loader(file))  # noqa: S506 - a SafeLoader subclass
    except YamlError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        pos = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file, 1, 1)
        raise YamlError(pos, f"YAML syntax error: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:  # a control character: no mark, only an offset
        before = text[: e.position]
        pos = Position(file, before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1)
        char = e.character if isinstance(e.character, str) else chr(e.character)
        raise YamlError(pos, f"YAML syntax error: character {char!r} is not allowed") from None


def load(path: Path) -> Any:
    return loads(path.read_text(encoding="utf-8"), str(path))


def empty_file(path: Path) -> bool:
    """Whether an existing file holds only whitespace: what a file watcher may read between an
    editor truncating a file and writing it again, so reloads refuse it rather than act on it."""
    try:
        return not path.read_bytes().strip()
    except FileNotFoundError:
        return False  # the loader says "no such file" with the key to set
