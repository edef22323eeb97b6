"""Configuration: file + environment precedence and a clear error for each bad value."""

from __future__ import annotations

import pytest

from fmw.errors import ConfigError
from fmw.settings import load_settings

SRC = '[[sources]]\nname = "a"\nkind = "csv"\npath = "a.csv"\n'


def load(tmp_path, text: str, **env: str):
    cfg = tmp_path / "fmw.toml"
    cfg.write_text(text, encoding="utf-8")
    return load_settings(cfg, environ=env)


def test_environment_overrides_the_file_and_arguments_override_both(tmp_path):
    s = load(tmp_path, 'schema = "from_file"\nmax_bad_share = 0.1\n', FMW_SCHEMA="from_env")
    assert s.schema == "from_env" and s.max_bad_share == 0.1
    assert s.data_dir == (tmp_path / ".fmw").resolve() and s.embedded
    explicit = load_settings(tmp_path / "fmw.toml", tmp_path / "dd", environ={"FMW_DATA_DIR": "/x"})
    assert explicit.data_dir == (tmp_path / "dd").resolve()


def test_source_paths_are_relative_to_the_config_file(tmp_path):
    s = load(tmp_path, SRC)
    assert s.sources[0].path == tmp_path / "a.csv"
    assert s.sources[0].identity == ("feature_group", "feature_name", "mcc", "mnc")


@pytest.mark.parametrize(("text", "env", "message"), [
    ("colour = 1\n", {}, "unknown setting(s): colour"),
    ("schema = \"Bad-Name\"\n", {}, "schema must be a lower-case SQL identifier"),
    ("timezone = \"Mars/Base\"\n", {}, "not a known IANA zone"),
    ("max_bad_share = 2\n", {}, "max_bad_share must be between 0 and 1"),
    ("", {"FMW_MAX_BAD_SHARE": "lots"}, "max_bad_share must be a number"),
    ("database_url = \"sqlite:///x.db\"\n", {}, "must be a postgresql:// URL"),
    ("snapshot_keep = 0\n", {}, "snapshot_keep must be at least 1"),
    ("duckdb_memory_limit = \"lots\"\n", {}, "duckdb_memory_limit must be like '1GB'"),
    ("api_port = 70000\n", {}, "api_port must be at most 65535"),
    ("api_threads = \"many\"\n", {}, "api_threads must be a whole number"),
    ("", {"FMW_API_ALLOW_PUBLIC_BIND": "maybe"}, "api_allow_public_bind must be true or false"),
    ("api_trusted_proxy = \"10.0.0.1\"\n", {}, "api_trusted_proxy must be the exact proxy"),
    ("sla_webhook_url = \"ftp://x\"\n", {}, "sla_webhook_url must be an http(s) URL"),
    ("sources = 3\n", {}, "sources must be an array of tables"),
    ("not toml ===\n", {}, "not valid TOML"),
    ('[[sources]]\nname = "a b"\nkind = "csv"\npath = "x"\n', {}, "name must be 1-64 letters"),
    ('[[sources]]\nname = "a"\nkind = "ftp"\n', {}, "kind must be one of"),
    (SRC + 'mode = "mirror"\n', {}, "mode must be 'full' or 'incremental'"),
    (SRC + '[sources.columns]\ncolour = "C"\n', {}, "unknown canonical field 'colour'"),
    (SRC + 'identity = ["status"]\n', {}, "identity field 'status' is not allowed"),
    (SRC + 'identity = []\n', {}, "identity must name at least one field"),
    (SRC + '[sources.columns]\nfeature_name = "F"\n', {},
     "identity field 'feature_group' is neither in columns nor constants"),
    ('[[sources]]\nname = "a"\nkind = "csv"\n', {}, "kind 'csv' needs path"),
    ('[[sources]]\nname = "a"\nkind = "sql"\nurl = "postgresql://x/y"\n', {},
     "kind 'sql' needs url (SQLAlchemy URL) and query"),
    ('[[sources]]\nname = "a"\nkind = "http"\nurl = "ftp://x"\n', {}, "needs an http(s) url"),
    (SRC + 'encoding = "latin-1"\n', {}, "encoding must be auto, utf-8, utf-8-sig or cp949"),
    (SRC + 'delimiter = ";;"\n', {}, "delimiter must be one character"),
    (SRC + 'mode = 3\n', {}, "mode must be str"),
    (SRC + SRC, {}, "duplicate source name(s): a"),
])
def test_each_bad_setting_is_a_clear_error_naming_the_file(tmp_path, text, env, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **env)
    assert message in str(info.value)
    assert str(tmp_path / "fmw.toml") in str(info.value)


def test_passwords_never_appear_in_source_locations(tmp_path):
    s = load(tmp_path, '[[sources]]\nname = "a"\nkind = "http"\nurl = "https://u:pw@h/x"\n'
                       '[[sources]]\nname = "b"\nkind = "sql"\nquery = "SELECT 1"\n'
                       'url = "postgresql+psycopg://u:pw@h/db"\n')
    assert [src.location for src in s.sources] == ["https://u:***@h/x",
                                                   "postgresql+psycopg://u:***@h/db"]


def test_every_tunable_is_a_settings_field_and_documented():
    import dataclasses
    from pathlib import Path

    from fmw.settings import Settings
    from fmw.tunables import TUNABLES
    fields = {f.name for f in dataclasses.fields(Settings)}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for t in TUNABLES:
        assert t.name in fields, t.name
        assert f"`{t.name}`" in readme, f"{t.name} is not documented in README.md"


def test_tunables_from_the_environment_are_typed(tmp_path):
    s = load(tmp_path, "api_port = 9000\n", FMW_API_THREADS="4", FMW_API_WARM_DOWNLOADS="off",
             FMW_SLA_WEBHOOK_URL="http://127.0.0.1:9/hook", FMW_SCHEDULE_TIMEZONE="none")
    assert (s.api_port, s.api_threads, s.api_warm_downloads) == (9000, 4, False)
    assert s.sla_webhook_url == "http://127.0.0.1:9/hook" and s.schedule_timezone is None
