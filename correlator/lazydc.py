"""Dataclass methods compiled when first used instead of when the class is made.

`@dataclass` writes each method (`__init__`, `__repr__`, `__eq__`, `__hash__`, and a frozen
class's `__setattr__`/`__delattr__`) as source text and compiles it on the spot, about half a
million instructions a method; for a class without a docstring it also writes one from the
signature of `__init__`. That was a quarter of the instructions of a one-event `correlator
replay` at 1,000 rules, which calls no dataclass's `__repr__`, `__eq__` or `__hash__`, only half of
the `__init__`s, and reads no `__doc__`.

Here `dataclasses._create_fn` hands out a stand-in, and the class's `__doc__` is a stand-in too,
for the classes of this project's packages only (`PACKAGES`).
The first look-up of a method through its class or an instance (a call, `Cls.__init__`,
`inspect.signature(Cls)`) compiles dataclasses' very same text, with the same globals and
locals, and puts the function on the class in the stand-in's place: from then on the class is
as dataclasses would have left it. Only `vars(Cls)` shows a stand-in before that. `__repr__` is
the exception: dataclasses wraps it in its recursion guard, which keeps calling the stand-in.

Python 3.13 rewrote that part of `dataclasses`; there, and wherever `_create_fn` and
`_process_class` are not the functions this was written for, nothing is changed.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from types import FunctionType, MethodType
from typing import Any

_CREATE_FN = ["name", "args", "body", "globals", "locals", "return_type"]
_PROCESS_CLASS = ["cls", "init", "repr", "eq", "order", "unsafe_hash", "frozen", "match_args", "kw_only"]
_LAZY = frozenset({"__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"})
_PENDING = "(written on first read)"
# Only these packages' classes: a library's dataclasses (aiohttp's, pysnmp's) are made as
# dataclasses makes them, whatever it imports after this package.
PACKAGES = {"correlator", "collectors"}
_making = [False]  # a class of PACKAGES is being made: its methods wait for their first use

# dataclasses' own functions, for the tests that compare both ways
eager_create_fn: Callable[..., Any] | None = None
eager_process_class: Callable[..., Any] | None = None


class _Method:
    """A generated method not compiled yet: a descriptor, so that the first look-up through the
    class or an instance gets the compiled function and leaves it on the class."""

    __slots__ = ("__name__", "_make", "_real")

    def __init__(self, name: str, make: Callable[[], FunctionType]) -> None:
        self.__name__ = name
        self._make = make
        self._real: FunctionType | None = None

    def compiled(self, owner: type) -> FunctionType:
        real = self._real
        if real is None:
            real = self._real = self._make()
            for cls in owner.__mro__:
                if cls.__dict__.get(self.__name__) is self:
                    real.__qualname__ = f"{cls.__qualname__}.{self.__name__}"  # as dataclasses names it
                    setattr(cls, self.__name__, real)
                    break
        return real

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        real = self.compiled(type(obj) if owner is None else owner)
        return real if obj is None else MethodType(real, obj)

    def __call__(self, obj: object, /, *args: Any, **kwargs: Any) -> Any:
        return self.compiled(type(obj))(obj, *args, **kwargs)


class _Doc:
    """The docstring dataclasses gives a class without one, `Name(field: type = default, ...)`,
    written on its first read."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __get__(self, obj: object, owner: type | None = None) -> str:
        cls = self.cls
        try:  # as dataclasses does it
            text_sig = str(inspect.signature(cls)).replace(" -> None", "")
        except (TypeError, ValueError):
            text_sig = ""
        doc = cls.__name__ + text_sig
        if cls.__dict__.get("__doc__") is self:
            cls.__doc__ = doc
        return doc


def _params(fn: object) -> list[str]:
    if not isinstance(fn, FunctionType):
        return []
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def install() -> bool:
    """Make dataclass methods compile on first use; False (nothing changed) where unsupported."""
    global eager_create_fn, eager_process_class
    if eager_create_fn is not None:
        return True
    create_fn = getattr(dataclasses, "_create_fn", None)
    process_class = getattr(dataclasses, "_process_class", None)
    if (
        sys.version_info >= (3, 13)
        or _params(create_fn) != _CREATE_FN
        or _params(process_class)[: len(_PROCESS_CLASS)] != _PROCESS_CLASS
    ):
        return False
    assert create_fn is not None and process_class is not None
    eager_create_fn, eager_process_class = create_fn, process_class

    def lazy_process_class(cls: type, *args: Any, **kwargs: Any) -> Any:
        if cls.__module__.partition(".")[0] not in PACKAGES:
            return process_class(cls, *args, **kwargs)  # a library's: as dataclasses makes it
        _making[0] = True
        try:
            if cls.__doc__:  # dataclasses' own test
                return process_class(cls, *args, **kwargs)
            cls.__doc__ = _PENDING  # so that dataclasses does not write it now
            try:
                made = process_class(cls, *args, **kwargs)
            finally:
                cls.__doc__ = None
        finally:
            _making[0] = False
        made.__doc__ = _Doc(made)  # `made` is a new class when slots=True
        return made

    def lazy_create_fn(
        name: str,
        args: list[str],
        body: list[str],
        *,
        globals: dict[str, Any] | None = None,
        locals: dict[str, Any] | None = None,
        return_type: Any = dataclasses.MISSING,
    ) -> Any:
        def make() -> FunctionType:
            fn: FunctionType = create_fn(
                name, args, body, globals=globals, locals=locals, return_type=return_type
            )
            return fn

        if name not in _LAZY or not _making[0]:
            return make()
        if name != "__repr__":
            return _Method(name, make)
        # dataclasses wraps this one in its recursion guard, which copies its name and calls it.
        real: FunctionType | None = None

        def stub(self: Any, /) -> Any:
            nonlocal real
            if real is None:
                real = make()
            return real(self)

        stub.__name__ = name
        # pprint looks for "__create_fn__" in it to tell a generated __repr__ from one written by hand.
        stub.__qualname__ = f"__create_fn__.<locals>.{name}"
        return stub

    setattr(dataclasses, "_process_class", lazy_process_class)  # noqa: B010 - not in the stubs
    setattr(dataclasses, "_create_fn", lazy_create_fn)  # noqa: B010
    return True
