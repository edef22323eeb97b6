"""HTTPS in front of FMW (issue 14 §3): `fmw tls selfsigned`, the rendered TLS server, and
Debian's nginx serving it on loopback in front of the real API, the websocket stand-in and the
real Streamlit explorer.

Clients bind other loopback source addresses, as in test_nginx_e2e.py: 127.0.0.2 is a user,
127.0.0.3 an admin, 127.0.0.4 is on no list. Every HTTPS client verifies the chain against the
``ca.pem`` that `fmw tls selfsigned` wrote, and the host name or address.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import os
import re
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fmw.errors import ConfigError
from ledger.access import parse_entries, replace_allow_list
from ledger.db import connect
from ops.config import with_values
from ops.nginx import ProxyConfig, render
from ops.nginx_run import check_fragment, regenerate
from ops.tls import TlsError, make_selfsigned, toml_lines
from tests.ops.conftest import ApiProcess, OpsEnv, fmw, free_port, start_api
from tests.ops.nginxproc import NGINX, Nginx, start_nginx
from tests.ops.wsstub import COOKIE_PATH, WsStub, accept_key, frame, read_frame, read_head

USER, ADMIN, STRANGER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
ENTRIES = [{"cidr": USER, "role": "user", "note": "a user desk"},
           {"cidr": ADMIN, "role": "admin", "note": "ops"}]
HOSTS = ("fmw.test", "localhost", "127.0.0.1")
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


# --- fmw tls selfsigned ---------------------------------------------------------------------

def test_selfsigned_makes_a_ca_and_a_server_certificate_for_the_hosts(tmp_path):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    made = make_selfsigned(tmp_path / "tls", ["FMW.test", "10.1.2.3", "::1"], days=30)
    assert made.names == ("fmw.test", "10.1.2.3", "::1")
    server = x509.load_pem_x509_certificate(made.server_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(made.ca_cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["fmw.test"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3", "::1"]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server.verify_directly_issued_by(ca)
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days == 30
    assert b"\r" not in made.server_cert.read_bytes() + made.server_key.read_bytes()
    assert sorted(p.name for p in made.server_cert.parent.iterdir()) == [
        "ca.pem", "server.key", "server.pem"]  # the CA's key is not kept
    if os.name == "posix":
        assert stat.S_IMODE(made.server_key.stat().st_mode) == 0o600
    # Python's own client accepts the chain (strict X.509 checks where Python has them)
    ctx = ssl.create_default_context(cafile=str(made.ca_cert))
    ctx.load_cert_chain(made.server_cert, made.server_key)


def test_selfsigned_refuses_to_overwrite_without_force(tmp_path):
    first = make_selfsigned(tmp_path, ["fmw.test"])
    before = first.server_key.read_bytes()
    with pytest.raises(TlsError, match="ca.pem, server.pem, server.key already there; add --force"):
        make_selfsigned(tmp_path, ["fmw.test"])
    assert first.server_key.read_bytes() == before
    again = make_selfsigned(tmp_path, ["fmw.test"], force=True)
    assert again.server_key.read_bytes() != before


@pytest.mark.parametrize(("hosts", "days", "message"), [
    (["bad host"], 10, "neither a DNS name nor an IP address"),
    (["a;b"], 10, "neither a DNS name"),
    (["fmw.test"], 0, "--days must be"),
])
def test_selfsigned_refuses_bad_names_and_validity(tmp_path, hosts, days, message):
    with pytest.raises(ConfigError, match=message):
        make_selfsigned(tmp_path, hosts, days=days)
    assert not any(tmp_path.iterdir())


def test_selfsigned_defaults_to_this_machine(tmp_path):
    made = make_selfsigned(tmp_path, None, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert made.names[0] == socket.gethostname().lower()
    assert {"localhost", "127.0.0.1"} <= set(made.names)
    assert made.not_after.year == 2031


def test_toml_lines_are_valid_toml_with_windows_paths():
    import tomllib

    from ops.tls import SelfSigned
    win = SelfSigned(Path("ca.pem"), Path(r"C:\fmw\tls\server.pem"), Path("C:\\it's\\server.key"),
                     ("x",), datetime(2030, 1, 1, tzinfo=UTC))
    parsed = tomllib.loads("\n".join(toml_lines(win)))
    assert parsed["nginx_tls_cert"].endswith(r"C:\fmw\tls\server.pem")
    assert parsed["nginx_tls_key"].endswith("C:\\it's\\server.key")


# --- the rendered TLS server ----------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory):
    return make_selfsigned(tmp_path_factory.mktemp("tls"), list(HOSTS))


def _tls_cfg(certs, **kw) -> ProxyConfig:
    return ProxyConfig(tls_cert=certs.server_cert.as_posix(), tls_key=certs.server_key.as_posix(),
                       **kw)


def _servers(text: str) -> list[str]:
    return re.findall(r"^server \{\n.*?^\}\n", text, re.M | re.S)


ALLOW = parse_entries([{"cidr": "10.20.0.0/16", "role": "user", "note": "office"},
                       {"cidr": "10.20.5.7", "role": "admin", "note": "ops"}])


def test_the_tls_server_has_every_location_and_limit_of_the_plain_one(certs):
    plain = render(ALLOW, ProxyConfig(port=8080))
    text = render(ALLOW, _tls_cfg(certs, port=8080, https_port=8443, hsts_max_age_s=600))
    redirect, tls = _servers(text)
    assert text.startswith(plain.split("server {")[0])  # the same zones and upstreams
    tls_lines = tls.splitlines()
    assert "    listen 0.0.0.0:8443 ssl;" in tls_lines
    # without its TLS lines and listening on the plain port, it is the plain server
    same = [ln.replace("listen 0.0.0.0:8443 ssl;", "listen 0.0.0.0:8080;") for ln in tls_lines
            if not re.search(r"ssl_|cookie|Strict-Transport-Security|HTTPS", ln)]
    assert "\n".join(ln for ln in same if ln) == "\n".join(
        ln for ln in _servers(plain)[0].splitlines() if ln)
    for line in ("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_session_cache shared:fmw_tls:10m;",
                 f'ssl_certificate "{certs.server_cert.as_posix()}";',
                 'add_header Strict-Transport-Security "max-age=600" always;',
                 "proxy_cookie_flags ~ secure samesite=lax httponly;",
                 "proxy_cookie_flags _streamlit_xsrf secure samesite=lax;"):
        assert f"    {line}" in tls_lines, line
    ciphers = next(ln for ln in tls_lines if "ssl_ciphers" in ln)
    assert all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c)
               for c in ciphers.split()[1].rstrip(";").split(":"))
    # the first proxy_cookie_flags that matches applies: the XSRF exception comes first
    assert tls.index("proxy_cookie_flags _streamlit_xsrf") < tls.index("proxy_cookie_flags ~")
    assert "location" not in redirect and "allow " not in redirect
    assert "    listen 0.0.0.0:8080;" in redirect
    assert "    return 301 https://$host:8443$request_uri;" in redirect
    assert "limit_conn fmw_conn 50;" in redirect and "client_header_timeout 10s;" in redirect


def test_hsts_can_be_turned_off_and_port_443_is_not_spelled_out(certs):
    text = render(ALLOW, _tls_cfg(certs, hsts_max_age_s=0))
    assert "Strict-Transport-Security" not in text
    assert "return 301 https://$host$request_uri;" in text
    assert "Strict-Transport-Security" not in render(ALLOW, ProxyConfig(hsts_max_age_s=600))


def test_without_tls_settings_nothing_changes(make_settings):
    text = render(ALLOW, ProxyConfig.from_settings(make_settings()))
    assert len(_servers(text)) == 1
    for word in ("ssl", "https", "Strict-Transport", "proxy_cookie_flags"):
        assert word not in text


@pytest.mark.parametrize(("given", "missing"), [("nginx_tls_cert", "nginx_tls_key"),
                                                ("nginx_tls_key", "nginx_tls_cert")])
def test_only_one_of_cert_and_key_is_refused_naming_the_other(make_settings, certs, given,
                                                              missing):
    s = with_values(make_settings(), **{given: str(certs.server_cert)})
    with pytest.raises(ConfigError, match=f"{given} is set but {missing} is not"):
        ProxyConfig.from_settings(s)
    with pytest.raises(ConfigError, match=f"{missing} is not set"):
        render(ALLOW, ProxyConfig(tls_cert="/x.pem") if given == "nginx_tls_cert"
               else ProxyConfig(tls_key="/x.pem"))


def test_a_missing_file_is_refused_naming_its_path(make_settings, certs, tmp_path):
    gone = tmp_path / "nope" / "server.key"
    s = with_values(make_settings(), nginx_tls_cert=str(certs.server_cert), nginx_tls_key=str(gone))
    with pytest.raises(ConfigError, match=re.escape(f"nginx_tls_key: {gone} does not exist")):
        ProxyConfig.from_settings(s)


def test_relative_paths_resolve_against_the_config_folder(make_settings, tmp_path):
    s = make_settings()
    assert s.config_path is not None
    make_selfsigned(s.config_path.parent / "tls", ["fmw.test"], force=True)
    cfg = ProxyConfig.from_settings(with_values(s, nginx_tls_cert="tls/server.pem",
                                                nginx_tls_key="tls/server.key"))
    assert cfg.tls_cert == (s.config_path.parent / "tls" / "server.pem").resolve().as_posix()


@pytest.mark.parametrize(("kw", "message"), [
    ({"https_port": 80}, "nginx_https_port must differ"),
    ({"https_port": 0}, "nginx_https_port must be 1-65535"),
    ({"hsts_max_age_s": -1}, "nginx_hsts_max_age_s"),
    ({"tls_cert": '/a"; evil'}, "nginx_tls_cert must be a path"),
    ({"tls_key": "/a/$host"}, "nginx_tls_key must be a path"),
])
def test_tls_values_nginx_would_misread_are_refused(kw, message):
    cfg = dataclasses.replace(ProxyConfig(tls_cert="/c.pem", tls_key="/k.pem"), **kw)
    with pytest.raises(ConfigError, match=message):
        render(ALLOW, cfg)


@needs_nginx
def test_nginx_accepts_the_rendered_tls_file(certs):
    assert NGINX is not None
    check_fragment(NGINX, render(ALLOW, _tls_cfg(certs, port=8080, https_port=8443)))


# --- a real nginx with TLS in front of the real API -----------------------------------------

def _client(ca: Path, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    for name, value in versions.items():
        setattr(ctx, name, value)
    return ctx


@dataclass
class Front:
    env: OpsEnv
    api: ApiProcess
    ui: WsStub
    nginx: Nginx
    http_port: int
    https_port: int
    ca: Path

    def get(self, source: str, path: str, headers: dict[str, str] | None = None,
            ) -> tuple[int, http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=15,
                                           source_address=(source, 0), context=_client(self.ca))
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, r, r.read()
        finally:
            conn.close()


def _set_allow_list(env: OpsEnv, raw: list[dict[str, str]]) -> None:
    with connect(env.settings, autocommit=True) as conn:
        replace_allow_list(conn, parse_entries(raw))


def _selfsigned_by_cli(env: OpsEnv, out: Path) -> None:
    args = ["tls", "selfsigned", "--out-dir", str(out)]
    for h in HOSTS:
        args += ["--host", h]
    r = fmw(env, *args)
    assert r.returncode == 0, r.stderr
    assert f"nginx_tls_cert = '{out / 'server.pem'}'" in r.stdout
    assert f"nginx_tls_key = '{out / 'server.key'}'" in r.stdout
    again = fmw(env, *args)
    assert again.returncode == 1 and "add --force" in again.stderr


@pytest.fixture(scope="module")
def front(ops_env: OpsEnv) -> Iterator[Front]:
    _set_allow_list(ops_env, ENTRIES)
    work = ops_env.root / "nginx-tls"
    _selfsigned_by_cli(ops_env, ops_env.root / "tls")
    api = start_api(ops_env, ops_env.root / "api-tls.log")
    ui = WsStub()
    http_port, https_port = free_port(), free_port()
    settings = with_values(
        ops_env.settings, api_port=int(api.url.rsplit(":", 1)[1]), ui_port=ui.port,
        nginx_listen="127.0.0.1", nginx_port=http_port, nginx_https_port=https_port,
        nginx_tls_cert=str(ops_env.root / "tls" / "server.pem"),
        nginx_tls_key=str(ops_env.root / "tls" / "server.key"),
        nginx_conf=str(work / "fmw.conf"), nginx_exe=NGINX, nginx_prefix=str(work),
        nginx_main_conf=str(work / "nginx.conf"))
    up = regenerate(settings, require_check=True)
    assert up.checked and "ssl;" in up.path.read_text()
    nginx = start_nginx(up.path, work, https_port)
    yield Front(ops_env, api, ui, nginx, http_port, https_port, ops_env.root / "tls" / "ca.pem")
    nginx.stop()
    ui.stop()
    api.stop()
    _set_allow_list(ops_env, [])


@needs_nginx
def test_https_to_the_api_verifies_chain_and_host_name(front):
    requests = pytest.importorskip("requests")
    for host in ("localhost", "127.0.0.1"):  # a DNS name and an address in the certificate
        r = requests.get(f"https://{host}:{front.https_port}/api/v1/features?format=json&limit=5",
                         verify=str(front.ca), timeout=15)
        assert r.status_code == 200, front.api.log.read_text()
        assert r.headers["x-snapshot-version"] == "1"
    with pytest.raises(requests.exceptions.SSLError):  # a client that trusts other CAs refuses
        requests.get(f"https://127.0.0.1:{front.https_port}/api/v1/features", timeout=15)
    ctx = _client(front.ca)
    with socket.create_connection(("127.0.0.1", front.https_port), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname="fmw.test") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with socket.create_connection(("127.0.0.1", front.https_port), timeout=15) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
            ctx.wrap_socket(raw, server_hostname="other.test")


@needs_nginx
def test_plain_http_is_redirected_to_https_for_anyone(front):
    for source in (USER, STRANGER):
        conn = http.client.HTTPConnection("127.0.0.1", front.http_port, timeout=15,
                                          source_address=(source, 0))
        try:
            conn.request("GET", "/api/v1/features?format=json&limit=1",
                         headers={"Host": f"fmw.test:{front.http_port}"})
            r = conn.getresponse()
            r.read()
        finally:
            conn.close()
        assert r.status == 301
        assert r.getheader("location") == (f"https://fmw.test:{front.https_port}"
                                           "/api/v1/features?format=json&limit=1")
        assert r.getheader("strict-transport-security") is None  # HSTS over HTTPS only


@needs_nginx
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_1_0_and_1_1_handshakes_are_refused(front, version):
    old = getattr(ssl.TLSVersion, version)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(front.ca)
    # Let this client speak the old protocol at all (OpenSSL 3 and Debian refuse it by default),
    # so the refusal below is nginx's; the control server shows the client can.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version, ctx.maximum_version = old, old
    assert _handshake_with_python_server(front, ctx) == version.replace("_", ".")
    with socket.create_connection(("127.0.0.1", front.https_port), timeout=15) as raw:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|unsupported protocol"):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    modern = _client(front.ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", front.https_port), timeout=15) as raw:
        with modern.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == "TLSv1.2"


def _handshake_with_python_server(front: Front, client: ssl.SSLContext) -> str | None:
    """The version `client` agrees with a Python server that allows every version, or skip."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    server.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    tls_dir = front.ca.parent
    server.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    result: list[str | None] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as s:
                result.append(s.version())
        except (ssl.SSLError, OSError):
            result.append(None)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                version = s.version()
    except ssl.SSLError as exc:
        pytest.skip(f"this OpenSSL cannot speak the old protocol at all: {exc}")
    finally:
        t.join(10)
        listener.close()
    return version


@needs_nginx
def test_hsts_and_security_headers_on_answers_and_refusals(front):
    for source, path in ((USER, "/api/v1/features?format=json&limit=1"), (STRANGER, "/"),
                         (USER, "/streamlit/")):
        _, r, _ = front.get(source, path)
        assert r.getheader("strict-transport-security") == "max-age=31536000"
        assert r.getheader("x-content-type-options") == "nosniff"
        assert r.getheader("server") == "nginx"


@needs_nginx
def test_upstream_cookies_come_back_secure_httponly_and_samesite(front):
    status, r, _ = front.get(USER, COOKIE_PATH)
    assert status == 200
    cookies = {c.split("=", 1)[0]: _attrs(c) for c in r.headers.get_all("set-cookie") or []}
    assert cookies["fmw_session"] >= {"secure", "httponly", "samesite=lax"}
    # Streamlit's page script reads its XSRF cookie (double submit): no HttpOnly for it only
    assert cookies["_streamlit_xsrf"] >= {"secure", "samesite=lax"}
    assert "httponly" not in cookies["_streamlit_xsrf"]


def _attrs(set_cookie: str) -> set[str]:
    return {a.strip().lower() for a in set_cookie.split(";")[1:]}


@needs_nginx
def test_the_allow_list_applies_over_https_as_over_http(front):
    for source in (USER, ADMIN):
        assert front.get(source, "/api/v1/features?format=json&limit=1")[0] == 200
        assert front.get(source, "/api/docs")[0] == 200
    for path in ("/api/v1/features", "/streamlit/", "/api/dev/health", "/api/docs"):
        status, r, _ = front.get(STRANGER, path)
        assert status == 403 and r.getheader("content-type").startswith("text/html"), path
    assert front.get(USER, "/api/dev/health")[0] == 403
    status, r, _ = front.get(ADMIN, "/api/dev/runs")
    assert status == 401 and r.getheader("content-type") == "application/problem+json"
    assert front.get(ADMIN, "/")[0] == 403


@needs_nginx
def test_upstreams_are_told_the_scheme_and_the_client_address(front):
    front.ui.seen.requests.clear()
    assert front.get(USER, "/streamlit/", {"X-Forwarded-For": ADMIN,
                                           "X-Forwarded-Proto": "http"})[0] == 200
    _, seen = front.ui.seen.requests[-1]
    assert seen["x-forwarded-proto"] == "https" and seen["x-forwarded-for"] == USER


def wss_roundtrip(port: int, ca: Path, source: str, path: str, text: str | None,
                  ) -> tuple[str, dict[str, str], str | None]:
    """A websocket over TLS (chain and address verified); (status line, headers, echo)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=30,
                                  source_address=(source, 0)) as raw:
        with _client(ca).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                          f"Origin: https://127.0.0.1:{port}\r\n\r\n").encode())
            status, headers = read_head(sock)
            if " 101 " not in status + " ":
                return status, headers, None
            assert headers.get("sec-websocket-accept") == accept_key(key)
            if text is None:
                return status, headers, None
            sock.sendall(frame(text.encode(), masked=True))
            _, data = read_frame(sock)
            sock.sendall(frame(b"", masked=True, opcode=8))
            return status, headers, data.decode()


@needs_nginx
def test_the_websocket_upgrade_works_over_tls(front):
    status, headers, reply = wss_roundtrip(front.https_port, front.ca, USER,
                                           "/streamlit/_stcore/stream", "hello over tls")
    assert "101 Switching Protocols" in status and headers["upgrade"].lower() == "websocket"
    assert reply == "echo: hello over tls"
    _, upstream = front.ui.seen.requests[-1]
    assert upstream["connection"].lower() == "upgrade"
    assert upstream["x-forwarded-proto"] == "https"
    status, _, reply = wss_roundtrip(front.https_port, front.ca, STRANGER,
                                     "/streamlit/_stcore/stream", "hello")
    assert " 403 " in status + " " and reply is None


# --- the real explorer over HTTPS -----------------------------------------------------------

@dataclass
class UiFront:
    https_port: int
    ca: Path
    spki: str  # base64 SHA-256 of the server key's SubjectPublicKeyInfo (Chromium's pin format)


@pytest.fixture(scope="module")
def ui_front(ops_env: OpsEnv) -> Iterator[UiFront]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from ui.config import ui_config
    from ui.launch import start_ui
    _set_allow_list(ops_env, [{"cidr": USER, "role": "user", "note": "desk"}])
    tls = make_selfsigned(ops_env.root / "tls-ui", list(HOSTS), force=True)
    work = ops_env.root / "nginx-tls-ui"
    api = start_api(ops_env, ops_env.root / "api-tls-ui.log")
    ui_settings = with_values(ops_env.settings, ui_port=free_port(),
                              ui_base_url_path="/streamlit/", ui_usage_flush_s=0.5)
    log = open(ops_env.root / "ui-tls.log", "wb")  # noqa: SIM115 - closed below
    ui = start_ui(ui_settings, ui_config(ui_settings), output=log)
    http_port, https_port = free_port(), free_port()
    try:
        ui.wait_ready()
        settings = with_values(
            ui_settings, api_port=int(api.url.rsplit(":", 1)[1]), nginx_listen="127.0.0.1",
            nginx_port=http_port, nginx_https_port=https_port,
            nginx_tls_cert=str(tls.server_cert), nginx_tls_key=str(tls.server_key),
            nginx_conf=str(work / "fmw.conf"), nginx_exe=NGINX, nginx_prefix=str(work),
            nginx_main_conf=str(work / "nginx.conf"))
        up = regenerate(settings, require_check=True)
        nginx = start_nginx(up.path, work, https_port)
        cert = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        try:
            yield UiFront(https_port, tls.ca_cert,
                          base64.b64encode(hashlib.sha256(spki).digest()).decode())
        finally:
            nginx.stop()
    finally:
        ui.stop()
        log.close()
        api.stop()
        _set_allow_list(ops_env, [])


@needs_nginx
def test_the_real_explorer_page_and_its_cookie_over_https(ui_front):
    def get(path: str) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", ui_front.https_port, timeout=30,
                                           source_address=(USER, 0), context=_client(ui_front.ca))
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r, r.read()
        finally:
            conn.close()

    r, body = get("/streamlit/")
    assert r.status == 200 and b'<div id="root">' in body
    r, body = get("/streamlit/_stcore/health")  # the page's first call; it sets the cookie
    assert (r.status, body) == (200, b"ok")
    xsrf = [c for c in r.headers.get_all("set-cookie") or [] if c.startswith("_streamlit_xsrf=")]
    assert xsrf and _attrs(xsrf[0]) >= {"secure", "samesite=lax"}, xsrf


@needs_nginx
def test_the_real_streamlit_websocket_upgrades_over_tls(ui_front):
    status, headers, _ = wss_roundtrip(ui_front.https_port, ui_front.ca, USER,
                                       "/streamlit/_stcore/stream", None)
    assert " 101 " in status + " ", status
    assert headers["upgrade"].lower() == "websocket"
    status, _, _ = wss_roundtrip(ui_front.https_port, ui_front.ca, STRANGER,
                                 "/streamlit/_stcore/stream", None)
    assert " 403 " in status + " "


CHROMIUM = "/usr/bin/chromium"


@needs_nginx
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_a_browser_runs_the_explorer_over_https(ui_front):
    """Chromium accepts only this server's key (an SPKI pin, not a blanket "ignore errors"):
    Debian's chromium reads extra CAs from an NSS database that needs libnss3-tools to write.
    Python's clients above verify the chain from ca.pem and the host name."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu",
            f"--ignore-certificate-errors-spki-list={ui_front.spki}"])
        try:
            page = browser.new_page()
            resp = page.goto(f"https://localhost:{ui_front.https_port}/streamlit/",
                             timeout=60_000)
            assert resp is not None and resp.status == 200
            # the app runs its script: the page talks to Streamlit over wss://
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                                   timeout=60_000)
            assert page.evaluate("location.protocol") == "https:"
            assert page.evaluate("document.cookie").count("_streamlit_xsrf=") == 1
        finally:
            browser.close()
