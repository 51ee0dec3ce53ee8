"""Secrets read from files (`*_file` settings): Kubernetes Secrets, compose secrets, systemd credentials.

A secret in its own file stays out of the configuration file, out of `ps` and out of the environment;
errors name the file, never its content.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from correlator.errors import ConfigError


def read_secret(path: object) -> str:
    """The file's text without surrounding white space (a trailing newline is not part of a token)."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"expected the path of a file holding the secret, got {path!r}")
    try:
        value = Path(path).read_text().strip()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not value:
        raise ValueError(f"{path} is empty")
    return value


def secrets_from_files(settings: Mapping[str, Any], keys: tuple[str, ...], where: str) -> Mapping[str, Any]:
    """`token_file: PATH` -> `token: <its content>` (and so on for each key); either form, not both."""
    if not any(f"{k}_file" in settings for k in keys):
        return settings  # the common case keeps the YAML positions of the original mapping
    out = dict(settings)
    for k in keys:
        name = f"{k}_file"
        if name not in out:
            continue
        if out.get(k) is not None:
            raise ConfigError(f"'{where}.{name}': give either {k} or {name}, not both")
        try:
            out[k] = read_secret(out.pop(name))
        except ValueError as e:
            raise ConfigError(f"'{where}.{name}': {e}") from None
    return out
