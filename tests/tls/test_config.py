"""The TLS keys of the config: parsing, and manual certificate files checked at load time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme

from supervisor.config.loader import parse_config
from supervisor.model.errors import ConfigError

from .utils import write_pair


def load(tmp: Path, app: dict[str, Any], **server: Any) -> Any:
    data = {"server": {"tls_listen": "127.0.0.1:8443", **server},
            "apps": {"web": {"image": "x", "hosts": ["a.test"], **app}}}
    return parse_config(data, tmp / "dockyard.toml")


def problems(tmp: Path, app: dict[str, Any], **server: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp, app, **server)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str]:
    return write_pair(trustme.CA(), tmp_path, "a", "a.test")


def test_defaults_and_manual_pair(tmp_path: Path, pair) -> None:
    config = load(tmp_path, {"tls": "manual", "tls_cert": "a.crt", "tls_key": "a.key", "tls_redirect": True,
                             "hsts": True})
    app = config.apps["web"]
    assert (app.tls, app.tls_cert, app.tls_key) == ("manual", pair[0], pair[1])  # relative to the config
    assert app.tls_redirect and app.hsts == 31536000
    assert config.server.tls_listen == "127.0.0.1:8443"
    assert config.server.acme_directory == "https://acme-v02.api.letsencrypt.org/directory"
    assert config.server.acme_renew_days == 30
    plain = parse_config({"apps": {"web": {"image": "x"}}}, tmp_path / "d.toml")
    assert plain.apps["web"].tls == "off" and plain.server.tls_listen is None


def test_missing_cert_and_key_name_the_file(tmp_path: Path) -> None:
    found = problems(tmp_path, {"tls": "manual", "tls_cert": "nope.crt", "tls_key": "nope.key"})
    assert any("apps.web.tls_cert" in p and "nope.crt" in p and "does not exist" in p for p in found)
    assert any("apps.web.tls_key" in p and "nope.key" in p for p in found)
    assert all(p.startswith(str(tmp_path / "dockyard.toml")) for p in found)


def test_key_not_matching_its_cert(tmp_path: Path, pair) -> None:
    write_pair(trustme.CA(), tmp_path, "b", "a.test")
    found = problems(tmp_path, {"tls": "manual", "tls_cert": "a.crt", "tls_key": "b.key"})
    assert len(found) == 1 and "apps.web.tls_key" in found[0] and "does not match" in found[0]
    assert str(tmp_path / "b.key") in found[0] and str(tmp_path / "a.crt") in found[0]


def test_junk_and_directories(tmp_path: Path, pair) -> None:
    (tmp_path / "junk.pem").write_text("hello")
    found = problems(tmp_path, {"tls": "manual", "tls_cert": "junk.pem", "tls_key": "."})
    assert any("apps.web.tls_cert" in p and "not a PEM certificate" in p for p in found)
    assert any("apps.web.tls_key" in p and "is a directory" in p for p in found)


def test_host_not_covered_is_a_warning(tmp_path: Path, pair) -> None:
    config = load(tmp_path, {"tls": "manual", "tls_cert": "a.crt", "tls_key": "a.key", "hosts": ["b.test"]})
    assert any("does not cover host(s) b.test" in w for w in config.warnings)


def test_bad_combinations(tmp_path: Path) -> None:
    found = problems(tmp_path, {"tls": "acme", "hosts": ["*.a.test"], "tls_cert": "x", "hsts": "yes"},
                     acme_email="nobody", acme_renew_days=0, acme_directory="ftp://x")
    text = "\n".join(found)
    for needle in ("apps.web.tls: \"acme\" cannot get a certificate for the wildcard",
                   "apps.web.tls_cert: is only used with tls = \"manual\"",
                   "apps.web.hsts: must be true, false or a max-age",
                   "server.acme_email: must be an email address",
                   "server.acme_renew_days: must be an integer 1-365",
                   "server.acme_directory: must be an http(s) URL"):
        assert needle in text, text
    found = problems(tmp_path, {"tls": "manual"}, tls_listen="nowhere")
    assert any("server.tls_listen" in p for p in found)
    assert any("apps.web.tls_cert: is required" in p for p in found)
    data = {"apps": {"web": {"image": "x", "hosts": ["a.test"], "tls": "acme"},
                     "w2": {"image": "x", "hosts": ["b.test"], "tls_redirect": True, "tls": "bogus"}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path / "d.toml")
    text = "\n".join(str(p) for p in info.value.problems)
    assert "apps.web.tls: tls = \"acme\" needs [server] tls_listen" in text
    assert "apps.w2.tls: must be one of off, manual, acme" in text
    assert "apps.w2.tls_redirect: needs tls = \"manual\" or \"acme\"" in text
