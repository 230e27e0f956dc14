"""What `up`'s status panel reads: rows per table, the latest prediction and hit rates (delta-rs, no
JVM), and the CPU and memory of the local stack."""
from __future__ import annotations

import time

import psutil

from tickcast import kafka_broker, lake, tables
from tickcast.settings import Settings


def table_rows(s: Settings) -> dict[str, int]:
    """Rows per table from the Delta log's file statistics (delta-rs: no scan, no JVM)."""
    from deltalake import DeltaTable  # deferred: heavy (pyarrow)

    out = {}
    for t in (tables.TICKS, tables.QUARANTINE, tables.BARS, tables.FEATURES, tables.PREDICTIONS):
        try:
            adds = DeltaTable(t.path(s)).get_add_actions(flatten=True)
            out[t.name] = int(sum(adds.column("num_records").to_pylist() or [0]))
        except Exception:  # not created yet (TableNotFoundError) or being written: show 0, not a crash
            out[t.name] = 0
    return out


def prediction_summary(s: Settings) -> str:
    """The latest prediction and the live hit rate vs the baselines (last hour), from delta-rs reads."""
    parts = []
    try:
        if lake.exists(tables.PREDICTIONS, s):
            t = lake.read(tables.PREDICTIONS, s, columns=["symbol", "window_start", "horizon", "model_version",
                                                          "prob_up"]).to_pandas()
            if len(t):
                r = t.sort_values("window_start").iloc[-1]
                parts.append(f"pred {r['symbol']} {r['window_start']:%H:%M} h{r['horizon']} "
                             f"P(up)={r['prob_up']:.3f} v{r['model_version']}")
        if lake.exists(tables.MODEL_SCORES, s):
            m = lake.read(tables.MODEL_SCORES, s, filters=[("symbol", "=", "*"), ("window", "=", "1h")]).to_pandas()
            if len(m):
                last = m[m["computed_at"] == m["computed_at"].max()].sort_values("horizon")
                for _, r in last.iterrows():
                    if r["n"]:
                        parts.append(f"hit h{r['horizon']} {r['accuracy']:.1%} (clim {r['climatology_accuracy']:.1%}, "
                                     f"mom {r['momentum_accuracy']:.1%}, n={r['n']})")
    except Exception:  # a table being written or compacted: skip this refresh, never crash the line
        return ""
    return " | ".join(parts)


class StackMeter:
    """CPU (cores, averaged since the last reading) and resident memory of the local stack."""

    def __init__(self, s: Settings, producer_pid: int, others: list[int] = ()):
        self.psutil = psutil
        self.pids = [psutil.Process().pid, producer_pid, *[p for p in others if p != producer_pid]]
        bpid = kafka_broker._read_pid(s)
        if bpid:
            self.pids.append(bpid)
        self._last = (time.monotonic(), self._cpu())

    def _procs(self):
        seen: dict[int, object] = {}     # by pid: `up`'s own children are also in its recursive children
        for pid in self.pids:
            try:
                p = self.psutil.Process(pid)
                for q in (p, *p.children(recursive=True)):
                    seen.setdefault(q.pid, q)
            except self.psutil.NoSuchProcess:
                pass
        return list(seen.values())

    def _cpu(self) -> float:
        total = 0.0
        for p in self._procs():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except self.psutil.NoSuchProcess:
                pass
        return total

    def describe(self) -> str:
        now, cpu = time.monotonic(), self._cpu()
        t0, c0 = self._last
        cores = (cpu - c0) / (now - t0) if now > t0 and cpu >= c0 else 0.0
        self._last = (now, cpu)
        rss = 0
        for p in self._procs():
            try:
                rss += p.memory_info().rss
            except self.psutil.NoSuchProcess:
                pass
        return f"cpu {cores:.2f} cores, mem {rss / 2**30:.2f} GiB"


LIFECYCLE_WORDS = {"promotion": "promoted", "refusal": "refused by the gate", "demotion": "DEMOTED (live decay)",
                   "expiry": "EXPIRED (max age)", "failed_retrain": "retrain FAILED", "abandoned": "abandoned",
                   "manual_promotion": "promoted by hand", "rollback": "rolled back"}


def lifecycle_summary(s: Settings, retrainer=None) -> str:
    """The newest ops.model_events row per horizon, in words, and whether the retrainer runs."""
    from tickcast import model_events as events

    parts = []
    if retrainer is not None and retrainer.poll() is not None:
        parts.append(f"retrainer not running (exit {retrainer.returncode}; see retrainer.log)")
    try:
        df = events.read(s)
    except Exception:  # being written: nothing this refresh
        return " | ".join(parts)
    for h, g in sorted(df.groupby("horizon"), key=lambda kv: int(kv[0])):
        r = g.iloc[0]
        what = LIFECYCLE_WORDS.get(r["event"], r["event"])
        v = f" v{r['model_version']}" if isinstance(r["model_version"], str) else ""
        line = f"h{int(h)}{v} {what} {r['event_time']:%m-%d %H:%M}"
        if r["event"] in ("failed_retrain", "demotion", "expiry"):
            line += f": {r['reason'][:120]}"
        parts.append(line)
    return " | ".join(parts)
