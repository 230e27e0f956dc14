"""Forecast metrics, block-bootstrap confidence intervals and the promotion gate (pure numpy).

Labels of neighbouring minutes overlap (a 5-minute return shares 4 minutes with the next one) and
volatility clusters, so rows are not independent: intervals come from a moving-block bootstrap over
time (all symbols of a minute move together), never from i.i.d. resampling. Every metric is a
ratio of per-minute sums, which makes a bootstrap replicate a couple of vectorised sums.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-7
LEVEL = 0.95


def block_length(horizon: int) -> int:
    """Minutes per bootstrap block: several label horizons, and at least an hour of clustering."""
    return max(60, 4 * horizon)


@dataclass(frozen=True)
class Sample:
    """Test rows of one model: predicted probability of up and return, and what happened."""
    time_index: np.ndarray    # row -> index of its minute among the test minutes (0..T-1)
    prob_up: np.ndarray
    pred_return: np.ndarray
    realized: np.ndarray      # realized log return

    @property
    def direction(self) -> np.ndarray:
        """Rows that count for direction metrics: zero returns have no direction."""
        return self.realized != 0


def per_row(s: Sample) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Metric -> (numerator per row, denominator per row); a metric is sum(num) / sum(den)."""
    d = s.direction.astype(float)
    y = (s.realized > 0).astype(float)
    p = np.clip(s.prob_up, EPS, 1 - EPS)
    hit = ((s.prob_up > 0.5) == (s.realized > 0)).astype(float)
    one = np.ones_like(s.realized)
    return {
        "brier": ((p - y) ** 2 * d, d),
        "log_loss": (-(y * np.log(p) + (1 - y) * np.log(1 - p)) * d, d),
        "accuracy": (hit * d, d),
        "mae": (np.abs(s.pred_return - s.realized), one),
        "sse": ((s.pred_return - s.realized) ** 2, one),
        "sum_y": (s.realized, one),
        "sum_y2": (s.realized ** 2, one),
    }


def _by_minute(s: Sample, values: np.ndarray, n_minutes: int) -> np.ndarray:
    return np.bincount(s.time_index, weights=values, minlength=n_minutes)


@dataclass(frozen=True)
class Bootstrap:
    """Circular moving-block bootstrap over `n_minutes` minutes, generated in chunks of replicates
    (months of minutes times a thousand replicates would not fit in memory at once)."""
    n_minutes: int
    block: int
    reps: int = 1000
    seed: int = 0
    chunk: int = 100

    def _starts(self):
        """Per chunk of replicates: the (k, n_blocks) block starts, and the block length."""
        block = max(1, min(self.block, self.n_minutes))
        n_blocks = -(-self.n_minutes // block)
        for c in range(-(-self.reps // self.chunk)):
            rng = np.random.default_rng([self.seed, c])
            k = min(self.chunk, self.reps - c * self.chunk)
            yield rng.integers(0, self.n_minutes, (k, n_blocks)), block

    def chunks(self):
        """Per chunk of replicates: the (k, n_minutes) resampled minute indices."""
        for starts, block in self._starts():
            k, n_blocks = starts.shape
            idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % self.n_minutes
            yield idx.reshape(k, -1)[:, :self.n_minutes]

    def resample(self, fn, sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """fn(resampled sums) -> dict of arrays (one value per replicate), over all chunks.

        `fn` may only add its inputs up along the last axis (every metric here is a ratio of
        totals), so a replicate is given as the sums of its blocks, not its minutes: each block's
        sum is a difference of circular prefix sums, n_blocks lookups instead of n_minutes (the
        same replicates as `chunks`, block times faster on months of minutes).
        """
        n = self.n_minutes
        prefix = {k: np.concatenate([[0.0], np.cumsum(np.concatenate([v, v]))]) for k, v in sums.items()}
        parts = []
        for starts, block in self._starts():
            lengths = np.full(starts.shape[1], block)
            lengths[-1] = n - block * (starts.shape[1] - 1)       # the last block is cut at n minutes
            ends = starts + lengths[None, :]
            parts.append(fn({k: p[ends] - p[starts] for k, p in prefix.items()}))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _stats(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-minute (or resampled) sums -> metric values; works on 1-D or (reps, T) arrays."""
    tot = {k: v.sum(axis=-1) for k, v in sums.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {m: tot[m + "/n"] / tot[m + "/d"] for m in ("brier", "log_loss", "accuracy", "mae")}
        n = tot["sse/d"]
        sst = tot["sum_y2/n"] - tot["sum_y/n"] ** 2 / n
        out["r2"] = 1 - tot["sse/n"] / sst
    return out


def _minute_sums(s: Sample, n_minutes: int) -> dict[str, np.ndarray]:
    sums = {}
    for m, (num, den) in per_row(s).items():
        sums[m + "/n"] = _by_minute(s, num, n_minutes)
        sums[m + "/d"] = _by_minute(s, den, n_minutes)
    return sums


def metrics_with_ci(s: Sample, boot_over: Bootstrap) -> dict[str, dict[str, float]]:
    """Each metric's point value and block-bootstrap interval at LEVEL."""
    sums = _minute_sums(s, boot_over.n_minutes)
    point = _stats(sums)
    boot = boot_over.resample(_stats, sums)
    a = (1 - LEVEL) / 2
    return {m: {"value": float(point[m]), "lo": float(np.nanquantile(boot[m], a)),
                "hi": float(np.nanquantile(boot[m], 1 - a))} for m in point}


@dataclass(frozen=True)
class Comparison:
    against: str
    improvement: float        # mean Brier of `against` minus the candidate's (> 0: candidate better)
    lo: float                 # lower end of the paired block-bootstrap interval at LEVEL
    hi: float
    rows: int
    passed: bool

    def describe(self) -> str:
        verdict = "beats" if self.passed else "does not beat"
        return (f"{verdict} {self.against}: Brier improvement {self.improvement:+.6f} "
                f"[{self.lo:+.6f}, {self.hi:+.6f}] over {self.rows} rows")


def compare(candidate: Sample, other: Sample, against: str, boot_over: Bootstrap) -> Comparison:
    """Paired block-bootstrap of the Brier improvement of `candidate` over `other` on the same rows.

    Passes only if the lower end of the interval is above zero: a tie never promotes.
    """
    if not np.array_equal(candidate.realized, other.realized):
        raise ValueError("compare: the two samples are not the same rows")
    d = candidate.direction.astype(float)
    y = (candidate.realized > 0).astype(float)
    gain = ((np.clip(other.prob_up, EPS, 1 - EPS) - y) ** 2 - (np.clip(candidate.prob_up, EPS, 1 - EPS) - y) ** 2) * d
    n_minutes = boot_over.n_minutes
    num, den = _by_minute(candidate, gain, n_minutes), _by_minute(candidate, d, n_minutes)
    rows = int(d.sum())
    if rows == 0:
        return Comparison(against, float("nan"), float("nan"), float("nan"), 0, False)
    point = num.sum() / den.sum()
    def mean_gain(r):
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"g": r["num"].sum(axis=1) / r["den"].sum(axis=1)}

    boot = boot_over.resample(mean_gain, {"num": num, "den": den})["g"]
    a = (1 - LEVEL) / 2
    lo, hi = float(np.nanquantile(boot, a)), float(np.nanquantile(boot, 1 - a))
    return Comparison(against, float(point), lo, hi, rows, bool(lo > 0))


def subset(s: Sample, mask: np.ndarray) -> tuple[Sample, int]:
    """Rows under `mask`, with minutes re-indexed densely; returns (sample, number of minutes)."""
    uniq, inv = np.unique(s.time_index[mask], return_inverse=True)
    return Sample(inv, s.prob_up[mask], s.pred_return[mask], s.realized[mask]), len(uniq)
