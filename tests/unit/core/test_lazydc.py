"""Dataclass methods compiled on first use (correlator/lazydc.py) behave as dataclasses' own."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pprint
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import correlator  # noqa: F401 - installs it
from correlator import lazydc

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 13), reason="left as is from Python 3.13")


@contextmanager
def eager() -> Iterator[None]:
    """dataclasses' own functions while the block runs."""
    lazy = dataclasses._create_fn, dataclasses._process_class  # type: ignore[attr-defined]
    dataclasses._create_fn = lazydc.eager_create_fn  # type: ignore[attr-defined]
    dataclasses._process_class = lazydc.eager_process_class  # type: ignore[attr-defined]
    try:
        yield
    finally:
        dataclasses._create_fn, dataclasses._process_class = lazy  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _classes_made_here_are_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazydc, "PACKAGES", {*lazydc.PACKAGES, __name__.partition(".")[0]})


def test_a_librarys_dataclasses_are_made_as_dataclasses_makes_them() -> None:
    lib = dataclasses.make_dataclass("Lib", ["x"], namespace={"__module__": "somelib.models"}, frozen=True)
    ours = dataclasses.make_dataclass("Ours", ["x"], namespace={"__module__": "correlator.x"}, frozen=True)
    assert all(inspect.isfunction(vars(lib)[m]) for m in ("__init__", "__eq__", "__hash__", "__setattr__"))
    assert "__doc__" in vars(lib) and isinstance(vars(lib)["__doc__"], str)
    assert isinstance(vars(ours)["__init__"], lazydc._Method)
    assert lib(1) == lib(1) and ours(1) == ours(1) and repr(lib(1)).endswith("Lib(x=1)")


def test_it_is_installed_on_this_python() -> None:
    assert lazydc.install()
    assert lazydc.eager_create_fn is not None
    assert dataclasses._create_fn is not lazydc.eager_create_fn  # type: ignore[attr-defined]


def outcome(f: Callable[[], Any]) -> Any:
    try:
        return ("ok", f())
    except Exception as e:
        return ("raised", type(e).__name__, str(e))


def shown(text: str) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", text)  # object.__repr__ of the two classes' objects


def observe(cls: type, values: list[list[Any]]) -> list[Any]:
    """What a program can see of `cls` and its instances, first before any method ran."""
    seen: list[Any] = [
        cls.__doc__,
        str(inspect.signature(cls)),
        [getattr(cls, m).__qualname__ for m in ("__init__", "__repr__", "__eq__") if m in vars(cls)],
        cls.__hash__ is None,
        getattr(cls, "__match_args__", None),
        [f.name for f in dataclasses.fields(cls)],
    ]
    objs = []
    for v in values:
        made = outcome(lambda v=v: cls(*v))  # type: ignore[misc]
        seen.append(made[:1] + made[2:] if made[0] == "raised" else "made")
        if made[0] == "ok":
            objs.append(made[1])
    for a in objs:
        seen.append(outcome(lambda a=a: shown(repr(a))))
        seen.append(outcome(lambda a=a: shown(pprint.pformat(a, width=20))))
        identity = type(a).__hash__ is object.__hash__
        seen.append("identity" if identity else outcome(lambda a=a: hash(a)))
        seen.append(outcome(lambda a=a: setattr(a, "f0", 9)))
        seen.append(outcome(lambda a=a: delattr(a, "f0")))
        seen.append(outcome(lambda a=a: shown(repr(a))))
        seen.append(outcome(lambda a=a: shown(repr(copy.copy(a)))))
        seen.append(outcome(lambda a=a: shown(repr(dataclasses.replace(a)))))
        for b in objs:
            seen.append(outcome(lambda a=a, b=b: a == b))
            seen.append(outcome(lambda a=a, b=b: a != b))
            seen.append(outcome(lambda a=a, b=b: a < b))
            seen.append(outcome(lambda a=a, b=b: a >= b))
    return seen


shapes = st.fixed_dictionaries(
    {
        "n": st.integers(0, 4),
        "defaults": st.integers(0, 4),
        "factory": st.booleans(),
        "doc": st.booleans(),
        "post_init": st.booleans(),
        "base": st.booleans(),
        "flags": st.fixed_dictionaries(
            {
                "init": st.booleans(),
                "repr": st.booleans(),
                "eq": st.booleans(),
                "order": st.booleans(),
                "unsafe_hash": st.booleans(),
                "frozen": st.booleans(),
                "slots": st.booleans(),
                "kw_only": st.booleans(),
                "match_args": st.booleans(),
            }
        ),
    }
)


def build(shape: dict[str, Any]) -> type:
    flags = dict(shape["flags"])
    if flags["order"]:
        flags["eq"] = True
    n = shape["n"]
    fields: list[Any] = []
    for i in range(n):
        if i >= n - shape["defaults"]:
            if shape["factory"] and i == n - 1:
                fields.append((f"f{i}", "list[int]", dataclasses.field(default_factory=list)))
            else:
                fields.append((f"f{i}", int, dataclasses.field(default=i)))
        else:
            fields.append((f"f{i}", int))
    # This module's, as a class written here would be (make_dataclass says `types` on 3.11):
    # the classes of the project's packages and of this module are the lazy ones.
    namespace: dict[str, Any] = {"__module__": __name__}
    if shape["doc"]:
        namespace["__doc__"] = "Written by hand."
    if shape["post_init"]:
        namespace["__post_init__"] = lambda self: None
    bases: tuple[type, ...] = ()
    if shape["base"]:
        here = {"__module__": __name__}
        bases = (
            dataclasses.make_dataclass("Base", [("b", int, dataclasses.field(default=7))], namespace=here),
        )
        if flags["frozen"]:
            bases = (dataclasses.make_dataclass("Base", [("b", int, 7)], frozen=True, namespace=here),)
    return dataclasses.make_dataclass("Made", fields, bases=bases, namespace=namespace, **flags)


@settings(max_examples=150, deadline=None)
@given(shapes, st.lists(st.lists(st.integers(0, 3), max_size=5), min_size=1, max_size=3))
def test_a_class_behaves_as_dataclasses_makes_it(shape: dict[str, Any], values: list[list[Any]]) -> None:
    lazy = outcome(lambda: build(shape))
    with eager():
        plain = outcome(lambda: build(shape))
    assert lazy[0] == plain[0]
    if lazy[0] == "raised":
        assert lazy == plain
        return
    if shape["flags"]["init"]:  # made lazily indeed, not compared eager against eager
        assert isinstance(vars(lazy[1])["__init__"], lazydc._Method)
    assert observe(lazy[1], values) == observe(plain[1], values)


def test_methods_compile_on_first_use_and_take_the_stand_ins_place() -> None:
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0

    assert isinstance(vars(Point)["__init__"], lazydc._Method)
    assert isinstance(vars(Point)["__doc__"], lazydc._Doc)
    p = Point(1)
    assert inspect.isfunction(vars(Point)["__init__"])
    assert (
        Point.__init__.__qualname__
        == "test_methods_compile_on_first_use_and_take_the_stand_ins_place.<locals>.Point.__init__"
    )
    assert isinstance(vars(Point)["__eq__"], lazydc._Method)
    assert p == Point(1, 0) and hash(p) == hash((1, 0))
    assert inspect.isfunction(vars(Point)["__eq__"]) and inspect.isfunction(vars(Point)["__hash__"])
    assert Point.__doc__ == "Point(x: 'int', y: 'int' = 0)"
    assert vars(Point)["__doc__"] == Point.__doc__


def subclass_and_recursion() -> list[Any]:
    @dataclasses.dataclass
    class Node:
        name: str
        children: list[Any] = dataclasses.field(default_factory=list)

    class Named(Node):
        def __init__(self) -> None:
            super().__init__("n")

    n = Named()
    n.children.append(n)
    return [
        repr(n),
        pprint.pformat(Node("a", [Node("b")]), width=10),
        Node.__doc__,
        Node.__init__.__qualname__,
        Node.__repr__.__qualname__,
        Node.__repr__.__wrapped__.__qualname__,  # type: ignore[attr-defined]
        inspect.isfunction(vars(Node)["__init__"]),
        "__init__" in vars(Named),
    ]


def test_a_subclass_initialising_through_super_and_a_recursive_repr() -> None:
    lazy = subclass_and_recursion()
    with eager():
        plain = subclass_and_recursion()
    assert lazy == plain
    assert "[...]" in lazy[0]
