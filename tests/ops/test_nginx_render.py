"""The Nginx config as a pure function of the allow list, and `nginx -t` on what it renders."""

from __future__ import annotations

import re

import pytest

from fmw.errors import ConfigError
from ledger.access import parse_entries
from ops.config import with_values
from ops.nginx import NginxError, ProxyConfig, render
from ops.nginx_run import check_fragment, regenerate
from tests.ops.nginxproc import NGINX

ENTRIES = parse_entries([
    {"cidr": "10.20.0.0/16", "role": "user", "note": "office LAN"},
    {"cidr": "10.20.5.7", "role": "admin", "note": "ops desk\tA"},
    {"cidr": "2001:db8::/48", "role": "user", "note": ""},
    {"cidr": "192.168.1.0/24", "role": "admin", "note": "server room; } deny all; {"},
])


def location(text: str, path: str) -> str:
    m = re.search(r"\n    location " + re.escape(path) + r" \{\n(.*?)\n    \}", text, re.S)
    assert m, path
    return m.group(1)


def allows(block: str) -> list[str]:
    return re.findall(r"^\s*allow (\S+);", block, re.M)


def test_each_path_allows_exactly_its_roles_then_denies_the_rest():
    text = render(ENTRIES, ProxyConfig())
    everyone = ["10.20.5.7", "192.168.1.0/24", "10.20.0.0/16", "2001:db8::/48", "127.0.0.1", "::1"]
    for path in ("/streamlit/", "= /streamlit", "/api/v1/"):
        block = location(text, path)
        assert sorted(allows(block)) == sorted(everyone), path
        assert block.strip().splitlines()[len(everyone)].strip() == "deny all;"
    dev = location(text, "/api/dev/")
    assert allows(dev) == ["10.20.5.7", "192.168.1.0/24", "127.0.0.1", "::1"]
    assert "deny all;" in dev
    assert location(text, "/").strip() == "deny all;"


def test_an_empty_allow_list_without_loopback_denies_everything():
    text = render([], ProxyConfig(allow_loopback=False))
    for path in ("/streamlit/", "/api/v1/", "/api/dev/", "/"):
        block = location(text, path)
        assert allows(block) == [] and "deny all;" in block


def test_the_explorer_location_upgrades_websockets_with_a_long_timeout():
    ui = location(render(ENTRIES, ProxyConfig(ui_port=8555)), "/streamlit/")
    assert "proxy_pass http://fmw_ui;" in ui and "proxy_http_version 1.1;" in ui
    assert "proxy_set_header Upgrade $http_upgrade;" in ui
    assert 'proxy_set_header Connection "upgrade";' in ui
    assert "proxy_read_timeout 86400s;" in ui


def test_forwarded_for_is_overwritten_and_headers_set_in_every_proxied_location():
    text = render(ENTRIES, ProxyConfig())
    for path in ("/streamlit/", "/api/v1/", "/api/dev/"):
        block = location(text, path)
        assert "proxy_set_header X-Forwarded-For $remote_addr;" in block
        assert "proxy_add_x_forwarded_for" not in block
        assert "proxy_set_header Host $host;" in block
    assert "proxy_add_x_forwarded_for" not in text


def test_only_the_dev_api_is_rate_limited():
    text = render(ENTRIES, ProxyConfig(dev_rate_per_minute=30))
    assert "limit_req_zone $binary_remote_addr zone=fmw_dev:10m rate=30r/m;" in text
    assert "limit_req zone=fmw_dev" in location(text, "/api/dev/")
    for path in ("/streamlit/", "/api/v1/"):
        assert "limit_req" not in location(text, path)


def test_upstreams_listen_address_and_security_headers_come_from_the_settings():
    text = render(ENTRIES, ProxyConfig(listen="10.0.0.5", port=8443, server_name="fmw.corp",
                                       api_port=8100, ui_port=8600))
    assert "server 127.0.0.1:8100;" in text and "server 127.0.0.1:8600;" in text
    assert "listen 10.0.0.5:8443;" in text and "server_name fmw.corp;" in text
    assert "server_tokens off;" in text
    for header in ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy",
                   "Referrer-Policy"):
        assert re.search(rf'^    add_header {header} ".+" always;$', text, re.M)


def test_notes_cannot_break_out_of_their_comment():
    text = render(ENTRIES, ProxyConfig())
    line = next(ln for ln in text.splitlines() if "192.168.1.0/24" in ln)
    assert line.strip().startswith("allow 192.168.1.0/24;  # admin: server room; } deny all; {")
    assert "\t" not in text


def test_rendering_is_deterministic():
    assert render(ENTRIES, ProxyConfig()) == render(list(reversed(ENTRIES)), ProxyConfig())


@pytest.mark.parametrize(("field", "value", "message"), [
    ("listen", "fmw.corp", "nginx_listen"),
    ("port", 0, "nginx_port"),
    ("server_name", "a;b", "nginx_server_name"),
    ("server_name", "a\nb", "nginx_server_name"),
    ("api_host", "10.0.0.1; evil", "api_host"),
    ("dev_rate_per_minute", 0, "nginx_dev_rate_per_minute"),
    ("conn_per_address", 0, "nginx_conn_per_address"),
    ("client_timeout_s", 0, "nginx_client_timeout_s"),
    ("client_timeout_s", 7200, "nginx_client_timeout_s"),
])
def test_settings_nginx_would_misread_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=message):
        render(ENTRIES, ProxyConfig(**{field: value}))


def test_slow_and_greedy_clients_are_bounded_for_every_path(make_settings):
    """Issue 11 §5: connections per address and the client's read/write time (the defaults,
    then settings); server-wide, so every location inherits them."""
    text = render(ENTRIES, ProxyConfig.from_settings(make_settings()))
    assert "limit_conn_zone $binary_remote_addr zone=fmw_conn:10m;" in text.split("server {")[0]
    server = text.split("server {", 1)[1].split("    location")[0]
    for line in ("limit_conn fmw_conn 50;", "limit_conn_status 429;",
                 "client_header_timeout 10s;", "client_body_timeout 10s;", "send_timeout 10s;",
                 "reset_timedout_connection on;"):
        assert f"\n    {line}\n" in server, line
    cfg = ProxyConfig.from_settings(with_values(make_settings(), nginx_conn_per_address=120,
                                                nginx_client_timeout_s=30))
    text = render(ENTRIES, cfg)
    assert "limit_conn fmw_conn 120;" in text and "client_header_timeout 30s;" in text
    assert "limit_conn " not in "".join(re.findall(r"location [^{]*\{[^}]*\}", text))


def test_settings_are_read_with_their_defaults(make_settings):
    s = make_settings()
    cfg = ProxyConfig.from_settings(s)
    assert (cfg.api_port, cfg.ui_port, cfg.port, cfg.listen) == (8000, 8501, 80, "0.0.0.0")
    cfg = ProxyConfig.from_settings(with_values(s, api_port="8123", nginx_server_name="fmw.x"))
    assert (cfg.api_port, cfg.server_name) == (8123, "fmw.x")


needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


@needs_nginx
@pytest.mark.parametrize("entries", [ENTRIES, []])
def test_nginx_accepts_the_rendered_file(entries):
    assert NGINX is not None
    check_fragment(NGINX, render(entries, ProxyConfig(port=8080)))


@needs_nginx
def test_nginx_refusal_is_reported_with_its_reason():
    broken = render(ENTRIES, ProxyConfig()).replace("\n        deny all;", "\n        deny everybody;", 1)
    assert NGINX is not None
    with pytest.raises(NginxError, match=r"invalid parameter \"everybody\" in .*fmw.conf:\d+"):
        check_fragment(NGINX, broken)


@needs_nginx
def test_regenerate_writes_from_the_database_and_only_when_changed(make_settings, tmp_path):
    from ledger.access import replace_allow_list
    from ledger.db import connect
    s = with_values(make_settings(), nginx_exe=NGINX, nginx_conf=str(tmp_path / "fmw.conf"))
    with connect(s, autocommit=True) as conn:
        replace_allow_list(conn, ENTRIES)
    first = regenerate(s)
    assert first.changed and first.checked and not first.reloaded and first.entries == 4
    assert "allow 10.20.5.7;" in first.path.read_text()
    assert not regenerate(s).changed
    other = regenerate(s, ENTRIES[:1], out=tmp_path / "other.conf")
    assert other.changed and "10.20.5.7" not in other.path.read_text()


def test_without_nginx_the_file_is_written_unchecked_unless_a_check_is_required(make_settings,
                                                                               tmp_path):
    s = with_values(make_settings(), nginx_exe=str(tmp_path / "no-such-nginx"),
                    nginx_conf=str(tmp_path / "fmw.conf"))
    up = regenerate(s, ENTRIES)
    assert up.changed and not up.checked
    with pytest.raises(NginxError, match="not found"):
        regenerate(s, ENTRIES, require_check=True)


@needs_nginx
def test_fmw_nginx_render_writes_then_reports_unchanged(ops_env, tmp_path):
    from tests.ops.conftest import fmw
    out = tmp_path / "deploy" / "fmw.conf"
    r = fmw(ops_env, "nginx", "render", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"{out}: written (0 allow-list entries)" in r.stdout and "checked with nginx -t" in r.stdout
    assert "location /api/dev/" in out.read_text()
    r = fmw(ops_env, "nginx", "render", "--out", str(out))
    assert f"{out}: unchanged" in r.stdout
    r = fmw(ops_env, "nginx", "render", "--stdout")
    assert r.stdout == out.read_text()


def test_render_warns_when_the_api_runs_elsewhere_than_api_port(ops_env, tmp_path):
    """Issue 13: `fmw nginx render` wrote api_port although the API ran with --port, so Nginx
    pointed at nothing and nobody was told."""
    from tests.ops.conftest import fmw, start_api
    api = start_api(ops_env, tmp_path / "api.log")  # `serve` on a free port, not api_port
    try:
        port = int(api.url.rsplit(":", 1)[1])
        r = fmw(ops_env, "nginx", "render", "--out", str(tmp_path / "fmw.conf"))
        assert r.returncode == 0, r.stderr
        assert f"listens on 127.0.0.1:{port}, but Nginx is rendered for 127.0.0.1:8000" \
            in r.stdout, r.stdout
        assert "nothing listens on 127.0.0.1:8000" in r.stdout
    finally:
        api.stop()
    r = fmw(ops_env, "nginx", "render", "--out", str(tmp_path / "fmw.conf"))
    assert "an FMW API" not in r.stdout  # the stopped API is not reported
