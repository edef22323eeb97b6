"""A self-signed certificate for trying HTTPS (`fmw tls selfsigned`): a small CA and a server
certificate it signs.

Clients trust ``ca.pem`` (``requests.get(url, verify="ca.pem")``, or the Windows certificate
store); Nginx serves ``server.pem`` with ``server.key``. The CA's private key is never written:
once the server certificate is signed it is thrown away, so trusting ``ca.pem`` trusts this one
server certificate and nothing anyone could sign later. A new certificate is a new CA
(``--force``). For production, use the company CA's certificate instead (README, "HTTPS").
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fmw.errors import ConfigError, FmwError

#: Files written into the output folder, in this order.
CA_CERT, SERVER_CERT, SERVER_KEY = "ca.pem", "server.pem", "server.key"
DEFAULT_DAYS = 365
MAX_DAYS = 3650
#: Clocks of clients and server differ a little; the certificate is valid from a bit earlier.
BACKDATE = timedelta(minutes=5)
_HOST_RE = re.compile(r"^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TlsError(FmwError):
    """A certificate could not be made or written (its context in `path`)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class SelfSigned:
    """What `make_selfsigned` wrote."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    names: tuple[str, ...]
    not_after: datetime


def default_hosts() -> list[str]:
    """This machine's name, localhost and 127.0.0.1."""
    out: list[str] = []
    for name in (socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"):
        if name and name.lower() not in (n.lower() for n in out) and _parse_name(name):
            out.append(name)
    return out


def _parse_name(text: str) -> str | Address | None:
    """An IP address, a DNS name (lower case, no trailing dot), or None when neither."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    return text.rstrip(".").lower() if _HOST_RE.match(text) else None


def plan_files(out_dir: Path) -> tuple[Path, Path, Path]:
    """The paths `make_selfsigned` writes: CA certificate, server certificate, server key."""
    return out_dir / CA_CERT, out_dir / SERVER_CERT, out_dir / SERVER_KEY


def make_selfsigned(out_dir: Path, hosts: Sequence[str] | None = None, *,
                    days: int = DEFAULT_DAYS, force: bool = False,
                    now: datetime | None = None) -> SelfSigned:
    """Make a CA and a server certificate for `hosts` signed by it; write them as PEM.

    Args:
        out_dir: the folder (created if missing).
        hosts: DNS names and IP addresses the server is reached by (default `default_hosts`).
        days: validity of both certificates.
        force: overwrite existing files.
        now: the start of validity (tests).

    Returns:
        The paths written, the names certified and the end of validity.

    Raises:
        ConfigError: a host is neither a DNS name nor an IP address, or `days` is out of range.
        TlsError: a file exists (without `force`) or cannot be written.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = list(hosts) if hosts else default_hosts()
    parsed = []
    for name in names:
        value = _parse_name(name)
        if value is None:
            raise ConfigError(f"--host {name!r} is neither a DNS name nor an IP address")
        if value not in parsed:
            parsed.append(value)
    if not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"--days must be 1-{MAX_DAYS}, got {days}")
    files = plan_files(out_dir)
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise TlsError(out_dir, f"{', '.join(p.name for p in existing)} already there; "
                       "add --force to replace")

    start = (now or datetime.now(UTC)) - BACKDATE
    end = start + BACKDATE + timedelta(days=days)
    first = str(parsed[0])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FMW"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"FMW test CA for {first}"[:64]),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName(v) if isinstance(v, str) else x509.IPAddress(v) for v in parsed]
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first[:64])]))
              .issuer_name(ca_name)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(
                  digital_signature=True, key_cert_sign=False, crl_sign=False,
                  content_commitment=False, key_encipherment=False, data_encipherment=False,
                  key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .add_extension(x509.SubjectAlternativeName(sans), critical=False)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                             critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                  ca_ski), critical=False)
              .sign(ca_key, hashes.SHA256()))

    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    ca_path, cert_path, key_path = files
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(key_path, key_pem, secret=True)
    _write(cert_path, server.public_bytes(pem), secret=False)
    _write(ca_path, ca.public_bytes(pem), secret=False)
    return SelfSigned(ca_path, cert_path, key_path, tuple(str(v) for v in parsed), end)


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    """Write PEM bytes as they are ("\\n" line ends on every OS); a secret is owner-only
    where the OS has modes (on Windows the folder's ACL applies: see README, "HTTPS")."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=0o600 if secret else 0o644, exist_ok=False)
        if secret:
            tmp.chmod(0o600)  # whatever the umask
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TlsError(path, f"cannot write: {exc}") from exc


def toml_lines(made: SelfSigned) -> list[str]:
    """The fmw.toml lines that make `fmw nginx render` serve HTTPS with `made`."""
    return [f"nginx_tls_cert = {_toml_str(made.server_cert)}",
            f"nginx_tls_key = {_toml_str(made.server_key)}"]


def _toml_str(path: Path) -> str:
    text = str(path.resolve())
    if "'" not in text and "\n" not in text:
        return f"'{text}'"  # a literal string: Windows backslashes stay as they are
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
