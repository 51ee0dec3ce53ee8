"""The API clients' options: before or after the action, and where the daemon is found."""

from __future__ import annotations

import pytest

from correlator.cli import build_parser
from correlator.commands.api_client import _connection


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    for name in ("CORRELATOR_URL", "CORRELATOR_TOKEN", "CORRELATOR_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_options_before_and_after_the_action_are_the_same():
    before = parse("incidents", "--url", "http://h:1", "--token", "t", "--json", "list", "--host", "a")
    after = parse("incidents", "list", "--host", "a", "--url", "http://h:1", "--token", "t", "--json")
    for args in (before, after):
        assert (args.url, args.token, args.json, args.host) == ("http://h:1", "t", True, "a")
    # given at one level only, it is not erased by the other's absence
    assert parse("changes", "--url", "http://x:2", "list").url == "http://x:2"
    assert parse("problems", "list", "--url", "http://x:3").url == "http://x:3"


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("'[::]:9001'", "http://[::1]:9001"),
        ("10.1.2.3:9002", "http://10.1.2.3:9002"),
    ],
)
def test_the_url_comes_from_http_listen_of_the_configuration(tmp_path, monkeypatch, listen, url):
    (tmp_path / "correlator.yaml").write_text(f"http:\n  listen: {listen}\n")
    monkeypatch.chdir(tmp_path)
    assert _connection(parse("incidents", "list")) == (url, None)
    monkeypatch.setenv("CORRELATOR_URL", "http://env:1/")
    assert _connection(parse("incidents", "list"))[0] == "http://env:1"  # the environment wins
    assert _connection(parse("incidents", "list", "--url", "http://flag:2"))[0] == "http://flag:2"


def test_without_configuration_the_default_and_the_token_from_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tok").write_text("s3cret\n")
    assert _connection(parse("events", "--token-file", "tok")) == ("http://127.0.0.1:8080", "s3cret")
