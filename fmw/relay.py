"""The explorer's word for "this dev call is for the person at address A", which the API
trusts only from the explorer's own process.

The explorer's Dev page calls the dev API from the Streamlit server, i.e. from 127.0.0.1.
Without more, the API would see an admin address and the person behind it would get the
server's rights, its rate limit and its address in the audit log. So each such call carries
``FMW-On-Behalf-Of: <address>`` and ``FMW-Relay: <unix time>.<HMAC-SHA256>`` over the time,
the address, the method and the path with its query, keyed with a secret both processes read
from ``<data_dir>/secrets/relay.key`` (made on first use, readable by the service account
only). The API checks the signature and its age (at most `MAX_AGE_S`), and then checks,
rate-limits and audits the person's address, not the explorer's. A call with a bad or old
signature is refused; a call without the headers is judged by its own peer address as ever.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

ON_BEHALF_OF = "FMW-On-Behalf-Of"
SIGNATURE = "FMW-Relay"
MAX_AGE_S = 60.0
KEY_BYTES = 32


class RelayRefused(ValueError):
    """The relay headers are present but not to be trusted (says why)."""


def key_path(data_dir: Path) -> Path:
    return data_dir / "secrets" / "relay.key"


def load_key(data_dir: Path) -> bytes:
    """The shared key, made (atomically, owner-only) when it does not exist yet."""
    path = key_path(data_dir)
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"relay.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's key
    except FileExistsError:
        pass
    except OSError:  # no hard links (some shares): a plain rename, still never half-written
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def _mac(key: bytes, stamp: str, client: str, method: str, target: str) -> str:
    text = "\n".join((stamp, client, method.upper(), target))
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(key: bytes, client: str, method: str, target: str,
         now: float | None = None) -> dict[str, str]:
    """The headers for one call to `target` (path and query, as sent) for `client`."""
    stamp = str(int(now if now is not None else time.time()))
    return {ON_BEHALF_OF: client, SIGNATURE: f"{stamp}.{_mac(key, stamp, client, method, target)}"}


@dataclass(frozen=True)
class Relayed:
    client: str
    via: str


def verify(key: bytes, peer: str, client: str, signature: str, method: str, target: str,
           now: float | None = None) -> Relayed:
    """The person's address when the headers are genuine.

    Raises:
        RelayRefused: not from this machine, malformed, too old, or a wrong signature.
    """
    try:
        loopback = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise RelayRefused("only the explorer on this machine may relay a call")
    try:
        address = str(ipaddress.ip_address(client.strip()))
    except ValueError:
        raise RelayRefused("the relayed address is not an IP address") from None
    stamp, _, mac = signature.partition(".")
    if not stamp.isdigit() or len(stamp) > 12 or len(mac) != 64:
        raise RelayRefused("malformed relay signature")
    age = (now if now is not None else time.time()) - int(stamp)
    if abs(age) > MAX_AGE_S:
        raise RelayRefused(f"relay signature is {abs(age):.0f} s old (at most {MAX_AGE_S:.0f})")
    if not hmac.compare_digest(mac, _mac(key, stamp, client, method, target)):
        raise RelayRefused("wrong relay signature")
    return Relayed(client=address, via=peer)
