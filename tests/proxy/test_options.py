"""The new [proxy] keys of issue #17: validated by ProxyOptions, loaded from TOML by field type."""

from __future__ import annotations

import tomllib

import pytest

from proxy import ProxyOptions

try:  # supervisor/ in layers (issue #16)
    from supervisor.config.loader import parse_config
except ImportError:  # the flat layout
    from supervisor.config import parse_config  # type: ignore[no-redef]


def test_new_options_are_validated() -> None:
    bad = ProxyOptions(client_body_timeout=0, send_timeout=-1, tunnel_idle_timeout=0, max_connections=0,
                       max_connections_per_ip=-1, max_response_header_size=0, trusted_proxies=("10.0.0.0/8", "x"))
    assert {k for k, _ in bad.validate()} == {
        "client_body_timeout", "send_timeout", "tunnel_idle_timeout", "max_connections", "max_connections_per_ip",
        "max_response_header_size", "trusted_proxies"}
    assert ProxyOptions().validate() == []


def test_the_config_loader_reads_every_option_by_its_field_type() -> None:
    text = ('[proxy]\ntrusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]\nmax_connections = 100\n'
            'max_connections_per_ip = 0\nclient_body_timeout = 5\nsend_timeout = 1.5\ntunnel_idle_timeout = 30\n'
            'max_response_header_size = 8192\n')
    options = parse_config(tomllib.loads(text), "x.toml").proxy
    assert options == ProxyOptions(trusted_proxies=("10.0.0.0/8", "2001:db8::/32"), max_connections=100,
                                   max_connections_per_ip=0, client_body_timeout=5.0, send_timeout=1.5,
                                   tunnel_idle_timeout=30.0, max_response_header_size=8192)


@pytest.mark.parametrize("text, message", [
    ('trusted_proxies = "10.0.0.0/8"', "must be a list of strings"),
    ('trusted_proxies = ["nope"]', "not an address or CIDR network"),
    ("max_connections = 1.5", "must be an integer"),
    ("send_timeout = 0", "must be a positive number of seconds"),
])
def test_the_config_loader_reports_bad_values(text: str, message: str) -> None:
    with pytest.raises(Exception, match=message):  # ConfigError (not imported: supervisor/ is moving)
        parse_config(tomllib.loads("[proxy]\n" + text + "\n"), "x.toml")


@pytest.mark.parametrize("text, workers, count", [
    ("", "auto", None), ('workers = "auto"', "auto", None), ("workers = 1", 1, 1), ("workers = 0", 0, 0),
    ("workers = 3", 3, 3),
])
def test_workers_is_auto_or_a_count(text: str, workers: object, count: int | None) -> None:
    options = parse_config(tomllib.loads("[proxy]\n" + text + "\n"), "x.toml").proxy
    assert options.workers == workers
    import os
    assert options.worker_count() == (count if count is not None else min(os.cpu_count() or 1, 8))


@pytest.mark.parametrize("text, message", [
    ('workers = "many"', '"auto" or an integer'), ("workers = -1", "must be"), ("workers = 1.5", '"auto" or'),
])
def test_bad_workers_are_reported(text: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        parse_config(tomllib.loads("[proxy]\n" + text + "\n"), "x.toml")
