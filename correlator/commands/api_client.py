"""What the API clients (`incidents`, `events`, `changes`, `problems`, `known-errors`) share: the
options, where the daemon is, the HTTP call and its errors.

The options are accepted before and after the action (`correlator incidents --url U list` and
`correlator incidents list --url U`). The daemon's URL is --url, else $CORRELATOR_URL, else
`http.listen` of --config or ./correlator.yaml, else http://127.0.0.1:8080; the token is --token,
else $CORRELATOR_TOKEN, else the first line of --token-file or $CORRELATOR_TOKEN_FILE.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from correlator.commands.run import default_config_path  # the daemon's rule for ./correlator.yaml
from correlator.config import load_config
from correlator.errors import CorrelatorError

DEFAULT_URL = "http://127.0.0.1:8080"

__all__ = ["ApiError", "Unreachable", "call", "client_options", "out", "run", "share_options"]


class ApiError(CorrelatorError):
    """The daemon answered with an error (4xx/5xx)."""


class Unreachable(CorrelatorError):
    """No answer from the daemon (refused, timed out, not HTTP)."""


def client_options(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: an option absent at one level must not erase the value given at the other.
    s = argparse.SUPPRESS
    p.add_argument(
        "--url", default=s, help="daemon URL (default: $CORRELATOR_URL, else http.listen of the config)"
    )
    p.add_argument("--config", type=Path, default=s, help="configuration file to read http.listen from")
    p.add_argument("--token", default=s, help="API token (default: $CORRELATOR_TOKEN)")
    p.add_argument(
        "--token-file", type=Path, default=s, help="file holding the API token ($CORRELATOR_TOKEN_FILE)"
    )
    p.add_argument("--json", action="store_true", default=s, help="print the API's JSON answer")


def share_options(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Accept the client options after the action as well (`correlator incidents list --url URL`)."""
    for parser in set(actions.choices.values()):
        client_options(parser)


def run(prog: str, args: argparse.Namespace, body: Callable[[], None]) -> int:
    try:
        body()
    except ApiError as e:
        print(f"correlator {prog}: {e}", file=sys.stderr)
        return 1
    except Unreachable as e:
        print(f"correlator {prog}: {e}", file=sys.stderr)
        return 2
    return 0


def call(
    args: argparse.Namespace, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
) -> Any:
    base, token = _connection(args)
    url = base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = orjson.dumps(body)
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http(s) URL
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            message = orjson.loads(e.read()).get("error", "")
        except (orjson.JSONDecodeError, AttributeError):
            message = ""
        raise ApiError(f"HTTP {e.code}: {message or e.reason}") from None
    except urllib.error.URLError as e:
        reason = getattr(e.reason, "strerror", None) or e.reason
        raise Unreachable(f"cannot reach {base}: {reason}") from None
    except (OSError, orjson.JSONDecodeError, ValueError) as e:
        raise Unreachable(f"cannot reach {base}: {e}") from None


def out(args: argparse.Namespace, doc: Any, human: Callable[[Any], None]) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        human(doc)


def print_log(entries: list[dict[str, Any]]) -> None:
    print("log:")
    for e in entries:
        detail = " ".join(f"{k}={v}" for k, v in e["detail"].items())
        print(f"  {e['at'][:19]}  {e['actor']:<16} {e['action']:<14} {detail}")


def quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


def _connection(args: argparse.Namespace) -> tuple[str, str | None]:
    url = getattr(args, "url", None) or os.environ.get("CORRELATOR_URL") or _url_from_config(args)
    token = getattr(args, "token", None) or os.environ.get("CORRELATOR_TOKEN")
    if not token:
        token_file = getattr(args, "token_file", None) or os.environ.get("CORRELATOR_TOKEN_FILE")
        if token_file:
            try:
                token = Path(token_file).read_text().strip().splitlines()[0]
            except (OSError, IndexError) as e:
                raise ApiError(f"--token-file {token_file}: cannot read a token from it: {e}") from None
    return url.rstrip("/"), token


def _url_from_config(args: argparse.Namespace) -> str:
    path = default_config_path(getattr(args, "config", None))
    if path is None:
        return DEFAULT_URL
    host, port = load_config(path).http.listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # listening everywhere
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
