from datetime import date

import pytest

from mydata.config import ConfigError, Settings


def test_defaults_are_the_embedded_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(env={})
    assert settings.data_root == tmp_path / "var"
    assert settings.spark_master == "local[*]"
    assert settings.engine == "duckdb"
    assert settings.purpose == "marketing"
    assert settings.as_of is None
    assert settings.lake.bronze == tmp_path / "var" / "bronze"


def test_environment_overrides_defaults_and_flags_override_environment(tmp_path):
    env = {"MYDATA_DATA_ROOT": str(tmp_path / "env"), "MYDATA_SPARK_MASTER": "spark://127.0.0.1:7077",
           "MYDATA_PURPOSE": "analytics", "MYDATA_AS_OF": "20261101"}
    from_env = Settings.load(env=env)
    assert from_env.data_root == tmp_path / "env"
    assert from_env.spark_master == "spark://127.0.0.1:7077"
    assert from_env.purpose == "analytics"
    assert from_env.as_of == date(2026, 11, 1)
    flagged = Settings.load(env=env, data_root=tmp_path / "flag", purpose="marketing", as_of=None)
    assert flagged.data_root == tmp_path / "flag"
    assert flagged.purpose == "marketing"
    assert flagged.as_of == date(2026, 11, 1)  # None means "not given"


def test_as_env_round_trips(tmp_path):
    settings = Settings(data_root=tmp_path, purpose="credit_scoring", as_of="2026-10-01")
    assert Settings.load(env=settings.as_env()) == settings


@pytest.mark.parametrize("kwargs, message", [
    ({"purpose": "ads"}, "purpose must be one of"),
    ({"as_of": "2026-13-01"}, "as_of must be a date"),
    ({"shuffle_partitions": "many"}, "shuffle_partitions"),
    ({"spark_ui": "maybe"}, "spark_ui"),
    ({"engine": "polars"}, "engine must be one of duckdb, spark"),
    ({"duckdb_memory": "lots"}, "duckdb_memory must be a size"),
    ({"duckdb_threads": -1}, "duckdb_threads"),
])
def test_bad_values_give_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(env={}, **kwargs)


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(env={}, colour="blue")


def test_the_release_gate_settings_come_from_the_environment_and_are_checked():
    settings = Settings.load(env={"MYDATA_K_ANONYMITY": "10", "MYDATA_MAX_SUPPRESSION": "0.02"})
    assert (settings.k_anonymity, settings.max_suppression) == (10, 0.02)
    assert (Settings().k_anonymity, Settings().max_suppression) == (5, 0.05)
    for bad in ({"MYDATA_K_ANONYMITY": "1"}, {"MYDATA_K_ANONYMITY": "five"}, {"MYDATA_MAX_SUPPRESSION": "1.5"}):
        with pytest.raises(ConfigError):
            Settings.load(env=bad)


def test_the_engine_comes_from_the_environment_and_a_cluster_master_means_spark():
    assert Settings.load(env={"MYDATA_ENGINE": "spark"}).engine == "spark"
    assert Settings.load(env={"MYDATA_ENGINE": "Spark"}).engine == "spark"
    assert Settings.load(env={"MYDATA_ENGINE": "spark"}, engine="duckdb").engine == "duckdb"  # the flag wins
    for master in ("spark://127.0.0.1:7077", "sc://127.0.0.1:15002"):
        assert Settings.load(env={"MYDATA_SPARK_MASTER": master}).engine == "spark"
        assert Settings.load(env={"MYDATA_ENGINE": "duckdb", "MYDATA_SPARK_MASTER": master}).engine == "spark"
    assert Settings(duckdb_memory="512MB", duckdb_threads="2").duckdb_threads == 2


def test_the_memory_limit_is_read_in_bytes_as_duckdb_reads_it():
    assert Settings(duckdb_memory="512MB").duckdb_memory_bytes == 512_000_000
    assert Settings(duckdb_memory="1.5 GiB").duckdb_memory_bytes == 3 * 2**29


def test_setup_checks_refuse_what_would_fail_later_in_one_line(tmp_path, monkeypatch):
    from datetime import date, timedelta

    from mydata.config import ConfigError

    ahead = date.today() + timedelta(days=90)
    with pytest.raises(ConfigError, match=f"as_of {ahead} is after today"):
        Settings(as_of=ahead)
    assert Settings(as_of=ahead, as_of_tolerance_days=90).as_of == ahead
    with pytest.raises(ConfigError, match="duckdb_memory 1KB is below the 128 MiB"):
        Settings(duckdb_memory="1KB")
    with pytest.raises(ConfigError, match=r"driver_memory must be a JVM size such as 2g .*MYDATA_DRIVER_MEMORY"):
        Settings(driver_memory="lots")


def test_the_holder_registry_from_the_environment_is_told_missing_from_malformed(tmp_path):
    from mydata.config import ConfigError
    from mydata.holders import Holder, HolderRegistry

    settings = Settings(data_root=tmp_path)
    with pytest.raises(ConfigError, match="names .*nowhere.json, which does not exist"):
        HolderRegistry.open(settings, env={"MYDATA_HOLDERS": str(tmp_path / "nowhere.json")})
    (tmp_path / "holders.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a JSON list"):
        HolderRegistry.open(settings, env={"MYDATA_HOLDERS": str(tmp_path / "holders.json")})
    (tmp_path / "holders.json").write_text('[{"source": "card", "org_code": "D100000001", "name": "신한카드", '
                                           '"since": "2026-01-01"}]', encoding="utf-8")
    assert HolderRegistry.open(settings, env={"MYDATA_HOLDERS": str(tmp_path / "holders.json")}).get("card", "D100000001")
    with pytest.raises(ConfigError, match="the name has control characters"):
        Holder("card", "D100000001", "\x1b[2J신한카드", "2026-01-01")
