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
    ("duckdb_memory_limit = \"lots\"\n", {}, "duckdb_memory_limit must look like"),
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
