"""A stand-in for the Streamlit explorer behind Nginx (the real UI is not built yet): a tiny
HTTP server on a loopback port that answers ``GET /streamlit/...`` and accepts a websocket
upgrade (RFC 6455 handshake) whose text frames it echoes. Plus a raw websocket client."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: ``GET COOKIE_PATH`` answers with these cookies, as an app behind Nginx would set them.
COOKIE_PATH = "/streamlit/set-cookie"
SET_COOKIES = ("fmw_session=abc; Path=/", "_streamlit_xsrf=2|aa|bb|1; Path=/")


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def read_head(sock: socket.socket) -> tuple[str, dict[str, str]]:
    """The request/status line and headers (lower-case names) of an HTTP message."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    first, *lines = head.split("\r\n")
    headers = {}
    for ln in lines:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return first, headers


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    b1, b2 = _recv_exact(sock, 2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack(">H", _recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", _recv_exact(sock, 8))[0]
    mask = _recv_exact(sock, 4) if b2 & 0x80 else b""
    data = _recv_exact(sock, n)
    if mask:
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
    return b1 & 0x0F, data


def frame(payload: bytes, *, masked: bool, opcode: int = 1) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    length = bytes([n]) if n < 126 else bytes([126]) + struct.pack(">H", n)
    if not masked:
        return head + length + payload
    mask = os.urandom(4)
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + bytes([length[0] | 0x80]) + length[1:] + mask + body


@dataclass
class Seen:
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        first, headers = read_head(sock)
        self.server.seen.requests.append((first, headers))  # type: ignore[attr-defined]
        if headers.get("upgrade", "").lower() == "websocket":
            sock.sendall((
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}\r\n\r\n"
            ).encode())
            while True:
                try:
                    op, data = read_frame(sock)
                except ConnectionError:
                    return
                if op == 8:  # close
                    sock.sendall(frame(b"", masked=False, opcode=8))
                    return
                sock.sendall(frame(b"echo: " + data, masked=False))
        body = b"FMW explorer stand-in"
        cookies = b"".join(b"Set-Cookie: " + c.encode() + b"\r\n" for c in SET_COOKIES) \
            if first.split(" ")[1:2] == [COOKIE_PATH] else b""
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n" + cookies + b"Connection: close\r\n\r\n"
                     + body)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class WsStub:
    """Serves on 127.0.0.1:<port> in a thread until `stop()`."""

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.seen = Seen()  # type: ignore[attr-defined]
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> Seen:
        seen: Seen = self.server.seen  # type: ignore[attr-defined]
        return seen

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ws_roundtrip(host: str, port: int, path: str, source: str, text: str,
                 timeout: float = 10.0) -> tuple[str, dict[str, str], str | None]:
    """Open a websocket from `source`, send `text`, return (status line, headers, reply)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((host, port), timeout=timeout,
                                  source_address=(source, 0)) as sock:
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: fmw.test\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        status, headers = read_head(sock)
        if " 101 " not in status + " ":
            return status, headers, None
        assert headers.get("sec-websocket-accept") == accept_key(key)
        sock.sendall(frame(text.encode(), masked=True))
        _, data = read_frame(sock)
        sock.sendall(frame(b"", masked=True, opcode=8))
        return status, headers, data.decode()
