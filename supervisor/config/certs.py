"""Certificate files: checking a manual cert/key pair, reading expiry and names, writing 0600 files.

`check_pair` is what `dockyard validate` runs for `tls = "manual"`: a missing or unreadable
file, a file that is not PEM, an encrypted key, or a key that does not match the certificate
is an error naming the file. An expired certificate or a host the certificate does not cover
is a warning (the proxy still serves it).
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.base.files import write_atomic

if TYPE_CHECKING:  # cryptography (~8 MB, ~25 ms) loads where a certificate is read, not at import
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


@dataclass
class PairCheck:
    """Problems found in a cert/key pair: (config key, message) tuples."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def _read(path: str, key: str, check: PairCheck) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        check.errors.append((key, f"{path!r} does not exist"))
    except IsADirectoryError:
        check.errors.append((key, f"{path!r} is a directory, not a PEM file"))
    except OSError as e:
        check.errors.append((key, f"cannot read {path!r}: {e.strerror or e}"))
    return None


def load_cert(data: bytes) -> x509.Certificate:
    """The first (leaf) certificate of a PEM chain; ValueError when there is none."""
    from cryptography import x509

    certs = x509.load_pem_x509_certificates(data)
    if not certs:
        raise ValueError("no certificate found")
    return certs[0]


def cert_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)]


def not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc


def covers(names: list[str], host: str) -> bool:
    """Whether a certificate with these SAN DNS names is valid for `host` (RFC 6125 wildcards)."""
    host = host.lower()
    if host in names:
        return True
    if host.startswith("*."):
        return False
    _, dot, rest = host.partition(".")
    return bool(dot) and f"*.{rest}" in names


def check_pair(cert_path: str, key_path: str, hosts: tuple[str, ...] = ()) -> PairCheck:
    check = PairCheck()
    cert_data = _read(cert_path, "tls_cert", check)
    key_data = _read(key_path, "tls_key", check)
    cert: x509.Certificate | None = None
    key: PrivateKeyTypes | None = None
    if cert_data is not None:
        try:
            cert = load_cert(cert_data)
        except ValueError as e:
            check.errors.append(("tls_cert", f"{cert_path!r} is not a PEM certificate ({e})"))
    from cryptography.hazmat.primitives import serialization

    if key_data is not None:
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except TypeError:
            check.errors.append(("tls_key", f"{key_path!r} is encrypted; dockyard needs an unencrypted key"))
        except Exception as e:  # noqa: BLE001 - cryptography raises several types for junk
            check.errors.append(("tls_key", f"{key_path!r} is not a PEM private key ({e})"))
    if cert is None or key is None:
        return check
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        check.errors.append(("tls_key", f"{key_path!r} does not match the certificate in {cert_path!r}"))
        return check
    refused = listener_refuses(cert_path, key_path)
    if refused:
        check.errors.append(("tls_cert", refused))
        return check
    expires = not_after(cert)
    if expires < dt.datetime.now(dt.UTC):
        check.warnings.append(("tls_cert", f"{cert_path!r} expired on {expires:%Y-%m-%d %H:%M} UTC"))
    names = cert_names(cert)
    missing = [h for h in hosts if not covers(names, h)]
    if missing:
        check.warnings.append(
            ("tls_cert", f"{cert_path!r} does not cover host(s) {', '.join(missing)} (it names {', '.join(names) or 'none'})")
        )
    return check


def listener_refuses(cert_path: str, key_path: str) -> str | None:
    """Why the TLS listener's own SSL context (proxy.tls.make_context, OpenSSL's default security
    level 2) refuses this pair -- e.g. an RSA key under 2048 bits or a SHA-1 signature -- or None."""
    from proxy.tls import make_context

    try:
        make_context(cert_path, key_path)
    except ssl.SSLError as e:
        return (f"{cert_path!r} is refused by OpenSSL at security level 2 (keys of at least 2048 bits "
                f"RSA or 224 bits EC, signatures not SHA-1): {e.reason or e}")
    except (OSError, ValueError) as e:
        return f"{cert_path!r} cannot be loaded: {e}"
    return None


def write_private(path: Path, data: bytes) -> None:
    """Write a file with mode 0600 in a 0700 directory, atomically (never a half-written key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, data, 0o600)
