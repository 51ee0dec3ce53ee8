"""Safe string templates such as "{host}:{attributes.ifDescr}": parsed once, rendered by joining parts.

No eval, no format-spec mini-language: a placeholder is a field path with an optional default after
`|` (`{attributes.site|unknown}`); `{{` and `}}` are literal braces. Used by `set`, `rename`, keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from correlator.event import Event
from correlator.rules.errors import RuleError
from correlator.rules.fields import PLAIN_TEXT_FIELDS, compile_field
from correlator.yamlfile import Position

Template = Callable[[Event], str]


Part = str | tuple[str, "list[Part] | None"]


def parse_template(text: str, where: Position | None = None) -> list[Part]:
    """Split a template into literal strings and (field path, default parts) placeholders.

    A default may itself hold placeholders: "{attributes.ifDescr|{attributes.ifIndex|?}}".
    """
    if not isinstance(text, str):
        raise RuleError(where, f"a template must be a string, got {text!r}")
    if "{" not in text and "}" not in text:
        return [text] if text else []  # plain text, as the loop below finds it
    simple = _simple_parts(text)
    return _parse_parts(text, where) if simple is None else simple


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")  # one without braces inside


def _simple_parts(text: str) -> list[Part] | None:
    """`_parse_parts(text)` by one regular expression, for a text whose placeholders hold no
    braces and that escapes none (most templates: 'cpu high on {host}'); None for any other (a
    brace left in the literal text), and for an empty placeholder, whose error `_parse_parts` words."""
    parts: list[Part] = []
    pieces = _PLACEHOLDER.split(text)  # literal, placeholder, literal, ...
    last = len(pieces) - 1
    for i in range(0, last, 2):
        literal = pieces[i]
        if literal:
            if "{" in literal or "}" in literal:
                return None
            parts.append(literal)
        path, bar, default = pieces[i + 1].partition("|")
        path = path.strip()
        if not path:
            return None
        parts.append((path, ([default] if default else []) if bar else None))
    literal = pieces[last]
    if literal:
        if "{" in literal or "}" in literal:
            return None
        parts.append(literal)
    return parts


def _parse_parts(text: str, where: Position | None) -> list[Part]:
    """The general case of `parse_template`: escaped and nested braces, and every error."""
    parts: list[Part] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        brace = _BRACE.search(text, i)
        if brace is None:
            literal.append(text[i:])
            break
        j = brace.start()
        if j > i:
            literal.append(text[i:j])
        i = j
        c = text[i]
        if c == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif c == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif c == "{":
            end = _closing(text, i)
            if end < 0:
                raise RuleError(where, f"template {text!r}: '{{' at offset {i} is never closed (use '{{{{')")
            path, bar, default = text[i + 1 : end].partition("|")
            if not path.strip():
                raise RuleError(where, f"template {text!r}: empty placeholder '{{}}'; name a field")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append((path.strip(), parse_template(default, where) if bar else None))
            i = end + 1
        else:
            raise RuleError(where, f"template {text!r}: unmatched '}}' at offset {i} (use '}}}}')")
    if literal:
        parts.append("".join(literal))
    return parts


_BRACE = re.compile("[{}]")


def _closing(text: str, start: int) -> int:
    end = text.find("}", start + 1)
    if end >= 0 and text.find("{", start + 1, end) < 0:
        return end  # no nested placeholder: the first '}' closes it, found without a loop in Python
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def template_fields(text: str, where: Position | None = None) -> list[str]:
    return _fields(parse_template(text, where))


def _fields(parts: list[Part]) -> list[str]:
    out: list[str] = []
    for p in parts:
        if isinstance(p, tuple):
            out.append(p[0])
            out.extend(_fields(p[1] or []))
    return out


def compile_template(text: str, where: Position | None = None) -> Template:
    """Compile to `render(event) -> str`. Missing fields render as their default, or '' without one.

    Raises RuleError (with `where`) for syntax errors and unknown field names.
    """
    # Renders hold no state: rules with the same text (a shared message or key) share one.
    found = _TEMPLATES.get(text) if isinstance(text, str) else None
    if found is None:
        found = _compile_parts(parse_template(text, where), where)
        if len(_TEMPLATES) >= _TEMPLATES_KEPT:
            _TEMPLATES.clear()
        _TEMPLATES[text] = found
    return found


_TEMPLATES: dict[str, Template] = {}
_TEMPLATES_KEPT = 10_000


def _compile_parts(parts: list[Part], where: Position | None) -> Template:
    """One `%` formatting per render: the literal text is in the format, the placeholders fill it."""
    renders = []
    pieces = []
    for p in parts:
        if isinstance(p, str):
            pieces.append(p.replace("%", "%%"))
        else:
            renders.append(_part(p, where))
            pieces.append("%s")
    if not renders:
        text = "".join(parts)  # type: ignore[arg-type]  # all literal
        return lambda ev: text
    fmt = "".join(pieces)
    if fmt == "%s":
        return renders[0]
    if len(renders) == 1:
        (a,) = renders
        return lambda ev: fmt % a(ev)
    if len(renders) == 2:
        a, b = renders
        return lambda ev: fmt % (a(ev), b(ev))
    if len(renders) == 3:
        a, b, c = renders
        return lambda ev: fmt % (a(ev), b(ev), c(ev))
    return lambda ev: fmt % tuple([r(ev) for r in renders])


def compile_value(text: str, where: Position | None = None) -> Callable[[Event], Any]:
    """Like compile_template, but a template that is exactly one placeholder ("{attributes.cpu}")
    yields the field's own value (a number stays a number; missing gives the default or None)."""
    return _value_parts(parse_template(text, where), where)


def _value_parts(parts: list[Part], where: Position | None) -> Callable[[Event], Any]:
    if len(parts) == 1 and isinstance(parts[0], tuple):
        path, default_parts = parts[0]
        get = compile_field(path, where)
        if default_parts is None:
            return get
        default = _value_parts(default_parts, where)

        def value_or_default(ev: Event) -> Any:
            v = get(ev)
            return default(ev) if v is None or v == "" else v

        return value_or_default
    return _compile_parts(parts, where)


def _part(part: Part, where: Position | None) -> Template:
    if isinstance(part, str):
        return lambda ev: part
    path, default_parts = part
    get = compile_field(path, where)
    if default_parts is None and path in PLAIN_TEXT_FIELDS:
        return get  # always text, and '' renders as '' (the fallback without a default)
    fallback = _compile_parts(default_parts, where) if default_parts else (lambda ev: "")
    # A default without placeholders ('{attributes.labels.category|application}') is its text:
    # no call per event that takes it.
    literal = all(isinstance(p, str) for p in default_parts or ())
    constant = "".join(p for p in default_parts or () if isinstance(p, str)) if literal else None

    names = path.split(".")
    if constant is not None and names[0] == "attributes" and len(names) == 3:
        # `{attributes.labels.category|application}`: the getter's read done here, a call less
        k1, k2 = names[1], names[2]

        def render_nested(ev: Event) -> str:
            v = ev.attributes.get(k1)
            v = v.get(k2) if isinstance(v, dict) else None
            if v is None or v == "":
                return text
            return v if isinstance(v, str) else _text(v)

        text = constant
        return render_nested

    def render(ev: Event) -> str:
        v = get(ev)
        if v is None or v == "":
            return constant if constant is not None else fallback(ev)
        return v if isinstance(v, str) else _text(v)

    return render


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
