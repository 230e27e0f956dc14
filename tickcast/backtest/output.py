"""Where a backtest's results go: the markdown report, `gold.backtest` rows (delta-rs) and an MLflow
run of its own experiment (artefacts only: backtest models are never registered)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from tickcast import lake, tables
from tickcast.lake import write
from tickcast.settings import Settings
from tickcast.training.config import iso

EXPERIMENT = "tickcast-backtest"


def _pct(x: dict | None, key: str = "value") -> str:
    return "-" if x is None else f"{x[key]:.2%}"


def _iv(x: dict | None, pct: bool = True) -> str:
    if x is None:
        return "-"
    f = (lambda v: f"{v:.2%}") if pct else (lambda v: f"{v:.4f}")
    return f"{f(x['value'])} [{f(x['lo'])}, {f(x['hi'])}]"


def markdown(result: dict) -> str:
    """The report a person reads: per period and overall, the gate's record and the strategy's verdict."""
    c = result["config"]
    lines = [f"## Backtest of tickcast-h{c['horizon']}: {len(result['periods'])} retrains every {c['retrain_every']}, "
             f"window {c['window']}, candidates {c['candidates']}, {c['symbols']}, {c['start']} .. {c['end']}", "",
             "Accuracy and Brier with 95% block-bootstrap intervals, on the rows the served model scored "
             "(the baselines on the same rows; on all of the period's rows when nothing served). "
             f"Strategy: long when P(up) > {c['threshold']}, flat otherwise, {c['fee_bps']:g} bps per change.", "",
             "| period | start | gate | served | accuracy | climatology | momentum | Brier | clim. Brier | "
             "strategy after fees | before fees | buy-and-hold |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in result["periods"]:
        sc, st = p["scores"], p["strategy"]
        served = f"v{p['served']} ({p['served_family']})" if p["served"] else "nothing"
        gate = p["gate"] + (f" ({p.get('candidate_family')})" if p.get("candidate_family") else "")
        lines.append(f"| {p['period']} | {iso(p['start_ms'])[:16]} | {gate} | {served} | "
                     f"{_iv(sc['model'] and sc['model']['accuracy'])} | "
                     f"{_iv(sc['climatology'] and sc['climatology']['accuracy'])} | "
                     f"{_iv(sc['momentum'] and sc['momentum']['accuracy'])} | "
                     f"{_iv(sc['model'] and sc['model']['brier'], False)} | "
                     f"{_iv(sc['climatology'] and sc['climatology']['brier'], False)} | "
                     f"{_iv(st['net'])} | {_pct(st['gross'])} | {st['buy_hold']:.2%} |")
    o = result["overall"]
    sc, st, g = o["scores"], o["strategy"], o["gate"]
    lines += ["", "### Overall", ""]
    if sc["model"] is not None:
        lines.append(f"- served model over {sc['rows']} rows: accuracy {_iv(sc['model']['accuracy'])}, "
                     f"Brier {_iv(sc['model']['brier'], False)}")
    else:
        lines.append("- no period served a model")
    for b in ("climatology", "momentum"):
        if sc[b] is not None:
            lines.append(f"- {b} on the same rows: accuracy {_iv(sc[b]['accuracy'])}, Brier {_iv(sc[b]['brier'], False)}")
    share = "-" if g["right_share"] is None else f"{g['right_share']:.0%}"
    lines += [f"- the gate was right {g['right']} of {g['judged']} times ({share}): promoted and then beat both "
              f"baselines {g['promoted_beat']}, promoted and then did not {g['promoted_lost']}, refused but would "
              f"have beaten them {g['refused_would_have_beaten']}, refused rightly {g['refused_rightly']}",
              f"- strategy: {st['verdict']}; exposure {st['exposure']:.0%} of minutes",
              f"\nBacktest time: {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def table_rows(result: dict, run_id: str, computed_at_ms: int):
    """One `gold.backtest` row per period, as a pyarrow Table with the declared schema."""
    import pyarrow as pa

    c = result["config"]
    ts = lambda ms: None if ms is None else ms * 1000  # noqa: E731  (timestamps are microseconds)
    out = {n: [] for n in tables.BACKTEST.schema.names}

    def iv(prefix, x):
        for sfx, k in (("", "value"), ("_lo", "lo"), ("_hi", "hi")):
            out[prefix + sfx].append(None if x is None else x[k])

    for p in result["periods"]:
        sc, st = p["scores"], p["strategy"]
        for k, v in {"run_id": run_id, "horizon": c["horizon"], "period": p["period"],
                     "period_start": ts(p["start_ms"]), "period_end": ts(p["end_ms"]), "computed_at": ts(computed_at_ms),
                     "symbols": c["symbols"], "train_start": ts(p["train_start_ms"]), "gate": p["gate"],
                     "gate_reason": p.get("gate_reason"), "candidate_version": p.get("candidate"),
                     "candidate_family": p.get("candidate_family"),
                     "candidate_beat_baselines": p["candidate_beat_baselines"], "served_version": p["served"],
                     "served_family": p["served_family"], "served_training_end": ts(p["served_training_end_ms"]),
                     "rows": p["rows"], "served_rows": sc["served_rows"], "strategy_fees": st["fees"],
                     "position_changes": st["changes"], "exposure": st["exposure"], "buy_hold_return": st["buy_hold"],
                     "fee_bps": float(c["fee_bps"]), "threshold": float(c["threshold"])}.items():
            out[k].append(v)
        for m, name in (("model", ""), ("climatology", "climatology_"), ("momentum", "momentum_")):
            for k in ("accuracy", "brier"):
                iv(name + k, sc[m] and sc[m][k])
        iv("strategy_return", st["net"])
        iv("strategy_gross_return", st["gross"])
    return pa.Table.from_pydict(out, schema=tables.BACKTEST.schema.arrow_type(declared_nulls=True))


def write_table(s: Settings, rows) -> str:
    """Append the run's rows to gold.backtest (created on first use); returns the table's location."""
    return write.append_small(rows, lake.uri(tables.BACKTEST, s))


def start_run(s: Settings, run_name: str):
    """An MLflow run in the backtest's own experiment (never the registry)."""
    import mlflow

    from tickcast import model_io  # deferred: heavy (imports mlflow)

    client = model_io.configure(s)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        art = None
        if s.mlflow_uri.startswith("sqlite:///"):
            art = (Path(s.mlflow_uri[len("sqlite:///"):]).parent / "artifacts").absolute().as_uri()
        client.create_experiment(EXPERIMENT, artifact_location=art)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow.start_run(run_name=run_name)


def log_run(result: dict, report_md: str, rows_csv: str) -> None:
    """Parameters, per-period and overall metrics, and the artefacts, into the active run."""
    import mlflow

    c = result["config"]
    mlflow.log_params({k: v for k, v in c.items()})
    for p in result["periods"]:
        m = p["scores"]["model"]
        metrics = {"strategy_return": p["strategy"]["net"]["value"], "buy_hold_return": p["strategy"]["buy_hold"]}
        if m is not None:
            metrics.update(accuracy=m["accuracy"]["value"], brier=m["brier"]["value"])
        for b in ("climatology", "momentum"):
            if p["scores"][b] is not None:
                metrics[f"{b}_accuracy"] = p["scores"][b]["accuracy"]["value"]
        mlflow.log_metrics({f"period_{k}": v for k, v in metrics.items()}, step=p["period"])
    o = result["overall"]
    if o["scores"]["model"] is not None:
        mlflow.log_metrics({"accuracy": o["scores"]["model"]["accuracy"]["value"],
                            "brier": o["scores"]["model"]["brier"]["value"]})
    mlflow.log_metrics({"strategy_return": o["strategy"]["net"]["value"], "buy_hold_return": o["strategy"]["buy_hold"],
                        "gate_right": o["gate"]["right"], "gate_judged": o["gate"]["judged"],
                        "seconds": result["seconds"]})
    mlflow.log_dict(json.loads(json.dumps(result, default=str)), "backtest/backtest.json")
    mlflow.log_text(report_md, "backtest/report.md")
    mlflow.log_text(rows_csv, "backtest/periods.csv")


def now_ms() -> int:
    return int(time.time() * 1000)
