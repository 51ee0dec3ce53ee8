"""http.tokens_file: API token digests read from a mounted secret, added to http.tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from correlator.api.auth import hash_token, load_tokens
from correlator.errors import ConfigError


def spec(token: str, role: str = "viewer") -> dict[str, str]:
    return {"role": role, "sha256": hash_token(token)}


def test_tokens_from_the_file_add_to_the_inline_ones(tmp_path: Path):
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump({"noc": spec("n-secret", "operator")}))
    auth = load_tokens({"grafana": spec("g-secret")}, path)
    assert [t.name for t in auth.tokens] == ["grafana", "noc"]
    found = auth.identify("Bearer n-secret")
    assert found is not None and found.role == "operator"


def test_errors_name_the_file_and_never_a_token(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"'http.tokens_file': cannot read .*missing.yaml"):
        load_tokens({}, tmp_path / "missing.yaml")
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump({"noc": spec("n-secret")}))
    with pytest.raises(ConfigError, match=r"noc also in http.tokens; name each token once"):
        load_tokens({"noc": spec("other")}, path)
    path.write_text("noc: {role: viewer, sha256: n-secret}\n")
    with pytest.raises(
        ConfigError, match=r"tokens.yaml:1:\d+: 'http.tokens.noc.sha256': expected 64 hex"
    ) as e:
        load_tokens({}, path)
    assert "n-secret" not in str(e.value)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of token name"):
        load_tokens({}, path)
