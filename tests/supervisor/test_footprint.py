"""What the supervisor's process does not load until it needs it (issue #19: memory, and the
CPU a takeover's new daemon spends importing while the workers serve)."""

from __future__ import annotations

from tests.proxy.test_footprint import loaded_after

DATA_PLANE = ("proxy.proxy", "proxy.server", "proxy.exchange", "proxy.upstream", "httptools")
ACME = ("supervisor.tls.acme", "acme", "josepy", "cryptography", "OpenSSL")


def test_a_supervisor_with_workers_does_not_load_the_data_plane() -> None:
    loaded = loaded_after("import supervisor.daemon.daemon")
    assert "supervisor.daemon.dataplane.pool" in loaded
    assert sorted(loaded & set(DATA_PLANE)) == []


def test_a_supervisor_loads_the_acme_client_and_cryptography_only_for_certificates() -> None:
    loaded = loaded_after("import supervisor.daemon.daemon")
    assert "supervisor.tls.service" in loaded
    assert sorted(loaded & set(ACME)) == []
    # checking a certificate pair loads cryptography (here: two missing files, two errors)
    assert "cryptography" in loaded_after("from supervisor.config.certs import check_pair; "
                                          "assert len(check_pair('/nonexistent.crt', '/nonexistent.key').errors) == 2")
    assert "acme" in loaded_after("import supervisor.tls.acme")
