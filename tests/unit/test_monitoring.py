"""The stack's metrics, alert rules and Grafana board, checked by tools none of us wrote: promtool
(`check metrics`, `check rules`, `test rules`), Grafana's foundation SDK decoding the board strictly,
and Prometheus' own PromQL parser (monitoring/check)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.promtool import check_metrics, promtool, tool
from tickcast import metrics, monitoring
from tickcast.settings import load


def _samples(text: bytes) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def test_progress_events_commits_and_scores_become_metrics_that_promtool_accepts():
    ev = {"name": "bars", "id": "q", "runId": "r", "batchId": 7, "numInputRows": 120, "batchDuration": 850,
          "inputRowsPerSecond": 40.0, "processedRowsPerSecond": 141.2, "durationMs": {"addBatch": 700}}
    before = _samples(metrics.exposition())
    metrics.observe_batch(ev)
    metrics.observe_batch({**ev, "batchId": 8, "numInputRows": 30, "batchDuration": 400})
    metrics.observe_latest({**ev, "name": "ingest", "inputRowsPerSecond": 50.0}, lag=200)
    metrics.committed("silver.bars_1m", 1_790_000_040_000 // 60_000 * 60_000, at=1_790_000_101.5)
    metrics.committed("ops.stream_progress", 0, at=1.0)            # not a stage: ignored
    metrics.set_lost_offsets({("ticks", 0): 3, ("ticks", 1): 0})
    metrics.add_lost_offsets({("ticks", 0): 2})
    metrics.QUARANTINED.inc(4)
    metrics.set_models([(5, "12", 1_789_000_000_000)])
    metrics.set_live_scores(5, "24h", 150, {"model": (0.55, 0.245), "climatology": (0.5, 0.25),
                                            "momentum": (None, None)})
    text = metrics.exposition()
    check_metrics(text)
    s = _samples(text)

    def grew(name, **labels):
        k = (name, tuple(sorted(labels.items())))
        return s[k] - before.get(k, 0.0)

    assert grew("tickcast_stream_input_rows_total", query="bars") == 150
    assert grew("tickcast_stream_batches_total", query="bars") == 2
    assert s[("tickcast_stream_batch_duration_seconds", (("query", "bars"),))] == 0.4
    assert s[("tickcast_stream_kafka_lag_messages", (("query", "ingest"),))] == 200
    assert s[("tickcast_stream_kafka_lag_seconds", (("query", "ingest"),))] == 4.0      # 200 / 50 rows/s
    assert s[("tickcast_stage_freshness_seconds", (("stage", "bars"),))] == pytest.approx(1.5)   # bar end 1_790_000_100
    assert s[("tickcast_stage_commit_timestamp_seconds", (("stage", "bars"),))] == 1_790_000_101.5
    assert s[("tickcast_lost_offsets", (("partition", "0"), ("topic", "ticks")))] == 5
    assert s[("tickcast_lost_offsets", (("partition", "1"), ("topic", "ticks")))] == 0
    assert grew("tickcast_quarantined_rows_total") == 4
    assert s[("tickcast_model_version", (("horizon", "5"),))] == 12
    assert s[("tickcast_model_training_end_timestamp_seconds", (("horizon", "5"),))] == 1_789_000_000
    hit = {k[1]: v for k, v in s.items() if k[0] == "tickcast_live_hit_ratio"}
    assert hit[(("horizon", "5"), ("predictor", "model"), ("window", "24h"))] == 0.55
    assert (("horizon", "5"), ("predictor", "momentum"), ("window", "24h")) not in hit     # not measured
    # Every family the module defines is what the exposition names (and nothing else).
    fams = {f.name + ("_total" if f.type == "counter" else "") for f in text_string_to_metric_families(text.decode())
            if not f.name.endswith("_created")}       # a counter's creation time (prometheus_client's)
    assert fams == set(metrics.NAMES)


def test_lag_seconds_is_the_backlog_at_the_input_rate():
    assert metrics.lag_seconds(None, 10.0) is None
    assert metrics.lag_seconds(0, 0.0) == 0.0
    assert metrics.lag_seconds(100, 0.0) is None
    assert metrics.lag_seconds(100, 25.0) == 4.0


def test_live_scores_take_the_served_version_of_each_horizon():
    from jobs.outcomes import live_scores

    outcomes = pd.DataFrame({"horizon": [5, 5, 1], "model_version": ["3", "4", "2"], "target_time": [100, 200, 150]})
    scores = pd.DataFrame([
        {"model_version": v, "horizon": h, "symbol": sym, "window": w, "n": n, "brier": b, "accuracy": a,
         "climatology_brier": 0.25, "momentum_brier": None, "climatology_accuracy": 0.5, "momentum_accuracy": None}
        for v, h, sym, w, n, b, a in [("3", 5, "*", "24h", 90, 0.30, 0.4), ("4", 5, "*", "24h", 10, 0.2, 0.6),
                                      ("4", 5, "BTCUSDT", "24h", 5, 0.1, 0.9), ("2", 1, "*", "1h", 7, 0.24, 0.51)]])
    got = {(h, w): (n, per) for h, w, n, per in live_scores(outcomes, scores)}
    assert got == {(5, "24h"): (10, {"model": (0.6, 0.2), "climatology": (0.5, 0.25), "momentum": (None, None)}),
                   (1, "1h"): (7, {"model": (0.51, 0.24), "climatology": (0.5, 0.25), "momentum": (None, None)})}


def test_shipped_rules_and_board_are_the_generated_ones():
    s = load({})
    assert monitoring.RULES_FILE.read_text() == monitoring.rules_yaml(s), "run `python -m tickcast.monitoring`"
    assert monitoring.DASHBOARD_FILE.read_text() == monitoring.dashboard_json(s), "run `python -m tickcast.monitoring`"


def test_promtool_checks_the_rules_and_every_alert_fires_and_resolves():
    d = monitoring.RULES_FILE.parent
    r = promtool("check", "rules", str(monitoring.RULES_FILE))
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"SUCCESS: 8 rules found" in r.stdout
    r = promtool("test", "rules", "tickcast-rules.test.yml", cwd=d)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    import yaml

    cases = [c for test in yaml.safe_load((d / "tickcast-rules.test.yml").read_text())["tests"]
             for c in test["alert_rule_test"]]
    tested = {c["alertname"] for c in cases}
    # Each alert is expected firing at one time and silent at a later one (it resolves).
    for name in tested:
        times = [(c["eval_time"], bool(c["exp_alerts"])) for c in cases if c["alertname"] == name]
        assert any(f for _, f in times) and not times[-1][1], (name, times)
    assert tested == {r["alert"] for r in monitoring.rules(load({}))["groups"][0]["rules"]}


def test_the_rule_tests_fail_when_a_threshold_moves(tmp_path):
    s = dataclasses.replace(load({}), alert_freshness_seconds=20.0, alert_model_age_seconds=3 * 86400)
    (tmp_path / "tickcast-rules.yml").write_text(monitoring.rules_yaml(s))
    shutil.copy(monitoring.RULES_FILE.parent / "tickcast-rules.test.yml", tmp_path)
    r = promtool("test", "rules", "tickcast-rules.test.yml", cwd=tmp_path)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode != 0 and "TickcastFreshnessHigh" in out and "TickcastChampionStale" in out, out


def _board_targets(path) -> list[dict]:
    r = subprocess.run([tool("dashboard-check"), str(path)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def test_the_grafana_board_decodes_strictly_and_queries_only_our_metrics(tmp_path):
    targets = _board_targets(monitoring.DASHBOARD_FILE)
    assert len(targets) >= 15
    used = {n for t in targets for n in t["metrics"]}
    assert used <= set(metrics.NAMES), used - set(metrics.NAMES)
    assert used == set(metrics.NAMES)              # and the board shows every one of them
    # promtool parses each query too (as recording rules of a throwaway rule file).
    rules = {"groups": [{"name": "panels", "rules": [{"record": f"tickcast:panel_{i}", "expr": t["expr"]}
                                                     for i, t in enumerate(targets)]}]}
    f = tmp_path / "panels.yml"
    f.write_text(json.dumps(rules))
    r = promtool("check", "rules", str(f))
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


@pytest.mark.parametrize("change, complaint", [
    (lambda d: d.update(bogus=1), "unexpected field 'bogus'"),
    (lambda d: d["panels"][0]["gridPos"].update(h="8"), "gridPos.h"),
    (lambda d: d["panels"][1]["targets"][0].update(expr="rate(x[5m"), "does not parse"),
    (lambda d: d["panels"][2]["targets"][0].update(exprr="x"), "unexpected field 'exprr'"),
])
def test_the_board_checker_refuses_a_broken_board(tmp_path, change, complaint):
    d = monitoring.dashboard(load({}))
    change(d)
    f = tmp_path / "board.json"
    f.write_text(json.dumps(d))
    r = subprocess.run([tool("dashboard-check"), str(f)], capture_output=True, timeout=60)
    assert r.returncode == 1 and complaint in r.stderr.decode(), r.stderr.decode()


def test_a_metrics_port_in_use_fails_at_start_naming_the_setting(monkeypatch, capsys, tmp_path):
    import socket

    import click

    from jobs import main as job_main
    from stack.up import serve_metrics

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = dataclasses.replace(load({}), metrics_port=port)
        with pytest.raises(click.ClickException, match=f"TICKCAST_METRICS_PORT: cannot listen on 127.0.0.1:{port}"):
            serve_metrics(s)
        monkeypatch.setenv("TICKCAST_METRICS_PORT", str(port))
        monkeypatch.setenv("TICKCAST_DATA_DIR", str(tmp_path))
        assert job_main.main(["--job", "bars"]) == 2
        assert "TICKCAST_METRICS_PORT" in capsys.readouterr().err
    assert serve_metrics(dataclasses.replace(s, metrics_port=0)) is None


def test_the_metrics_server_answers_on_loopback():
    import urllib.request

    from tests.conftest import free_port

    srv = metrics.MetricsServer("127.0.0.1", free_port())
    try:
        with urllib.request.urlopen(srv.url, timeout=10) as r:
            text = r.read()
        assert srv.url.startswith("http://127.0.0.1:") and b"tickcast_quarantined_rows_total" in text
        check_metrics(text)
    finally:
        srv.close()


def test_a_commit_time_is_the_newest_data_commit_in_the_log_not_a_compaction(tmp_path):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from jobs.delta_io import last_commit_time

    write_deltalake(str(tmp_path), pa.table({"a": [1]}))
    write_deltalake(str(tmp_path), pa.table({"a": [2]}), mode="append")
    dt = DeltaTable(str(tmp_path))
    wrote = dt.history(1)[0]["timestamp"] / 1000.0
    dt.optimize.compact()
    dt = DeltaTable(str(tmp_path))
    assert dt.history(1)[0]["operation"] == "OPTIMIZE"
    assert last_commit_time(dt) == wrote
