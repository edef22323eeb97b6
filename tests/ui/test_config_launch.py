"""The explorer's settings and the Streamlit command line it is started with (pure)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from fmw.errors import ConfigError
from fmw.settings import Settings
from ui.config import UI_SETTINGS, UiConfig, normalise_base_path, ui_config
from ui.launch import APP, SERVER, check_bind, child_environment, streamlit_command, streamlit_flags


def with_ui(settings: Settings, **values: object) -> Settings:
    """`settings` plus ui_* fields, whether or not `Settings` declares them yet."""
    extra = [(k, object, dataclasses.field(default=v)) for k, v in values.items()]
    cls = dataclasses.make_dataclass("UiSettings", extra, bases=(type(settings),), frozen=True)
    base = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if f.name not in values}
    return cls(**base, **values)


def test_defaults_bind_loopback_8501_and_talk_to_the_local_api(tmp_path):
    ui = ui_config(Settings(data_dir=tmp_path))
    assert (ui.host, ui.port, ui.base_url_path) == ("127.0.0.1", 8501, "")
    assert ui.api_url == "http://127.0.0.1:8000"
    assert ui.url == "http://127.0.0.1:8501/"
    assert set(UI_SETTINGS) >= {"ui_host", "ui_port", "ui_base_url_path", "ui_stale_hours",
                                "ui_sql_max_rows", "ui_sql_timeout_s"}


def test_settings_and_cli_values_are_used(tmp_path):
    s = with_ui(Settings(data_dir=tmp_path), ui_base_url_path="/streamlit/", ui_port=9000,
                ui_stale_hours=2, ui_sql_max_rows=50, api_port=8100)
    ui = ui_config(s, host="::1")
    assert (ui.host, ui.port, ui.base_url_path, ui.stale_hours, ui.sql_max_rows) == (
        "::1", 9000, "streamlit", 2.0, 50)
    assert ui.api_url == "http://127.0.0.1:8100"
    assert ui.url == "http://[::1]:9000/streamlit/"
    assert ui_config(s, port=9100).port == 9100
    assert UiConfig.from_json(ui.to_json()) == ui


@pytest.mark.parametrize(("name", "value"), [("ui_port", 70000), ("ui_sql_max_rows", 0),
                                             ("ui_sql_timeout_s", "soon"),
                                             ("ui_base_url_path", "a b"),
                                             ("ui_api_url", "ftp://x")])
def test_bad_values_are_configuration_errors(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        ui_config(with_ui(Settings(data_dir=tmp_path), **{name: value}))


def test_base_path_is_normalised():
    assert normalise_base_path("/streamlit/") == "streamlit"
    assert normalise_base_path("") == ""
    assert normalise_base_path("/a/b") == "a/b"


def test_streamlit_is_started_with_xsrf_on_no_telemetry_and_no_watcher(tmp_path):
    cfg = tmp_path / "fmw.toml"
    s = dataclasses.replace(Settings(data_dir=tmp_path / "d"), config_path=cfg)
    ui = dataclasses.replace(ui_config(s), port=8600, base_url_path="streamlit")
    cmd = streamlit_command(s, ui)
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(SERVER)]
    flags = set(streamlit_flags(ui))
    for flag in ("--server.address=127.0.0.1", "--server.port=8600",
                 "--server.baseUrlPath=streamlit", "--server.enableXsrfProtection=true",
                 "--browser.gatherUsageStats=false", "--server.headless=true",
                 "--server.fileWatcherType=none", "--global.developmentMode=false"):
        assert flag in flags
    script = cmd[cmd.index("--") + 1:]
    assert script[:4] == ["--config", str(cfg), "--data-dir", str(tmp_path / "d")]
    assert UiConfig.from_json(script[script.index("--ui-config") + 1]) == ui


def test_the_child_gets_the_resolved_settings_as_environment(tmp_path):
    s = Settings(data_dir=tmp_path, snapshots_dir=tmp_path / "snaps", schema="x1",
                 database_url="postgresql://u:p@h/db", duckdb_threads=3)
    env = child_environment(s, {"PATH": "/bin", "FMW_CONFIG": "other.toml"})
    assert env["PATH"] == "/bin" and "FMW_CONFIG" not in env
    assert env["FMW_SNAPSHOTS_DIR"] == str(tmp_path / "snaps")
    assert env["FMW_SCHEMA"] == "x1" and env["FMW_DATABASE_URL"] == "postgresql://u:p@h/db"
    assert env["FMW_DUCKDB_THREADS"] == "3"
    assert env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    embedded = child_environment(Settings(data_dir=tmp_path), {"FMW_DATABASE_URL": "x"})
    assert "FMW_DATABASE_URL" not in embedded


def test_a_public_address_needs_the_setting(tmp_path):
    s = Settings(data_dir=tmp_path)
    ui = dataclasses.replace(ui_config(s), host="0.0.0.0")
    with pytest.raises(ConfigError, match="ui_allow_public_bind"):
        check_bind(s, ui)
    check_bind(with_ui(s, ui_allow_public_bind=True), ui)
    check_bind(s, dataclasses.replace(ui, host="localhost"))


def test_the_app_script_exists():
    assert Path(APP).is_file() and APP.name == "app.py"
