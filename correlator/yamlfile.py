"""YAML loading that remembers where every mapping and key came from, for `file:line:col` errors.

Used by the configuration loader and the rule compiler; both report errors against the operator's
own file, so they need positions that plain `yaml.safe_load` throws away. Two loaders give the same
result: a fast one builds the data straight from libyaml's events and keeps the parser's marks,
turned into positions only when asked (a rule set of 10,000 rules loads in a fraction of a second);
the position-recording one reads what the fast one leaves to it, and so reports every error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml


# Treated as immutable, but not frozen: a frozen dataclass is three times slower to make, and loading
# a big rule set makes about twenty per rule.
@dataclass(slots=True, unsafe_hash=True)
class Position:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class _Placed:
    """Where a mapping or list starts: the parser's mark, made a Position on first use."""

    _file = "<string>"
    _mark: Any = None  # the parser's mark, or None
    _position: Position | None = None

    @property
    def position(self) -> Position:
        if self._position is None:
            self._position = _at(self._file, self._mark)
        return self._position

    @position.setter
    def position(self, value: Position) -> None:
        self._position = value


class YamlMap(_Placed, dict[str, Any]):
    """A dict that knows its own position and the position of each key and value.

    The fast loader keeps the parser's marks and makes `Position`s only when one is asked for
    (most never are); the position-recording loader and code building maps by hand set them."""

    _key_marks: dict[str, Any] | None = None
    _value_marks: dict[str, Any] | None = None
    _key_positions: dict[str, Position] | None = None
    _value_positions: dict[str, Position] | None = None
    # False when `loads_bare` made it: it knows where it starts, not where its keys and values are.
    # A plain attribute, not a property: rule loading asks it for every key of every rule.
    placed = True

    @property
    def key_positions(self) -> dict[str, Position]:
        if self._key_positions is None:
            self._key_positions = _positions(self._file, self._key_marks)
        return self._key_positions

    @key_positions.setter
    def key_positions(self, value: dict[str, Position]) -> None:
        self._key_positions = value

    @property
    def value_positions(self) -> dict[str, Position]:
        if self._value_positions is None:
            self._value_positions = _positions(self._file, self._value_marks)
        return self._value_positions

    @value_positions.setter
    def value_positions(self, value: dict[str, Position]) -> None:
        self._value_positions = value

    def where(self, key: str | None = None) -> Position:
        if key is not None and self.placed:
            if self._key_positions is None and self._key_marks is not None:
                mark = self._key_marks.get(key)
                if mark is not None:
                    return _at(self._file, mark)
            elif key in self.key_positions:
                return self.key_positions[key]
        return self.position

    def where_value(self, key: str) -> Position:
        if not self.placed:
            return self.position
        if self._value_positions is None and self._value_marks is not None:
            mark = self._value_marks.get(key)
            return self.where(key) if mark is None else _at(self._file, mark)
        return self.value_positions.get(key) or self.where(key)


class YamlList(_Placed, list[Any]):
    _item_marks: list[Any] | None = None
    _item_positions: list[Position] | None = None

    @property
    def item_positions(self) -> list[Position]:
        if self._item_positions is None:
            f = self._file
            self._item_positions = [_at(f, m) for m in self._item_marks or ()]
        return self._item_positions

    @item_positions.setter
    def item_positions(self, value: list[Position]) -> None:
        self._item_positions = value


def _at(file: str, mark: Any) -> Position:
    if mark is None:
        return Position(file, 1, 1)
    return Position(file, mark.line + 1, mark.column + 1)


def _positions(file: str, marks: dict[str, Any] | None) -> dict[str, Position]:
    return {k: _at(file, m) for k, m in (marks or {}).items()}


class YamlError(Exception):
    def __init__(self, position: Position, message: str) -> None:
        super().__init__(f"{position}: {message}")
        self.position = position
        self.message = message


def _pos(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def loads(text: str, file: str = "<string>") -> Any:
    """Parse YAML text; syntax errors become YamlError with the file, line and column.

    Files are read by the fast loader; one it cannot read exactly (a syntax error, a duplicate key,
    anchors, merge keys, explicit tags) is read again by the position-recording loader, which gives
    the same result for every file and the precise error for a broken one."""
    import yaml

    if _lib().fast:
        try:
            return _fast_load(text, file)
        except (_NotFast, yaml.YAMLError):
            pass
    return _checked_load(text, file)


@dataclass(frozen=True, slots=True)
class _Lib:
    """What the loaders take from PyYAML."""

    # libyaml's parser is ~10x faster than the pure-Python one and reports the same marks; without
    # it (PyYAML built without libyaml) the position-recording loader on the pure-Python parser is
    # used. The fast loader resolves plain scalars by their first character, as SafeLoader does; it
    # stays off if a resolver for any first character (None) was registered.
    fast: bool
    base: type[yaml.SafeLoader]
    constructor: yaml.constructor.SafeConstructor
    # Plain scalars whose first character no implicit resolver claims are strings: most of a rule file.
    resolvers: dict[str | None, list[tuple[str, Any]]]


@functools.cache
def _lib() -> _Lib:
    """PyYAML, imported at the first parse (~20 ms): a replay whose rule files all come from the
    parse cache (rules/parsecache.py) and that reads no other YAML file never loads it."""
    import yaml

    return _Lib(
        fast=bool(getattr(yaml, "__with_libyaml__", False))
        and None not in yaml.SafeLoader.yaml_implicit_resolvers,
        base=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
        constructor=yaml.constructor.SafeConstructor(),
        resolvers=yaml.SafeLoader.yaml_implicit_resolvers,
    )


class _NotFast(Exception):
    """The fast loader met something only the position-recording loader handles exactly."""


_STR = "tag:yaml.org,2002:str"


def _plain(value: str, cache: dict[str, Any], lib: _Lib) -> Any:
    """What an untagged plain scalar means (null, bool, int, float, timestamp or text), as
    SafeLoader resolves it; remembered in `cache` (a file repeats its values)."""
    result: Any = value
    for tag, regexp in lib.resolvers.get(value[:1], ()):
        if regexp.match(value):
            if tag != _STR:
                import yaml

                construct = lib.constructor.yaml_constructors.get(tag)
                if construct is None:
                    raise _NotFast  # e.g. '=': the checked loader gives its error
                try:
                    result = construct(lib.constructor, yaml.ScalarNode(tag, value))
                except ValueError:  # e.g. the date 2027-02-30: the checked loader says where
                    raise _NotFast from None
            break
    cache[value] = result
    return result


def _fast_load(text: str, file: str) -> Any:
    """Build YamlMap/YamlList straight from libyaml's events, keeping marks instead of positions."""
    return _event_load(text, file, marks=True)


class NotBare(Exception):
    """`loads_bare` cannot read this text exactly: read it with `loads`, which says where it is wrong."""


def key_where(node: Any, key: str, default: Position | None) -> Position | None:
    """Where key `key` of `node` is, if `node` is a map that knows (see `loads_bare`), else `default`."""
    return node.where(key) if isinstance(node, YamlMap) and node.placed else default


def value_where(node: Any, key: str, default: Position | None) -> Position | None:
    """Where the value of `key` in `node` is, if `node` is a map that knows, else `default`."""
    return node.where_value(key) if isinstance(node, YamlMap) and node.placed else default


def loads_bare(text: str, file: str = "<string>") -> Any:
    """The values `loads` gives, without positions, the fastest way: mappings and lists are plain
    dicts and lists, except that each mapping in a list under a top-level key (each rule in a rule
    file) is a YamlMap that knows where it starts, and nothing finer. For files known to be right
    (or to be read again with `loads` at the first error). Raises NotBare for whatever `loads`
    would have to read with its position-recording loader (syntax errors included)."""
    import yaml

    if not _lib().fast:
        raise NotBare
    try:
        return _event_load(text, file, marks=False)
    except (_NotFast, yaml.YAMLError):
        raise NotBare from None


def _event_load(text: str, file: str, marks: bool) -> Any:
    """The data, straight from libyaml's events. `marks`: every mapping and list a YamlMap/YamlList
    keeping the parser's marks (`_fast_load`); else plain dicts and lists, except that each mapping
    in a list under a top-level key is a YamlMap knowing only where it starts (`loads_bare`)."""
    import yaml

    lib = _lib()
    ev_scalar, ev_map, ev_seq = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
    ev_map_end, ev_seq_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    ev_doc, ev_doc_end = yaml.DocumentStartEvent, yaml.DocumentEndEvent
    ev_stream, ev_stream_end = yaml.StreamStartEvent, yaml.StreamEndEvent
    parser = yaml.CSafeLoader(text)
    get: Callable[[], Any] = parser.get_event
    cache: dict[str, Any] = {}
    nokey = _NotFast  # sentinel: no key read yet
    # The open container and its state are locals (the hot loop reads them on every event); the
    # enclosing ones wait in `stack` as (container, is a list, key awaiting its value, key marks
    # (a list: the item marks), value marks), with `marks` only.
    cur: Any = None
    is_list = False
    key: Any = nokey
    key_marks: Any = None
    value_marks: Any = None
    stack: list[tuple[Any, bool, Any, Any, Any]] = []
    root: Any = None
    docs = 0
    try:
        while True:
            ev = get()
            cls = ev.__class__
            if cls is ev_scalar:
                if ev.anchor is not None or ev.tag is not None:
                    raise _NotFast
                implicit = ev.implicit
                value: Any = ev.value
                if implicit[0]:
                    found = cache.get(value, nokey)
                    value = _plain(value, cache, lib) if found is nokey else found
                elif not implicit[1]:
                    raise _NotFast
                if cur is None:
                    root = value
                elif is_list:
                    cur.append(value)
                    if marks:
                        key_marks.append(ev.start_mark)
                elif key is nokey:
                    if not isinstance(value, str):
                        value = str(value)
                    if value in cur or value == "<<":
                        raise _NotFast  # duplicate or merge key: the checked loader says
                    key = value
                    if marks:
                        key_marks[value] = ev.start_mark
                else:
                    cur[key] = value
                    if marks:
                        value_marks[key] = ev.start_mark
                    key = nokey
            elif cls is ev_map or cls is ev_seq:
                if ev.anchor is not None or ev.tag is not None:
                    raise _NotFast
                new_list = cls is ev_seq
                new: Any
                new_keys: Any = None
                new_values: Any = None
                if marks:
                    if new_list:
                        new = YamlList()
                        new._item_marks = new_keys = []
                    else:
                        new = YamlMap()
                        new._key_marks = new_keys = {}
                        new._value_marks = new_values = {}
                    new._file = file
                    new._mark = ev.start_mark
                elif new_list:
                    new = []
                elif is_list and len(stack) == 2 and not stack[1][1]:
                    new = YamlMap()  # an item of a list under a top-level key: it knows where it starts
                    new._file = file
                    new._mark = ev.start_mark
                    new.placed = False
                else:
                    new = {}
                if cur is None:
                    root = new
                elif is_list:
                    cur.append(new)
                    if marks:
                        key_marks.append(ev.start_mark)
                elif key is nokey:
                    raise _NotFast  # a mapping or list as a key
                else:
                    cur[key] = new
                    if marks:
                        value_marks[key] = ev.start_mark
                    key = nokey
                stack.append((cur, is_list, key, key_marks, value_marks))
                cur, is_list, key, key_marks, value_marks = new, new_list, nokey, new_keys, new_values
            elif cls is ev_map_end or cls is ev_seq_end:
                cur, is_list, key, key_marks, value_marks = stack.pop()
            elif cls is ev_doc:
                docs += 1
                if docs > 1:
                    raise _NotFast  # the checked loader says "expected a single document"
            elif cls is ev_stream_end:
                return root
            elif cls is not ev_doc_end and cls is not ev_stream:
                raise _NotFast  # an alias
    finally:
        parser.dispose()


def _checked_load(text: str, file: str) -> Any:
    import yaml

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


def _make_loader(file: str) -> type[yaml.SafeLoader]:
    import yaml

    class Loader(_lib().base):  # type: ignore[misc]
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

    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return yaml.SafeLoader.construct_yaml_int(loader, node)
        except ValueError:  # Python's int() takes at most 4,300 decimal digits
            digits = sum(c.isdigit() for c in node.value)
            raise YamlError(_pos(file, node), f"integer of {digits} digits is too large") from None

    Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_timestamp)
    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_map)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_seq)
    return Loader


def load(path: Path) -> Any:
    return loads(path.read_text(encoding="utf-8"), str(path))


def empty_file(path: Path) -> bool:
    """Whether an existing file holds only whitespace: what a file watcher may read between an
    editor truncating a file and writing it again, so reloads refuse it rather than act on it."""
    try:
        return not path.read_bytes().strip()
    except FileNotFoundError:
        return False  # the loader says "no such file" with the key to set
