"""Settings: defaults from CONTRACTS.md, and a bad value names its setting."""
import pytest

from tickcast.settings import SettingsError, load


def test_defaults_follow_the_contract(tmp_path):
    s = load({"TICKCAST_DATA_DIR": str(tmp_path)})
    assert s.lake_uri == f"{tmp_path}/delta" and s.checkpoint_uri == f"{tmp_path}/checkpoints"
    assert (s.kafka_bootstrap, s.topic, s.trigger_seconds, s.watermark_seconds) == ("127.0.0.1:9092", "ticks", 1.0, 5)
    assert (s.bars_trigger_seconds, s.outcomes_trigger_seconds, s.minute_trigger_seconds) == (0.5, 30.0, 0.25)
    assert s.ingest_phase_seconds == 0.4
    assert s.mlflow_uri.startswith("sqlite:///") and str(tmp_path) in s.mlflow_uri
    assert s.binance_ws_url.startswith("wss://") and s.binance_rest_url.startswith("https://")


def test_lake_and_checkpoints_can_be_object_store_uris():
    s = load({"TICKCAST_LAKE_URI": "s3a://lake/delta/", "TICKCAST_CHECKPOINT_URI": "s3a://lake/ckpt"})
    assert (s.lake_uri, s.checkpoint_uri) == ("s3a://lake/delta", "s3a://lake/ckpt")


@pytest.mark.parametrize("name,value", [
    ("TRIGGER_SECONDS", "abc"), ("TRIGGER_SECONDS", "0"), ("TRIGGER_SECONDS", "-1"), ("TRIGGER_SECONDS", "nan"),
    ("INGEST_PHASE_SECONDS", "-0.1"), ("INGEST_PHASE_SECONDS", "1"), ("INGEST_PHASE_SECONDS", "x"),
    ("BARS_TRIGGER_SECONDS", "soon"), ("BARS_TRIGGER_SECONDS", "0"), ("MINUTE_TRIGGER_SECONDS", "-0.5"),
    ("WATERMARK_SECONDS", "1.5"), ("WATERMARK_SECONDS", "-3"),
    ("KAFKA_BOOTSTRAP", "localhost"), ("KAFKA_BOOTSTRAP", "host:99999"), ("TOPIC", "bad topic!"),
    ("TOPIC_PARTITIONS", "0"), ("KAFKA_HEAP", "lots"), ("MLFLOW_URI", "not a uri"),
    ("BINANCE_WS_URL", "stream.binance.com"), ("LAKE_URI", "relative/path"), ("MAX_OFFSETS_PER_TRIGGER", "-1"),
])
def test_bad_value_fails_naming_the_setting(name, value):
    with pytest.raises(SettingsError) as e:
        load({f"TICKCAST_{name}": value})
    assert str(e.value).startswith(f"TICKCAST_{name}:")


def test_ingest_phase_must_fall_inside_the_trigger_interval():
    assert load({"TICKCAST_TRIGGER_SECONDS": "2", "TICKCAST_INGEST_PHASE_SECONDS": "1.5"}).ingest_phase_seconds == 1.5
    assert load({"TICKCAST_INGEST_PHASE_SECONDS": "0"}).ingest_phase_seconds == 0.0
    with pytest.raises(SettingsError, match="^TICKCAST_INGEST_PHASE_SECONDS: must be < TICKCAST_TRIGGER_SECONDS"):
        load({"TICKCAST_TRIGGER_SECONDS": "0.5", "TICKCAST_INGEST_PHASE_SECONDS": "0.5"})
